// A command-line client's connection to the cloud's gRPC API (tetherctl, agent, gateway): the
// channel (TLS verified with the configured CA, or plaintext to a loopback address only), the
// bearer token on every call, gRPC errors turned into absl::Status, and those into the exit codes
// of docs/TETHERCTL.md (the agent and gateway use the same ones).
#ifndef TETHER_COMMON_CLIENT_CLOUD_CLIENT_H_
#define TETHER_COMMON_CLIENT_CLOUD_CLIENT_H_

#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/crypto/secret.h"
#include "common/proto/cloud.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace tether::client {

// Exit codes (docs/TETHERCTL.md).
inline constexpr int kExitOk = 0;
inline constexpr int kExitUsage = 1;            // usage, INVALID_ARGUMENT, ALREADY_EXISTS, FAILED_PRECONDITION
inline constexpr int kExitNotFound = 2;         // NOT_FOUND
inline constexpr int kExitDenied = 3;           // UNAUTHENTICATED, PERMISSION_DENIED
inline constexpr int kExitUnreachable = 4;      // UNAVAILABLE, DEADLINE_EXCEEDED
inline constexpr int kExitRunFailed = 5;        // the run failed
inline constexpr int kExitRunCancelled = 6;     // the run was cancelled or timed out
inline constexpr int kExitInternal = 7;         // anything else (a server fault, an internal error)

// The exit code for a failed command's status.
int ExitCodeFor(const absl::Status& status);

// "host:port" split in two; IPv6 hosts are written in brackets ("[::1]:8443"). kInvalidArgument
// when the port is missing or not 1..65535.
absl::StatusOr<std::pair<std::string, uint16_t>> SplitHostPort(absl::string_view address);

// How to reach the cloud.
struct CloudEndpoint {
  std::string address;  // host:port
  std::string ca_file;  // CA certificate (PEM) verifying the cloud's certificate
  bool insecure = false;  // plaintext; refused unless the host is a loopback address
};

// `what: message` with the gRPC code carried over.
absl::Status FromGrpc(absl::string_view what, const grpc::Status& status);

// The cloud's API for one user. Stubs are thread-safe; each call gets a fresh context.
class CloudClient {
 public:
  // Checks the endpoint (insecure only on loopback; the CA file must be readable PEM) and makes the
  // channel. Connecting is lazy: an unreachable cloud shows up as UNAVAILABLE on the first call.
  static absl::StatusOr<std::unique_ptr<CloudClient>> Create(const CloudEndpoint& endpoint,
                                                             crypto::SecretBytes token);

  // A context carrying the bearer token; with `deadline`, one that expires after kCallTimeout.
  std::unique_ptr<grpc::ClientContext> NewContext(bool deadline = true) const;

  // Runs one unary call: `call(context)` returns the grpc::Status of e.g.
  // users()->WhoAmI(context, request, &response). Errors are prefixed with `what`.
  template <typename Call>
  absl::Status Unary(absl::string_view what, Call call) const {
    std::unique_ptr<grpc::ClientContext> context = NewContext();
    return FromGrpc(what, call(context.get()));
  }

  proto::UserService::Stub* users() const { return users_.get(); }
  proto::MachineService::Stub* machines() const { return machines_.get(); }
  proto::GroupService::Stub* groups() const { return groups_.get(); }
  proto::ClusterService::Stub* clusters() const { return clusters_.get(); }
  proto::ConnectionService::Stub* connections() const { return connections_.get(); }
  proto::FlowService::Stub* flows() const { return flows_.get(); }
  proto::RunService::Stub* runs() const { return runs_.get(); }
  const std::string& address() const { return address_; }

  static constexpr absl::Duration kCallTimeout = absl::Seconds(30);

 private:
  CloudClient(std::string address, std::shared_ptr<grpc::Channel> channel, crypto::SecretBytes token);

  std::string address_;
  std::shared_ptr<grpc::Channel> channel_;
  crypto::SecretBytes token_;
  std::unique_ptr<proto::UserService::Stub> users_;
  std::unique_ptr<proto::MachineService::Stub> machines_;
  std::unique_ptr<proto::GroupService::Stub> groups_;
  std::unique_ptr<proto::ClusterService::Stub> clusters_;
  std::unique_ptr<proto::ConnectionService::Stub> connections_;
  std::unique_ptr<proto::FlowService::Stub> flows_;
  std::unique_ptr<proto::RunService::Stub> runs_;
};

}  // namespace tether::client

#endif  // TETHER_COMMON_CLIENT_CLOUD_CLIENT_H_
