#include "common/net/relay_listener.h"

#include <algorithm>
#include <deque>
#include <future>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/base/clock.h"
#include "common/base/log.h"
#include "common/base/status_macros.h"
#include "common/crypto/sas_token.h"
#include "common/net/asio_status.h"
#include "common/net/dial.h"
#include "common/net/http_client.h"
#include "common/net/io_thread.h"
#include "common/net/maybe_tls_stream.h"
#include "common/net/relay_status.h"
#include "common/proto/frame_codec.h"

namespace tether::net {
namespace internal {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace websocket = boost::beast::websocket;

using Strand = asio::strand<asio::io_context::executor_type>;

// Room for a frame's own fields (channel id, tags, lengths) on top of its payload, and for an
// Open's sender metadata.
constexpr std::size_t kFrameOverhead = 64 << 10;
// Control frames (Accept, Reject, Close, Pong, RenewToken) are small and are queued even when
// Data filled the connection queue, up to this much more.
constexpr std::size_t kControlSlack = 1 << 20;
// Frames per long-poll body we accept.
constexpr std::size_t kMaxFramesPerPoll = 1 << 16;
// Frames per /send body we send (the relay refuses bodies of more than 4096 frames).
constexpr std::size_t kMaxFramesPerSend = 1024;
constexpr std::size_t kMaxCloseReason = 123;

constexpr uint32_t kCloseNormal = 1000;
constexpr uint32_t kCloseGoingAway = 1001;
constexpr uint32_t kCloseQueueFull = 4000;
constexpr uint32_t kCloseListenerGone = 4001;
constexpr uint32_t kCloseTokenExpired = 4002;
constexpr uint32_t kCloseReplaced = 4003;

absl::string_view View(beast::string_view s) { return absl::string_view(s.data(), s.size()); }

std::string Truncated(absl::string_view reason) {
  return std::string(reason.substr(0, kMaxCloseReason));
}

// What ended a transport (or kept it from starting).
struct TransportFailure {
  enum class Kind {
    kConnect,         // DNS, TCP, proxy or TLS failed: nothing reached the relay's HTTP layer
    kUpgradeRefused,  // the WebSocket upgrade was answered with something else, or broke
    kRefused,         // 401, 403, 429 (or a long-poll answer that is not 200/204)
    kLost,            // an established connection broke or went silent
    kClosed,          // the relay closed the control channel with `close_code`
  };
  Kind kind;
  absl::Status status;
  uint32_t close_code = 0;
};

// The status for a control connection the relay closed with `code`.
absl::Status ControlClosedStatus(uint32_t code, absl::string_view reason) {
  absl::StatusCode status_code = absl::StatusCode::kUnavailable;
  if (code == kCloseTokenExpired) status_code = absl::StatusCode::kUnauthenticated;
  if (code == kCloseReplaced) status_code = absl::StatusCode::kAlreadyExists;
  return ClosedStatus(status_code, code, reason, "relay closed the control connection");
}

}  // namespace

// Lets other threads post work to the listener's strand for as long as the listener lives; after
// Invalidate() posting fails instead of touching a destroyed io_context.
class PostHandle {
 public:
  explicit PostHandle(Strand strand) : strand_(std::move(strand)) {}

  template <class Fn>
  bool Post(Fn&& fn) {
    absl::MutexLock lock(&mu_);
    if (!alive_) return false;
    asio::post(strand_, std::forward<Fn>(fn));
    return true;
  }

  void Invalidate() {
    absl::MutexLock lock(&mu_);
    alive_ = false;
  }

 private:
  absl::Mutex mu_;
  bool alive_ ABSL_GUARDED_BY(mu_) = true;
  Strand strand_;
};

// Runs token_provider on its own thread, one call at a time.
class TokenThread {
 public:
  using Provider = std::function<absl::StatusOr<std::string>()>;
  using Done = std::function<void(absl::StatusOr<std::string>)>;

  explicit TokenThread(Provider provider) : provider_(std::move(provider)) {
    thread_ = std::thread([this] { Run(); });
  }
  ~TokenThread() { Stop(); }

  // Calls the provider, then `done` with its result (on the token thread). A request made while
  // one is pending replaces it.
  void Request(Done done) {
    absl::MutexLock lock(&mu_);
    pending_ = std::move(done);
  }

  // Waits for a call in progress, then ends the thread. Idempotent.
  void Stop() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Run() {
    while (true) {
      Done done;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(
            +[](TokenThread* self) { return self->stopping_ || self->pending_ != nullptr; },
            this));
        if (stopping_) return;
        done = std::move(pending_);
        pending_ = nullptr;
      }
      absl::StatusOr<std::string> token = provider_();
      done(std::move(token));
    }
  }

  const Provider provider_;
  absl::Mutex mu_;
  Done pending_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// The events a transport reports to the core, on the strand. `generation` tells the current
// connection from old ones and from a WebSocket probe.
class TransportEvents {
 public:
  virtual ~TransportEvents() = default;
  virtual void OnTransportUp(uint64_t generation) = 0;
  virtual void OnTransportFrame(uint64_t generation, const proto::RelayFrame& frame) = 0;
  virtual void OnTransportDown(uint64_t generation, TransportFailure failure) = 0;
  virtual void OnTransportShutdownDone(uint64_t generation) = 0;
};

// One control connection to the relay. Strand only.
class ControlTransport {
 public:
  // A frame waiting to be written, with the Data byte counter of its channel (if any) to release
  // once it is on the wire.
  struct Outgoing {
    std::string bytes;
    std::shared_ptr<std::atomic<std::size_t>> channel_counter;
    std::size_t channel_bytes = 0;
    void Release() {
      if (channel_counter) channel_counter->fetch_sub(channel_bytes);
      channel_counter = nullptr;
    }
  };

  virtual ~ControlTransport() = default;
  virtual void Start() = 0;
  // Queues a frame. False when the connection queue is over its bound (Data frames; control
  // frames get kControlSlack more).
  virtual bool Enqueue(Outgoing item, bool control) = 0;
  // The token for the requests still to come (long-poll sends it on every request).
  virtual void SetToken(std::string token) = 0;
  // Sends what is queued, then closes gracefully; reports OnTransportShutdownDone (or Down).
  virtual void Shutdown(uint32_t code, std::string reason) = 0;
  // Drops the connection; no further events.
  virtual void Abort() = 0;
  // When the relay last sent anything (frames, pings, poll answers).
  virtual absl::Time last_receive() const = 0;
  virtual bool is_websocket() const = 0;
};

