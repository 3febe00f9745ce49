// The listener side of the relay (DESIGN §3, docs/RELAY.md): an agent or gateway member keeps a
// control connection to the relay for its entity (WebSocket, or HTTP long-poll where WebSocket
// upgrades do not get through), and answers the channels senders open through it.
//
//   ListenerOptions options;
//   options.relay_url = "https://relay:9350";
//   options.entity = "machine-42";
//   options.listener_id = "agent-1";
//   options.token_provider = [&] { return cloud.GetListenToken(); };
//   options.on_channel = [](std::shared_ptr<ListenerChannel> channel) {
//     channel->Accept({.on_data = ..., .on_close = ...});   // or Reject(503, "busy")
//   };
//   ASSIGN_OR_RETURN(auto listener, RelayListener::Create(std::move(options)));
//   listener->Start();
//   ...
//   listener->Stop();
//
// Behaviour (docs/RELAY.md has the protocol):
//   - Transport kAuto tries the WebSocket first; when the upgrade is refused (an answer other than
//     101 that is not 401/403/429, or the connection breaks during the upgrade) it falls back to
//     long-poll at once, and while on long-poll retries the WebSocket every
//     websocket_retry_interval, switching back when it works (only while no channel is open, so
//     the switch never cuts a channel).
//   - Failed attempts and lost connections are retried with exponential backoff and full jitter
//     (BackoffOptions). The backoff restarts only after a connection stayed up for
//     `stable_after`, so a listener that keeps being replaced (close code 4003: another process
//     with the same listener id) or refused (401/403) slows down to the cap instead of looping.
//   - The token comes from token_provider at each connect. When its `se` parses, the listener
//     renews it in-band (RenewToken) at 80% of its remaining lifetime.
//   - Liveness: RelayFrame Ping is answered with Pong; on WebSocket the listener also pings the
//     relay after ping_interval without traffic, and treats 3 x ping_interval without any
//     traffic as a dead connection (reconnects). Long-poll liveness is the poll timeout.
//
// Bounds (all configurable below): frames to the relay wait in a per-connection queue of
// send_queue_bytes (16 MiB); each channel may have channel_send_queue_bytes (4 MiB) of Data in it;
// Send() beyond either is kResourceExhausted (the caller decides: wait, drop or close). At most
// max_channels channels (pending or accepted) at a time; more Opens are rejected with 503.
// Incoming frames are at most max_payload_bytes (+ frame overhead); a long-poll response at most
// max_poll_response_bytes.
//
// Threading: the listener owns one I/O thread and one token thread (token_provider may block, for
// example on an RPC to the cloud, without stalling the connection). Every callback (on_state,
// on_channel, a channel's on_data / on_close) runs on the I/O thread, one at a time: callbacks
// must not block, and must not call Stop() or destroy the listener. ListenerChannel methods may
// be called from any thread, from callbacks too.
#ifndef TETHER_COMMON_NET_RELAY_LISTENER_H_
#define TETHER_COMMON_NET_RELAY_LISTENER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/net/backoff.h"
#include "common/net/proxy.h"
#include "common/proto/relay.pb.h"

namespace tether::net {

namespace internal {
class IoThread;
class ListenerCore;
class PostHandle;
class TokenThread;
}  // namespace internal

// One channel a sender opened through the relay. Handed to ListenerOptions::on_channel, which
// must answer it with Accept() or Reject() (within accept_timeout, else it is rejected with 504).
// Thread-safe; methods post to the listener's I/O thread and never block.
class ListenerChannel : public std::enable_shared_from_this<ListenerChannel> {
 public:
  struct Handlers {
    // One sender message. Runs on the listener's I/O thread.
    std::function<void(std::string payload)> on_data;
    // The channel ended: the sender closed it (its code, e.g. 1000), the relay closed it (4000
    // queue full, ...), the control connection was lost (4001) or the listener stopped (1001).
    // Not called after this side's Close(). Runs on the listener's I/O thread.
    std::function<void(uint32_t code, std::string reason)> on_close;
  };

