// The dial (TCP, proxy CONNECT, TLS) against in-test servers on 127.0.0.1: an echo server (plain
// or TLS with a throwaway CA) and a tiny CONNECT proxy that checks Proxy-Authorization.
#include "common/net/dial.h"

#include <cstdlib>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include "absl/strings/str_cat.h"
#include "common/net/proxy.h"
#include "common/net/test_certs.h"
#include "common/net/test_servers.h"
#include "gtest/gtest.h"

namespace tether::net::internal {
namespace {

using ::tether::net::testing::ConnectProxy;
using ::tether::net::testing::CreateTestCerts;
using ::tether::net::testing::EchoServer;
using ::tether::net::testing::TestCerts;

std::string TempDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

std::shared_ptr<const DialTarget> Target(const std::string& url, ProxyConfig proxy,
                                         const std::string& ca_file = "",
                                         absl::Duration timeout = absl::Seconds(10)) {
  auto target = MakeDialTarget(url, proxy, ca_file, timeout);
  EXPECT_TRUE(target.ok()) << target.status();
  return target.ok() ? *target : nullptr;
}

// Dials `target`, then sends `message` and reads the same number of bytes back.
absl::StatusOr<std::string> DialAndEcho(std::shared_ptr<const DialTarget> target,
                                        const std::string& message) {
  boost::asio::io_context context;
  MaybeTlsStream stream(context.get_executor());
  absl::Status result = absl::UnknownError("dial did not finish");
  std::string echoed(message.size(), '\0');
  AsyncDial(stream, target, [&](absl::Status status) {
    result = status;
    if (!status.ok()) return;
    boost::asio::async_write(
        stream, boost::asio::buffer(message), [&](boost::system::error_code ec, std::size_t) {
          if (ec) {
            result = absl::UnavailableError(absl::StrCat("write: ", ec.message()));
            return;
          }
          boost::asio::async_read(stream, boost::asio::buffer(echoed),
                                  [&](boost::system::error_code ec, std::size_t) {
                                    if (ec) {
                                      result = absl::UnavailableError(
                                          absl::StrCat("read: ", ec.message()));
                                    }
                                  });
        });
  });
  context.run();
  if (!result.ok()) return result;
  return echoed;
}

class DialTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto certs = CreateTestCerts(TempDir(), "dial", {"localhost", "127.0.0.1"});
    ASSERT_TRUE(certs.ok()) << certs.status();
    certs_ = new TestCerts(*certs);
    auto other = CreateTestCerts(TempDir(), "other", {"localhost", "127.0.0.1"});
    ASSERT_TRUE(other.ok()) << other.status();
    other_certs_ = new TestCerts(*other);
    auto named = CreateTestCerts(TempDir(), "named", {"relay.test"});
    ASSERT_TRUE(named.ok()) << named.status();
    named_certs_ = new TestCerts(*named);
  }
  static void TearDownTestSuite() {
    delete certs_;
    delete other_certs_;
    delete named_certs_;
  }

  static TestCerts* certs_;
  static TestCerts* other_certs_;
  static TestCerts* named_certs_;
};

TestCerts* DialTest::certs_ = nullptr;
TestCerts* DialTest::other_certs_ = nullptr;
TestCerts* DialTest::named_certs_ = nullptr;

TEST_F(DialTest, PlaintextDialReachesTheServerDirectly) {
  auto echo = EchoServer::Start();
  ASSERT_TRUE(echo.ok()) << echo.status();
  auto reply = DialAndEcho(
      Target(absl::StrCat("http://127.0.0.1:", (*echo)->port()), ProxyConfig::Direct()), "hello");
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(*reply, "hello");
}