namespace {

struct TransportConfig {
  std::shared_ptr<const DialTarget> target;
  std::string entity;
  std::string listener_id;
  absl::Duration handshake_timeout;
  absl::Duration long_poll_wait;
  std::size_t max_payload_bytes;
  std::size_t send_queue_bytes;
  std::size_t max_poll_response_bytes;
};

// The control connection over WebSocket: one RelayFrame per binary message.
class WebSocketTransport : public ControlTransport,
                           public std::enable_shared_from_this<WebSocketTransport> {
 public:
  WebSocketTransport(const Strand& strand, std::shared_ptr<const TransportConfig> config,
                     std::string token, uint64_t generation, std::weak_ptr<TransportEvents> events)
      : config_(std::move(config)),
        token_(std::move(token)),
        generation_(generation),
        events_(std::move(events)),
        ws_(strand) {}

  void Start() override {
    AsyncDial(ws_.next_layer(), config_->target, [self = shared_from_this()](absl::Status status) {
      self->OnDial(std::move(status));
    });
  }

  bool Enqueue(Outgoing item, bool control) override {
    std::size_t limit = config_->send_queue_bytes + (control ? kControlSlack : 0);
    if (queued_bytes_ + item.bytes.size() > limit) return false;
    queued_bytes_ += item.bytes.size();
    queue_.push_back(std::move(item));
    if (up_ && !writing_) DoWrite();
    return true;
  }

  void SetToken(std::string token) override { token_ = std::move(token); }

  void Shutdown(uint32_t code, std::string reason) override {
    if (finished_) return;
    shutdown_code_ = code;
    shutdown_reason_ = Truncated(reason);
    shutting_down_ = true;
    if (!up_) {
      Abort();
      return ReportShutdownDone();
    }
    if (!writing_) DoClose();
  }

  void Abort() override {
    finished_ = true;
    ws_.next_layer().Abort();
    for (Outgoing& item : queue_) item.Release();
    queue_.clear();
  }

  absl::Time last_receive() const override { return last_receive_; }
  bool is_websocket() const override { return true; }

 private:
  void OnDial(absl::Status status) {
    if (finished_) return;
    if (!status.ok()) {
      return Fail({TransportFailure::Kind::kConnect, std::move(status)});
    }
    websocket::stream_base::timeout timeouts;
    timeouts.handshake_timeout = absl::ToChronoMilliseconds(config_->handshake_timeout);
    // Liveness is the core's job (pings, 3 silent intervals); Beast must not drop on its own.
    timeouts.idle_timeout = websocket::stream_base::none();
    timeouts.keep_alive_pings = false;
    ws_.set_option(timeouts);
    ws_.set_option(websocket::stream_base::decorator(
        [token = token_](websocket::request_type& request) {
          request.set(http::field::user_agent, "tether-relay-client");
          request.set(http::field::authorization, token);
        }));
    ws_.read_message_max(config_->max_payload_bytes + kFrameOverhead);
    ws_.binary(true);
    ws_.control_callback([this](websocket::frame_type, beast::string_view) {
      // Runs inside a read on this object; the read's handler keeps it alive.
      last_receive_ = WallNow();
    });
    ws_.async_handshake(
        response_, config_->target->endpoint.HostHeader(),
        absl::StrCat("/$hc/", config_->entity, "?action=listen&id=", config_->listener_id),
        beast::bind_front_handler(&WebSocketTransport::OnHandshake, shared_from_this()));
  }

  void OnHandshake(beast::error_code ec) {
    if (finished_) return;
    if (ec == websocket::error::upgrade_declined) {
      const int status = static_cast<int>(response_.result_int());
      absl::Status refusal = HttpRefusalStatus(
          absl::StrCat("relay ", config_->target->endpoint.ToString(),
                       " refused the listener WebSocket"),
          status, View(response_.reason()), response_.body());
      const bool auth_or_limit = status == 401 || status == 403 || status == 429;
      return Fail({auth_or_limit ? TransportFailure::Kind::kRefused
                                 : TransportFailure::Kind::kUpgradeRefused,
                   std::move(refusal)});
    }
    if (ec) {
      return Fail({TransportFailure::Kind::kUpgradeRefused,
                   AsioStatus(ec, absl::StrCat("WebSocket upgrade with ",
                                               config_->target->Describe()))});
    }
    up_ = true;
    last_receive_ = WallNow();
    if (auto events = events_.lock()) events->OnTransportUp(generation_);
    if (finished_) return;
    DoRead();
    if (!writing_) DoWrite();
  }

  void DoRead() {
    ws_.async_read(buffer_,
                   beast::bind_front_handler(&WebSocketTransport::OnRead, shared_from_this()));
  }

  void OnRead(beast::error_code ec, std::size_t) {
    if (finished_) return;
    if (ec) {
      if (shutting_down_) return ReportShutdownDone();
      if (ec == websocket::error::closed) {
        const websocket::close_reason& reason = ws_.reason();
        return Fail({TransportFailure::Kind::kClosed,
                     ControlClosedStatus(reason.code, reason.reason.c_str()), reason.code});
      }
      return Fail({TransportFailure::Kind::kLost,
                   AsioStatus(ec, "control connection to the relay lost")});
    }
    last_receive_ = WallNow();
    proto::RelayFrame frame;
    const bool parsed = frame.ParseFromArray(buffer_.data().data(),
                                             static_cast<int>(buffer_.size()));
    buffer_.consume(buffer_.size());
    if (!parsed) {
      return Fail({TransportFailure::Kind::kLost,
                   absl::DataLossError("the relay sent a message that is not a RelayFrame")});
    }
    if (auto events = events_.lock()) events->OnTransportFrame(generation_, frame);
    if (finished_) return;
    DoRead();
  }

  void DoWrite() {
    if (finished_) return;
    if (queue_.empty()) {
      writing_ = false;
      if (shutting_down_) DoClose();
      return;
    }
    writing_ = true;
    ws_.async_write(asio::buffer(queue_.front().bytes),
                    beast::bind_front_handler(&WebSocketTransport::OnWrite, shared_from_this()));
  }

  void OnWrite(beast::error_code ec, std::size_t) {
    if (finished_) return;
    queued_bytes_ -= queue_.front().bytes.size();
    queue_.front().Release();
    queue_.pop_front();
    if (ec) {
      writing_ = false;
      if (shutting_down_) return ReportShutdownDone();
      // The read reports the end of the connection; make sure it does.
      ws_.next_layer().Abort();
      return;
    }
    DoWrite();
  }

  void DoClose() {
    if (close_started_) return;
    close_started_ = true;
    websocket::close_reason reason;
    reason.code = static_cast<uint16_t>(shutdown_code_);
    reason.reason = shutdown_reason_;
    ws_.async_close(reason, [self = shared_from_this()](beast::error_code) {
      if (self->finished_) return;
      self->ReportShutdownDone();
    });
  }

  void ReportShutdownDone() {
    finished_ = true;
    ws_.next_layer().Abort();
    if (auto events = events_.lock()) events->OnTransportShutdownDone(generation_);
  }

  void Fail(TransportFailure failure) {
    if (finished_) return;
    Abort();
    if (auto events = events_.lock()) events->OnTransportDown(generation_, std::move(failure));
  }

  const std::shared_ptr<const TransportConfig> config_;
  std::string token_;
  const uint64_t generation_;
  const std::weak_ptr<TransportEvents> events_;
  websocket::stream<MaybeTlsStream> ws_;
  websocket::response_type response_;
  beast::flat_buffer buffer_;
  std::deque<Outgoing> queue_;
  std::size_t queued_bytes_ = 0;
  bool up_ = false;
  bool writing_ = false;
  bool shutting_down_ = false;
  bool close_started_ = false;
  bool finished_ = false;  // aborted, failed or shut down: no more events
  uint32_t shutdown_code_ = kCloseGoingAway;
  std::string shutdown_reason_;
  absl::Time last_receive_ = WallNow();
};

// The control connection over HTTP long-poll: POST .../poll returns frames for the listener,
// POST .../send delivers the listener's frames, both as varint-delimited RelayFrame batches.
class LongPollTransport : public ControlTransport,
                          public std::enable_shared_from_this<LongPollTransport> {
 public:
  LongPollTransport(const Strand& strand, std::shared_ptr<const TransportConfig> config,
                    std::string token, uint64_t generation, std::weak_ptr<TransportEvents> events)
      : config_(std::move(config)),
        token_(std::move(token)),
        generation_(generation),
        events_(std::move(events)),
        poll_client_(std::make_shared<HttpClient>(strand, config_->target)),
        send_client_(std::make_shared<HttpClient>(strand, config_->target)) {}

  void Start() override {
    // The first poll registers the listener; wait=0 makes the relay answer at once, so "up"
    // does not wait for a frame.
    DoPoll(0);
  }

  bool Enqueue(Outgoing item, bool control) override {
    std::size_t limit = config_->send_queue_bytes + (control ? kControlSlack : 0);
    if (queued_bytes_ + item.bytes.size() > limit) return false;
    queued_bytes_ += item.bytes.size();
    queue_.push_back(std::move(item));
    MaybeSend();
    return true;
  }

  void SetToken(std::string token) override { token_ = std::move(token); }

  // Leaving a long-poll session: a Close on channel 0 ends it at the relay (without it the relay
  // keeps the session until its idle timeout, and senders wait for an Accept that never comes).
  // The outstanding poll is not cancelled: if the relay had it parked, the close completes it
  // with the relay's own Close on channel 0. If it answers without one, the poll reached the
  // relay only after our Close and opened a new session, so that one is closed too.
  void Shutdown(uint32_t code, std::string reason) override {
    if (finished_) return;
    shutting_down_ = true;
    if (!up_) {
      Abort();
      return ReportShutdownDone();
    }
    shutdown_code_ = code;
    shutdown_reason_ = Truncated(reason);
    EnqueueControlClose();
  }

  void Abort() override {
    finished_ = true;
    poll_client_->Cancel();
    send_client_->Cancel();
    for (Outgoing& item : queue_) item.Release();
    for (Outgoing& item : in_flight_) item.Release();
    queue_.clear();
    in_flight_.clear();
  }

  absl::Time last_receive() const override { return last_receive_; }
  bool is_websocket() const override { return false; }

 private:
  std::string Target(absl::string_view action) const {
    return absl::StrCat("/$hc/", config_->entity, "/", action, "?id=", config_->listener_id);
  }

  HttpRequest MakeRequest(std::string target, std::string body) const {
    HttpRequest request(http::verb::post, target, 11);
    request.set(http::field::authorization, token_);
    request.set(http::field::content_type, "application/octet-stream");
    request.body() = std::move(body);
    return request;
  }

  void DoPoll(int64_t wait_seconds) {
    polling_ = true;
    HttpRequest request =
        MakeRequest(absl::StrCat(Target("poll"), "&wait=", wait_seconds), std::string());
    poll_client_->AsyncRequest(
        std::move(request), config_->handshake_timeout + absl::Seconds(wait_seconds),
        config_->max_poll_response_bytes,
        [self = shared_from_this()](absl::StatusOr<HttpResponse> response) {
          self->OnPoll(std::move(response));
        });
  }

  void OnPoll(absl::StatusOr<HttpResponse> response) {
    polling_ = false;
    if (finished_) return;
    if (shutting_down_) return OnPollWhileShuttingDown(response);
    if (!response.ok()) {
      return Fail({up_ ? TransportFailure::Kind::kLost : TransportFailure::Kind::kConnect,
                   response.status()});
    }
    const int status = static_cast<int>(response->result_int());
    if (status != 200) {
      absl::Status refusal = HttpRefusalStatus(
          absl::StrCat("relay ", config_->target->endpoint.ToString(), " refused the poll"),
          status, View(response->reason()), response->body());
      return Fail({up_ ? TransportFailure::Kind::kLost : TransportFailure::Kind::kRefused,
                   std::move(refusal)});
    }
    last_receive_ = WallNow();
    auto frames = proto::DecodeDelimited(response->body(), kMaxFramesPerPoll,
                                         config_->max_payload_bytes + kFrameOverhead);
    if (!frames.ok()) {
      return Fail({TransportFailure::Kind::kLost,
                   absl::DataLossError(absl::StrCat("bad poll response from the relay: ",
                                                    frames.status().message()))});
    }
    if (!up_) {
      up_ = true;
      if (auto events = events_.lock()) events->OnTransportUp(generation_);
      if (finished_) return;
      MaybeSend();
    }
    for (const proto::RelayFrame& frame : *frames) {
      if (auto events = events_.lock()) events->OnTransportFrame(generation_, frame);
      if (finished_) return;
    }
    if (shutting_down_) return MaybeFinishShutdown();
    DoPoll(absl::ToInt64Seconds(config_->long_poll_wait));
  }

  void OnPollWhileShuttingDown(const absl::StatusOr<HttpResponse>& response) {
    bool relay_closed = false;
    if (response.ok() && response->result_int() == 200) {
      auto frames = proto::DecodeDelimited(response->body(), kMaxFramesPerPoll,
                                           config_->max_payload_bytes + kFrameOverhead);
      if (frames.ok()) {
        for (const proto::RelayFrame& frame : *frames) {
          relay_closed = relay_closed ||
                         (frame.has_close() && frame.close().channel_id() == 0);
        }
      }
    }
    if (!relay_closed && !reclosed_) {
      reclosed_ = true;
      EnqueueControlClose();
      return;
    }
    MaybeFinishShutdown();
  }

  void EnqueueControlClose() {
    proto::RelayFrame close;
    close.mutable_close()->set_channel_id(0);
    close.mutable_close()->set_code(shutdown_code_);
    close.mutable_close()->set_reason(shutdown_reason_);
    Outgoing item;
    item.bytes = close.SerializeAsString();
    queued_bytes_ += item.bytes.size();
    queue_.push_back(std::move(item));
    MaybeSend();
  }

  void MaybeFinishShutdown() {
    if (shutting_down_ && !polling_ && !sending_ && queue_.empty()) ReportShutdownDone();
  }

  void MaybeSend() {
    if (!up_ || sending_ || finished_ || queue_.empty()) return;
    // Batch what is queued, up to one maximal frame's worth and kMaxFramesPerSend frames (always
    // at least one frame).
    std::string body;
    const std::size_t batch_limit = config_->max_payload_bytes + kFrameOverhead;
    while (!queue_.empty() && in_flight_.size() < kMaxFramesPerSend) {
      const std::string& bytes = queue_.front().bytes;
      std::string prefix;
      for (uint64_t n = bytes.size();; n >>= 7) {
        if (n < 0x80) {
          prefix.push_back(static_cast<char>(n));
          break;
        }
        prefix.push_back(static_cast<char>((n & 0x7f) | 0x80));
      }
      if (!body.empty() && body.size() + prefix.size() + bytes.size() > batch_limit) break;
      body += prefix;
      body += bytes;
      queued_bytes_ -= bytes.size();
      in_flight_.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    sending_ = true;
    send_client_->AsyncRequest(MakeRequest(Target("send"), std::move(body)),
                               config_->handshake_timeout, 64 << 10,
                               [self = shared_from_this()](absl::StatusOr<HttpResponse> response) {
                                 self->OnSend(std::move(response));
                               });
  }

  void OnSend(absl::StatusOr<HttpResponse> response) {
    sending_ = false;
    if (finished_) return;
    for (Outgoing& item : in_flight_) item.Release();
    in_flight_.clear();
    if (shutting_down_) {
      // Whatever the answer (204, or 404 for a session that is already gone), the close is
      // delivered or moot.
      if (!response.ok() || response->result_int() / 100 != 2) {
        for (Outgoing& item : queue_) item.Release();
        queue_.clear();
        queued_bytes_ = 0;
      }
      MaybeSend();
      return MaybeFinishShutdown();
    }
    if (!response.ok()) {
      return Fail({TransportFailure::Kind::kLost, response.status()});
    }
    const int status = static_cast<int>(response->result_int());
    if (status / 100 != 2) {
      absl::Status refusal = HttpRefusalStatus(
          absl::StrCat("relay ", config_->target->endpoint.ToString(), " refused frames"),
          status, View(response->reason()), response->body());
      // 404: the relay no longer has this long-poll session (restart, idle drop, replaced).
      return Fail({TransportFailure::Kind::kLost, std::move(refusal)});
    }
    MaybeSend();
  }

  void ReportShutdownDone() {
    Abort();
    if (auto events = events_.lock()) events->OnTransportShutdownDone(generation_);
  }

  void Fail(TransportFailure failure) {
    if (finished_) return;
    Abort();
    if (auto events = events_.lock()) events->OnTransportDown(generation_, std::move(failure));
  }

  const std::shared_ptr<const TransportConfig> config_;
  std::string token_;
  const uint64_t generation_;
  const std::weak_ptr<TransportEvents> events_;
  std::shared_ptr<HttpClient> poll_client_;
  std::shared_ptr<HttpClient> send_client_;
  std::deque<Outgoing> queue_;
  std::vector<Outgoing> in_flight_;
  std::size_t queued_bytes_ = 0;
  bool up_ = false;
  bool polling_ = false;
  bool sending_ = false;
  bool shutting_down_ = false;
  bool reclosed_ = false;  // a second Close sent for a session a late poll opened
  bool finished_ = false;
  uint32_t shutdown_code_ = kCloseGoingAway;
  std::string shutdown_reason_;
  absl::Time last_receive_ = WallNow();
};

}  // namespace

// All of a listener's state, on its strand: the connection state machine (token, transport,
// backoff, fallback, probe), liveness, renewal and the channels.
class ListenerCore : public TransportEvents, public std::enable_shared_from_this<ListenerCore> {
 public:
  ListenerCore(ListenerOptions options, std::shared_ptr<const TransportConfig> config,
               Strand strand, std::shared_ptr<PostHandle> post, TokenThread* token_thread)
      : options_(std::move(options)),
        config_(std::move(config)),
        strand_(std::move(strand)),
        post_(std::move(post)),
        token_thread_(token_thread),
        backoff_(options_.backoff, options_.random),
        retry_timer_(strand_),
        tick_timer_(strand_),
        stop_timer_(strand_),
        renew_timer_(strand_) {}

