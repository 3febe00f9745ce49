// FetchRelayPresence against the real relay (//relay:relay_server as a child process on
// 127.0.0.1), plus a canned HTTP server for answers the relay never gives. Every wait is on a
// condition with a deadline.
#include "common/net/relay_presence.h"

#include <sys/socket.h>

#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/net/proxy.h"
#include "common/net/relay_listener.h"
#include "common/net/relay_process.h"
#include "common/net/relay_status.h"
#include "common/net/test_certs.h"
#include "common/net/test_servers.h"
#include "gtest/gtest.h"

namespace tether::net {
namespace {

using ::tether::net::testing::CreateTestCerts;
using ::tether::net::testing::kListenKey;
using ::tether::net::testing::kManageKey;
using ::tether::net::testing::MakeToken;
using ::tether::net::testing::RelayProcess;
using ::tether::net::testing::TestKey;

constexpr absl::Duration kWait = absl::Seconds(20);
constexpr char kEntity[] = "machine-42";

std::string TempDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

PresenceOptions Options(const std::string& relay_url, const TestKey& key = kManageKey,
                        const std::string& token_entity = kEntity) {
  PresenceOptions options;
  options.relay_url = relay_url;
  options.token = MakeToken(key, token_entity, absl::Hours(1));
  options.proxy = ProxyConfig::Direct();
  options.timeout = kWait;
  return options;
}

// Answers every request on a connection with the same bytes, or with nothing (`response`
// empty: reads until the client goes away).
class CannedHttpServer : public testing::TestTcpServer {
 public:
  static absl::StatusOr<std::unique_ptr<CannedHttpServer>> Start(std::string response) {
    std::unique_ptr<CannedHttpServer> server(new CannedHttpServer(std::move(response)));
    absl::Status listening = server->Listen();
    if (!listening.ok()) return listening;
    return server;
  }
  ~CannedHttpServer() override { Stop(); }

  std::string url() const { return absl::StrCat("http://127.0.0.1:", port()); }

  static std::string Response(int status, const std::string& body) {
    return absl::StrCat("HTTP/1.1 ", status, " Canned\r\nContent-Type: application/json\r\n",
                        "Content-Length: ", body.size(), "\r\nConnection: close\r\n\r\n", body);
  }

 protected:
  void HandleConnection(int fd) override {
    std::string request;
    char buffer[4096];
    while (!absl::StrContains(request, "\r\n\r\n")) {
      const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
      if (n <= 0) return;
      request.append(buffer, static_cast<size_t>(n));
    }
    if (response_.empty()) {
      while (recv(fd, buffer, sizeof(buffer), 0) > 0) {
      }
      return;
    }
    const char* data = response_.data();
    size_t left = response_.size();
    while (left > 0) {
      const ssize_t n = send(fd, data, left, MSG_NOSIGNAL);
      if (n <= 0) return;
      data += n;
      left -= static_cast<size_t>(n);
    }
  }

 private:
  explicit CannedHttpServer(std::string response) : response_(std::move(response)) {}
  const std::string response_;
};

// A WebSocket listener on kEntity with id `id`, connected when this returns.
class ConnectedListener {
 public:
  static absl::StatusOr<std::unique_ptr<ConnectedListener>> Start(const std::string& relay_url,
                                                                  const std::string& id,
                                                                  const std::string& ca_file = "") {
    auto self = std::unique_ptr<ConnectedListener>(new ConnectedListener());
    ListenerOptions options;
    options.relay_url = relay_url;
    options.entity = kEntity;
    options.listener_id = id;
    options.transport = ListenerOptions::Transport::kWebSocketOnly;
    options.proxy = ProxyConfig::Direct();
    options.ca_file = ca_file;
    options.token_provider = []() -> absl::StatusOr<std::string> {
      return MakeToken(kListenKey, kEntity, absl::Hours(1));
    };
    ConnectedListener* raw = self.get();
    options.on_state = [raw](const ListenerState& state) {
      absl::MutexLock lock(&raw->mu_);
      raw->connected_ = state.kind == ListenerState::Kind::kConnectedWebSocket;
      raw->last_error_ = state.last_error;
    };
    auto listener = RelayListener::Create(std::move(options));
    if (!listener.ok()) return listener.status();
    self->listener_ = *std::move(listener);
    absl::Status started = self->listener_->Start();
    if (!started.ok()) return started;
    {
      absl::MutexLock lock(&self->mu_);
      if (!self->mu_.AwaitWithTimeout(absl::Condition(&self->connected_), kWait)) {
        return absl::DeadlineExceededError(
            absl::StrCat("listener ", id, " did not connect: ", self->last_error_.ToString()));
      }
    }
    return self;
  }
  ~ConnectedListener() {
    if (listener_) listener_->Stop();
  }