TEST_F(DialTest, ProxyGetsConnectWithBasicAuthAndTunnelsBytes) {
  auto echo = EchoServer::Start();
  ASSERT_TRUE(echo.ok()) << echo.status();
  const std::string expected_auth = BasicAuthorization("alice", "s3cret:pw");
  auto proxy = ConnectProxy::Start(expected_auth);
  ASSERT_TRUE(proxy.ok()) << proxy.status();

  ProxyConfig config = ProxyConfig::Explicit(
      absl::StrCat("http://alice:s3cret%3Apw@127.0.0.1:", (*proxy)->port()));
  auto reply = DialAndEcho(
      Target(absl::StrCat("http://127.0.0.1:", (*echo)->port()), config), "through the tunnel");
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(*reply, "through the tunnel");
  ASSERT_EQ((*proxy)->connect_targets().size(), 1u);
  EXPECT_EQ((*proxy)->connect_targets()[0], absl::StrCat("127.0.0.1:", (*echo)->port()));
  EXPECT_EQ((*proxy)->authorizations()[0], expected_auth);
  EXPECT_EQ((*proxy)->tunnels(), 1);
}

TEST_F(DialTest, ProxyWithoutCredentialsSendsNoProxyAuthorization) {
  auto echo = EchoServer::Start();
  ASSERT_TRUE(echo.ok()) << echo.status();
  auto proxy = ConnectProxy::Start(std::nullopt);
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  auto reply = DialAndEcho(Target(absl::StrCat("http://127.0.0.1:", (*echo)->port()),
                                  ProxyConfig::Explicit((*proxy)->url())),
                           "x");
  ASSERT_TRUE(reply.ok()) << reply.status();
  ASSERT_EQ((*proxy)->authorizations().size(), 1u);
  EXPECT_EQ((*proxy)->authorizations()[0], "");
}

TEST_F(DialTest, WrongProxyPasswordIsUnauthenticatedAndTheMessageHidesIt) {
  auto echo = EchoServer::Start();
  ASSERT_TRUE(echo.ok()) << echo.status();
  auto proxy = ConnectProxy::Start(BasicAuthorization("alice", "right"));
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  ProxyConfig config =
      ProxyConfig::Explicit(absl::StrCat("http://alice:wrong-pw@127.0.0.1:", (*proxy)->port()));
  auto reply = DialAndEcho(Target(absl::StrCat("http://127.0.0.1:", (*echo)->port()), config), "x");
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kUnauthenticated) << reply.status();
  EXPECT_NE(reply.status().message().find("407"), absl::string_view::npos);
  EXPECT_EQ(reply.status().message().find("wrong-pw"), absl::string_view::npos);
  EXPECT_EQ(reply.status().message().find("alice"), absl::string_view::npos);
  EXPECT_EQ((*proxy)->tunnels(), 0);
}

TEST_F(DialTest, ProxyRefusalIsUnavailableWithTheStatus) {
  auto proxy = ConnectProxy::Start(std::nullopt, ConnectProxy::Mode::kRefuse);
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  auto reply = DialAndEcho(
      Target("http://127.0.0.1:9", ProxyConfig::Explicit((*proxy)->url())), "x");
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kUnavailable) << reply.status();
  EXPECT_NE(reply.status().message().find("403"), absl::string_view::npos);
}

TEST_F(DialTest, SilentProxyTimesOutWithDeadlineExceeded) {
  auto proxy = ConnectProxy::Start(std::nullopt, ConnectProxy::Mode::kSilent);
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  auto reply = DialAndEcho(Target("http://127.0.0.1:9", ProxyConfig::Explicit((*proxy)->url()), "",
                                  absl::Milliseconds(300)),
                           "x");
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kDeadlineExceeded) << reply.status();
}

TEST_F(DialTest, NoProxyBypassesTheProxy) {
  auto echo = EchoServer::Start();
  ASSERT_TRUE(echo.ok()) << echo.status();
  auto proxy = ConnectProxy::Start(std::nullopt);
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  auto reply = DialAndEcho(Target(absl::StrCat("http://127.0.0.1:", (*echo)->port()),
                                  ProxyConfig::Explicit((*proxy)->url(), "127.0.0.1")),
                           "direct");
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ((*proxy)->connections(), 0);
}

TEST_F(DialTest, RefusedConnectionIsUnavailable) {
  // A port that was just free: bind a server, stop it, dial its port.
  uint16_t port;
  {
    auto echo = EchoServer::Start();
    ASSERT_TRUE(echo.ok()) << echo.status();
    port = (*echo)->port();
  }
  auto reply =
      DialAndEcho(Target(absl::StrCat("http://127.0.0.1:", port), ProxyConfig::Direct()), "x");
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kUnavailable) << reply.status();
}