  void Start() {
    phase_ = Phase::kConnecting;
    Report(ListenerState::Kind::kConnecting, absl::OkStatus());
    ArmTick();
    BeginAttempt();
  }

  void Stop(std::function<void()> done) {
    if (phase_ == Phase::kStopped) return done();
    if (phase_ == Phase::kStopping) {
      auto previous = std::move(stop_done_);
      stop_done_ = [previous = std::move(previous), done = std::move(done)] {
        if (previous) previous();
        done();
      };
      return;
    }
    stop_done_ = std::move(done);
    const bool connected = phase_ == Phase::kConnected;
    phase_ = Phase::kStopping;
    retry_timer_.cancel();
    tick_timer_.cancel();
    renew_timer_.cancel();
    if (probe_) {
      probe_->Abort();
      probe_ = nullptr;
    }
    EndAllChannels(kCloseGoingAway, "listener stopping", /*tell_relay=*/connected);
    if (!connected || !transport_) return FinishStop();
    transport_->Shutdown(kCloseGoingAway, "listener stopping");
    stop_timer_.expires_after(absl::ToChronoMilliseconds(options_.stop_timeout));
    stop_timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (!ec && self->phase_ == Phase::kStopping) self->FinishStop();
    });
  }

  // --- From ListenerChannel (posted to the strand) ---

  void ChannelAccept(const std::shared_ptr<ListenerChannel>& channel,
                     ListenerChannel::Handlers handlers) {
    channel->handlers_ = std::move(handlers);
    channel->handlers_installed_ = true;
    if (!IsLive(*channel)) {
      // The channel ended between Accept() and now: tell the app the way it expects.
      if (channel->end_code_ != 0 && channel->handlers_.on_close) {
        channel->handlers_.on_close(channel->end_code_, channel->end_reason_);
      }
      return;
    }
    proto::RelayFrame frame;
    frame.mutable_accept()->set_channel_id(channel->id_);
    SendControl(frame);
  }

  void ChannelReject(const std::shared_ptr<ListenerChannel>& channel, int http_status,
                     std::string reason) {
    if (!IsLive(*channel)) return;
    channels_.erase(channel->id_);
    SendReject(channel->id_, http_status, reason);
  }

  void ChannelSend(const std::shared_ptr<ListenerChannel>& channel, std::string payload) {
    const std::size_t size = payload.size();
    if (!IsLive(*channel) || !transport_) {
      channel->queued_bytes_->fetch_sub(size);
      return;
    }
    proto::RelayFrame frame;
    frame.mutable_data()->set_channel_id(channel->id_);
    *frame.mutable_data()->mutable_payload() = std::move(payload);
    ControlTransport::Outgoing item;
    item.bytes = frame.SerializeAsString();
    item.channel_counter = channel->queued_bytes_;
    item.channel_bytes = size;
    if (!transport_->Enqueue(std::move(item), /*control=*/false)) {
      // Enqueue dropped the item without releasing it.
      channel->queued_bytes_->fetch_sub(size);
      // The connection does not drain: closing this channel frees the relay and the app.
      EndChannel(channel, kCloseQueueFull, "listener send queue full", /*notify_app=*/true);
      SendClose(channel->id_, kCloseQueueFull, "listener send queue full");
    }
  }

  void ChannelClose(const std::shared_ptr<ListenerChannel>& channel, uint32_t code,
                    std::string reason) {
    if (!IsLive(*channel)) return;
    channels_.erase(channel->id_);
    SendClose(channel->id_, code, reason);
  }

  // --- TransportEvents ---

  void OnTransportUp(uint64_t generation) override {
    if (probe_ && generation == probe_generation_) {
      if (phase_ == Phase::kConnected) return PromoteProbe();
      probe_->Abort();
      probe_ = nullptr;
      return;
    }
    if (generation != generation_ || phase_ != Phase::kConnecting) return;
    phase_ = Phase::kConnected;
    connected_at_ = WallNow();
    last_ping_sent_ = connected_at_;
    const bool websocket = transport_->is_websocket();
    if (websocket) {
      ws_refused_at_ = absl::InfinitePast();
      fallback_reason_ = absl::OkStatus();
    }
    next_probe_at_ = connected_at_ + options_.websocket_retry_interval;
    ScheduleRenewal();
    Log(LogLevel::kInfo, "relay_listener_connected",
        {{"entity", options_.entity},
         {"listener_id", options_.listener_id},
         {"transport", websocket ? "websocket" : "longpoll"}});
    // On long-poll, why the WebSocket was not used (OK for kLongPollOnly).
    Report(websocket ? ListenerState::Kind::kConnectedWebSocket
                     : ListenerState::Kind::kConnectedLongPoll,
           websocket ? absl::OkStatus() : fallback_reason_);
  }

  void OnTransportFrame(uint64_t generation, const proto::RelayFrame& frame) override {
    if (generation != generation_ || phase_ != Phase::kConnected) return;
    switch (frame.kind_case()) {
      case proto::RelayFrame::kOpen:
        return HandleOpen(frame.open());
      case proto::RelayFrame::kData:
        return HandleData(frame.data());
      case proto::RelayFrame::kClose:
        return HandleClose(frame.close());
      case proto::RelayFrame::kPing: {
        proto::RelayFrame pong;
        pong.mutable_pong()->set_nonce(frame.ping().nonce());
        pong.mutable_pong()->set_ping_sent_at_unix_ms(frame.ping().sent_at_unix_ms());
        return SendControl(pong);
      }
      default:
        // Pong (liveness is tracked by the transport), and kinds a listener does not expect or
        // does not know yet: ignored, as relay.proto asks.
        return;
    }
  }

  void OnTransportDown(uint64_t generation, TransportFailure failure) override {
    if (probe_ && generation == probe_generation_) {
      probe_ = nullptr;
      next_probe_at_ = WallNow() + options_.websocket_retry_interval;
      Log(LogLevel::kInfo, "relay_listener_websocket_retry_failed",
          {{"entity", options_.entity}, {"error", std::string(failure.status.message())}});
      return;
    }
    if (generation != generation_) return;
    transport_ = nullptr;
    if (phase_ == Phase::kStopping) return FinishStop();
    if (phase_ == Phase::kConnecting) {
      if (failure.kind == TransportFailure::Kind::kUpgradeRefused &&
          options_.transport == ListenerOptions::Transport::kAuto) {
        ws_refused_at_ = WallNow();
        fallback_reason_ = failure.status;
        Log(LogLevel::kWarning, "relay_listener_longpoll_fallback",
            {{"entity", options_.entity}, {"reason", std::string(failure.status.message())}});
        return StartTransport(/*websocket=*/false);
      }
      return ScheduleRetry(std::move(failure.status), /*reset_allowed=*/false);
    }
    if (phase_ == Phase::kConnected) return ConnectionLost(std::move(failure));
  }

  void OnTransportShutdownDone(uint64_t generation) override {
    if (generation != generation_) return;
    transport_ = nullptr;
    if (phase_ == Phase::kStopping) FinishStop();
  }

 private:
  enum class Phase { kIdle, kConnecting, kConnected, kBackoff, kStopping, kStopped };

  bool IsLive(const ListenerChannel& channel) const {
    auto it = channels_.find(channel.id_);
    return it != channels_.end() && it->second.get() == &channel &&
           channel.generation_ == generation_;
  }

  // --- Connecting ---

  void BeginAttempt() {
    if (phase_ == Phase::kStopping || phase_ == Phase::kStopped) return;
    phase_ = Phase::kConnecting;
    const uint64_t request = ++token_request_;
    token_thread_->Request([post = post_, weak = weak_from_this(),
                            request](absl::StatusOr<std::string> token) {
      post->Post([weak, request, token = std::move(token)]() mutable {
        if (auto self = weak.lock()) self->OnConnectToken(request, std::move(token));
      });
    });
  }

  void OnConnectToken(uint64_t request, absl::StatusOr<std::string> token) {
    if (request != token_request_ || phase_ != Phase::kConnecting) return;
    token = CheckedToken(std::move(token));
    if (!token.ok()) {
      return ScheduleRetry(absl::Status(token.status().code(),
                                        absl::StrCat("token provider: ", token.status().message())),
                           false);
    }
    // A renewal still running belongs to the previous connection; its answer is ignored.
    renewing_ = false;
    SetToken(*std::move(token));
    const bool websocket =
        options_.transport == ListenerOptions::Transport::kWebSocketOnly ||
        (options_.transport == ListenerOptions::Transport::kAuto &&
         WallNow() - ws_refused_at_ >= options_.websocket_retry_interval);
    StartTransport(websocket);
  }

  // The token goes into a header: it must not be able to add lines to the request.
  static absl::StatusOr<std::string> CheckedToken(absl::StatusOr<std::string> token) {
    if (token.ok() && (token->empty() || token->find_first_of("\r\n") != std::string::npos)) {
      return absl::InvalidArgumentError("token is empty or contains a line break");
    }
    return token;
  }

  void SetToken(std::string token) {
    token_ = std::move(token);
    token_fetched_at_ = WallNow();
    auto parsed = crypto::ParseSasToken(token_);
    token_expiry_ = parsed.ok() ? absl::FromUnixSeconds(parsed->expiry_unix) : absl::InfiniteFuture();
  }

  void StartTransport(bool websocket) {
    phase_ = Phase::kConnecting;
    generation_ = next_generation_++;
    if (websocket) {
      transport_ = std::make_shared<WebSocketTransport>(strand_, config_, token_, generation_,
                                                        weak_from_this());
    } else {
      transport_ = std::make_shared<LongPollTransport>(strand_, config_, token_, generation_,
                                                       weak_from_this());
    }
    transport_->Start();
  }

  void ScheduleRetry(absl::Status why, bool reset_allowed) {
    if (reset_allowed) backoff_.Reset();
    const absl::Duration delay = backoff_.NextDelay();
    phase_ = Phase::kBackoff;
    Log(LogLevel::kWarning, "relay_listener_retry",
        {{"entity", options_.entity},
         {"listener_id", options_.listener_id},
         {"error", std::string(why.message())},
         {"retry_in_ms", absl::StrCat(absl::ToInt64Milliseconds(delay))}});
    Report(ListenerState::Kind::kReconnecting, std::move(why), delay);
    retry_timer_.expires_after(absl::ToChronoMilliseconds(delay));
    retry_timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (!ec && self->phase_ == Phase::kBackoff) self->BeginAttempt();
    });
  }

  void ConnectionLost(TransportFailure failure) {
    if (transport_) {
      transport_->Abort();
      transport_ = nullptr;
    }
    if (phase_ == Phase::kStopping || phase_ == Phase::kStopped) return FinishStop();
    if (probe_) {
      probe_->Abort();
      probe_ = nullptr;
    }
    EndAllChannels(kCloseListenerGone, "listener connection lost", /*tell_relay=*/false);
    // A connection that proved healthy starts the backoff over; one that was replaced (another
    // process holds the same listener id) or short-lived keeps climbing toward the cap.
    const bool stable = WallNow() - connected_at_ >= options_.stable_after &&
                        failure.close_code != kCloseReplaced;
    ScheduleRetry(std::move(failure.status), stable);
  }

  void PromoteProbe() {
    // The WebSocket works again: it replaced the long-poll session at the relay (same id).
    if (transport_) transport_->Abort();
    EndAllChannels(kCloseListenerGone, "listener switched to WebSocket", /*tell_relay=*/false);
    transport_ = std::move(probe_);
    probe_ = nullptr;
    generation_ = probe_generation_;
    // The renewal timer was armed for the old connection; the token (and its expiry) carry over.
    if (renew_at_ != absl::InfiniteFuture() && !renewing_) ArmRenewal(renew_at_);
    ws_refused_at_ = absl::InfinitePast();
    fallback_reason_ = absl::OkStatus();
    connected_at_ = WallNow();
    last_ping_sent_ = connected_at_;
    Log(LogLevel::kInfo, "relay_listener_connected",
        {{"entity", options_.entity},
         {"listener_id", options_.listener_id},
         {"transport", "websocket"},
         {"switched_from", "longpoll"}});
    Report(ListenerState::Kind::kConnectedWebSocket, absl::OkStatus());
  }

  void StartProbe() {
    probe_generation_ = next_generation_++;
    probe_ = std::make_shared<WebSocketTransport>(strand_, config_, token_, probe_generation_,
                                                  weak_from_this());
    probe_->Start();
  }

  void FinishStop() {
    if (phase_ == Phase::kStopped) return;
    phase_ = Phase::kStopped;
    stop_timer_.cancel();
    retry_timer_.cancel();
    tick_timer_.cancel();
    renew_timer_.cancel();
    if (transport_) {
      transport_->Abort();
      transport_ = nullptr;
    }
    Report(ListenerState::Kind::kStopped, absl::OkStatus());
    if (stop_done_) {
      auto done = std::move(stop_done_);
      stop_done_ = nullptr;
      done();
    }
  }

  // --- Periodic work: liveness, renewal, unanswered channels, WebSocket retry ---

  absl::Duration TickInterval() const {
    return std::clamp(options_.ping_interval / 4, absl::Milliseconds(10), absl::Seconds(1));
  }

  void ArmTick() {
    tick_timer_.expires_after(absl::ToChronoMilliseconds(TickInterval()));
    tick_timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec || self->phase_ == Phase::kStopping || self->phase_ == Phase::kStopped) return;
      self->Tick();
      self->ArmTick();
    });
  }

  void Tick() {
    if (phase_ != Phase::kConnected || !transport_) return;
    const absl::Time now = WallNow();
    if (transport_->is_websocket()) {
      const absl::Duration silent = now - transport_->last_receive();
      if (silent >= 3 * options_.ping_interval) {
        return ConnectionLost(
            {TransportFailure::Kind::kLost,
             absl::UnavailableError(absl::StrCat("no traffic from the relay for ",
                                                 absl::FormatDuration(silent)))});
      }
      if (silent >= options_.ping_interval && now - last_ping_sent_ >= options_.ping_interval) {
        proto::RelayFrame ping;
        ping.mutable_ping()->set_nonce(++ping_nonce_);
        ping.mutable_ping()->set_sent_at_unix_ms(absl::ToUnixMillis(now));
        SendControl(ping);
        last_ping_sent_ = now;
      }
    }
    std::vector<std::shared_ptr<ListenerChannel>> unanswered;
    for (const auto& [id, channel] : channels_) {
      if (channel->phase_.load() == ListenerChannel::Phase::kPending &&
          now - channel->opened_at_ >= options_.accept_timeout) {
        unanswered.push_back(channel);
      }
    }
    for (const auto& channel : unanswered) {
      ListenerChannel::Phase expected = ListenerChannel::Phase::kPending;
      if (!channel->phase_.compare_exchange_strong(expected, ListenerChannel::Phase::kEnded)) {
        continue;  // answered just now; the posted answer will be applied
      }
      channels_.erase(channel->id_);
      SendReject(channel->id_, 504, "listener did not answer in time");
    }
    if (options_.transport == ListenerOptions::Transport::kAuto && !transport_->is_websocket() &&
        !probe_ && channels_.empty() && now >= next_probe_at_) {
      StartProbe();
    }
  }

  void ScheduleRenewal() {
    renew_at_ = absl::InfiniteFuture();
    if (token_expiry_ == absl::InfiniteFuture()) return;
    const absl::Duration lifetime = token_expiry_ - token_fetched_at_;
    ArmRenewal(token_fetched_at_ + std::max(lifetime * 0.8, absl::ZeroDuration()));
  }

  // Renewal has its own timer: the tick may be a second apart, too coarse for short tokens.
  void ArmRenewal(absl::Time at) {
    renew_at_ = at;
    renew_timer_.expires_after(absl::ToChronoMilliseconds(
        std::max(at - WallNow(), absl::ZeroDuration())));
    renew_timer_.async_wait([self = shared_from_this(), generation = generation_,
                             at](beast::error_code ec) {
      if (ec || self->phase_ != Phase::kConnected || self->generation_ != generation ||
          self->renew_at_ != at || self->renewing_) {
        return;
      }
      self->Renew();
    });
  }

  void Renew() {
    renewing_ = true;
    const uint64_t request = ++token_request_;
    token_thread_->Request([post = post_, weak = weak_from_this(),
                            request](absl::StatusOr<std::string> token) {
      post->Post([weak, request, token = std::move(token)]() mutable {
        if (auto self = weak.lock()) self->OnRenewalToken(request, std::move(token));
      });
    });
  }

  void OnRenewalToken(uint64_t request, absl::StatusOr<std::string> token) {
    if (request != token_request_) return;
    renewing_ = false;
    if (phase_ != Phase::kConnected || !transport_) return;
    token = CheckedToken(std::move(token));
    if (!token.ok()) {
      return RenewalFailed(absl::Status(
          token.status().code(), absl::StrCat("token provider: ", token.status().message())));
    }
    SetToken(*std::move(token));
    transport_->SetToken(token_);
    proto::RelayFrame frame;
    frame.mutable_renew_token()->set_token(token_);
    SendControl(frame);
    renewal_sent_at_ = WallNow();
    ScheduleRenewal();
  }

  void RenewalFailed(absl::Status why) {
    // Try again soon, while the current token still works.
    const absl::Duration left = token_expiry_ - WallNow();
    ArmRenewal(WallNow() + std::clamp(left / 4, absl::Milliseconds(100), absl::Seconds(5)));
    Log(LogLevel::kWarning, "relay_listener_renewal_failed",
        {{"entity", options_.entity}, {"error", std::string(why.message())}});
    Report(transport_->is_websocket() ? ListenerState::Kind::kConnectedWebSocket
                                      : ListenerState::Kind::kConnectedLongPoll,
           std::move(why));
  }

  // --- Frames ---

  void HandleOpen(const proto::RelayFrame::Open& open) {
    const uint64_t id = open.channel_id();
    if (id == 0 || channels_.contains(id)) return;
    if (!options_.on_channel) return SendReject(id, 503, "listener takes no channels");
    if (channels_.size() >= options_.max_channels) {
      return SendReject(id, 503, "listener has too many open channels");
    }
    std::shared_ptr<ListenerChannel> channel(new ListenerChannel(
        id, generation_, open.sender_meta(), post_, weak_from_this(), options_.max_payload_bytes,
        options_.channel_send_queue_bytes));
    channel->opened_at_ = WallNow();
    channels_[id] = channel;
    options_.on_channel(channel);
  }

  void HandleData(const proto::RelayFrame::Data& data) {
    auto it = channels_.find(data.channel_id());
    if (it == channels_.end()) return;  // closed on this side meanwhile
    ListenerChannel& channel = *it->second;
    if (channel.phase_.load() != ListenerChannel::Phase::kAccepted ||
        !channel.handlers_installed_ || !channel.handlers_.on_data) {
      return;
    }
    channel.handlers_.on_data(data.payload());
  }

  void HandleClose(const proto::RelayFrame::Close& close) {
    if (close.channel_id() != 0) {
      auto it = channels_.find(close.channel_id());
      if (it == channels_.end()) return;
      std::shared_ptr<ListenerChannel> channel = it->second;
      const uint32_t code = close.code() == 0 ? kCloseNormal : close.code();
      EndChannel(channel, code, close.reason(), /*notify_app=*/true);
      return;
    }
    // Channel 0: the control connection. The relay uses it for a refused renewal (the
    // connection stays) and, on long-poll, to explain why it dropped the session.
    const absl::Time now = WallNow();
    if (close.code() == kCloseTokenExpired && now < token_expiry_ &&
        now - renewal_sent_at_ < 3 * options_.handshake_timeout) {
      return RenewalFailed(absl::UnauthenticatedError(
          absl::StrCat("relay refused the renewed token: ", close.reason())));
    }
    ConnectionLost({TransportFailure::Kind::kClosed,
                    ControlClosedStatus(close.code(), close.reason()), close.code()});
  }

  void SendControl(const proto::RelayFrame& frame) {
    if (!transport_) return;
    ControlTransport::Outgoing item;
    item.bytes = frame.SerializeAsString();
    if (!transport_->Enqueue(std::move(item), /*control=*/true)) {
      // Even the slack for control frames is used up: the relay does not read us at all.
      ConnectionLost({TransportFailure::Kind::kLost,
                      absl::ResourceExhaustedError("the relay stopped reading: send queue full")});
    }
  }

  void SendReject(uint64_t channel_id, int http_status, absl::string_view reason) {
    proto::RelayFrame frame;
    frame.mutable_reject()->set_channel_id(channel_id);
    frame.mutable_reject()->set_http_status(static_cast<uint32_t>(http_status));
    frame.mutable_reject()->set_reason(Truncated(reason));
    SendControl(frame);
  }

  void SendClose(uint64_t channel_id, uint32_t code, absl::string_view reason) {
    proto::RelayFrame frame;
    frame.mutable_close()->set_channel_id(channel_id);
    frame.mutable_close()->set_code(code);
    frame.mutable_close()->set_reason(Truncated(reason));
    SendControl(frame);
  }

  // Ends `channel` on this side: it leaves the table and the app's on_close learns why (if the
  // app had accepted it and `notify_app`).
  void EndChannel(const std::shared_ptr<ListenerChannel>& channel, uint32_t code,
                  absl::string_view reason, bool notify_app) {
    channels_.erase(channel->id_);
    const ListenerChannel::Phase previous = channel->phase_.exchange(ListenerChannel::Phase::kEnded);
    channel->end_code_ = code;
    channel->end_reason_ = std::string(reason);
    if (previous == ListenerChannel::Phase::kAccepted && notify_app &&
        channel->handlers_installed_ && channel->handlers_.on_close) {
      channel->handlers_.on_close(code, channel->end_reason_);
    }
  }

  // Ends every channel: pending ones are rejected (503), accepted ones closed with `code`, at the
  // relay too if `tell_relay`; the app's on_close hears about the accepted ones.
  void EndAllChannels(uint32_t code, absl::string_view reason, bool tell_relay) {
    auto channels = std::move(channels_);
    channels_.clear();
    for (auto& [id, channel] : channels) {
      const ListenerChannel::Phase phase = channel->phase_.load();
      if (tell_relay && phase == ListenerChannel::Phase::kPending) {
        SendReject(id, 503, reason);
      } else if (tell_relay && phase == ListenerChannel::Phase::kAccepted) {
        SendClose(id, code, reason);
      }
      EndChannel(channel, code, reason, /*notify_app=*/true);
    }
  }

  void Report(ListenerState::Kind kind, absl::Status error, absl::Duration retry_in = {}) {
    if (!options_.on_state) return;
    ListenerState state;
    state.kind = kind;
    state.last_error = std::move(error);
    state.retry_in = retry_in;
    options_.on_state(state);
  }

  const ListenerOptions options_;
  const std::shared_ptr<const TransportConfig> config_;
  Strand strand_;
  const std::shared_ptr<PostHandle> post_;
  TokenThread* const token_thread_;

  Phase phase_ = Phase::kIdle;
  Backoff backoff_;
  asio::steady_timer retry_timer_;
  asio::steady_timer tick_timer_;
  asio::steady_timer stop_timer_;
  asio::steady_timer renew_timer_;
  std::function<void()> stop_done_;

  std::shared_ptr<ControlTransport> transport_;
  uint64_t generation_ = 0;
  std::shared_ptr<ControlTransport> probe_;
  uint64_t probe_generation_ = 0;
  uint64_t next_generation_ = 1;

  std::string token_;
  absl::Time token_fetched_at_;
  absl::Time token_expiry_ = absl::InfiniteFuture();
  uint64_t token_request_ = 0;
  bool renewing_ = false;
  absl::Time renew_at_ = absl::InfiniteFuture();
  absl::Time renewal_sent_at_ = absl::InfinitePast();

  absl::Time connected_at_;
  absl::Time last_ping_sent_;
  uint64_t ping_nonce_ = 0;
  absl::Time ws_refused_at_ = absl::InfinitePast();
  absl::Status fallback_reason_;  // why kAuto is on long-poll
  absl::Time next_probe_at_ = absl::InfiniteFuture();

  absl::flat_hash_map<uint64_t, std::shared_ptr<ListenerChannel>> channels_;
};

}  // namespace internal

