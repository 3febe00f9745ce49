#include "common/net/relay_process.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/algorithm/container.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/base/clock.h"
#include "common/crypto/sas_token.h"
#include "common/crypto/secret.h"

namespace tether::net::testing {

const TestKey kListenKey = {"listen-key", "listen-key-0123456789abcdef0123456789abcdef"};
const TestKey kSendKey = {"send-key", "send-key-0123456789abcdef0123456789abcdef"};
const TestKey kManageKey = {"manage-key", "manage-key-0123456789abcdef0123456789abcdef"};

namespace {

std::string TempDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

absl::StatusOr<std::string> WriteKeysFile() {
  std::string path = absl::StrCat(TempDir(), "/relay-keys");
  {
    std::ofstream out(path, std::ios::trunc);
    out << kListenKey.name << " " << kListenKey.key << " Listen\n"
        << kSendKey.name << " " << kSendKey.key << " Send\n"
        << kManageKey.name << " " << kManageKey.key << " Manage\n";
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  }
  if (chmod(path.c_str(), 0600) != 0) return absl::InternalError("chmod failed");
  return path;
}

}  // namespace

std::string MakeToken(const TestKey& key, const std::string& entity, absl::Duration lifetime) {
  return crypto::CreateSasToken(absl::StrCat("/$hc/", entity), key.name,
                                crypto::SecretBytes(key.key),
                                absl::ToUnixSeconds(WallNow() + lifetime));
}

absl::StatusOr<std::unique_ptr<RelayProcess>> RelayProcess::Start(std::vector<std::string> flags,
                                                                  uint16_t port) {
  auto keys = WriteKeysFile();
  if (!keys.ok()) return keys.status();
  std::unique_ptr<RelayProcess> relay(
      new RelayProcess(std::move(flags), absl::StrCat("--sas_keys_file=", *keys)));
  if (absl::Status status = relay->Spawn(port); !status.ok()) return status;
  return relay;
}

absl::Status RelayProcess::Spawn(uint16_t port) {
  static std::atomic<int> counter{0};
  const std::string port_file = absl::StrCat(TempDir(), "/relay-", getpid(), "-", ++counter, ".port");
  unlink(port_file.c_str());
  std::vector<std::string> args = {"relay/relay_server",
                                   absl::StrCat("--listen=127.0.0.1:", port),
                                   absl::StrCat("--port_file=", port_file), keys_flag_};
  args.insert(args.end(), flags_.begin(), flags_.end());
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);

  pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    execv(argv[0], argv.data());
    _exit(127);
  }
  pid_ = pid;
  // Wait for the port file (the relay writes it atomically once it listens), with a deadline.
  const absl::Time deadline = WallNow() + absl::Seconds(20);
  while (WallNow() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return absl::InternalError(absl::StrCat("relay_server exited early with status ", status));
    }
    std::ifstream in(port_file);
    std::string text;
    if (in && std::getline(in, text)) {
      int value = 0;
      if (absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &value) && value > 0) {
        port_ = static_cast<uint16_t>(value);
        return absl::OkStatus();
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // polling a file, not a race
  }
  Kill();
  return absl::DeadlineExceededError("relay_server did not write its port file in 20 s");
}

std::string RelayProcess::url() const {
  const bool tls = absl::c_any_of(flags_, [](const std::string& f) {
    return absl::StartsWith(f, "--tls_cert=");
  });
  return absl::StrCat(tls ? "https" : "http", "://127.0.0.1:", port_);
}

void RelayProcess::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

absl::Status RelayProcess::Restart() {
  Kill();
  return Spawn(port_);
}

absl::Status RelayProcess::Restart(std::vector<std::string> flags) {
  flags_ = std::move(flags);
  return Restart();
}

void RelayProcess::Pause() {
  if (pid_ > 0) kill(pid_, SIGSTOP);
}

void RelayProcess::Resume() {
  if (pid_ > 0) kill(pid_, SIGCONT);
}

RelayProcess::~RelayProcess() {
  if (pid_ <= 0) return;
  kill(pid_, SIGCONT);
  kill(pid_, SIGTERM);
  const absl::Time deadline = WallNow() + absl::Seconds(10);
  int status = 0;
  while (WallNow() < deadline) {
    if (waitpid(pid_, &status, WNOHANG) == pid_) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // reaping with a deadline
  }
  Kill();
}

}  // namespace tether::net::testing