 private:
  ConnectedListener() = default;
  absl::Mutex mu_;
  bool connected_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status last_error_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<RelayListener> listener_;  // last: stopped before mu_ goes away
};

class RelayPresenceTest : public ::testing::Test {
 protected:
  void StartRelay(std::vector<std::string> flags = {"--insecure"}) {
    auto relay = RelayProcess::Start(std::move(flags));
    ASSERT_TRUE(relay.ok()) << relay.status();
    relay_ = *std::move(relay);
  }
  std::unique_ptr<RelayProcess> relay_;
};

TEST_F(RelayPresenceTest, EntityWithoutListenersHasCountZero) {
  StartRelay();
  auto presence = FetchRelayPresence(Options(relay_->url()), kEntity);
  ASSERT_TRUE(presence.ok()) << presence.status();
  EXPECT_EQ(presence->entity(), "hc/machine-42");
  EXPECT_EQ(presence->listener_count(), 0u);
  EXPECT_EQ(presence->listener_ids_size(), 0);
}

TEST_F(RelayPresenceTest, ConnectedListenersAreCountedWithTheirIds) {
  StartRelay();
  auto second = ConnectedListener::Start(relay_->url(), "agent-b");
  ASSERT_TRUE(second.ok()) << second.status();
  auto first = ConnectedListener::Start(relay_->url(), "agent-a");
  ASSERT_TRUE(first.ok()) << first.status();

  // The same answer through each accepted spelling of the URL and the entity.
  const std::string port = absl::StrCat(relay_->port());
  const std::vector<std::pair<std::string, std::string>> spellings = {
      {relay_->url(), kEntity},
      {absl::StrCat("ws://127.0.0.1:", port), kEntity},
      {absl::StrCat("WS://localhost:", port, "/"), "hc/machine-42"},
  };
  for (const auto& [url, entity] : spellings) {
    SCOPED_TRACE(absl::StrCat(url, " ", entity));
    auto presence = FetchRelayPresence(Options(url), entity);
    ASSERT_TRUE(presence.ok()) << presence.status();
    EXPECT_EQ(presence->entity(), "hc/machine-42");
    EXPECT_EQ(presence->listener_count(), 2u);
    ASSERT_EQ(presence->listener_ids_size(), 2);
    EXPECT_EQ(presence->listener_ids(0), "agent-a");
    EXPECT_EQ(presence->listener_ids(1), "agent-b");
  }

  // Another entity's presence is its own.
  auto other = FetchRelayPresence(Options(relay_->url(), kManageKey, "machine-7"), "machine-7");
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(other->listener_count(), 0u);
}

TEST_F(RelayPresenceTest, RefusedTokensGiveTheRelaysReason) {
  StartRelay();
  struct Case {
    const char* name;
    std::string token;
    absl::StatusCode code;
    int http_status;
    const char* reason;  // in the relay's one-line answer
  };
  const TestKey wrong_secret = {kManageKey.name, "not-the-manage-key-0123456789abcdef012345"};
  const std::vector<Case> cases = {
      {"listen-only key", MakeToken(kListenKey, kEntity, absl::Hours(1)),
       absl::StatusCode::kPermissionDenied, 403, "Manage"},
      {"token for another entity", MakeToken(kManageKey, "machine-7", absl::Hours(1)),
       absl::StatusCode::kPermissionDenied, 403, "does not cover"},
      {"expired token", MakeToken(kManageKey, kEntity, -absl::Minutes(5)),
       absl::StatusCode::kUnauthenticated, 401, "expired"},
      {"wrong signature", MakeToken(wrong_secret, kEntity, absl::Hours(1)),
       absl::StatusCode::kUnauthenticated, 401, "signature"},
      {"not a SAS token", "Bearer abc", absl::StatusCode::kUnauthenticated, 401, ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    PresenceOptions options = Options(relay_->url());
    options.token = c.token;
    auto presence = FetchRelayPresence(options, kEntity);
    ASSERT_FALSE(presence.ok());
    EXPECT_EQ(presence.status().code(), c.code) << presence.status();
    EXPECT_EQ(HttpStatusOf(presence.status()), c.http_status) << presence.status();
    EXPECT_TRUE(absl::StrContains(presence.status().message(), c.reason)) << presence.status();
    EXPECT_TRUE(absl::StrContains(presence.status().message(), relay_->url())) << presence.status();
    EXPECT_FALSE(absl::StrContains(presence.status().message(), "sig=")) << presence.status();
  }
}

TEST_F(RelayPresenceTest, RelayDownIsUnavailable) {
  StartRelay();
  const std::string url = relay_->url();
  relay_->Kill();
  auto presence = FetchRelayPresence(Options(url), kEntity);
  ASSERT_FALSE(presence.ok());
  EXPECT_EQ(presence.status().code(), absl::StatusCode::kUnavailable) << presence.status();
  EXPECT_TRUE(absl::StrContains(presence.status().message(), "127.0.0.1")) << presence.status();

  // Back on the same port, it answers again.
  ASSERT_TRUE(relay_->Restart().ok());
  auto again = FetchRelayPresence(Options(url), kEntity);
  EXPECT_TRUE(again.ok()) << again.status();
}

TEST_F(RelayPresenceTest, SilentRelayIsDeadlineExceededWithinTheTimeout) {
  StartRelay();
  relay_->Pause();
  PresenceOptions options = Options(relay_->url());
  options.timeout = absl::Milliseconds(300);
  auto presence = FetchRelayPresence(options, kEntity);
  relay_->Resume();
  ASSERT_FALSE(presence.ok());
  EXPECT_EQ(presence.status().code(), absl::StatusCode::kDeadlineExceeded) << presence.status();
}

TEST_F(RelayPresenceTest, WorksOverTlsAndRefusesAnUntrustedCertificate) {
  auto certs = CreateTestCerts(TempDir(), "presence", {"localhost", "127.0.0.1"});
  ASSERT_TRUE(certs.ok()) << certs.status();
  auto other = CreateTestCerts(TempDir(), "presence-other", {"localhost", "127.0.0.1"});
  ASSERT_TRUE(other.ok()) << other.status();
  StartRelay(
      {absl::StrCat("--tls_cert=", certs->cert_file), absl::StrCat("--tls_key=", certs->key_file)});
  ASSERT_TRUE(absl::StartsWith(relay_->url(), "https://")) << relay_->url();
  auto listener = ConnectedListener::Start(relay_->url(), "tls-agent", certs->ca_file);
  ASSERT_TRUE(listener.ok()) << listener.status();

  PresenceOptions options = Options(absl::StrCat("wss://localhost:", relay_->port()));
  options.ca_file = certs->ca_file;
  auto presence = FetchRelayPresence(options, kEntity);
  ASSERT_TRUE(presence.ok()) << presence.status();
  EXPECT_EQ(presence->entity(), "hc/machine-42");
  ASSERT_EQ(presence->listener_ids_size(), 1);
  EXPECT_EQ(presence->listener_ids(0), "tls-agent");

  options.ca_file = other->ca_file;
  auto untrusted = FetchRelayPresence(options, kEntity);
  ASSERT_FALSE(untrusted.ok());
  EXPECT_EQ(untrusted.status().code(), absl::StatusCode::kFailedPrecondition) << untrusted.status();
}

TEST(RelayPresenceAnswerTest, MalformedAnswersAreInternalErrorsNamingTheRelay) {
  struct Case {
    const char* name;
    std::string response;
  };
  auto ok = [](const std::string& body) { return CannedHttpServer::Response(200, body); };
  const std::vector<Case> cases = {
      {"not JSON", ok("listeners: 2")},
      {"truncated", ok(R"({"entity":"hc/machine-42","listenerCount":0,"listenerIds":[)")},
      {"trailing garbage", ok(R"({"entity":"hc/machine-42","listenerCount":0,"listenerIds":[]}x)")},
      {"an array", ok(R"([{"entity":"hc/machine-42"}])")},
      {"no entity", ok(R"({"listenerCount":0,"listenerIds":[]})")},
      {"no count", ok(R"({"entity":"hc/machine-42","listenerIds":[]})")},
      {"no ids", ok(R"({"entity":"hc/machine-42","listenerCount":0})")},
      {"another entity", ok(R"({"entity":"hc/machine-7","listenerCount":0,"listenerIds":[]})")},
      {"count as string",
       ok(R"({"entity":"hc/machine-42","listenerCount":"1","listenerIds":["a"]})")},
      {"count as float",
       ok(R"({"entity":"hc/machine-42","listenerCount":1.0,"listenerIds":["a"]})")},
      {"negative count", ok(R"({"entity":"hc/machine-42","listenerCount":-1,"listenerIds":[]})")},
      {"count mismatch", ok(R"({"entity":"hc/machine-42","listenerCount":2,"listenerIds":["a"]})")},
      {"id not a string", ok(R"({"entity":"hc/machine-42","listenerCount":1,"listenerIds":[7]})")},
      {"over 64 KiB", ok(absl::StrCat(R"({"entity":"hc/machine-42","listenerCount":1,)",
                                      R"("listenerIds":[")", std::string(70 << 10, 'a'), "\"]}"))},
      {"204", CannedHttpServer::Response(204, "")},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto server = CannedHttpServer::Start(c.response);
    ASSERT_TRUE(server.ok()) << server.status();
    auto presence = FetchRelayPresence(Options((*server)->url()), kEntity);
    ASSERT_FALSE(presence.ok());
    EXPECT_EQ(presence.status().code(), absl::StatusCode::kInternal) << presence.status();
    EXPECT_TRUE(absl::StrContains(presence.status().message(),
                                  absl::StrCat("relay http://127.0.0.1:", (*server)->port())))
        << presence.status();
  }
}

TEST(RelayPresenceAnswerTest, UnknownMembersAreIgnored) {
  auto server = CannedHttpServer::Start(CannedHttpServer::Response(
      200, R"({"listenerIds":["x"],"entity":"hc/machine-42","region":"eu","listenerCount":1})"));
  ASSERT_TRUE(server.ok()) << server.status();
  auto presence = FetchRelayPresence(Options((*server)->url()), kEntity);
  ASSERT_TRUE(presence.ok()) << presence.status();
  EXPECT_EQ(presence->listener_count(), 1u);
  ASSERT_EQ(presence->listener_ids_size(), 1);
  EXPECT_EQ(presence->listener_ids(0), "x");
}

TEST(RelayPresenceAnswerTest, ServerErrorsMapToRetryableCodes) {
  struct Case {
    int status;
    absl::StatusCode code;
  };
  for (const Case& c : std::vector<Case>{{503, absl::StatusCode::kUnavailable},
                                         {502, absl::StatusCode::kUnavailable},
                                         {404, absl::StatusCode::kNotFound}}) {
    SCOPED_TRACE(c.status);
    auto server =
        CannedHttpServer::Start(CannedHttpServer::Response(c.status, "relay is draining\nmore"));
    ASSERT_TRUE(server.ok()) << server.status();
    auto presence = FetchRelayPresence(Options((*server)->url()), kEntity);
    ASSERT_FALSE(presence.ok());
    EXPECT_EQ(presence.status().code(), c.code) << presence.status();
    EXPECT_EQ(HttpStatusOf(presence.status()), c.status);
    EXPECT_TRUE(absl::StrContains(presence.status().message(), "relay is draining"));
    EXPECT_FALSE(absl::StrContains(presence.status().message(), "more"));
  }
}

TEST(RelayPresenceOptionsTest, BadOptionsAreInvalidArgument) {
  struct Case {
    const char* name;
    std::function<void(PresenceOptions&)> change;
    std::string entity = kEntity;
  };
  const std::vector<Case> cases = {
      {"empty token", [](PresenceOptions& o) { o.token.clear(); }},
      {"token with a line break", [](PresenceOptions& o) { o.token += "\r\nX-Evil: 1"; }},
      {"zero timeout", [](PresenceOptions& o) { o.timeout = absl::ZeroDuration(); }},
      {"ftp URL", [](PresenceOptions& o) { o.relay_url = "ftp://127.0.0.1:1"; }},
      {"URL with a path", [](PresenceOptions& o) { o.relay_url = "http://127.0.0.1:1/$hc/x"; }},
      {"missing CA file",
       [](PresenceOptions& o) {
         o.relay_url = "https://127.0.0.1:1";
         o.ca_file = TempDir() + "/no-such-ca.pem";
       }},
      {"entity with a slash", [](PresenceOptions&) {}, "machine/42"},
      {"empty entity", [](PresenceOptions&) {}, ""},
      {"only the prefix", [](PresenceOptions&) {}, "hc/"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    PresenceOptions options = Options("http://127.0.0.1:1");
    c.change(options);
    auto presence = FetchRelayPresence(options, c.entity);
    EXPECT_EQ(presence.status().code(), absl::StatusCode::kInvalidArgument) << presence.status();
  }
}

}  // namespace
}  // namespace tether::net
