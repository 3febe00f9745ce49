// The agent's link to a gateway member in gateway mode (`agent run --via-gateway`, DESIGN §5): a
// gRPC channel to the member's GatewayService (gateway.proto) and the machine-signed
// GetAgentListenToken call that gives the agent a Listen token for its entity on the member's
// local relay, and that relay's URL.
//
// The channel is made as common/client's CloudClient makes the cloud's: TLS verified with a CA
// file, or plaintext to a loopback address only.
#ifndef TETHER_AGENT_GATEWAY_LINK_H_
#define TETHER_AGENT_GATEWAY_LINK_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/crypto/secret.h"
#include "common/proto/gateway.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace tether::agent {

// How to reach the gateway member.
struct GatewayEndpoint {
  std::string address;  // host:port of the member's GatewayService
  std::string ca_file;  // CA (PEM) verifying the member's certificate; "" = plaintext, loopback only
};

class GatewayLink {
 public:
  // The gRPC method GetAgentListenToken is signed for.
  static constexpr char kListenTokenMethod[] = "/tether.proto.GatewayService/GetAgentListenToken";
  static constexpr absl::Duration kCallTimeout = absl::Seconds(30);

  // Checks the endpoint and makes the channel (connecting is lazy). kInvalidArgument for a
  // malformed address, an unreadable CA file, or no CA for a host that is not loopback.
  // `signing_key` is the machine's Ed25519 private key; the link keeps its own copy.
  static absl::StatusOr<std::unique_ptr<GatewayLink>> Create(const GatewayEndpoint& endpoint,
                                                             std::string machine_id,
                                                             const crypto::SecretBytes& signing_key);

  // One signed GetAgentListenToken call. On success the token, the local relay's URL
  // (relay_endpoint) and the entity ("hc/machine-<id>"), both checked to be non-empty. Errors:
  // kUnavailable / kDeadlineExceeded "gateway ADDR unreachable (...)" (retry later); any other
  // answer is the gateway's code with "gateway refused this agent: <its message>".
  // Thread-safe.
  absl::StatusOr<proto::ListenToken> ListenToken() const;

  const std::string& address() const { return address_; }

 private:
  GatewayLink(std::string address, std::shared_ptr<grpc::Channel> channel, std::string machine_id,
              crypto::SecretBytes signing_key);

  const std::string address_;
  const std::string machine_id_;
  const crypto::SecretBytes signing_key_;
  std::unique_ptr<proto::GatewayService::Stub> stub_;
};

}  // namespace tether::agent

#endif  // TETHER_AGENT_GATEWAY_LINK_H_