// --- ListenerChannel ---

ListenerChannel::ListenerChannel(uint64_t id, uint64_t generation,
                                 proto::RelayFrame::SenderMeta meta,
                                 std::shared_ptr<internal::PostHandle> post,
                                 std::weak_ptr<internal::ListenerCore> core,
                                 std::size_t max_payload_bytes, std::size_t queue_bytes)
    : id_(id),
      generation_(generation),
      sender_meta_(std::move(meta)),
      post_(std::move(post)),
      core_(std::move(core)),
      max_payload_bytes_(max_payload_bytes),
      queue_bytes_(queue_bytes),
      queued_bytes_(std::make_shared<std::atomic<std::size_t>>(0)) {}

ListenerChannel::~ListenerChannel() = default;

absl::Status ListenerChannel::Accept(Handlers handlers) {
  Phase expected = Phase::kPending;
  if (!phase_.compare_exchange_strong(expected, Phase::kAccepted)) {
    return absl::FailedPreconditionError(
        absl::StrCat("channel ", id_, " was already answered or has ended"));
  }
  if (!post_->Post([core = core_, self = shared_from_this(), handlers = std::move(handlers)]() mutable {
        if (auto c = core.lock()) c->ChannelAccept(self, std::move(handlers));
      })) {
    return absl::FailedPreconditionError("the listener is stopped");
  }
  return absl::OkStatus();
}

