// Signing a machine's (or gateway member's) call to the cloud: fills the request's MachineAuth
// field (crypto.proto) with a fresh timestamp, a random nonce and an Ed25519 signature over
// MachineAuthSigningInput. Used by the agent, the gateway and tests; the cloud verifies in
// cloud/authenticator.cc.
#ifndef TETHER_COMMON_AUTH_MACHINE_AUTH_H_
#define TETHER_COMMON_AUTH_MACHINE_AUTH_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/crypto/secret.h"
#include "google/protobuf/message.h"

namespace tether::auth {

// Sets request->auth for a call to `full_method` (e.g. "/tether.proto.MachineService/GetListenToken")
// by `machine_id` holding the Ed25519 private key `signing_key`, signed at `now`. kInvalidArgument
// if the request has no `auth` field of type tether.proto.MachineAuth.
absl::Status SignMachineAuth(absl::string_view full_method, absl::string_view machine_id,
                             const crypto::SecretBytes& signing_key, absl::Time now,
                             google::protobuf::Message* request);

}  // namespace tether::auth

#endif  // TETHER_COMMON_AUTH_MACHINE_AUTH_H_
