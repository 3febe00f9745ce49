// Internal to tetherctl: the command table and what every command shares (the parsed line, the
// logged-in client, secret input, paging, and finding objects by id or name).
#ifndef TETHER_TOOLS_TETHERCTL_COMMANDS_H_
#define TETHER_TOOLS_TETHERCTL_COMMANDS_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/crypto/secret.h"
#include "common/proto/cloud.pb.h"
#include "google/protobuf/message.h"
#include "tools/tetherctl/args.h"
#include "tools/tetherctl/client.h"
#include "tools/tetherctl/tetherctl.h"

namespace tether::tetherctl {

// One command being run.
class Invocation {
 public:
  Invocation(std::string command, ParsedArgs args, GlobalFlags globals, const TetherctlIo& io)
      : command_(std::move(command)), args_(std::move(args)), globals_(std::move(globals)), io_(io) {}

  const std::string& command() const { return command_; }
  const ParsedArgs& args() const { return args_; }
  const std::string& arg(size_t i) const { return args_.positional()[i]; }
  bool json() const { return globals_.json; }
  std::ostream& out() const { return *io_.out; }
  std::ostream& err() const { return *io_.err; }

  // The config file this invocation uses.
  absl::StatusOr<std::string> ConfigFile() const;
  // The client of the logged-in cloud (the config is read on first use).
  absl::StatusOr<const CloudClient*> Client();

  // The secret in the file named by --<file_flag>, else typed at the prompt (twice and compared
  // when `confirm`), else kInvalidArgument asking for --<file_flag>. An empty secret is refused.
  absl::StatusOr<crypto::SecretBytes> ReadSecret(absl::string_view file_flag,
                                                 absl::string_view prompt, bool confirm) const;

  // With --json, prints `message` as JSON and returns true; otherwise returns false and the caller
  // prints for people.
  absl::StatusOr<bool> MaybeJson(const google::protobuf::Message& message) const;

  // The process exit code when the command returns OK (run --wait sets it from the run's state).
  int exit_code = 0;

 private:
  const std::string command_;
  const ParsedArgs args_;
  const GlobalFlags globals_;
  const TetherctlIo& io_;
  std::unique_ptr<CloudClient> client_;
};

using CommandFn = absl::Status (*)(Invocation&);

struct Command {
  std::string name;        // the words that select it, e.g. "machines share"
  std::string arguments;   // positional arguments for the usage line, e.g. "ID USER"
  std::string summary;     // one line, for the command list
  std::string details;     // more help text (may be empty)
  std::vector<FlagSpec> flags;
  size_t min_args = 0;
  size_t max_args = 0;
  CommandFn run = nullptr;
};

// The command table, in the order of `tetherctl --help`.
const std::vector<Command>& AllCommands();
std::vector<Command> AccountCommands();   // login, whoami, users, tokens
std::vector<Command> TargetCommands();    // machines, groups, clusters, connections
std::vector<Command> FlowCommands();      // flows, run, runs

// Every page of a List call merged into one response (repeated fields appended, no
// next_page_token), e.g. ListAll(client, client.machines(), &proto::MachineService::Stub::ListMachines).
template <typename Stub, typename Request, typename Response>
absl::StatusOr<Response> ListAll(const CloudClient& client, Stub* stub,
                                 grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&,
                                                              Response*),
                                 Request request = Request()) {
  constexpr int kMaxPages = 10'000;
  Response all;
  for (int page = 0; page < kMaxPages; ++page) {
    Response response;
    absl::Status status = client.Unary("", [&](grpc::ClientContext* context) {
      return (stub->*method)(context, request, &response);
    });
    if (!status.ok()) return status;
    all.MergeFrom(response);
    if (response.next_page_token().empty()) {
      all.clear_next_page_token();
      return all;
    }
    if (response.next_page_token() == request.page_token()) {
      return absl::InternalError("the cloud returned the same page token twice");
    }
    request.set_page_token(response.next_page_token());
  }
  return absl::InternalError("the cloud's listing did not end");
}

// Objects by id, else by name among those listed (ids are tried first; a name shared by several
// objects is kInvalidArgument listing their ids; neither is the cloud's kNotFound).
absl::StatusOr<proto::Machine> ResolveMachine(const CloudClient& client, const std::string& key);
absl::StatusOr<proto::MachineGroup> ResolveGroup(const CloudClient& client, const std::string& key);
absl::StatusOr<proto::GatewayCluster> ResolveCluster(const CloudClient& client, const std::string& key);
absl::StatusOr<proto::Connection> ResolveConnection(const CloudClient& client, const std::string& key);
// `version` 0 is the latest.
absl::StatusOr<proto::Flow> ResolveFlow(const CloudClient& client, const std::string& key,
                                        uint32_t version = 0);

// "user" or "owner" (as given to --role), and back.
absl::StatusOr<proto::ShareRole> ParseShareRole(absl::string_view text);
std::string ShareRoleLabel(proto::ShareRole role);
// "alice (user), bob (owner)", or "-".
std::string SharesText(const google::protobuf::RepeatedPtrField<proto::Share>& shares);
// "machine m-1", "group g-1", "cluster c-1".
std::string TargetText(const proto::ConnectionTarget& target);
// Lower-case hex of the first 16 bytes of SHA-256 of a public key (DESIGN §2 key id).
std::string KeyIdText(absl::string_view public_key);

}  // namespace tether::tetherctl

#endif  // TETHER_TOOLS_TETHERCTL_COMMANDS_H_
