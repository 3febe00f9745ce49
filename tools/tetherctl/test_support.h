// Test-only helpers for tetherctl's tests: the real cloud (//cloud:cloud_server, a data dependency)
// as a child process with users made by `cloud_server admin create-user`, machines registered
// through the gRPC API with keys made in the test, and tetherctl run in-process.
#ifndef TETHER_TOOLS_TETHERCTL_TEST_SUPPORT_H_
#define TETHER_TOOLS_TETHERCTL_TEST_SUPPORT_H_

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/crypto/ed25519.h"
#include "common/crypto/hpke.h"
#include "common/proto/cloud.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "tools/tetherctl/client.h"

namespace tether::tetherctl::testing {

// A new empty directory under $TEST_TMPDIR.
std::string NewTempDir(absl::string_view prefix);
// Writes `content` to `path` and sets `mode`.
absl::Status WriteFile(const std::string& path, absl::string_view content, mode_t mode);

// What a child process printed and how it ended.
struct ProcessResult {
  int exit_code = -1;  // -1 when it did not exit normally
  std::string out;
  std::string err;
};
// Runs `argv` (argv[0] a path, no shell) with stdin from /dev/null and waits for it.
absl::StatusOr<ProcessResult> RunProcess(const std::vector<std::string>& argv);

struct CloudOptions {
  // Users made before the server starts: name -> admin.
  std::vector<std::pair<std::string, bool>> users = {{"alice", true}};
  // The relay; tests that run no flow can leave the default (nothing is dialled until a run).
  std::string relay_url = "http://127.0.0.1:1";
  // NAME KEY RIGHTS lines (mode 0600); empty: a file with throw-away keys is written.
  std::string relay_keys_file;
  // More flags, e.g. --tls_cert=... --tls_key=... instead of the default --insecure.
  std::vector<std::string> flags;
  bool insecure = true;
};

// cloud/cloud_server on 127.0.0.1, port from --port_file, data in a fresh directory.
class CloudProcess {
 public:
  static absl::StatusOr<std::unique_ptr<CloudProcess>> Start(CloudOptions options);
  // SIGTERM, then SIGKILL if it has not exited within 10 s.
  ~CloudProcess();

  uint16_t port() const { return port_; }
  std::string address() const;  // "127.0.0.1:<port>"
  // The API token `cloud_server admin create-user` printed for `user`.
  const std::string& token(const std::string& user) const { return tokens_.at(user); }

 private:
  CloudProcess() = default;

  pid_t pid_ = -1;
  uint16_t port_ = 0;
  std::map<std::string, std::string> tokens_;
};

// A machine registered with keys the test holds.
struct TestMachine {
  proto::RegisterMachineResponse registration;
  crypto::X25519KeyPair x25519;
  crypto::Ed25519KeyPair ed25519;
  const std::string& id() const { return registration.machine_id(); }
};

// A plaintext channel to a loopback cloud, and a context carrying `token`.
std::shared_ptr<grpc::Channel> CloudChannel(const std::string& address);
std::unique_ptr<grpc::ClientContext> UserContext(const std::string& token);

// RegisterMachine with fresh X25519 and Ed25519 keys, as the user of `token`.
absl::StatusOr<std::shared_ptr<TestMachine>> RegisterMachine(const std::string& address,
                                                             const std::string& token,
                                                             const std::string& name);

// What one tetherctl command printed and returned.
struct CliResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs tetherctl in-process with its own config file.
class Cli {
 public:
  explicit Cli(std::string config_file) : config_file_(std::move(config_file)) {}
  // `prompt`, when set, plays a terminal (see TetherctlIo::prompt).
  CliResult Run(std::vector<std::string> args, SecretPrompt prompt = nullptr) const;
  // login --cloud ADDRESS --insecure with `token` in a 0600 file.
  CliResult Login(const std::string& address, const std::string& token) const;
  const std::string& config_file() const { return config_file_; }

 private:
  std::string config_file_;
};

// A SecretPrompt that answers `answers` in order, records the prompts, and fails the test if asked
// more often.
SecretPrompt ScriptedPrompt(std::vector<std::string> answers,
                            std::shared_ptr<std::vector<std::string>> prompts = nullptr);

}  // namespace tether::tetherctl::testing

#endif  // TETHER_TOOLS_TETHERCTL_TEST_SUPPORT_H_
