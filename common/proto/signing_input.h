// The exact bytes Tether signs with Ed25519, built in one place so that the signer (cloud, agent,
// gateway member) and the verifier always agree. Each input starts with a context string and a NUL
// byte, so a signature made for one purpose is never valid for another. Variable-length parts are
// length-prefixed: LP(x) = 4-byte big-endian length of x, then x. (Every part is far below 4 GiB:
// requests and relay frames are bounded long before.)
//
// These functions only build bytes; signing and verifying are //common/crypto's job.
#ifndef TETHER_COMMON_PROTO_SIGNING_INPUT_H_
#define TETHER_COMMON_PROTO_SIGNING_INPUT_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/proto/job.pb.h"
#include "google/protobuf/message.h"

namespace tether::proto {

inline constexpr std::string_view kJobRequestSigningContext = "tether/job-request/v1";
inline constexpr std::string_view kControlRequestSigningContext = "tether/control-request/v1";
inline constexpr std::string_view kForwardedJobSigningContext = "tether/forwarded-job/v1";
inline constexpr std::string_view kMachineAuthSigningContext = "tether/machine-auth/v1";

// What the cloud signs for SignedJobRequest: context || 0x00 || LP(serialized JobRequest).
std::string JobRequestSigningInput(std::string_view serialized_job_request);

// What the cloud signs for SignedControl: context || 0x00 || LP(serialized ControlRequest).
std::string ControlRequestSigningInput(std::string_view serialized_control_request);

// What a gateway member signs for ForwardedJobRequest: context || 0x00 || LP(job.job_request)
// || LP(job.signature) || LP(credentials) || LP(member_id). The `signature` field itself is not
// covered.
std::string ForwardedJobSigningInput(const ForwardedJobRequest& forwarded);

// What a machine or gateway member signs in the MachineAuth `auth` field of `request`, a call to
// `full_method` (e.g. "/tether.proto.MachineService/GetListenToken"):
//   context || 0x00 || LP(full_method) || LP(auth.machine_id) || BE64(auth.timestamp_unix_ms)
//   || LP(auth.nonce) || LP(request serialized deterministically with `auth` cleared)
// auth.signature is not covered. kInvalidArgument if `request` has no singular field `auth` of type
// tether.proto.MachineAuth (a programming error, but reported, not crashed on).
absl::StatusOr<std::string> MachineAuthSigningInput(std::string_view full_method,
                                                    const google::protobuf::Message& request);

}  // namespace tether::proto

#endif  // TETHER_COMMON_PROTO_SIGNING_INPUT_H_
