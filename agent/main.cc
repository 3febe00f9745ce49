// agent: the Tether desktop service (DESIGN §5, agent/README.md).
//
//   agent register --cloud HOST:PORT --ca ca.pem --token-file TOKEN --name NAME [--cluster NAME_OR_ID]
//                  [--data_dir D] [--force]
//   agent join-group --group NAME [--password-file F] [--create] --token-file TOKEN
//   agent run [--accounts pam|file:/path] [--runner PATH] [--transport auto|websocket|longpoll]
//             [--via-gateway HOST:PORT [--gateway_ca FILE]]
//   agent status
#include <signal.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "agent/agent_app.h"
#include "common/base/service_main.h"

ABSL_FLAG(std::string, data_dir, "/var/lib/tether-agent", "keys, identity, ledger (mode 0700)");
ABSL_FLAG(std::string, cloud, "", "register: the cloud's gRPC address, HOST:PORT");
ABSL_FLAG(std::string, ca, "", "register: CA certificate (PEM) that verifies the cloud");
ABSL_FLAG(bool, insecure, false, "register: plaintext to a loopback cloud (development only)");
ABSL_FLAG(std::string, token_file, "", "register, join-group: file holding the user's API token (0600)");
ABSL_FLAG(std::string, name, "", "register: the machine's display name");
ABSL_FLAG(bool, force, false, "register: register again (new keys) over an existing registration");
ABSL_FLAG(std::string, cluster, "",
          "register: the gateway cluster (name or id) this machine is reached through (run --via-gateway)");
ABSL_FLAG(std::string, group, "", "join-group: group name or id");
ABSL_FLAG(std::string, password_file, "", "join-group: file holding the group password (0600)");
ABSL_FLAG(bool, create, false, "join-group: create the group when it does not exist");
ABSL_FLAG(std::string, accounts, "pam", "run: account backend, pam[:SERVICE] or file:/path (0600)");
ABSL_FLAG(std::string, runner, "", "run: the flow_runner binary (default: beside the agent)");
ABSL_FLAG(std::string, transport, "auto", "run: relay transport, auto, websocket or longpoll");
ABSL_FLAG(std::string, relay_ca, "", "register: CA certificate (PEM) that verifies the relay");
ABSL_FLAG(std::string, via_gateway, "",
          "run: listen on this gateway member's local relay, HOST:PORT of its GatewayService");
ABSL_FLAG(std::string, gateway_ca, "",
          "run: CA certificate (PEM) that verifies the gateway member (plaintext without it, loopback only)");
ABSL_FLAG(int64_t, shutdown_grace_s, 30, "run: on SIGTERM, time the running job gets to finish");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Tether agent: register | join-group | run | status (agent/README.md)");
  std::vector<std::string> storage;
  std::vector<char*> args = tether::ExpandConfigFlag(argc, argv, &storage);
  std::vector<char*> positional = absl::ParseCommandLine(static_cast<int>(args.size()), args.data());
  // SIGTERM/SIGINT are taken synchronously by `run`'s main thread; block them before any thread
  // starts so no other thread ever receives them.
  tether::BlockTerminationSignals();

  tether::agent::AgentFlags flags;
  flags.data_dir = absl::GetFlag(FLAGS_data_dir);
  flags.cloud = absl::GetFlag(FLAGS_cloud);
  flags.ca = absl::GetFlag(FLAGS_ca);
  flags.insecure = absl::GetFlag(FLAGS_insecure);
  flags.token_file = absl::GetFlag(FLAGS_token_file);
  flags.name = absl::GetFlag(FLAGS_name);
  flags.force = absl::GetFlag(FLAGS_force);
  flags.cluster = absl::GetFlag(FLAGS_cluster);
  flags.group = absl::GetFlag(FLAGS_group);
  flags.password_file = absl::GetFlag(FLAGS_password_file);
  flags.create = absl::GetFlag(FLAGS_create);
  flags.accounts = absl::GetFlag(FLAGS_accounts);
  flags.runner = absl::GetFlag(FLAGS_runner);
  flags.transport = absl::GetFlag(FLAGS_transport);
  flags.relay_ca = absl::GetFlag(FLAGS_relay_ca);
  flags.via_gateway = absl::GetFlag(FLAGS_via_gateway);
  flags.gateway_ca = absl::GetFlag(FLAGS_gateway_ca);
  flags.shutdown_grace = absl::Seconds(absl::GetFlag(FLAGS_shutdown_grace_s));

  const std::string command = positional.size() > 1 ? positional[1] : "";
  if (positional.size() > 2) {
    std::fprintf(stderr, "agent: unexpected argument \"%s\"\n", positional[2]);
    return 1;
  }
  if (command == "register") return tether::agent::Register(flags);
  if (command == "join-group") return tether::agent::JoinGroup(flags);
  if (command == "run") return tether::agent::Run(flags);
  if (command == "status") return tether::agent::Status(flags);
  std::fprintf(stderr, "usage: agent register|join-group|run|status [flags] (agent --help)\n");
  return 1;
}
