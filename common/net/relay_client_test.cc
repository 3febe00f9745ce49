// RelaySender and RelayListener against the real relay (//relay:relay_server as a child process
// on 127.0.0.1, port from --port_file). Every wait is on a condition with a deadline.
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/base/clock.h"
#include "common/net/relay_listener.h"
#include "common/net/relay_process.h"
#include "common/net/relay_sender.h"
#include "common/net/relay_status.h"
#include "common/net/test_certs.h"
#include "common/net/test_servers.h"
#include "gtest/gtest.h"

namespace tether::net {
namespace {

using ::tether::net::testing::ConnectProxy;
using ::tether::net::testing::CreateTestCerts;
using ::tether::net::testing::kListenKey;
using ::tether::net::testing::kSendKey;
using ::tether::net::testing::MakeToken;
using ::tether::net::testing::RelayProcess;
using Kind = ListenerState::Kind;

constexpr absl::Duration kWait = absl::Seconds(20);
constexpr char kEntity[] = "machine-42";

std::string TempDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

// Everything a listener reported, with waits on conditions over it.
class Recorder {
 public:
  void AddState(const ListenerState& state) {
    absl::MutexLock lock(&mu_);
    states_.push_back(state);
  }
  void AddEvent(std::string event) {
    absl::MutexLock lock(&mu_);
    events_.push_back(std::move(event));
  }

  // Waits until `condition` holds over the states and events seen so far.
  bool WaitFor(const std::function<bool(const std::vector<ListenerState>&,
                                        const std::vector<std::string>&)>& condition,
               absl::Duration timeout = kWait) {
    absl::MutexLock lock(&mu_);
    auto ready = [&] { return condition(states_, events_); };
    return mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  }
  bool WaitForState(Kind kind, int count = 1, absl::Duration timeout = kWait) {
    return WaitFor(
        [&](const std::vector<ListenerState>& states, const std::vector<std::string>&) {
          return Count(states, kind) >= count;
        },
        timeout);
  }
  bool WaitForEvent(const std::string& event, absl::Duration timeout = kWait) {
    return WaitFor(
        [&](const std::vector<ListenerState>&, const std::vector<std::string>& events) {
          return std::find(events.begin(), events.end(), event) != events.end();
        },
        timeout);
  }

  int CountStates(Kind kind) {
    absl::MutexLock lock(&mu_);
    return Count(states_, kind);
  }
  std::vector<ListenerState> states() {
    absl::MutexLock lock(&mu_);
    return states_;
  }
  std::string Describe() {
    absl::MutexLock lock(&mu_);
    std::string text;
    for (const ListenerState& s : states_) {
      absl::StrAppend(&text, ListenerStateName(s.kind), "(", s.last_error.ToString(), ") ");
    }
    return text;
  }

 private:
  static int Count(const std::vector<ListenerState>& states, Kind kind) {
    return static_cast<int>(
        std::count_if(states.begin(), states.end(), [&](const auto& s) { return s.kind == kind; }));
  }

  absl::Mutex mu_;
  std::vector<ListenerState> states_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> events_ ABSL_GUARDED_BY(mu_);
};

// Counts token_provider calls and lets tests wait for a number of them.
class TokenSource {
 public:
  TokenSource(testing::TestKey key, absl::Duration lifetime) : key_(key), lifetime_(lifetime) {}
  absl::StatusOr<std::string> Next() {
    absl::MutexLock lock(&mu_);
    ++calls_;
    return MakeToken(key_, kEntity, lifetime_);
  }
  bool WaitForCalls(int n, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto ready = [&] { return calls_ >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  }

 private:
  const testing::TestKey key_;
  const absl::Duration lifetime_;
  absl::Mutex mu_;
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
};

class RelayClientTest : public ::testing::Test {
 protected:
  void StartRelay(std::vector<std::string> flags = {}) {
    if (std::find(flags.begin(), flags.end(), "--insecure") == flags.end() &&
        std::none_of(flags.begin(), flags.end(),
                     [](const std::string& f) { return f.rfind("--tls_cert=", 0) == 0; })) {
      flags.push_back("--insecure");
    }
    auto relay = RelayProcess::Start(std::move(flags));
    ASSERT_TRUE(relay.ok()) << relay.status();
    relay_ = *std::move(relay);
  }

  // A listener that accepts every channel and echoes each message back, prefixed with "echo:".
  // Channel events go to `recorder` as "open", "data:<payload>", "close:<code>:<reason>".
  void RunPastFirstTokenExpiry(Recorder* recorder, ListenerOptions::Transport transport,
                               Kind connected, const std::string& message);

