#include "common/proto/signing_input.h"

#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/proto/crypto.pb.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace tether::proto {
namespace {

void AppendBigEndian(std::string& out, uint64_t value, int bytes) {
  for (int shift = 8 * (bytes - 1); shift >= 0; shift -= 8) {
    out.push_back(static_cast<char>((value >> shift) & 0xff));
  }
}

void AppendLengthPrefixed(std::string& out, std::string_view part) {
  AppendBigEndian(out, static_cast<uint32_t>(part.size()), 4);
  out.append(part);
}

std::string StartInput(std::string_view context) {
  std::string out(context);
  out.push_back('\0');
  return out;
}

}  // namespace

std::string JobRequestSigningInput(std::string_view serialized_job_request) {
  std::string out = StartInput(kJobRequestSigningContext);
  AppendLengthPrefixed(out, serialized_job_request);
  return out;
}

std::string ControlRequestSigningInput(std::string_view serialized_control_request) {
  std::string out = StartInput(kControlRequestSigningContext);
  AppendLengthPrefixed(out, serialized_control_request);
  return out;
}

std::string ForwardedJobSigningInput(const ForwardedJobRequest& forwarded) {
  std::string out = StartInput(kForwardedJobSigningContext);
  AppendLengthPrefixed(out, forwarded.job().job_request());
  AppendLengthPrefixed(out, forwarded.job().signature());
  AppendLengthPrefixed(out, forwarded.credentials());
  AppendLengthPrefixed(out, forwarded.member_id());
  return out;
}

absl::StatusOr<std::string> MachineAuthSigningInput(std::string_view full_method,
                                                    const google::protobuf::Message& request) {
  const google::protobuf::Descriptor* descriptor = request.GetDescriptor();
  const google::protobuf::FieldDescriptor* field = descriptor->FindFieldByName("auth");
  if (field == nullptr || field->is_repeated() ||
      field->type() != google::protobuf::FieldDescriptor::TYPE_MESSAGE ||
      field->message_type() != MachineAuth::descriptor()) {
    return absl::InvalidArgumentError(absl::StrCat(
        descriptor->full_name(), " has no field `auth` of type tether.proto.MachineAuth"));
  }
  const auto* auth =
      dynamic_cast<const MachineAuth*>(&request.GetReflection()->GetMessage(request, field));
  if (auth == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(descriptor->full_name(), " is not a generated message; cannot read `auth`"));
  }

  std::unique_ptr<google::protobuf::Message> unsigned_request(request.New());
  unsigned_request->CopyFrom(request);
  unsigned_request->GetReflection()->ClearField(unsigned_request.get(), field);
  std::string request_bytes;
  {
    google::protobuf::io::StringOutputStream string_stream(&request_bytes);
    google::protobuf::io::CodedOutputStream coded(&string_stream);
    coded.SetSerializationDeterministic(true);
    if (!unsigned_request->SerializeToCodedStream(&coded)) {
      return absl::InvalidArgumentError(
          absl::StrCat(descriptor->full_name(), " could not be serialized for signing"));
    }
  }

  std::string out = StartInput(kMachineAuthSigningContext);
  AppendLengthPrefixed(out, full_method);
  AppendLengthPrefixed(out, auth->machine_id());
  AppendBigEndian(out, static_cast<uint64_t>(auth->timestamp_unix_ms()), 8);
  AppendLengthPrefixed(out, auth->nonce());
  AppendLengthPrefixed(out, request_bytes);
  return out;
}

}  // namespace tether::proto