  ListenerChannel(const ListenerChannel&) = delete;
  ListenerChannel& operator=(const ListenerChannel&) = delete;
  ~ListenerChannel();

  // The relay's id for this channel (unique per relay process, never 0).
  uint64_t id() const { return id_; }
  // Who opened the channel, as the relay saw them (address, request target, headers).
  const proto::RelayFrame::SenderMeta& sender_meta() const { return sender_meta_; }

  // Takes the channel: the relay completes the sender's upgrade. `handlers` are installed before
  // any data can arrive. kFailedPrecondition if the channel was already answered or is gone.
  absl::Status Accept(Handlers handlers);
  // Refuses the channel: the sender's upgrade gets `http_status` (400-599) and `reason`.
  // kInvalidArgument for another status; kFailedPrecondition if already answered or gone.
  absl::Status Reject(int http_status, absl::string_view reason);
  // Queues one message to the sender. kFailedPrecondition before Accept or after the channel
  // ended; kInvalidArgument over max_payload_bytes; kResourceExhausted when the channel's or the
  // connection's queue is full.
  absl::Status Send(std::string payload);
  // Closes the channel with `code` (e.g. 1000) and `reason` (at most 123 bytes), which the
  // sender's WebSocket close carries. No on_close follows. kFailedPrecondition if already ended.
  absl::Status Close(uint32_t code = 1000, absl::string_view reason = "");

 private:
  friend class internal::ListenerCore;
  enum class Phase { kPending, kAccepted, kEnded };

  ListenerChannel(uint64_t id, uint64_t generation, proto::RelayFrame::SenderMeta meta,
                  std::shared_ptr<internal::PostHandle> post, std::weak_ptr<internal::ListenerCore> core,
                  std::size_t max_payload_bytes, std::size_t queue_bytes);

  const uint64_t id_;
  const uint64_t generation_;  // the control connection the channel belongs to
  const proto::RelayFrame::SenderMeta sender_meta_;
  const std::shared_ptr<internal::PostHandle> post_;
  const std::weak_ptr<internal::ListenerCore> core_;
  const std::size_t max_payload_bytes_;
  const std::size_t queue_bytes_;

  std::atomic<Phase> phase_{Phase::kPending};
  // Data accepted by Send() and not yet written; shared with the transport's queue entries.
  const std::shared_ptr<std::atomic<std::size_t>> queued_bytes_;
  // I/O thread only:
  absl::Time opened_at_;
  Handlers handlers_;
  bool handlers_installed_ = false;
  uint32_t end_code_ = 0;
  std::string end_reason_;
};

struct ListenerState {
  enum class Kind {
    kConnecting,           // first attempt after Start()
    kConnectedWebSocket,   // control connection up over WebSocket
    kConnectedLongPoll,    // control connection up over long-poll
    kReconnecting,         // waiting `retry_in` before the next attempt, because of last_error
    kStopped,              // after Stop()
  };
  Kind kind = Kind::kConnecting;
  // Why the last attempt failed or the last connection ended (kReconnecting). For
  // kConnectedLongPoll under kAuto: why the WebSocket was not used (the refused upgrade). For the
  // connected kinds also a problem that did not cost the connection (a failed token renewal).
  // Else OK.
  absl::Status last_error;
  absl::Duration retry_in = absl::ZeroDuration();
};

absl::string_view ListenerStateName(ListenerState::Kind kind);

struct ListenerOptions {
  enum class Transport { kAuto, kWebSocketOnly, kLongPollOnly };

  // "https://relay.example:9350", or "http://127.0.0.1:port" for an --insecure dev relay.
  std::string relay_url;
  // The entity name without "hc/" ("machine-42") and this listener's id ("agent-1"); both 1-128
  // characters of [A-Za-z0-9._-]. A reconnect with the same id replaces a stale connection.
  std::string entity;
  std::string listener_id;
  // Returns a token with the Listen right for the entity ("SharedAccessSignature sr=..."). Called
  // at each connection attempt and for renewal, on the listener's token thread (never twice at
  // once). An error fails that attempt (retried with backoff) or that renewal (retried sooner).
  std::function<absl::StatusOr<std::string>()> token_provider;