  ListenerOptions EchoListener(Recorder* recorder, ListenerOptions::Transport transport) {
    ListenerOptions options;
    options.relay_url = relay_->url();
    options.entity = kEntity;
    options.listener_id = "agent-1";
    options.transport = transport;
    options.proxy = ProxyConfig::Direct();
    options.backoff = {absl::Milliseconds(50), absl::Milliseconds(500)};
    options.long_poll_wait = absl::Seconds(2);
    options.token_provider = [] { return MakeToken(kListenKey, kEntity, absl::Hours(1)); };
    options.on_state = [recorder](const ListenerState& state) { recorder->AddState(state); };
    options.on_channel = [recorder](std::shared_ptr<ListenerChannel> channel) {
      std::string header;
      if (auto it = channel->sender_meta().headers().find("x-tether-test");
          it != channel->sender_meta().headers().end()) {
        header = it->second;
      }
      recorder->AddEvent(absl::StrCat("open:", header));
      std::weak_ptr<ListenerChannel> weak = channel;
      absl::Status accepted = channel->Accept({
          .on_data =
              [recorder, weak](std::string payload) {
                recorder->AddEvent(absl::StrCat("data:", payload));
                if (auto c = weak.lock()) {
                  absl::Status sent = c->Send(absl::StrCat("echo:", payload));
                  if (!sent.ok()) recorder->AddEvent(absl::StrCat("send-failed:", sent.ToString()));
                }
              },
          .on_close =
              [recorder](uint32_t code, std::string reason) {
                recorder->AddEvent(absl::StrCat("close:", code, ":", reason));
              },
      });
      if (!accepted.ok()) recorder->AddEvent(absl::StrCat("accept-failed:", accepted.ToString()));
    };
    return options;
  }

  SenderOptions Sender() {
    SenderOptions options;
    options.relay_url = relay_->url();
    options.entity = kEntity;
    options.token = MakeToken(kSendKey, kEntity, absl::Hours(1));
    options.proxy = ProxyConfig::Direct();
    options.headers = {{"x-tether-test", "from-sender"}};
    return options;
  }

  // Opens a channel, sends `message`, expects "echo:<message>" back.
  void ExpectEcho(const SenderOptions& options, const std::string& message) {
    auto channel = RelaySender::Connect(options);
    ASSERT_TRUE(channel.ok()) << channel.status();
    ASSERT_TRUE((*channel)->Send(message).ok());
    auto reply = (*channel)->Receive(kWait);
    ASSERT_TRUE(reply.ok()) << reply.status();
    EXPECT_EQ(*reply, absl::StrCat("echo:", message));
    EXPECT_TRUE((*channel)->Close().ok());
  }

