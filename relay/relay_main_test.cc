// The relay_server binary as an operator runs it: flags, key file checks, port file, SIGTERM.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/crypto/sas_token.h"
#include "gtest/gtest.h"
#include "relay/testing/test_client.h"

namespace tether::relay {
namespace {

constexpr char kKey[] = "main-test-key-0123456789abcdef01234567";

struct Child {
  pid_t pid = -1;
  std::string stderr_path;
};

std::string Tmp(const std::string& name) { return absl::StrCat(std::getenv("TEST_TMPDIR"), "/", name); }

void WriteFile(const std::string& path, const std::string& text, mode_t mode) {
  std::ofstream(path) << text;
  chmod(path.c_str(), mode);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

Child Spawn(std::vector<std::string> args, const std::string& name) {
  Child child;
  child.stderr_path = Tmp(name + ".stderr");
  child.pid = fork();
  if (child.pid == 0) {
    int fd = open(child.stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 2);
    args.insert(args.begin(), "relay/relay_server");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return child;
}

int WaitExit(const Child& child) {
  int status = 0;
  waitpid(child.pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Waits (with a deadline) for the relay to write its port file.
uint16_t WaitForPort(const std::string& path) {
  absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    std::string text = ReadFile(path);
    if (!text.empty() && text.back() == '\n') return static_cast<uint16_t>(std::stoi(text));
    absl::SleepFor(absl::Milliseconds(10));
  }
  return 0;
}

TEST(RelayMainTest, KeysFileReadableByOthersIsRefusedAtStart) {
  std::string keys = Tmp("open.keys");
  WriteFile(keys, absl::StrCat("agents ", kKey, " Listen\n"), 0644);
  Child child = Spawn({"--insecure", "--listen=127.0.0.1:0", "--sas_keys_file=" + keys}, "open");
  EXPECT_EQ(WaitExit(child), 2);
  EXPECT_NE(ReadFile(child.stderr_path).find("chmod 600"), std::string::npos)
      << ReadFile(child.stderr_path);
}

TEST(RelayMainTest, BadFlagsAreClearErrors) {
  std::string keys = Tmp("good.keys");
  WriteFile(keys, absl::StrCat("agents ", kKey, " Listen\n"), 0600);
  struct Case {
    std::vector<std::string> args;
    std::string message;
  } cases[] = {
      {{"--insecure", "--listen=0.0.0.0:0", "--sas_keys_file=" + keys}, "only allowed on loopback"},
      {{"--insecure", "--listen=127.0.0.1", "--sas_keys_file=" + keys}, "--listen must be host:port"},
      {{"--insecure", "--listen=127.0.0.1:0"}, "--sas_keys_file is required"},
      {{"--listen=127.0.0.1:0", "--sas_keys_file=" + keys}, "TLS needs --tls_cert and --tls_key"},
      {{"--insecure", "--listen=127.0.0.1:0", "--sas_keys_file=" + Tmp("absent")}, "cannot open"},
  };
  int i = 0;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.message);
    Child child = Spawn(c.args, absl::StrCat("bad", i++));
    EXPECT_EQ(WaitExit(child), 2);
    EXPECT_NE(ReadFile(child.stderr_path).find(c.message), std::string::npos)
        << ReadFile(child.stderr_path);
  }
}

TEST(RelayMainTest, ServesFromAConfigFileAndDrainsOnSigterm) {
  std::string keys = Tmp("serve.keys");
  WriteFile(keys, absl::StrCat("agents ", kKey, " Listen\n"), 0600);
  std::string config = Tmp("relay.conf");
  std::string port_file = Tmp("relay.port");
  WriteFile(config,
            absl::StrCat("--insecure\n--listen=127.0.0.1:0\n--sas_keys_file=", keys,
                         "\n--port_file=", port_file, "\n--drain_timeout_ms=2000\n"),
            0600);
  Child child = Spawn({"--config=" + config}, "serve");
  uint16_t port = WaitForPort(port_file);
  ASSERT_NE(port, 0) << ReadFile(child.stderr_path);
  EXPECT_EQ(testing::HttpRequest(port, boost::beast::http::verb::get, "/healthz").body, "ok\n");

  testing::TestListener listener(
      port, "machine-1", "l1",
      crypto::CreateSasToken("http://relay/$hc/machine-1", "agents", crypto::SecretBytes(kKey),
                             time(nullptr) + 600));
  ASSERT_EQ(listener.Connect(), 101);
  kill(child.pid, SIGTERM);
  EXPECT_FALSE(listener.ws().ReadFrame().has_value());
  EXPECT_EQ(listener.ws().close_code(), 1001);
  EXPECT_EQ(listener.ws().close_reason(), "relay shutting down");
  EXPECT_EQ(WaitExit(child), 0);
  std::string log = ReadFile(child.stderr_path);
  EXPECT_NE(log.find("\"event\":\"relay_draining\""), std::string::npos) << log;
  EXPECT_NE(log.find("\"event\":\"relay_stopped\""), std::string::npos) << log;
  // Keys never reach the log.
  EXPECT_EQ(log.find(kKey), std::string::npos);
}

}  // namespace
}  // namespace tether::relay
