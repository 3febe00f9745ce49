// The gateway's commands (DESIGN §5): create-cluster, join-cluster, run. Exit codes as the other
// CLIs (common/client): 0 ok, 1 usage/invalid, 2 not found, 3 denied (a wrong recovery key), 4
// cloud unreachable.
#ifndef TETHER_GATEWAY_GATEWAY_APP_H_
#define TETHER_GATEWAY_GATEWAY_APP_H_

#include <string>

namespace tether::gateway {

struct GatewayFlags {
  std::string data_dir = "/var/lib/tether-gateway";
  std::string cloud;
  std::string ca;
  bool insecure = false;
  std::string token_file;
  std::string cluster;            // name (create-cluster) or name/id (join-cluster)
  std::string recovery_key_file;  // else a no-echo prompt
  std::string name;               // this member's name (default: the host name)
  std::string relay_ca;
  // run
  std::string local_relay_listen = "127.0.0.1:9351";
  std::string service_listen = "127.0.0.1:9352";
  std::string advertised_relay_url;
  std::string tls_cert, tls_key, local_ca;
  std::string relay_port_file, service_port_file;
};

inline constexpr char kIdentityFile[] = "gateway.conf";
inline constexpr char kMemberKeyFile[] = "member-ed25519.key";
inline constexpr char kMemberX25519File[] = "member-x25519.key";
inline constexpr char kClusterKeyFile[] = "cluster-x25519.key";

int CreateCluster(const GatewayFlags& flags);
int JoinCluster(const GatewayFlags& flags);
// Runs until SIGTERM/SIGINT (blocked by the caller in every thread).
int Run(const GatewayFlags& flags);

}  // namespace tether::gateway

#endif  // TETHER_GATEWAY_GATEWAY_APP_H_