absl::Status ListenerChannel::Reject(int http_status, absl::string_view reason) {
  if (http_status < 400 || http_status > 599) {
    return absl::InvalidArgumentError(
        absl::StrCat("reject status ", http_status, " is not in 400-599"));
  }
  Phase expected = Phase::kPending;
  if (!phase_.compare_exchange_strong(expected, Phase::kEnded)) {
    return absl::FailedPreconditionError(
        absl::StrCat("channel ", id_, " was already answered or has ended"));
  }
  if (!post_->Post([core = core_, self = shared_from_this(), http_status,
                    reason = std::string(reason)]() mutable {
        if (auto c = core.lock()) c->ChannelReject(self, http_status, std::move(reason));
      })) {
    return absl::FailedPreconditionError("the listener is stopped");
  }
  return absl::OkStatus();
}

absl::Status ListenerChannel::Send(std::string payload) {
  if (phase_.load() != Phase::kAccepted) {
    return absl::FailedPreconditionError(
        absl::StrCat("channel ", id_, " is not accepted or has ended"));
  }
  const std::size_t size = payload.size();
  if (size > max_payload_bytes_) {
    return absl::InvalidArgumentError(absl::StrCat("message of ", size,
                                                   " bytes is over the limit of ",
                                                   max_payload_bytes_));
  }
  const std::size_t before = queued_bytes_->fetch_add(size);
  if (before != 0 && before + size > queue_bytes_) {
    queued_bytes_->fetch_sub(size);
    return absl::ResourceExhaustedError(absl::StrCat("channel ", id_, " has ", before,
                                                     " bytes queued (limit ", queue_bytes_, ")"));
  }
  if (!post_->Post([core = core_, self = shared_from_this(), payload = std::move(payload)]() mutable {
        if (auto c = core.lock()) {
          c->ChannelSend(self, std::move(payload));
        } else {
          self->queued_bytes_->fetch_sub(payload.size());
        }
      })) {
    queued_bytes_->fetch_sub(size);
    return absl::FailedPreconditionError("the listener is stopped");
  }
  return absl::OkStatus();
}

