// A sender this project did not write (python3-websockets) talks to a C++ listener through the
// relay, with a SAS token, and sees the listener's replies.
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/crypto/sas_token.h"
#include "gtest/gtest.h"
#include "relay/relay_server.h"
#include "relay/testing/test_client.h"

namespace tether::relay {
namespace {

constexpr char kListenKey[] = "interop-listen-0123456789abcdef0123456";
constexpr char kSendKey[] = "interop-send-0123456789abcdef012345678";

TEST(RelayInteropTest, PythonWebSocketsSenderTalksToCppListener) {
  RelayOptions options;
  auto ring = crypto::SasKeyRing::Parse(
      absl::StrCat("agents ", kListenKey, " Listen\ncloud ", kSendKey, " Send\n"));
  ASSERT_TRUE(ring.ok());
  options.keys = std::make_shared<const crypto::SasKeyRing>(*std::move(ring));
  options.listen_port = 0;
  options.insecure = true;
  auto server = RelayServer::Create(std::move(options));
  ASSERT_TRUE(server.ok()) << server.status();
  (*server)->Start();
  uint16_t port = (*server)->port();

  testing::TestListener listener(
      port, "machine-7", "desk",
      crypto::CreateSasToken("http://relay/$hc/machine-7", "agents",
                             crypto::SecretBytes(kListenKey), time(nullptr) + 600));
  ASSERT_EQ(listener.Connect(), 101);
  std::atomic<int> echoed{0};
  std::atomic<int> close_code{0};
  std::thread echo([&] {
    uint64_t channel = listener.ExpectOpen();
    if (channel == 0) return;
    listener.Accept(channel);
    while (auto frame = listener.ws().ReadFrame()) {
      if (frame->has_data()) {
        listener.SendData(channel, absl::AsciiStrToUpper(frame->data().payload()));
        ++echoed;
      } else if (frame->has_close()) {
        close_code = static_cast<int>(frame->close().code());
        return;
      }
    }
  });

  std::string token = crypto::CreateSasToken("http://relay/$hc/machine-7", "cloud",
                                             crypto::SecretBytes(kSendKey), time(nullptr) + 600);
  // Debian's interpreter, which has python3-websockets (a pyenv python on PATH would not).
  std::vector<std::string> args = {"/usr/bin/python3",
                                   "relay/testing/interop_sender.py",
                                   "--port",
                                   std::to_string(port),
                                   "--entity",
                                   "machine-7",
                                   "--token",
                                   token,
                                   "hello",
                                   "run flow 42",
                                   std::string(2000, 'x')};
  pid_t pid = fork();
  if (pid == 0) {
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  echo.join();
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "see the python sender's stderr in the test log";
  EXPECT_EQ(echoed.load(), 3);
  EXPECT_EQ(close_code.load(), 1000);
  (*server)->Stop();
}

}  // namespace
}  // namespace tether::relay
