// The agent's commands (DESIGN §5): register, join-group, run, status. main.cc parses flags into
// AgentFlags and calls one of these; each returns a process exit code (common/client's table:
// 0 ok, 1 usage or invalid, 2 not found, 3 denied, 4 cloud unreachable) and prints one line on
// stderr when it fails.
#ifndef TETHER_AGENT_AGENT_APP_H_
#define TETHER_AGENT_AGENT_APP_H_

#include <string>

#include "absl/time/time.h"

namespace tether::agent {

struct AgentFlags {
  std::string data_dir = "/var/lib/tether-agent";
  // register
  std::string cloud;       // host:port
  std::string ca;          // CA for the cloud's certificate
  bool insecure = false;   // plaintext to a loopback cloud
  std::string token_file;  // the user's API token (register, join-group)
  std::string name;
  bool force = false;
  std::string cluster;     // gateway cluster name or id the machine is reached through

  // join-group
  std::string group;
  std::string password_file;
  bool create = false;
  // run
  std::string accounts = "pam";  // "pam", "pam:SERVICE" or "file:/path"
  std::string runner;            // flow_runner binary ("" = beside the agent binary)
  std::string transport = "auto";
  std::string relay_ca;
  std::string via_gateway;  // host:port of a gateway member's GatewayService ("" = the cloud's relay)
  std::string gateway_ca;   // CA for the gateway member (its gRPC and its relay); "" = loopback plaintext
  absl::Duration shutdown_grace = absl::Seconds(30);
};

// File names inside the data directory.
inline constexpr char kIdentityFile[] = "agent.conf";
inline constexpr char kX25519KeyFile[] = "machine-x25519.key";
inline constexpr char kEd25519KeyFile[] = "machine-ed25519.key";
inline constexpr char kGroupKeyFile[] = "group-x25519.key";
inline constexpr char kStatusFile[] = "status.json";
inline constexpr char kLedgerDir[] = "ledger";

int Register(const AgentFlags& flags);
int JoinGroup(const AgentFlags& flags);
// Runs until SIGTERM or SIGINT (which the caller must have blocked in every thread).
int Run(const AgentFlags& flags);
int Status(const AgentFlags& flags);

}  // namespace tether::agent

#endif  // TETHER_AGENT_AGENT_APP_H_
