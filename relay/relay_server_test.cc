// The relay server in-process on loopback port 0, driven by hand-written protocol clients.
#include "relay/relay_server.h"

#include <future>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "common/crypto/sas_token.h"
#include "common/proto/frame_codec.h"
#include "gtest/gtest.h"
#include "relay/relay_context.h"
#include "relay/testing/test_client.h"

namespace tether::relay {
namespace {

using ::boost::beast::http::verb;
using testing::HttpRequest;
using testing::TestListener;
using testing::TestWebSocket;

constexpr char kListenKey[] = "listen-key-0123456789abcdef0123456789";
constexpr char kSendKey[] = "send-key-0123456789abcdef0123456789abc";
constexpr char kManageKey[] = "manage-key-0123456789abcdef0123456789";

// Waits for `condition` with a deadline (for effects that land just after what a test observed).
template <typename F>
bool WaitFor(F condition, absl::Duration deadline = absl::Seconds(10)) {
  absl::Time end = absl::Now() + deadline;
  while (!condition()) {
    if (absl::Now() > end) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

class RelayServerTest : public ::testing::Test {
 protected:
  void SetUp() override { StartRelay({}); }
  void TearDown() override {
    if (server_) server_->Stop();
  }

  void StartRelay(RelayOptions options) {
    if (server_) {
      server_->Stop();
      server_->Wait();
    }
    auto ring = crypto::SasKeyRing::Parse(absl::StrCat("agents ", kListenKey, " Listen\n",
                                                       "cloud ", kSendKey, " Send\n",
                                                       "ops ", kManageKey, " Manage\n"));
    ASSERT_TRUE(ring.ok()) << ring.status();
    options.keys = std::make_shared<const crypto::SasKeyRing>(*std::move(ring));
    options.listen_host = "127.0.0.1";
    options.listen_port = 0;
    options.insecure = true;
    options.threads = 2;
    auto server = RelayServer::Create(std::move(options));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    server_->Start();
    port_ = server_->port();
  }

  static std::string Token(const char* key_name, const char* key, const std::string& resource,
                           int64_t lifetime = 3600) {
    return crypto::CreateSasToken(absl::StrCat("http://relay.test", resource), key_name,
                                  crypto::SecretBytes(key), time(nullptr) + lifetime);
  }
  static std::string ListenToken(const std::string& entity) {
    return Token("agents", kListenKey, "/$hc/" + entity);
  }
  static std::string SendToken(const std::string& entity) {
    return Token("cloud", kSendKey, "/$hc/" + entity);
  }
  static std::string ConnectTarget(const std::string& entity) {
    return absl::StrCat("/$hc/", entity, "?action=connect");
  }

  // Opens a sender channel to `listener` and returns the sender (status 101 expected).
  std::unique_ptr<TestWebSocket> OpenChannel(TestListener& listener, const std::string& entity,
                                             uint64_t* channel_id) {
    auto sender = std::make_unique<TestWebSocket>(port_);
    std::future<int> status = std::async(std::launch::async, [&] {
      return sender->Open(ConnectTarget(entity), SendToken(entity));
    });
    *channel_id = listener.ExpectOpen();
    EXPECT_NE(*channel_id, 0u);
    listener.Accept(*channel_id);
    EXPECT_EQ(status.get(), 101);
    return sender;
  }

  const RelayMetrics& metrics() const { return server_->context().metrics; }

  std::unique_ptr<RelayServer> server_;
  uint16_t port_ = 0;
};

TEST_F(RelayServerTest, SenderAndListenerExchangeMessagesOverAChannel) {
  TestListener listener(port_, "machine-1", "l1", ListenToken("machine-1"));
  ASSERT_EQ(listener.Connect(), 101);
  uint64_t channel = 0;
  auto sender = OpenChannel(listener, "machine-1", &channel);

  sender->Write("job request");
  auto frame = listener.ws().ReadFrame();
  ASSERT_TRUE(frame.has_value());
  ASSERT_EQ(frame->kind_case(), proto::RelayFrame::kData);
  EXPECT_EQ(frame->data().channel_id(), channel);
  EXPECT_EQ(frame->data().payload(), "job request");

  listener.SendData(channel, "job accepted");
  EXPECT_EQ(sender->Read().value_or(""), "job accepted");

  sender->Close(1000, "done");
  frame = listener.ws().ReadFrame();
  ASSERT_TRUE(frame.has_value());
  ASSERT_EQ(frame->kind_case(), proto::RelayFrame::kClose);
  EXPECT_EQ(frame->close().channel_id(), channel);
  EXPECT_EQ(frame->close().code(), 1000u);
  EXPECT_GE(metrics().frames_to_listener.load(), 1u);
  EXPECT_GE(metrics().frames_to_sender.load(), 1u);
}

TEST_F(RelayServerTest, OpenCarriesSenderMetadataButNeverTheToken) {
  TestListener listener(port_, "machine-1", "l1", ListenToken("machine-1"));
  ASSERT_EQ(listener.Connect(), 101);
  TestWebSocket sender(port_);
  std::future<int> status = std::async(std::launch::async, [&] {
    return sender.Open(ConnectTarget("machine-1"), SendToken("machine-1"));
  });
  auto frame = listener.ws().ReadFrame();
  ASSERT_TRUE(frame && frame->has_open());
  EXPECT_EQ(frame->open().sender_meta().request_target(), "/$hc/machine-1");
  EXPECT_TRUE(absl::StartsWith(frame->open().sender_meta().remote_address(), "127.0.0.1:"));
  EXPECT_EQ(frame->open().sender_meta().headers().count("authorization"), 0u);
  listener.Accept(frame->open().channel_id());
  EXPECT_EQ(status.get(), 101);
}

TEST_F(RelayServerTest, ListenerClosingAChannelClosesTheSenderWithItsCodeAndReason) {
  TestListener listener(port_, "machine-1", "l1", ListenToken("machine-1"));
  ASSERT_EQ(listener.Connect(), 101);
  uint64_t channel = 0;
  auto sender = OpenChannel(listener, "machine-1", &channel);
  listener.CloseChannel(channel, 4100, "job finished");
  EXPECT_FALSE(sender->Read().has_value());
  EXPECT_EQ(sender->close_code(), 4100);
  EXPECT_EQ(sender->close_reason(), "job finished");
}

TEST_F(RelayServerTest, NoListenerIs503) {
  TestWebSocket sender(port_);
  EXPECT_EQ(sender.Open(ConnectTarget("machine-9"), SendToken("machine-9")), 503);
  EXPECT_EQ(sender.refusal_body(), "no listener\n");
}

TEST_F(RelayServerTest, ListenerRejectReachesTheSenderAsItsStatus) {
  TestListener listener(port_, "machine-1", "l1", ListenToken("machine-1"));
  ASSERT_EQ(listener.Connect(), 101);
  TestWebSocket sender(port_);
  std::future<int> status = std::async(std::launch::async, [&] {
    return sender.Open(ConnectTarget("machine-1"), SendToken("machine-1"));
  });
  uint64_t channel = listener.ExpectOpen();
  listener.Reject(channel, 409, "busy with another run");
  EXPECT_EQ(status.get(), 409);
  EXPECT_EQ(sender.refusal_body(), "busy with another run\n");
}

TEST_F(RelayServerTest, ListenerThatNeverAnswersGives504) {
  RelayOptions options;
  options.accept_timeout = absl::Milliseconds(300);
  StartRelay(options);
  TestListener listener(port_, "machine-1", "l1", ListenToken("machine-1"));
  ASSERT_EQ(listener.Connect(), 101);
  TestWebSocket sender(port_);
  EXPECT_EQ(sender.Open(ConnectTarget("machine-1"), SendToken("machine-1")), 504);
  // The listener is told the channel is gone.
  ASSERT_NE(listener.ExpectOpen(), 0u);
  auto frame = listener.ws().ReadFrame();
  ASSERT_TRUE(frame && frame->has_close());
}

TEST_F(RelayServerTest, ChannelsAreSpreadRoundRobinOverListeners) {
  TestListener a(port_, "cluster-1", "a", ListenToken("cluster-1"));
  TestListener b(port_, "cluster-1", "b", ListenToken("cluster-1"));
  ASSERT_EQ(a.Connect(), 101);
  ASSERT_EQ(b.Connect(), 101);
  int opened_a = 0, opened_b = 0;
  for (int i = 0; i < 4; ++i) {
    TestWebSocket sender(port_);
    std::future<int> status = std::async(std::launch::async, [&] {
      return sender.Open(ConnectTarget("cluster-1"), SendToken("cluster-1"));
    });
    // Whichever listener got the Open accepts it; the other sees nothing.
    TestListener& first = (i % 2 == 0) ? a : b;
    uint64_t channel = first.ExpectOpen();
    if (channel != 0) {
      (i % 2 == 0 ? opened_a : opened_b)++;
      first.Accept(channel);
    }
    EXPECT_EQ(status.get(), 101);
  }
  EXPECT_EQ(opened_a, 2);
  EXPECT_EQ(opened_b, 2);
}

struct AuthCase {
  std::string name;
  std::string token;
  int status;
  crypto::SasFailure failure;
};

TEST_F(RelayServerTest, BadTokensAreRefusedWithAReasonAndCounted) {
  std::string entity = "/$hc/machine-1";
  std::vector<AuthCase> cases = {
      {"missing", "", 401, crypto::SasFailure::kMalformed},
      {"malformed", "SharedAccessSignature sr=x", 401, crypto::SasFailure::kMalformed},
      {"expired", Token("agents", kListenKey, entity, -10), 401, crypto::SasFailure::kExpired},
      {"wrong signature", Token("agents", "another-key-another-key-another-key!", entity), 401,
       crypto::SasFailure::kBadSignature},
      {"unknown key", Token("ghost", kListenKey, entity), 401, crypto::SasFailure::kUnknownKey},
      {"wrong scope", Token("agents", kListenKey, "/$hc/machine-2"), 403,
       crypto::SasFailure::kOutOfScope},
      {"wrong right", Token("cloud", kSendKey, entity), 403, crypto::SasFailure::kMissingRight},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    uint64_t before = metrics().auth_failures(c.failure);
    TestWebSocket ws(port_);
    EXPECT_EQ(ws.Open("/$hc/machine-1?action=listen&id=l1", c.token), c.status);
    EXPECT_FALSE(ws.refusal_body().empty());
    EXPECT_EQ(ws.refusal_body().find('\n'), ws.refusal_body().size() - 1);  // one line
    EXPECT_EQ(metrics().auth_failures(c.failure), before + 1);
  }
  // Nothing was registered, and a good token still works.
  EXPECT_EQ(metrics().websocket_listeners.load(), 0);
  TestListener good(port_, "machine-1", "l1", ListenToken("machine-1"));
  EXPECT_EQ(good.Connect(), 101);
}

TEST_F(RelayServerTest, TokenInQueryParameterWorks) {
  std::string token = crypto::SasUrlEncode(ListenToken("machine-1"));
  TestWebSocket ws(port_);
  EXPECT_EQ(ws.Open("/$hc/machine-1?action=listen&id=l1&sb-hc-token=" + token, ""), 101);
}

TEST_F(RelayServerTest, BadRequestsAreRefusedClearly) {
  struct Case {
    std::string target;
    int status;
    std::string body;
  } cases[] = {
      {"/$hc/machine-1?action=dance", 400, "unknown action: use action=listen or action=connect\n"},
      {"/$hc/machine-1", 400, "unknown action: use action=listen or action=connect\n"},
      {"/$hc/machine-1?action=listen&id=l1", 400, "expected a WebSocket upgrade\n"},
      {"/$hc/bad%20name?action=listen&id=a", 400, "invalid entity name\n"},
      {"/$hc/machine-1/elsewhere", 404, "not found\n"},
      {"/nothing-here", 404, "not found\n"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.target);
    auto result = HttpRequest(port_, verb::get, c.target, ListenToken("machine-1"));
    EXPECT_EQ(result.status, c.status);
    EXPECT_EQ(result.body, c.body);
  }
  TestWebSocket ws(port_);
  EXPECT_EQ(ws.Open("/$hc/machine-1?action=dance", ListenToken("machine-1")), 400);
  TestWebSocket no_id(port_);
  EXPECT_EQ(no_id.Open("/$hc/machine-1?action=listen", ListenToken("machine-1")), 400);
  EXPECT_EQ(no_id.refusal_body(), "missing or invalid listener id\n");
}

TEST_F(RelayServerTest, TwentySixthListenerIsRefusedAndTheOthersKeepWorking) {
  std::vector<std::unique_ptr<TestListener>> listeners;
  for (int i = 0; i < 25; ++i) {
    listeners.push_back(std::make_unique<TestListener>(port_, "machine-1", absl::StrCat("l", i),
                                                       ListenToken("machine-1")));
    ASSERT_EQ(listeners.back()->Connect(), 101) << i;
  }
  TestListener extra(port_, "machine-1", "l25", ListenToken("machine-1"));
  EXPECT_EQ(extra.Connect(), 429);
  EXPECT_EQ(extra.ws().refusal_body(), "entity already has 25 listeners\n");
  auto presence = HttpRequest(port_, verb::get, "/$hc/machine-1/listeners",
                              Token("ops", kManageKey, "/$hc/"));
  EXPECT_EQ(presence.status, 200);
  EXPECT_NE(presence.body.find("\"listenerCount\":25"), std::string::npos);
  // A reconnect with an existing id is a replacement, not a 26th listener.
  TestListener again(port_, "machine-1", "l0", ListenToken("machine-1"));
  EXPECT_EQ(again.Connect(), 101);
}

TEST_F(RelayServerTest, SameListenerIdReplacesTheStaleConnection) {
  TestListener old_one(port_, "machine-1", "l1", ListenToken("machine-1"));
  ASSERT_EQ(old_one.Connect(), 101);
  uint64_t channel = 0;
  auto sender = OpenChannel(old_one, "machine-1", &channel);

  TestListener new_one(port_, "machine-1", "l1", ListenToken("machine-1"));
  ASSERT_EQ(new_one.Connect(), 101);
  EXPECT_FALSE(old_one.ws().ReadFrame().has_value());
  EXPECT_EQ(old_one.ws().close_code(), 4003);
  // The old listener's channel is closed with a reason the sender sees.
  EXPECT_FALSE(sender->Read().has_value());
  EXPECT_EQ(sender->close_code(), 4001);
  EXPECT_EQ(sender->close_reason(), "listener gone");
  EXPECT_EQ(metrics().listener_replacements.load(), 1u);
  // The new one gets the next channel.
  uint64_t next = 0;
  auto sender2 = OpenChannel(new_one, "machine-1", &next);
  EXPECT_NE(next, 0u);
}

TEST_F(RelayServerTest, ListenerDisconnectClosesItsChannelsWith4001) {
  auto listener = std::make_unique<TestListener>(port_, "machine-1", "l1", ListenToken("machine-1"));
  ASSERT_EQ(listener->Connect(), 101);
  uint64_t channel = 0;
  auto sender = OpenChannel(*listener, "machine-1", &channel);
  listener.reset();  // drops the TCP connection without a close frame
  EXPECT_FALSE(sender->Read().has_value());
  EXPECT_EQ(sender->close_code(), 4001);
  EXPECT_EQ(sender->close_reason(), "listener gone");
}

TEST_F(RelayServerTest, OversizedSenderMessageClosesTheChannelWith1009) {
  RelayOptions options;
  options.max_frame_bytes = 4096;
  options.channel_queue_bytes = 65536;
  options.connection_queue_bytes = 1 << 20;
  StartRelay(options);
  TestListener listener(port_, "machine-1", "l1", ListenToken("machine-1"));
  ASSERT_EQ(listener.Connect(), 101);
  uint64_t channel = 0;
  auto sender = OpenChannel(listener, "machine-1", &channel);
  sender->Write(std::string(5000, 'x'));
  EXPECT_FALSE(sender->Read().has_value());
  EXPECT_EQ(sender->close_code(), 1009);
  auto frame = listener.ws().ReadFrame();
  ASSERT_TRUE(frame && frame->has_close());
  EXPECT_EQ(frame->close().code(), 1009u);
  // The listener itself is unaffected.
  uint64_t next = 0;
  auto sender2 = OpenChannel(listener, "machine-1", &next);
  EXPECT_NE(next, 0u);
}

TEST_F(RelayServerTest, OversizedListenerMessageClosesThatListenerWith1009) {
  RelayOptions options;
  options.max_frame_bytes = 4096;
  options.channel_queue_bytes = 65536;
  options.connection_queue_bytes = 1 << 20;
  StartRelay(options);
  TestListener big(port_, "machine-1", "big", ListenToken("machine-1"));
  TestListener other(port_, "machine-2", "other", ListenToken("machine-2"));
  ASSERT_EQ(big.Connect(), 101);
  ASSERT_EQ(other.Connect(), 101);
  uint64_t channel = 0;
  auto sender = OpenChannel(big, "machine-1", &channel);
  big.SendData(channel, std::string(4096 + 2048, 'x'));  // over max_frame_bytes + frame overhead
  EXPECT_FALSE(big.ws().ReadFrame().has_value());
  EXPECT_EQ(big.ws().close_code(), 1009);
  // Its channel closes with a reason the sender sees; the other listener is untouched.
  EXPECT_FALSE(sender->Read().has_value());
  EXPECT_EQ(sender->close_code(), 4001);
  uint64_t next = 0;
  auto sender2 = OpenChannel(other, "machine-2", &next);
  EXPECT_NE(next, 0u);
}

TEST_F(RelayServerTest, GarbageFromAListenerClosesOnlyThatListenerWith1007) {
  TestListener bad(port_, "machine-1", "bad", ListenToken("machine-1"));
  TestListener good(port_, "machine-2", "good", ListenToken("machine-2"));
  ASSERT_EQ(bad.Connect(), 101);
  ASSERT_EQ(good.Connect(), 101);
  bad.ws().Write(std::string("\xff\xff\xff\xff not a protobuf", 20));
  EXPECT_FALSE(bad.ws().ReadFrame().has_value());
  EXPECT_EQ(bad.ws().close_code(), 1007);
  EXPECT_EQ(metrics().invalid_frames.load(), 1u);
  uint64_t channel = 0;
  auto sender = OpenChannel(good, "machine-2", &channel);
  EXPECT_NE(channel, 0u);
}

TEST_F(RelayServerTest, FramesForUnknownOrForeignChannelsGet4004AndChangeNothing) {
  TestListener a(port_, "machine-1", "a", ListenToken("machine-1"));
  TestListener b(port_, "machine-2", "b", ListenToken("machine-2"));
  ASSERT_EQ(a.Connect(), 101);
  ASSERT_EQ(b.Connect(), 101);
  uint64_t channel_a = 0;
  auto sender = OpenChannel(a, "machine-1", &channel_a);

  b.SendData(channel_a, "hijack");  // a channel that belongs to another listener
  auto frame = b.ws().ReadFrame();
  ASSERT_TRUE(frame && frame->has_close());
  EXPECT_EQ(frame->close().channel_id(), channel_a);
  EXPECT_EQ(frame->close().code(), 4004u);
  b.SendData(987654, "nobody");  // a channel that does not exist
  frame = b.ws().ReadFrame();
  ASSERT_TRUE(frame && frame->has_close());
  EXPECT_EQ(frame->close().code(), 4004u);

  // The real channel still works and saw none of it.
  a.SendData(channel_a, "real");
  EXPECT_EQ(sender->Read().value_or(""), "real");
}

TEST_F(RelayServerTest, SenderThatNeverReadsLosesItsChannelNotTheListener) {
  RelayOptions options;
  options.max_frame_bytes = 64 * 1024;
  options.channel_queue_bytes = 256 * 1024;
  StartRelay(options);
  TestListener listener(port_, "machine-1", "l1", ListenToken("machine-1"));
  ASSERT_EQ(listener.Connect(), 101);
  uint64_t slow = 0;
  auto slow_sender = OpenChannel(listener, "machine-1", &slow);
  uint64_t healthy = 0;
  auto healthy_sender = OpenChannel(listener, "machine-1", &healthy);

  // Far more than loopback socket buffers and the channel queue hold (36 MiB), toward a sender
  // that never reads. The relay answers with Close{slow, 4000} once the queue is full.
  std::string chunk(60 * 1024, 'z');
  for (int i = 0; i < 600; ++i) listener.SendData(slow, chunk);
  std::optional<proto::RelayFrame> close = listener.ws().ReadFrame();
  ASSERT_TRUE(close.has_value());
  ASSERT_TRUE(close->has_close());
  EXPECT_EQ(close->close().channel_id(), slow);
  EXPECT_EQ(close->close().code(), 4000u);
  EXPECT_GE(metrics().queue_full_closes.load(), 1u);

  listener.SendData(healthy, "still here");
  EXPECT_EQ(healthy_sender->Read().value_or(""), "still here");
}

TEST_F(RelayServerTest, SilentConnectionIsClosedAfterTheHandshakeTimeout) {
  RelayOptions options;
  options.handshake_timeout = absl::Milliseconds(200);
  StartRelay(options);
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::socket socket(ioc);
  socket.connect({boost::asio::ip::make_address("127.0.0.1"), port_});
  char byte;
  boost::system::error_code ec;
  // Blocks until the relay closes the connection (EOF); the test's own timeout bounds it.
  socket.read_some(boost::asio::buffer(&byte, 1), ec);
  EXPECT_TRUE(ec == boost::asio::error::eof || ec == boost::asio::error::connection_reset) << ec;
  // The counter is bumped by the relay's handler, which may run just after the close.
  EXPECT_TRUE(WaitFor([&] { return metrics().handshake_timeouts.load() == 1; }));
  EXPECT_EQ(HttpRequest(port_, verb::get, "/healthz").status, 200);
}

TEST_F(RelayServerTest, ExpiredTokenClosesTheListenerWith4002AndRenewalKeepsItAlive) {
  int64_t fake_now = time(nullptr);
  server_->mutable_context().clock = [&fake_now] { return fake_now; };
  std::string entity_path = "/$hc/machine-1";
  auto short_token = [&](int64_t lifetime) {
    return crypto::CreateSasToken(absl::StrCat("http://relay.test", entity_path), "agents",
                                  crypto::SecretBytes(kListenKey), fake_now + lifetime);
  };
  TestListener renewed(port_, "machine-1", "renewed", short_token(1));
  TestListener expiring(port_, "machine-1", "expiring", short_token(1));
  ASSERT_EQ(renewed.Connect(), 101);
  ASSERT_EQ(expiring.Connect(), 101);
  proto::RelayFrame renew;
  renew.mutable_renew_token()->set_token(short_token(3600));
  renewed.ws().WriteFrame(renew);
  // A renewal with a bad token is refused without touching the old expiry.
  proto::RelayFrame bad_renew;
  bad_renew.mutable_renew_token()->set_token("SharedAccessSignature sr=x&sig=y&se=1&skn=agents");
  renewed.ws().WriteFrame(bad_renew);
  auto refusal = renewed.ws().ReadFrame();
  ASSERT_TRUE(refusal && refusal->has_close());
  EXPECT_EQ(refusal->close().channel_id(), 0u);
  EXPECT_EQ(refusal->close().code(), 4002u);

  fake_now += 10;  // the first token is now 9 s past its expiry
  EXPECT_FALSE(expiring.ws().ReadFrame().has_value());
  EXPECT_EQ(expiring.ws().close_code(), 4002);
  EXPECT_EQ(expiring.ws().close_reason(), "token expired");
  // The renewed listener still takes channels.
  uint64_t channel = 0;
  auto sender = OpenChannel(renewed, "machine-1", &channel);
  EXPECT_NE(channel, 0u);
}

TEST_F(RelayServerTest, PresenceNeedsManageAndListsListenerIds) {
  TestListener a(port_, "machine-1", "alpha", ListenToken("machine-1"));
  ASSERT_EQ(a.Connect(), 101);
  auto denied = HttpRequest(port_, verb::get, "/$hc/machine-1/listeners", SendToken("machine-1"));
  EXPECT_EQ(denied.status, 403);
  auto ok = HttpRequest(port_, verb::get, "/$hc/machine-1/listeners",
                        Token("ops", kManageKey, "/$hc/machine-1"));
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.body, "{\"entity\":\"hc/machine-1\",\"listenerCount\":1,\"listenerIds\":[\"alpha\"]}");
  auto none = HttpRequest(port_, verb::get, "/$hc/machine-7/listeners",
                          Token("ops", kManageKey, "/$hc/"));
  EXPECT_EQ(none.body, "{\"entity\":\"hc/machine-7\",\"listenerCount\":0,\"listenerIds\":[]}");
}

TEST_F(RelayServerTest, HealthzAndMetricsAreServed) {
  EXPECT_EQ(HttpRequest(port_, verb::get, "/healthz").body, "ok\n");
  TestWebSocket ws(port_);
  EXPECT_EQ(ws.Open("/$hc/machine-1?action=listen&id=x", ""), 401);
  auto metrics_page = HttpRequest(port_, verb::get, "/metrics");
  EXPECT_EQ(metrics_page.status, 200);
  EXPECT_NE(metrics_page.body.find("tether_relay_auth_failures_total{reason=\"malformed\"} 1"),
            std::string::npos);
  EXPECT_NE(metrics_page.body.find("tether_relay_listeners{transport=\"websocket\"} 0"),
            std::string::npos);
}

// ---- Long-poll listeners -------------------------------------------------------------------

class LongPollTest : public RelayServerTest {
 protected:
  std::vector<proto::RelayFrame> Poll(const std::string& id, int wait_seconds) {
    auto result = HttpRequest(port_, verb::post,
                              absl::StrCat("/$hc/machine-1/poll?id=", id, "&wait=", wait_seconds),
                              ListenToken("machine-1"));
    EXPECT_EQ(result.status, 200) << result.body;
    auto frames = proto::DecodeDelimited(result.body, 1000, 2 << 20);
    EXPECT_TRUE(frames.ok()) << frames.status();
    return frames.ok() ? *frames : std::vector<proto::RelayFrame>{};
  }
  int Send(const std::string& id, const std::vector<proto::RelayFrame>& frames) {
    return HttpRequest(port_, verb::post, absl::StrCat("/$hc/machine-1/send?id=", id),
                       ListenToken("machine-1"), proto::EncodeDelimited(frames))
        .status;
  }
  static proto::RelayFrame AcceptFrame(uint64_t channel) {
    proto::RelayFrame f;
    f.mutable_accept()->set_channel_id(channel);
    return f;
  }
  static proto::RelayFrame DataFrame(uint64_t channel, const std::string& payload) {
    proto::RelayFrame f;
    f.mutable_data()->set_channel_id(channel);
    f.mutable_data()->set_payload(payload);
    return f;
  }
};

TEST_F(LongPollTest, LongPollListenerGetsTheSameFramesAndSemantics) {
  EXPECT_TRUE(Poll("lp", 0).empty());  // registers the listener
  TestWebSocket sender(port_);
  std::future<int> status = std::async(std::launch::async, [&] {
    return sender.Open(ConnectTarget("machine-1"), SendToken("machine-1"));
  });
  auto frames = Poll("lp", 10);
  ASSERT_EQ(frames.size(), 1u);
  ASSERT_TRUE(frames[0].has_open());
  uint64_t channel = frames[0].open().channel_id();
  EXPECT_EQ(Send("lp", {AcceptFrame(channel), DataFrame(channel, "hello from lp")}), 204);
  EXPECT_EQ(status.get(), 101);
  EXPECT_EQ(sender.Read().value_or(""), "hello from lp");
  sender.Write("hello from sender");
  frames = Poll("lp", 10);
  ASSERT_EQ(frames.size(), 1u);
  ASSERT_TRUE(frames[0].has_data());
  EXPECT_EQ(frames[0].data().payload(), "hello from sender");
  EXPECT_EQ(metrics().longpoll_listeners.load(), 1);
}

TEST_F(LongPollTest, ListenerThatStopsPollingIsDroppedAndItsChannelsClosed) {
  RelayOptions options;
  options.longpoll_idle_timeout = absl::Milliseconds(300);
  StartRelay(options);
  EXPECT_TRUE(Poll("lp", 0).empty());
  TestWebSocket sender(port_);
  std::future<int> status = std::async(std::launch::async, [&] {
    return sender.Open(ConnectTarget("machine-1"), SendToken("machine-1"));
  });
  auto frames = Poll("lp", 10);
  ASSERT_EQ(frames.size(), 1u);
  uint64_t channel = frames[0].open().channel_id();
  EXPECT_EQ(Send("lp", {AcceptFrame(channel)}), 204);
  EXPECT_EQ(status.get(), 101);
  // No more polls: the sender sees the channel close once the idle timeout passes.
  EXPECT_FALSE(sender.Read().has_value());
  EXPECT_EQ(sender.close_code(), 4001);
  EXPECT_EQ(sender.close_reason(), "listener gone");
  EXPECT_EQ(metrics().longpoll_listeners.load(), 0);
  EXPECT_EQ(Send("lp", {DataFrame(channel, "late")}), 404);
}

TEST_F(LongPollTest, BadLongPollRequestsAreRefused) {
  EXPECT_EQ(HttpRequest(port_, verb::post, "/$hc/machine-1/poll?id=lp&wait=61",
                        ListenToken("machine-1"))
                .status,
            400);
  EXPECT_EQ(HttpRequest(port_, verb::post, "/$hc/machine-1/poll", ListenToken("machine-1")).status,
            400);
  EXPECT_EQ(HttpRequest(port_, verb::get, "/$hc/machine-1/poll?id=lp", ListenToken("machine-1"))
                .status,
            405);
  EXPECT_EQ(HttpRequest(port_, verb::post, "/$hc/machine-1/poll?id=lp", SendToken("machine-1"))
                .status,
            403);
  EXPECT_EQ(Send("nobody", {}), 404);
  EXPECT_TRUE(Poll("lp", 0).empty());
  auto garbage = HttpRequest(port_, verb::post, "/$hc/machine-1/send?id=lp",
                             ListenToken("machine-1"), "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01");
  EXPECT_EQ(garbage.status, 400);
  EXPECT_TRUE(absl::StartsWith(garbage.body, "invalid frames: "));
}

TEST_F(LongPollTest, WebSocketReconnectReplacesALongPollSession) {
  EXPECT_TRUE(Poll("same", 0).empty());
  EXPECT_EQ(metrics().longpoll_listeners.load(), 1);
  TestListener ws(port_, "machine-1", "same", ListenToken("machine-1"));
  ASSERT_EQ(ws.Connect(), 101);
  EXPECT_EQ(metrics().listener_replacements.load(), 1u);
  auto presence = HttpRequest(port_, verb::get, "/$hc/machine-1/listeners",
                              Token("ops", kManageKey, "/$hc/"));
  EXPECT_NE(presence.body.find("\"listenerCount\":1"), std::string::npos);
}

TEST_F(RelayServerTest, RefusedUpgradeFlagAnswers400ForListeners) {
  RelayOptions options;
  options.refuse_websocket_upgrade = true;
  StartRelay(options);
  TestListener listener(port_, "machine-1", "l1", ListenToken("machine-1"));
  EXPECT_EQ(listener.Connect(), 400);
  EXPECT_EQ(listener.ws().refusal_body(), "websocket disabled\n");
}

TEST_F(RelayServerTest, DrainClosesListenersWithGoingAway) {
  TestListener listener(port_, "machine-1", "l1", ListenToken("machine-1"));
  ASSERT_EQ(listener.Connect(), 101);
  std::thread drain([this] { server_->Drain(); });
  EXPECT_FALSE(listener.ws().ReadFrame().has_value());
  EXPECT_EQ(listener.ws().close_code(), 1001);
  drain.join();
}

TEST(RelayServerCreateTest, RefusesInsecureOffLoopbackAndMissingKeys) {
  RelayOptions options;
  options.insecure = true;
  options.listen_host = "0.0.0.0";
  options.listen_port = 0;
  EXPECT_EQ(RelayServer::Create(options).status().code(), absl::StatusCode::kInvalidArgument);
  auto ring = crypto::SasKeyRing::Parse(absl::StrCat("agents ", kListenKey, " Listen\n"));
  options.keys = std::make_shared<const crypto::SasKeyRing>(*std::move(ring));
  auto refused = RelayServer::Create(options);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("only allowed on loopback"), std::string::npos);
  options.insecure = false;
  options.listen_host = "127.0.0.1";
  EXPECT_EQ(RelayServer::Create(options).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tether::relay