  Transport transport = Transport::kAuto;
  BackoffOptions backoff;
  // Random source in [0, 1) for the backoff's jitter; null: a default one (tests inject theirs).
  Backoff::UniformRandom random;
  // A connection that lasted this long resets the backoff when it ends.
  absl::Duration stable_after = absl::Seconds(10);
  // kAuto on long-poll: how often to try the WebSocket again.
  absl::Duration websocket_retry_interval = absl::Seconds(60);

  // PEM file of the CA that signed the relay's certificate; empty: the system's trust store.
  std::string ca_file;
  // Unset: HTTPS_PROXY / HTTP_PROXY / NO_PROXY from the environment. ProxyConfig::Direct() for
  // none.
  std::optional<ProxyConfig> proxy;

  // The relay's ping interval (its --ping_interval): see Liveness above.
  absl::Duration ping_interval = absl::Seconds(20);
  // DNS + TCP + proxy CONNECT + TLS, and then the upgrade or first poll.
  absl::Duration connect_timeout = absl::Seconds(10);
  absl::Duration handshake_timeout = absl::Seconds(10);
  // Long-poll: how long the relay may hold a poll (whole seconds, 0-60).
  absl::Duration long_poll_wait = absl::Seconds(30);
  // How long on_channel may take to answer before the channel is rejected with 504.
  absl::Duration accept_timeout = absl::Seconds(30);
  // How long Stop() waits for Close frames to be delivered before dropping the connection.
  absl::Duration stop_timeout = absl::Seconds(5);

  std::size_t max_payload_bytes = 1 << 20;
  std::size_t send_queue_bytes = 16 << 20;
  std::size_t channel_send_queue_bytes = 4 << 20;
  std::size_t max_channels = 256;
  std::size_t max_poll_response_bytes = 32 << 20;

  // A sender opened a channel; answer it (see ListenerChannel). Null: every channel is rejected
  // with 503.
  std::function<void(std::shared_ptr<ListenerChannel>)> on_channel;
  // The connection state changed (also reports errors while reconnecting). May be null.
  std::function<void(const ListenerState&)> on_state;
};

class RelayListener {
 public:
  // Validates `options` (kInvalidArgument: URL, names, proxy URL, CA file, missing
  // token_provider, zero limits). Does not connect: Start() does.
  static absl::StatusOr<std::unique_ptr<RelayListener>> Create(ListenerOptions options);

  RelayListener(const RelayListener&) = delete;
  RelayListener& operator=(const RelayListener&) = delete;
  // Stop(), then releases everything. Must not run on the I/O thread (inside a callback).
  ~RelayListener();

  // Starts connecting in the background; progress arrives through on_state. kFailedPrecondition
  // if already started.
  absl::Status Start();
  // Graceful stop: rejects pending channels (503), closes open ones (1001 "listener stopping",
  // reported to their on_close), closes the control connection (WebSocket close 1001, or a
  // Close frame on channel 0 for long-poll), waits up to stop_timeout for that to go out, then
  // stops the threads and reports kStopped. Idempotent. Must not be called from a callback.
  void Stop();

 private:
  RelayListener(std::unique_ptr<internal::IoThread> io,
                std::unique_ptr<internal::TokenThread> token_thread,
                std::shared_ptr<internal::PostHandle> post,
                std::shared_ptr<internal::ListenerCore> core, absl::Duration stop_timeout);

  // Destroyed in reverse order: the core before the threads, the I/O thread (and with it the
  // handlers that still reference the core) last.
  std::unique_ptr<internal::IoThread> io_;
  std::unique_ptr<internal::TokenThread> token_thread_;
  std::shared_ptr<internal::PostHandle> post_;
  std::shared_ptr<internal::ListenerCore> core_;
  const absl::Duration stop_timeout_;
  std::atomic<bool> started_{false};
  std::atomic<bool> stopped_{false};
};

}  // namespace tether::net

#endif  // TETHER_COMMON_NET_RELAY_LISTENER_H_
