// A running gateway member (DESIGN §5): listens for the cloud on the cluster's relay entity, runs
// a relay of its own for the local agents behind it (agent run --via-gateway), gives Listen tokens
// on it only to agents that prove their machine key, and bridges each job: the credentials sealed
// to the cluster key are opened here, in zeroizing memory, re-sealed to the chosen agent's key,
// and forwarded with the cloud-signed job unchanged plus the member's own signature. Replies flow
// back unchanged; QueryJob/CancelJob go to the agent that took the job.
#ifndef TETHER_GATEWAY_MEMBER_H_
#define TETHER_GATEWAY_MEMBER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/crypto/secret.h"
#include "gateway/gateway_state.pb.h"

namespace tether::gateway {

struct MemberOptions {
  GatewayIdentity identity;
  crypto::SecretBytes member_signing_key;  // Ed25519
  crypto::SecretBytes cluster_key;         // X25519, derived from the recovery key
  // The local relay agents listen on, and the GatewayService that hands out its tokens.
  std::string local_relay_listen = "127.0.0.1:9351";
  std::string service_listen = "127.0.0.1:9352";
  std::string tls_cert_file;
  std::string tls_key_file;
  // The CA that signed tls_cert_file (the member checks its own relay); default: the cert itself.
  std::string local_ca_file;
  bool insecure = false;
  // Where the member records which agent each job went to (forwarded-jobs, 0600), so a job the
  // cloud sends again after a crash reaches the same agent, whose ledger answers "duplicate".
  std::string state_dir;
  // The local relay's URL as agents reach it; default http(s)://<local_relay_listen host>:<port>.
  std::string advertised_relay_url;
  // How often the member tells the cloud which local agents listen (ListClusterMachines): the
  // cloud shows machines behind a gateway online from these reports.
  absl::Duration presence_report_interval = absl::Seconds(5);
};

class GatewayMember {
 public:
  static absl::StatusOr<std::unique_ptr<GatewayMember>> Start(MemberOptions options);
  ~GatewayMember();
  uint16_t relay_port() const;
  uint16_t service_port() const;
  // Leaves the cloud relay, closes bridges, stops the local relay and service. Idempotent.
  void Stop();

  struct Impl;

 private:
  explicit GatewayMember(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tether::gateway

#endif  // TETHER_GATEWAY_MEMBER_H_