TEST_F(DialTest, TlsWithTheRightCaSucceedsAndSendsSniForNames) {
  auto echo = EchoServer::Start(certs_->cert_file, certs_->key_file);
  ASSERT_TRUE(echo.ok()) << echo.status();
  auto by_name = DialAndEcho(Target(absl::StrCat("https://localhost:", (*echo)->port()),
                                    ProxyConfig::Direct(), certs_->ca_file),
                             "secure");
  ASSERT_TRUE(by_name.ok()) << by_name.status();
  EXPECT_EQ(*by_name, "secure");
  auto by_address = DialAndEcho(Target(absl::StrCat("https://127.0.0.1:", (*echo)->port()),
                                       ProxyConfig::Direct(), certs_->ca_file),
                                "secure");
  ASSERT_TRUE(by_address.ok()) << by_address.status();
  // SNI carries host names, never IP literals (RFC 6066).
  EXPECT_EQ((*echo)->sni_names(), (std::vector<std::string>{"localhost", ""}));
}

TEST_F(DialTest, TlsWithAnotherCaIsFailedPrecondition) {
  auto echo = EchoServer::Start(certs_->cert_file, certs_->key_file);
  ASSERT_TRUE(echo.ok()) << echo.status();
  auto reply = DialAndEcho(Target(absl::StrCat("https://127.0.0.1:", (*echo)->port()),
                                  ProxyConfig::Direct(), other_certs_->ca_file),
                           "x");
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kFailedPrecondition) << reply.status();
  EXPECT_NE(reply.status().message().find("not accepted"), absl::string_view::npos)
      << reply.status();
}

TEST_F(DialTest, TlsCertificateForAnotherHostNameIsFailedPrecondition) {
  // Signed by a trusted CA, but for relay.test only.
  auto echo = EchoServer::Start(named_certs_->cert_file, named_certs_->key_file);
  ASSERT_TRUE(echo.ok()) << echo.status();
  auto reply = DialAndEcho(Target(absl::StrCat("https://127.0.0.1:", (*echo)->port()),
                                  ProxyConfig::Direct(), named_certs_->ca_file),
                           "x");
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kFailedPrecondition) << reply.status();
  EXPECT_NE(reply.status().message().find("host name"), absl::string_view::npos)
      << reply.status();
}

TEST_F(DialTest, TlsThroughTheProxyVerifiesTheRelayNotTheProxy) {
  auto echo = EchoServer::Start(certs_->cert_file, certs_->key_file);
  ASSERT_TRUE(echo.ok()) << echo.status();
  auto proxy = ConnectProxy::Start(BasicAuthorization("u", "p"));
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  auto reply = DialAndEcho(
      Target(absl::StrCat("https://localhost:", (*echo)->port()),
             ProxyConfig::Explicit(absl::StrCat("http://u:p@127.0.0.1:", (*proxy)->port())),
             certs_->ca_file),
      "tls in tunnel");
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(*reply, "tls in tunnel");
  EXPECT_EQ((*proxy)->connect_targets(),
            (std::vector<std::string>{absl::StrCat("localhost:", (*echo)->port())}));
  EXPECT_EQ((*echo)->sni_names(), (std::vector<std::string>{"localhost"}));
}

TEST_F(DialTest, MissingCaFileIsInvalidArgument) {
  auto target = MakeDialTarget("https://127.0.0.1:1", ProxyConfig::Direct(),
                               TempDir() + "/no-such-ca.pem", absl::Seconds(1));
  EXPECT_EQ(target.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(target.status().message().find("no-such-ca.pem"), absl::string_view::npos);
}

TEST_F(DialTest, PlaintextRelayNeedsNoCaFile) {
  auto target = MakeDialTarget("http://127.0.0.1:1", ProxyConfig::Direct(),
                               TempDir() + "/no-such-ca.pem", absl::Seconds(1));
  ASSERT_TRUE(target.ok()) << target.status();
  EXPECT_EQ((*target)->tls, nullptr);
}

}  // namespace
}  // namespace tether::net::internal