  std::unique_ptr<RelayProcess> relay_;
};

TEST_F(RelayClientTest, SenderAndWebSocketListenerEchoBothWays) {
  StartRelay();
  Recorder recorder;
  auto listener = RelayListener::Create(
      EchoListener(&recorder, ListenerOptions::Transport::kWebSocketOnly));
  ASSERT_TRUE(listener.ok()) << listener.status();
  ASSERT_TRUE((*listener)->Start().ok());
  ASSERT_TRUE(recorder.WaitForState(Kind::kConnectedWebSocket)) << recorder.Describe();

  auto channel = RelaySender::Connect(Sender());
  ASSERT_TRUE(channel.ok()) << channel.status();
  for (const std::string& message :
       std::vector<std::string>{"hello", "", std::string(300 << 10, 'x')}) {
    ASSERT_TRUE((*channel)->Send(message).ok());
    auto reply = (*channel)->Receive(kWait);
    ASSERT_TRUE(reply.ok()) << reply.status();
    EXPECT_EQ(*reply, absl::StrCat("echo:", message));
  }
  EXPECT_TRUE(recorder.WaitForEvent("open:from-sender"));  // sender headers reach sender_meta
  EXPECT_EQ((*channel)->Receive(absl::Milliseconds(50)).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ((*channel)->Send(std::string((1 << 20) + 1, 'z')).code(),
            absl::StatusCode::kInvalidArgument);

  // The sender's close reaches the listener's on_close with the sender's code.
  ASSERT_TRUE((*channel)->Close(1000, "done").ok());
  EXPECT_TRUE(recorder.WaitForEvent("close:1000:done"));
  EXPECT_EQ((*channel)->Receive(absl::Milliseconds(10)).status().code(),
            absl::StatusCode::kCancelled);
}

TEST_F(RelayClientTest, SenderAndLongPollListenerEchoBothWays) {
  StartRelay();
  Recorder recorder;
  auto listener =
      RelayListener::Create(EchoListener(&recorder, ListenerOptions::Transport::kLongPollOnly));
  ASSERT_TRUE(listener.ok()) << listener.status();
  ASSERT_TRUE((*listener)->Start().ok());
  ASSERT_TRUE(recorder.WaitForState(Kind::kConnectedLongPoll)) << recorder.Describe();
  EXPECT_EQ(recorder.CountStates(Kind::kConnectedWebSocket), 0);

  auto channel = RelaySender::Connect(Sender());
  ASSERT_TRUE(channel.ok()) << channel.status();
  for (const std::string& message :
       std::vector<std::string>{"one", "two", std::string(200 << 10, 'y')}) {
    ASSERT_TRUE((*channel)->Send(message).ok());
    auto reply = (*channel)->Receive(kWait);
    ASSERT_TRUE(reply.ok()) << reply.status();
    EXPECT_EQ(*reply, absl::StrCat("echo:", message));
  }
  ASSERT_TRUE((*channel)->Close(1000, "bye").ok());
  EXPECT_TRUE(recorder.WaitForEvent("close:1000:bye"));
}

TEST_F(RelayClientTest, LongPollListenerSendsABurstOfThousandsOfMessagesInOrder) {
  StartRelay();
  Recorder recorder;
  // More frames at once than the relay takes in one /send body (4096): batches must be split.
  constexpr int kMessages = 6000;
  ListenerOptions options = EchoListener(&recorder, ListenerOptions::Transport::kLongPollOnly);
  options.on_channel = [](std::shared_ptr<ListenerChannel> channel) {
    std::weak_ptr<ListenerChannel> weak = channel;
    channel
        ->Accept({.on_data =
                      [weak](std::string) {
                        auto c = weak.lock();
                        for (int i = 0; c && i < kMessages; ++i) {
                          c->Send(absl::StrCat(i)).IgnoreError();
                        }
                      },
                  .on_close = nullptr})
        .IgnoreError();
  };
  auto listener = RelayListener::Create(std::move(options));
  ASSERT_TRUE(listener.ok()) << listener.status();
  ASSERT_TRUE((*listener)->Start().ok());
  ASSERT_TRUE(recorder.WaitForState(Kind::kConnectedLongPoll)) << recorder.Describe();

  auto channel = RelaySender::Connect(Sender());
  ASSERT_TRUE(channel.ok()) << channel.status();
  ASSERT_TRUE((*channel)->Send("burst").ok());
  for (int i = 0; i < kMessages; ++i) {
    auto reply = (*channel)->Receive(kWait);
    ASSERT_TRUE(reply.ok()) << i << ": " << reply.status();
    ASSERT_EQ(*reply, absl::StrCat(i));
  }
  EXPECT_EQ(recorder.CountStates(Kind::kReconnecting), 0) << recorder.Describe();
}

TEST_F(RelayClientTest, AutoFallsBackToLongPollWhenTheUpgradeIsRefused) {
  StartRelay({"--refuse_websocket_upgrade"});
  Recorder recorder;
  auto listener = RelayListener::Create(EchoListener(&recorder, ListenerOptions::Transport::kAuto));
  ASSERT_TRUE(listener.ok()) << listener.status();
  ASSERT_TRUE((*listener)->Start().ok());
  ASSERT_TRUE(recorder.WaitForState(Kind::kConnectedLongPoll)) << recorder.Describe();
  // The fallback is immediate (no backoff round) and says why.
  EXPECT_EQ(recorder.CountStates(Kind::kReconnecting), 0) << recorder.Describe();
  const ListenerState connected = recorder.states().back();
  EXPECT_EQ(HttpStatusOf(connected.last_error), 400) << connected.last_error;
  EXPECT_NE(connected.last_error.message().find("websocket disabled"), absl::string_view::npos);

  ExpectEcho(Sender(), "via long-poll");
}

TEST_F(RelayClientTest, AutoSwitchesBackToWebSocketWhenUpgradesWorkAgain) {
  StartRelay({"--refuse_websocket_upgrade"});
  Recorder recorder;
  ListenerOptions options = EchoListener(&recorder, ListenerOptions::Transport::kAuto);
  options.websocket_retry_interval = absl::Milliseconds(200);
  auto listener = RelayListener::Create(std::move(options));
  ASSERT_TRUE(listener.ok()) << listener.status();
  ASSERT_TRUE((*listener)->Start().ok());
  ASSERT_TRUE(recorder.WaitForState(Kind::kConnectedLongPoll)) << recorder.Describe();

  // The "proxy" stops stripping upgrades: the background retry finds the WebSocket again.
  ASSERT_TRUE(relay_->Restart({"--insecure"}).ok());
  ASSERT_TRUE(recorder.WaitForState(Kind::kConnectedWebSocket)) << recorder.Describe();
  ExpectEcho(Sender(), "back on websocket");
}

TEST_F(RelayClientTest, AutoDoesNotFallBackWhenTheRelayIsDown) {
  StartRelay();
  relay_->Kill();  // its port is now free: connections are refused
  Recorder recorder;
  auto listener = RelayListener::Create(EchoListener(&recorder, ListenerOptions::Transport::kAuto));
  ASSERT_TRUE(listener.ok()) << listener.status();
  ASSERT_TRUE((*listener)->Start().ok());
  ASSERT_TRUE(recorder.WaitForState(Kind::kReconnecting, 2)) << recorder.Describe();
  EXPECT_EQ(recorder.states()[1].last_error.code(), absl::StatusCode::kUnavailable);
  ASSERT_TRUE(relay_->Restart().ok());
  ASSERT_TRUE(recorder.WaitFor([](const std::vector<ListenerState>& states,
                                  const std::vector<std::string>&) {
    return !states.empty() && (states.back().kind == Kind::kConnectedWebSocket ||
                               states.back().kind == Kind::kConnectedLongPoll);
  })) << recorder.Describe();
  // A refused TCP connection is not a refused upgrade.
  EXPECT_EQ(recorder.states().back().kind, Kind::kConnectedWebSocket) << recorder.Describe();
}

TEST_F(RelayClientTest, SilentRelayIsDetectedAfterThreePingIntervalsAndReconnected) {
  StartRelay({"--ping_interval_ms=100"});
  Recorder recorder;
  ListenerOptions options = EchoListener(&recorder, ListenerOptions::Transport::kWebSocketOnly);
  options.ping_interval = absl::Milliseconds(100);
  options.handshake_timeout = absl::Milliseconds(500);
  auto listener = RelayListener::Create(std::move(options));
  ASSERT_TRUE(listener.ok()) << listener.status();
  ASSERT_TRUE((*listener)->Start().ok());
  ASSERT_TRUE(recorder.WaitForState(Kind::kConnectedWebSocket)) << recorder.Describe();

  relay_->Pause();  // the TCP connection stays up; nothing answers
  ASSERT_TRUE(recorder.WaitForState(Kind::kReconnecting)) << recorder.Describe();
  const ListenerState lost = recorder.states()[2];
  EXPECT_EQ(lost.kind, Kind::kReconnecting);
  EXPECT_NE(lost.last_error.message().find("no traffic from the relay"), absl::string_view::npos)
      << lost.last_error;
  relay_->Resume();
  ASSERT_TRUE(recorder.WaitForState(Kind::kConnectedWebSocket, 2)) << recorder.Describe();
  ExpectEcho(Sender(), "alive again");
}

TEST_F(RelayClientTest, WebSocketOnlyDoesNotFallBackAndRetries) {
  StartRelay({"--refuse_websocket_upgrade"});
  Recorder recorder;
  auto listener = RelayListener::Create(
      EchoListener(&recorder, ListenerOptions::Transport::kWebSocketOnly));
  ASSERT_TRUE(listener.ok()) << listener.status();
  ASSERT_TRUE((*listener)->Start().ok());
  ASSERT_TRUE(recorder.WaitForState(Kind::kReconnecting, 2)) << recorder.Describe();
  EXPECT_EQ(recorder.CountStates(Kind::kConnectedLongPoll), 0);
  EXPECT_EQ(HttpStatusOf(recorder.states()[1].last_error), 400);
}

TEST_F(RelayClientTest, ListenerReconnectsAfterTheRelayIsKilledAndRestarted) {
  StartRelay();
  Recorder recorder;
  auto listener = RelayListener::Create(
      EchoListener(&recorder, ListenerOptions::Transport::kWebSocketOnly));
  ASSERT_TRUE(listener.ok()) << listener.status();
  ASSERT_TRUE((*listener)->Start().ok());
  ASSERT_TRUE(recorder.WaitForState(Kind::kConnectedWebSocket)) << recorder.Describe();
  ExpectEcho(Sender(), "before");

  relay_->Kill();
  ASSERT_TRUE(recorder.WaitForState(Kind::kReconnecting)) << recorder.Describe();
  ASSERT_TRUE(relay_->Restart().ok());
  ASSERT_TRUE(recorder.WaitForState(Kind::kConnectedWebSocket, 2)) << recorder.Describe();
  ExpectEcho(Sender(), "after");
}

TEST_F(RelayClientTest, LongPollListenerReconnectsAfterTheRelayIsKilledAndRestarted) {
  StartRelay();
  Recorder recorder;
  auto listener =
      RelayListener::Create(EchoListener(&recorder, ListenerOptions::Transport::kLongPollOnly));
  ASSERT_TRUE(listener.ok()) << listener.status();
  ASSERT_TRUE((*listener)->Start().ok());
  ASSERT_TRUE(recorder.WaitForState(Kind::kConnectedLongPoll)) << recorder.Describe();

  relay_->Kill();
  ASSERT_TRUE(recorder.WaitForState(Kind::kReconnecting)) << recorder.Describe();
  ASSERT_TRUE(relay_->Restart().ok());
  ASSERT_TRUE(recorder.WaitForState(Kind::kConnectedLongPoll, 2)) << recorder.Describe();
  ExpectEcho(Sender(), "after restart");
}

TEST_F(RelayClientTest, SenderGetsUnavailableWhenNoListenerIsOnline) {
  StartRelay();
  auto channel = RelaySender::Connect(Sender());
  EXPECT_EQ(channel.status().code(), absl::StatusCode::kUnavailable) << channel.status();
  EXPECT_EQ(HttpStatusOf(channel.status()), 503);
  EXPECT_NE(channel.status().message().find("no listener"), absl::string_view::npos)
      << channel.status();
}

TEST_F(RelayClientTest, SenderAuthFailuresMapToUnauthenticatedAndPermissionDenied) {
  StartRelay();
  SenderOptions bad_signature = Sender();
  bad_signature.token = MakeToken({kSendKey.name, std::string(40, 'z')}, kEntity, absl::Hours(1));
  auto unauthenticated = RelaySender::Connect(bad_signature);
  EXPECT_EQ(unauthenticated.status().code(), absl::StatusCode::kUnauthenticated)
      << unauthenticated.status();
  EXPECT_EQ(HttpStatusOf(unauthenticated.status()), 401);

  SenderOptions listen_only = Sender();
  listen_only.token = MakeToken(kListenKey, kEntity, absl::Hours(1));  // no Send right
  auto denied = RelaySender::Connect(listen_only);
  EXPECT_EQ(denied.status().code(), absl::StatusCode::kPermissionDenied) << denied.status();
  EXPECT_EQ(HttpStatusOf(denied.status()), 403);
}

TEST_F(RelayClientTest, ListenerRejectReachesTheSenderWithStatusAndReason) {
  StartRelay();
  Recorder recorder;
  ListenerOptions options = EchoListener(&recorder, ListenerOptions::Transport::kWebSocketOnly);
  options.on_channel = [](std::shared_ptr<ListenerChannel> channel) {
    channel->Reject(409, "busy running job 7").IgnoreError();
  };
  auto listener = RelayListener::Create(std::move(options));
  ASSERT_TRUE(listener.ok()) << listener.status();
  ASSERT_TRUE((*listener)->Start().ok());
  ASSERT_TRUE(recorder.WaitForState(Kind::kConnectedWebSocket)) << recorder.Describe();

  auto channel = RelaySender::Connect(Sender());
  EXPECT_EQ(channel.status().code(), absl::StatusCode::kFailedPrecondition) << channel.status();
  EXPECT_EQ(HttpStatusOf(channel.status()), 409);
  EXPECT_NE(channel.status().message().find("409"), absl::string_view::npos);
  EXPECT_NE(channel.status().message().find("busy running job 7"), absl::string_view::npos);
}

TEST_F(RelayClientTest, ListenerCloseReachesTheSenderWithCodeAndReason) {
  StartRelay();
  Recorder recorder;
  ListenerOptions options = EchoListener(&recorder, ListenerOptions::Transport::kWebSocketOnly);
  options.on_channel = [](std::shared_ptr<ListenerChannel> channel) {
    std::weak_ptr<ListenerChannel> weak = channel;
    channel
        ->Accept({.on_data =
                      [weak](std::string) {
                        if (auto c = weak.lock()) c->Close(4100, "job finished").IgnoreError();
                      },
                  .on_close = nullptr})
        .IgnoreError();
  };
  auto listener = RelayListener::Create(std::move(options));
  ASSERT_TRUE(listener.ok()) << listener.status();
  ASSERT_TRUE((*listener)->Start().ok());
  ASSERT_TRUE(recorder.WaitForState(Kind::kConnectedWebSocket)) << recorder.Describe();

  auto channel = RelaySender::Connect(Sender());
  ASSERT_TRUE(channel.ok()) << channel.status();
  ASSERT_TRUE((*channel)->Send("finish").ok());
  auto reply = (*channel)->Receive(kWait);
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kAborted) << reply.status();
  EXPECT_NE(reply.status().message().find("closed 4100: job finished"), absl::string_view::npos)
      << reply.status();
  EXPECT_EQ(CloseCodeOf(reply.status()), 4100u);
  EXPECT_EQ((*channel)->close_code(), 4100u);
  EXPECT_EQ((*channel)->close_reason(), "job finished");
  EXPECT_EQ((*channel)->Close().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(RelayClientTest, StoppingTheListenerClosesOpenChannelsWithGoingAway) {
  StartRelay();
  Recorder recorder;
  auto listener = RelayListener::Create(
      EchoListener(&recorder, ListenerOptions::Transport::kWebSocketOnly));
  ASSERT_TRUE(listener.ok()) << listener.status();
  ASSERT_TRUE((*listener)->Start().ok());
  ASSERT_TRUE(recorder.WaitForState(Kind::kConnectedWebSocket)) << recorder.Describe();
  auto channel = RelaySender::Connect(Sender());
  ASSERT_TRUE(channel.ok()) << channel.status();
  ASSERT_TRUE((*channel)->Send("x").ok());
  ASSERT_TRUE((*channel)->Receive(kWait).ok());

  (*listener)->Stop();
  EXPECT_TRUE(recorder.WaitForEvent("close:1001:listener stopping"));
  EXPECT_EQ(recorder.states().back().kind, Kind::kStopped);
  auto after = (*channel)->Receive(kWait);
  EXPECT_EQ(CloseCodeOf(after.status()), 1001u) << after.status();
  // The relay forgot the listener: a new sender finds nobody.
  EXPECT_EQ(RelaySender::Connect(Sender()).status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(RelayClientTest, StoppingALongPollListenerEndsItsSessionAtTheRelay) {
  StartRelay();
  Recorder recorder;
  auto listener =
      RelayListener::Create(EchoListener(&recorder, ListenerOptions::Transport::kLongPollOnly));
  ASSERT_TRUE(listener.ok()) << listener.status();
  ASSERT_TRUE((*listener)->Start().ok());
  ASSERT_TRUE(recorder.WaitForState(Kind::kConnectedLongPoll)) << recorder.Describe();
  (*listener)->Stop();
  // Without the Close on channel 0 the relay would keep the session until its idle timeout and
  // a sender would wait 30 s for an Accept (504) instead of getting 503 at once.
  auto channel = RelaySender::Connect(Sender());
  EXPECT_EQ(channel.status().code(), absl::StatusCode::kUnavailable) << channel.status();
}

// Runs a listener on 3-second tokens until the fourth token request, well past the first
// token's expiry, then checks a channel still reaches it. Each token lives 2-3 s (se has whole
// seconds) and is renewed at 80%: had the renewals not arrived, the relay would have closed the
// control channel (4002). The clock is the kernel's, as the relay's is (common/base/clock.h).
void RelayClientTest::RunPastFirstTokenExpiry(Recorder* recorder,
                                              ListenerOptions::Transport transport,
                                              Kind connected, const std::string& message) {
  TokenSource tokens(kListenKey, absl::Seconds(3));
  ListenerOptions options = EchoListener(recorder, transport);
  options.token_provider = [&tokens] { return tokens.Next(); };
  const absl::Time first_expiry = WallNow() + absl::Seconds(3);
  auto listener = RelayListener::Create(std::move(options));
  ASSERT_TRUE(listener.ok()) << listener.status();
  ASSERT_TRUE((*listener)->Start().ok());
  ASSERT_TRUE(recorder->WaitForState(connected)) << recorder->Describe();
  ASSERT_TRUE(tokens.WaitForCalls(4, absl::Seconds(30)));
  EXPECT_GT(WallNow(), first_expiry);
  ExpectEcho(Sender(), message);
  EXPECT_EQ(recorder->CountStates(Kind::kReconnecting), 0) << recorder->Describe();
}

TEST_F(RelayClientTest, TokenRenewalKeepsTheListenerPastTheFirstTokensExpiry) {
  StartRelay();
  Recorder recorder;
  RunPastFirstTokenExpiry(&recorder, ListenerOptions::Transport::kWebSocketOnly,
                          Kind::kConnectedWebSocket, "still here");
  EXPECT_EQ(recorder.CountStates(Kind::kConnectedWebSocket), 1) << recorder.Describe();
}

TEST_F(RelayClientTest, LongPollTokenRenewalKeepsTheSessionPastTheFirstTokensExpiry) {
  StartRelay();
  Recorder recorder;
  RunPastFirstTokenExpiry(&recorder, ListenerOptions::Transport::kLongPollOnly,
                          Kind::kConnectedLongPoll, "still polling");
}

TEST_F(RelayClientTest, ListenerWithoutListenRightIsReportedAndRetried) {
  StartRelay();
  Recorder recorder;
  ListenerOptions options = EchoListener(&recorder, ListenerOptions::Transport::kAuto);
  options.token_provider = [] { return MakeToken(kSendKey, kEntity, absl::Hours(1)); };
  auto listener = RelayListener::Create(std::move(options));
  ASSERT_TRUE(listener.ok()) << listener.status();
  ASSERT_TRUE((*listener)->Start().ok());
  ASSERT_TRUE(recorder.WaitForState(Kind::kReconnecting, 2)) << recorder.Describe();
  for (const ListenerState& state : recorder.states()) {
    if (state.kind != Kind::kReconnecting) continue;
    EXPECT_EQ(state.last_error.code(), absl::StatusCode::kPermissionDenied) << state.last_error;
  }
  // 403 is not a refused upgrade: kAuto must not fall back to long-poll for it.
  EXPECT_EQ(recorder.CountStates(Kind::kConnectedLongPoll), 0);
}

TEST_F(RelayClientTest, ReplacedListenerBacksOffInsteadOfLooping) {
  StartRelay();
  Recorder first_recorder, second_recorder;
  ListenerOptions first = EchoListener(&first_recorder, ListenerOptions::Transport::kWebSocketOnly);
  first.backoff = {absl::Milliseconds(100), absl::Seconds(30)};
  first.random = [] { return 0.999; };
  ListenerOptions second = first;
  second.on_state = [&second_recorder](const ListenerState& s) { second_recorder.AddState(s); };
  auto a = RelayListener::Create(std::move(first));
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE((*a)->Start().ok());
  ASSERT_TRUE(first_recorder.WaitForState(Kind::kConnectedWebSocket));
  auto b = RelayListener::Create(std::move(second));
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_TRUE((*b)->Start().ok());

  // The two now take the id from each other; each replacement must back off further.
  ASSERT_TRUE(first_recorder.WaitFor(
      [](const std::vector<ListenerState>& states, const std::vector<std::string>&) {
        return std::count_if(states.begin(), states.end(), [](const ListenerState& s) {
                 return s.kind == Kind::kReconnecting;
               }) >= 3;
      }))
      << first_recorder.Describe();
  std::vector<absl::Duration> delays;
  for (const ListenerState& state : first_recorder.states()) {
    if (state.kind != Kind::kReconnecting) continue;
    EXPECT_EQ(state.last_error.code(), absl::StatusCode::kAlreadyExists) << state.last_error;
    EXPECT_EQ(CloseCodeOf(state.last_error), 4003u);
    delays.push_back(state.retry_in);
  }
  ASSERT_GE(delays.size(), 3u);
  EXPECT_LT(delays[0], delays[1]);
  EXPECT_LT(delays[1], delays[2]);
}

TEST_F(RelayClientTest, ListenerAndSenderWorkOverTlsThroughAnAuthenticatingProxy) {
  auto certs = CreateTestCerts(TempDir(), "relay", {"localhost", "127.0.0.1"});
  ASSERT_TRUE(certs.ok()) << certs.status();
  StartRelay({absl::StrCat("--tls_cert=", certs->cert_file),
              absl::StrCat("--tls_key=", certs->key_file)});
  auto proxy = ConnectProxy::Start(BasicAuthorization("agent", "pr0xy-pw"));
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  const ProxyConfig via_proxy =
      ProxyConfig::Explicit(absl::StrCat("http://agent:pr0xy-pw@127.0.0.1:", (*proxy)->port()));

  for (auto transport :
       {ListenerOptions::Transport::kWebSocketOnly, ListenerOptions::Transport::kLongPollOnly}) {
    SCOPED_TRACE(transport == ListenerOptions::Transport::kWebSocketOnly ? "websocket"
                                                                          : "long-poll");
    Recorder recorder;
    ListenerOptions options = EchoListener(&recorder, transport);
    options.ca_file = certs->ca_file;
    options.proxy = via_proxy;
    auto listener = RelayListener::Create(std::move(options));
    ASSERT_TRUE(listener.ok()) << listener.status();
    ASSERT_TRUE((*listener)->Start().ok());
    ASSERT_TRUE(recorder.WaitFor([](const std::vector<ListenerState>& states,
                                    const std::vector<std::string>&) {
      return !states.empty() && (states.back().kind == Kind::kConnectedWebSocket ||
                                 states.back().kind == Kind::kConnectedLongPoll);
    })) << recorder.Describe();

    SenderOptions sender = Sender();
    sender.ca_file = certs->ca_file;
    sender.proxy = via_proxy;
    ExpectEcho(sender, "over tls via proxy");
  }
  EXPECT_GE((*proxy)->tunnels(), 3);
}

TEST_F(RelayClientTest, SenderRefusesARelayCertificateFromAnotherCa) {
  auto certs = CreateTestCerts(TempDir(), "relay2", {"127.0.0.1"});
  ASSERT_TRUE(certs.ok()) << certs.status();
  auto other = CreateTestCerts(TempDir(), "other2", {"127.0.0.1"});
  ASSERT_TRUE(other.ok()) << other.status();
  StartRelay({absl::StrCat("--tls_cert=", certs->cert_file),
              absl::StrCat("--tls_key=", certs->key_file)});
  SenderOptions sender = Sender();
  sender.ca_file = other->ca_file;
  auto channel = RelaySender::Connect(sender);
  EXPECT_EQ(channel.status().code(), absl::StatusCode::kFailedPrecondition) << channel.status();
}

TEST(RelayListenerCreateTest, BadOptionsAreInvalidArgument) {
  auto valid = [] {
    ListenerOptions options;
    options.relay_url = "http://127.0.0.1:1";
    options.entity = kEntity;
    options.listener_id = "agent-1";
    options.proxy = ProxyConfig::Direct();
    options.token_provider = [] { return std::string("SharedAccessSignature sr=x"); };
    return options;
  };
  ASSERT_TRUE(RelayListener::Create(valid()).ok());
  std::vector<std::pair<std::string, std::function<void(ListenerOptions&)>>> cases = {
      {"relay url", [](ListenerOptions& o) { o.relay_url = "ftp://relay"; }},
      {"entity", [](ListenerOptions& o) { o.entity = "hc/machine-42"; }},
      {"listener id", [](ListenerOptions& o) { o.listener_id = ""; }},
      {"token provider", [](ListenerOptions& o) { o.token_provider = nullptr; }},
      {"proxy", [](ListenerOptions& o) { o.proxy = ProxyConfig::Explicit("socks5://p:1"); }},
      {"ca file", [](ListenerOptions& o) {
         o.relay_url = "https://127.0.0.1:1";
         o.ca_file = TempDir() + "/missing-ca.pem";
       }},
      {"ping interval", [](ListenerOptions& o) { o.ping_interval = absl::ZeroDuration(); }},
      {"long-poll wait", [](ListenerOptions& o) { o.long_poll_wait = absl::Seconds(61); }},
      {"queue", [](ListenerOptions& o) { o.send_queue_bytes = 10; }},
  };
  for (auto& [name, mutate] : cases) {
    SCOPED_TRACE(name);
    ListenerOptions options = valid();
    mutate(options);
    EXPECT_EQ(RelayListener::Create(std::move(options)).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
}

TEST(RelayListenerCreateTest, StartTwiceAndStartAfterStopAreFailedPrecondition) {
  ListenerOptions options;
  options.relay_url = "http://127.0.0.1:1";
  options.entity = kEntity;
  options.listener_id = "agent-1";
  options.proxy = ProxyConfig::Direct();
  options.token_provider = [] { return std::string("SharedAccessSignature sr=x"); };
  auto listener = RelayListener::Create(std::move(options));
  ASSERT_TRUE(listener.ok());
  EXPECT_TRUE((*listener)->Start().ok());
  EXPECT_EQ((*listener)->Start().code(), absl::StatusCode::kFailedPrecondition);
  (*listener)->Stop();
  (*listener)->Stop();  // idempotent
}

TEST(RelaySenderConnectTest, BadOptionsAreInvalidArgumentBeforeAnyConnection) {
  auto valid = [] {
    SenderOptions options;
    options.relay_url = "http://127.0.0.1:1";
    options.entity = kEntity;
    options.token = "SharedAccessSignature sr=x";
    options.proxy = ProxyConfig::Direct();
    return options;
  };
  std::vector<std::pair<std::string, std::function<void(SenderOptions&)>>> cases = {
      {"relay url", [](SenderOptions& o) { o.relay_url = "relay:9350"; }},
      {"entity", [](SenderOptions& o) { o.entity = "machine 42"; }},
      {"empty token", [](SenderOptions& o) { o.token = ""; }},
      {"token line break", [](SenderOptions& o) { o.token = "abc\r\nX-Evil: 1"; }},
      {"authorization header", [](SenderOptions& o) { o.headers = {{"Authorization", "x"}}; }},
      {"header line break", [](SenderOptions& o) { o.headers = {{"x-a", "1\r\nx-b: 2"}}; }},
  };
  for (auto& [name, mutate] : cases) {
    SCOPED_TRACE(name);
    SenderOptions options = valid();
    mutate(options);
    EXPECT_EQ(RelaySender::Connect(options).status().code(), absl::StatusCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace tether::net