absl::Status ListenerChannel::Close(uint32_t code, absl::string_view reason) {
  Phase expected = Phase::kAccepted;
  if (!phase_.compare_exchange_strong(expected, Phase::kEnded)) {
    return absl::FailedPreconditionError(
        absl::StrCat("channel ", id_, " is not accepted or has ended"));
  }
  if (!post_->Post([core = core_, self = shared_from_this(), code,
                    reason = std::string(reason)]() mutable {
        if (auto c = core.lock()) c->ChannelClose(self, code, std::move(reason));
      })) {
    return absl::FailedPreconditionError("the listener is stopped");
  }
  return absl::OkStatus();
}

// --- RelayListener ---

absl::string_view ListenerStateName(ListenerState::Kind kind) {
  switch (kind) {
    case ListenerState::Kind::kConnecting:
      return "connecting";
    case ListenerState::Kind::kConnectedWebSocket:
      return "connected-websocket";
    case ListenerState::Kind::kConnectedLongPoll:
      return "connected-longpoll";
    case ListenerState::Kind::kReconnecting:
      return "reconnecting";
    case ListenerState::Kind::kStopped:
      return "stopped";
  }
  return "unknown";
}

absl::StatusOr<std::unique_ptr<RelayListener>> RelayListener::Create(ListenerOptions options) {
  RETURN_IF_ERROR(ValidateRelayName("entity", options.entity));
  RETURN_IF_ERROR(ValidateRelayName("listener id", options.listener_id));
  if (!options.token_provider) return absl::InvalidArgumentError("token_provider is required");
  if (options.max_payload_bytes == 0 || options.send_queue_bytes < options.max_payload_bytes ||
      options.channel_send_queue_bytes == 0 || options.max_channels == 0 ||
      options.max_poll_response_bytes < options.max_payload_bytes) {
    return absl::InvalidArgumentError(
        "need max_payload_bytes > 0, send_queue_bytes and max_poll_response_bytes >= "
        "max_payload_bytes, and positive channel limits");
  }
  if (options.ping_interval < absl::Milliseconds(10) ||
      options.handshake_timeout <= absl::ZeroDuration() ||
      options.websocket_retry_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("ping_interval (>= 10 ms) and timeouts must be positive");
  }
  if (options.long_poll_wait < absl::ZeroDuration() || options.long_poll_wait > absl::Seconds(60)) {
    return absl::InvalidArgumentError("long_poll_wait must be 0-60 s");
  }
  ASSIGN_OR_RETURN(auto target, internal::MakeDialTarget(options.relay_url, options.proxy,
                                                         options.ca_file, options.connect_timeout));
  auto config = std::make_shared<internal::TransportConfig>();
  config->target = std::move(target);
  config->entity = options.entity;
  config->listener_id = options.listener_id;
  config->handshake_timeout = options.handshake_timeout;
  config->long_poll_wait = absl::Seconds(absl::ToInt64Seconds(options.long_poll_wait));
  config->max_payload_bytes = options.max_payload_bytes;
  config->send_queue_bytes = options.send_queue_bytes;
  config->max_poll_response_bytes = options.max_poll_response_bytes;

  auto io = std::make_unique<internal::IoThread>();
  auto token_thread = std::make_unique<internal::TokenThread>(options.token_provider);
  internal::Strand strand = boost::asio::make_strand(io->context());
  auto post = std::make_shared<internal::PostHandle>(strand);
  const absl::Duration stop_timeout = options.stop_timeout;
  auto core = std::make_shared<internal::ListenerCore>(std::move(options), std::move(config),
                                                       strand, post, token_thread.get());
  return std::unique_ptr<RelayListener>(new RelayListener(
      std::move(io), std::move(token_thread), std::move(post), std::move(core), stop_timeout));
}

