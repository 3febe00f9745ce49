#include "common/auth/machine_auth.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/crypto/digest.h"
#include "common/crypto/ed25519.h"
#include "common/proto/crypto.pb.h"
#include "common/proto/signing_input.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/reflection.h"

namespace tether::auth {

absl::Status SignMachineAuth(absl::string_view full_method, absl::string_view machine_id,
                             const crypto::SecretBytes& signing_key, absl::Time now,
                             google::protobuf::Message* request) {
  const google::protobuf::FieldDescriptor* field = request->GetDescriptor()->FindFieldByName("auth");
  if (field == nullptr || field->is_repeated() ||
      field->type() != google::protobuf::FieldDescriptor::TYPE_MESSAGE ||
      field->message_type()->full_name() != proto::MachineAuth::descriptor()->full_name()) {
    return absl::InvalidArgumentError(
        absl::StrCat(request->GetTypeName(), " has no MachineAuth field `auth`"));
  }
  auto* auth = static_cast<proto::MachineAuth*>(
      request->GetReflection()->MutableMessage(request, field));
  auth->Clear();
  auth->set_machine_id(std::string(machine_id));
  auth->set_timestamp_unix_ms(absl::ToUnixMillis(now));
  ASSIGN_OR_RETURN(std::string nonce, crypto::RandomBytes(16));
  auth->set_nonce(nonce);
  ASSIGN_OR_RETURN(std::string input,
                   proto::MachineAuthSigningInput(
                       std::string_view(full_method.data(), full_method.size()), *request));
  ASSIGN_OR_RETURN(std::string signature, crypto::Ed25519Sign(signing_key, input));
  // Re-fetch: MachineAuthSigningInput works on a copy, but keep the pointer use obvious.
  auth = static_cast<proto::MachineAuth*>(request->GetReflection()->MutableMessage(request, field));
  auth->set_signature(std::move(signature));
  return absl::OkStatus();
}

}  // namespace tether::auth
