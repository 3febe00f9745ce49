// gateway: a Tether on-premises gateway member (DESIGN §5, gateway/README.md).
//
//   gateway create-cluster --cloud HOST:PORT --ca ca.pem --token-file T --cluster NAME --recovery-key-file K
//   gateway join-cluster   --cloud HOST:PORT --ca ca.pem --token-file T --cluster NAME --recovery-key-file K
//   gateway run [--local_relay_listen 0.0.0.0:9351] [--service_listen 0.0.0.0:9352] --tls_cert C --tls_key K
#include <signal.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "common/base/service_main.h"
#include "gateway/gateway_app.h"

ABSL_FLAG(std::string, data_dir, "/var/lib/tether-gateway", "keys and identity (mode 0700)");
ABSL_FLAG(std::string, cloud, "", "the cloud's gRPC address, HOST:PORT");
ABSL_FLAG(std::string, ca, "", "CA certificate (PEM) that verifies the cloud");
ABSL_FLAG(bool, insecure, false, "plaintext to a loopback cloud, and (run) a plaintext loopback local relay");
ABSL_FLAG(std::string, token_file, "", "file holding the user's API token (0600)");
ABSL_FLAG(std::string, cluster, "", "cluster name (create-cluster) or name or id (join-cluster)");
ABSL_FLAG(std::string, recovery_key_file, "", "file holding the recovery key (0600); else a no-echo prompt");
ABSL_FLAG(std::string, name, "", "this member's name (default: the host name)");
ABSL_FLAG(std::string, relay_ca, "", "CA certificate (PEM) that verifies the cloud's relay");
ABSL_FLAG(std::string, local_relay_listen, "127.0.0.1:9351", "run: the local relay agents listen on");
ABSL_FLAG(std::string, service_listen, "127.0.0.1:9352", "run: the service agents get tokens from");
ABSL_FLAG(std::string, advertised_relay_url, "", "run: the local relay's URL as agents reach it");
ABSL_FLAG(std::string, tls_cert, "", "run: certificate chain (PEM) of the local relay and service");
ABSL_FLAG(std::string, tls_key, "", "run: its key (PEM, mode 0600)");
ABSL_FLAG(std::string, local_ca, "", "run: CA that signed --tls_cert (default: the cert itself)");
ABSL_FLAG(std::string, relay_port_file, "", "run: write the local relay's port here");
ABSL_FLAG(std::string, service_port_file, "", "run: write the service's port here");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Tether gateway: create-cluster | join-cluster | run (gateway/README.md)");
  std::vector<std::string> storage;
  std::vector<char*> args = tether::ExpandConfigFlag(argc, argv, &storage);
  std::vector<char*> positional = absl::ParseCommandLine(static_cast<int>(args.size()), args.data());
  tether::BlockTerminationSignals();

  tether::gateway::GatewayFlags flags;
  flags.data_dir = absl::GetFlag(FLAGS_data_dir);
  flags.cloud = absl::GetFlag(FLAGS_cloud);
  flags.ca = absl::GetFlag(FLAGS_ca);
  flags.insecure = absl::GetFlag(FLAGS_insecure);
  flags.token_file = absl::GetFlag(FLAGS_token_file);
  flags.cluster = absl::GetFlag(FLAGS_cluster);
  flags.recovery_key_file = absl::GetFlag(FLAGS_recovery_key_file);
  flags.name = absl::GetFlag(FLAGS_name);
  flags.relay_ca = absl::GetFlag(FLAGS_relay_ca);
  flags.local_relay_listen = absl::GetFlag(FLAGS_local_relay_listen);
  flags.service_listen = absl::GetFlag(FLAGS_service_listen);
  flags.advertised_relay_url = absl::GetFlag(FLAGS_advertised_relay_url);
  flags.tls_cert = absl::GetFlag(FLAGS_tls_cert);
  flags.tls_key = absl::GetFlag(FLAGS_tls_key);
  flags.local_ca = absl::GetFlag(FLAGS_local_ca);
  flags.relay_port_file = absl::GetFlag(FLAGS_relay_port_file);
  flags.service_port_file = absl::GetFlag(FLAGS_service_port_file);

  const std::string command = positional.size() > 1 ? positional[1] : "";
  if (positional.size() > 2) {
    std::fprintf(stderr, "gateway: unexpected argument \"%s\"\n", positional[2]);
    return 1;
  }
  if (command == "create-cluster") return tether::gateway::CreateCluster(flags);
  if (command == "join-cluster") return tether::gateway::JoinCluster(flags);
  if (command == "run") return tether::gateway::Run(flags);
  std::fprintf(stderr, "usage: gateway create-cluster|join-cluster|run [flags] (gateway --help)\n");
  return 1;
}