RelayListener::RelayListener(std::unique_ptr<internal::IoThread> io,
                             std::unique_ptr<internal::TokenThread> token_thread,
                             std::shared_ptr<internal::PostHandle> post,
                             std::shared_ptr<internal::ListenerCore> core,
                             absl::Duration stop_timeout)
    : io_(std::move(io)),
      token_thread_(std::move(token_thread)),
      post_(std::move(post)),
      core_(std::move(core)),
      stop_timeout_(stop_timeout) {}

RelayListener::~RelayListener() { Stop(); }

absl::Status RelayListener::Start() {
  if (stopped_.load()) return absl::FailedPreconditionError("listener was stopped");
  if (started_.exchange(true)) return absl::FailedPreconditionError("listener already started");
  post_->Post([core = core_] { core->Start(); });
  return absl::OkStatus();
}

void RelayListener::Stop() {
  if (stopped_.exchange(true)) return;
  if (io_->InThisThread()) {
    // From a callback: start the graceful stop; the destructor (elsewhere) finishes it.
    post_->Post([core = core_] { core->Stop([] {}); });
    stopped_ = false;
    return;
  }
  if (started_.load()) {
    auto done = std::make_shared<std::promise<void>>();
    std::future<void> finished = done->get_future();
    post_->Post([core = core_, done] { core->Stop([done] { done->set_value(); }); });
    finished.wait_for(absl::ToChronoMilliseconds(stop_timeout_ + absl::Seconds(1)));
  }
  token_thread_->Stop();
  post_->Invalidate();
  io_->Stop();
}

}  // namespace tether::net
