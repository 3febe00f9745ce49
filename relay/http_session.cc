#include "relay/http_session.h"

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/base/log.h"
#include "common/crypto/sas_token.h"
#include "common/proto/frame_codec.h"
#include "common/proto/relay.pb.h"
#include "relay/listener_core.h"
#include "relay/longpoll_listener.h"

namespace tether::relay {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

constexpr char kServerName[] = "tether-relay";
constexpr std::size_t kMaxNameLength = 128;
constexpr std::size_t kHeaderLimit = 16 * 1024;
constexpr int kMaxLongPollWaitSeconds = 60;
constexpr int kDefaultLongPollWaitSeconds = 30;
constexpr auto kKeepAliveIdle = std::chrono::seconds(120);
// Room for a RelayFrame's own fields around a payload of max_frame_bytes.
constexpr std::size_t kFrameOverhead = 1024;

std::chrono::milliseconds ToChrono(absl::Duration d) {
  return std::chrono::milliseconds(absl::ToInt64Milliseconds(d));
}

bool ValidName(absl::string_view name) {
  if (name.empty() || name.size() > kMaxNameLength) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return false;
    }
  }
  return name != "." && name != "..";
}

std::string View(beast::string_view s) { return std::string(s.data(), s.size()); }

// Graceful shutdown for both stream types. `owner` keeps the stream alive until it is done.
void ShutdownStream(beast::tcp_stream& stream, std::shared_ptr<void>) {
  beast::error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  stream.close();
}

void ShutdownStream(beast::ssl_stream<beast::tcp_stream>& stream, std::shared_ptr<void> owner) {
  // A TLS close_notify is a courtesy; a peer that is gone must not hold the socket open.
  beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(2));
  stream.async_shutdown([&stream, owner = std::move(owner)](beast::error_code) {
    beast::get_lowest_layer(stream).close();
  });
}

// A response with Tether's headers; text/plain bodies are one line ending in a newline.
std::shared_ptr<Response> TextResponse(http::status status, std::string text, bool keep_alive,
                                       const char* content_type = "text/plain") {
  auto response = std::make_shared<Response>(status, 11);
  response->set(http::field::server, kServerName);
  response->set(http::field::content_type, content_type);
  response->set(http::field::cache_control, "no-store");
  response->keep_alive(keep_alive);
  if (std::string(content_type) == "text/plain" && !text.empty() && text.back() != '\n') {
    text += "\n";
  }
  response->body() = std::move(text);
  response->prepare_payload();
  return response;
}

uint32_t ReadCloseCode(const websocket::close_reason& reason, const beast::error_code& ec) {
  if (ec == websocket::error::closed) return reason.code == 0 ? 1000 : reason.code;
  if (ec == websocket::error::message_too_big) return 1009;
  return 1006;  // abnormal closure: no close frame
}

// ---------------------------------------------------------------------------------------------
// The listener's control channel over WebSocket.
template <class Stream>
class WebSocketListener : public ListenerCore {
 public:
  static std::shared_ptr<WebSocketListener> Create(RelayContext* context, Stream&& stream,
                                                   std::string entity, std::string id,
                                                   int64_t token_expiry) {
    return std::shared_ptr<WebSocketListener>(new WebSocketListener(
        context, std::move(stream), std::move(entity), std::move(id), token_expiry));
  }

  // Gives the connection back, for a listener that could not be registered.
  Stream ReleaseStream() { return std::move(ws_.next_layer()); }

  // Completes the upgrade; the listener must already be registered.
  void Accept(Request request) {
    beast::get_lowest_layer(ws_).expires_never();
    websocket::stream_base::timeout timeout;
    timeout.handshake_timeout = ToChrono(context()->options.handshake_timeout);
    // Beast pings after half the idle time without traffic and drops the peer after all of it.
    timeout.idle_timeout = ToChrono(context()->options.ping_interval * 3);
    timeout.keep_alive_pings = true;
    ws_.set_option(timeout);
    ws_.set_option(websocket::stream_base::decorator([](websocket::response_type& res) {
      res.set(http::field::server, kServerName);
    }));
    ws_.read_message_max(context()->options.max_frame_bytes + kFrameOverhead);
    ws_.binary(true);
    ws_.async_accept(request, beast::bind_front_handler(&WebSocketListener::OnAccept, self()));
  }

 protected:
  bool EnqueueFrame(uint64_t channel_id, std::string bytes) override {
    std::size_t total = queued_bytes_.fetch_add(bytes.size()) + bytes.size();
    if (total > context()->options.connection_queue_bytes) {
      queued_bytes_.fetch_sub(bytes.size());
      return false;
    }
    net::post(ws_.get_executor(), [self = self(), channel_id, bytes = std::move(bytes)]() mutable {
      if (self->close_started_) return;
      if (!self->queue_) self->queue_ = std::make_unique<std::deque<Item>>();
      self->queue_->push_back(Item{channel_id, std::move(bytes)});
      self->DoWrite();
    });
    return true;
  }

  void CloseTransport(uint32_t code, std::string reason) override {
    net::post(ws_.get_executor(), [self = self(), code, reason = std::move(reason)]() mutable {
      if (self->close_requested_) return;
      self->close_requested_ = true;
      if (reason.size() > 120) reason.resize(120);
      self->close_reason_ = websocket::close_reason(static_cast<websocket::close_code>(code),
                                                    reason);
      if (!self->accepted_) return;  // OnAccept finishes the job
      self->MaybeStartClose();
    });
  }

 private:
  struct Item {
    uint64_t channel_id;
    std::string bytes;
  };

  WebSocketListener(RelayContext* context, Stream&& stream, std::string entity, std::string id,
                    int64_t token_expiry)
      : ListenerCore(context, std::move(entity), std::move(id), ListenerTransport::kWebSocket,
                     token_expiry),
        ws_(std::move(stream)),
        token_timer_(ws_.get_executor()) {}

  std::shared_ptr<WebSocketListener> self() {
    return std::static_pointer_cast<WebSocketListener>(shared_from_this());
  }

  void OnAccept(beast::error_code ec) {
    if (ec) {
      OnTransportClosed();
      return;
    }
    accepted_ = true;
    LogInfo("listener_connected",
            {{"entity", entity()}, {"listener_id", id()}, {"transport", "websocket"}});
    ArmTokenTimer();
    DoRead();
    if (close_requested_) {
      MaybeStartClose();
    } else {
      DoWrite();
    }
  }

  void ArmTokenTimer() {
    int64_t seconds = token_expiry_unix() - context()->NowUnix();
    token_timer_.expires_after(std::chrono::seconds(seconds > 0 ? seconds : 0));
    token_timer_.async_wait([self = self()](beast::error_code ec) {
      if (ec || self->close_requested_) return;
      if (self->token_expiry_unix() <= self->context()->NowUnix()) {
        self->CloseTransport(proto::RELAY_CLOSE_CODE_TOKEN_EXPIRED, "token expired");
      } else {
        self->ArmTokenTimer();  // renewed meanwhile
      }
    });
  }

  void DoRead() {
    ws_.async_read(buffer_, beast::bind_front_handler(&WebSocketListener::OnRead, self()));
  }

  void OnRead(beast::error_code ec, std::size_t) {
    if (ec) return Finish();
    proto::RelayFrame frame;
    auto data = buffer_.data();
    bool parsed = frame.ParseFromArray(data.data(), static_cast<int>(data.size()));
    buffer_.consume(buffer_.size());
    if (!parsed || frame.kind_case() == proto::RelayFrame::KIND_NOT_SET) {
      context()->metrics.invalid_frames.fetch_add(1, std::memory_order_relaxed);
      LogWarning("listener_invalid_frame", {{"entity", entity()}, {"listener_id", id()}});
      CloseTransport(proto::RELAY_CLOSE_CODE_INVALID_FRAME, "invalid frame: not a RelayFrame");
    } else {
      HandleFrame(frame);
    }
    DoRead();
  }

  void DoWrite() {
    if (writing_ || !queue_ || queue_->empty() || !accepted_ || close_started_) return;
    writing_ = true;
    ws_.async_write(net::buffer(queue_->front().bytes),
                    beast::bind_front_handler(&WebSocketListener::OnWrite, self()));
  }

  void OnWrite(beast::error_code ec, std::size_t) {
    writing_ = false;
    Item item = std::move(queue_->front());
    queue_->pop_front();
    if (queue_->empty()) queue_.reset();
    queued_bytes_.fetch_sub(item.bytes.size());
    if (ec || finished_) return Finish();
    OnWritten(item.channel_id, item.bytes.size());
    if (close_requested_) {
      MaybeStartClose();
    } else {
      DoWrite();
    }
  }

  // Sends the close frame once no write is in flight (Beast allows one write at a time).
  void MaybeStartClose() {
    if (close_started_ || writing_) return;
    close_started_ = true;
    token_timer_.cancel();
    ws_.async_close(close_reason_, [self = self()](beast::error_code) {
      // The pending read completes with an error once the close handshake ends.
    });
  }

  // The connection is over. The queue is dropped once no write uses its front element.
  void Finish() {
    if (!writing_) {
      queue_.reset();
      queued_bytes_ = 0;
    }
    if (finished_) return;
    finished_ = true;
    close_started_ = true;  // nothing more is written
    token_timer_.cancel();
    OnTransportClosed();
  }

  websocket::stream<Stream> ws_;
  beast::flat_buffer buffer_;
  net::steady_timer token_timer_;
  std::atomic<std::size_t> queued_bytes_{0};
  // Allocated while frames wait: an empty std::deque still costs ~576 bytes, which 10,000 idle
  // listeners would pay for nothing (docs/BENCHMARKS.md).
  std::unique_ptr<std::deque<Item>> queue_;
  bool accepted_ = false;
  bool writing_ = false;
  bool close_requested_ = false;
  bool close_started_ = false;
  bool finished_ = false;
  websocket::close_reason close_reason_;
};

// ---------------------------------------------------------------------------------------------
// A sender's WebSocket: held at the HTTP stage until the listener accepts the channel.
template <class Stream>
class SenderSession : public SenderEndpoint,
                      public std::enable_shared_from_this<SenderSession<Stream>> {
 public:
  static std::shared_ptr<SenderSession> Create(RelayContext* context, Stream&& stream,
                                               Request request,
                                               std::shared_ptr<ListenerCore> listener) {
    return std::shared_ptr<SenderSession>(
        new SenderSession(context, std::move(stream), std::move(request), std::move(listener)));
  }

  void Start(proto::RelayFrame::SenderMeta meta) {
    net::dispatch(ws_.get_executor(), [self = this->shared_from_this(),
                                       meta = std::move(meta)]() mutable {
      std::shared_ptr<ListenerCore> listener = self->listener_.lock();
      self->channel_id_ = listener ? listener->OpenChannel(self, std::move(meta)) : 0;
      if (self->channel_id_ == 0) {
        self->RespondAndClose(http::status::service_unavailable, "no listener");
        return;
      }
      self->accept_timer_.expires_after(ToChrono(self->context_->options.accept_timeout));
      self->accept_timer_.async_wait([self](beast::error_code ec) {
        if (ec || self->state_ != State::kPending) return;
        self->context_->metrics.channels_rejected.fetch_add(1, std::memory_order_relaxed);
        self->NotifyListenerClosed(1001, "sender gave up waiting for Accept");
        self->RespondAndClose(http::status::gateway_timeout, "listener did not answer");
      });
    });
  }

  void OnAccepted() override {
    net::post(ws_.get_executor(), [self = this->shared_from_this()] {
      if (self->state_ != State::kPending) return;
      self->accept_timer_.cancel();
      self->state_ = State::kUpgrading;
      beast::get_lowest_layer(self->ws_).expires_never();
      websocket::stream_base::timeout timeout =
          websocket::stream_base::timeout::suggested(beast::role_type::server);
      timeout.handshake_timeout = ToChrono(self->context_->options.handshake_timeout);
      self->ws_.set_option(timeout);
      self->ws_.set_option(websocket::stream_base::decorator([](websocket::response_type& res) {
        res.set(http::field::server, kServerName);
      }));
      self->ws_.read_message_max(self->context_->options.max_frame_bytes);
      self->ws_.binary(true);
      self->ws_.async_accept(self->request_, [self](beast::error_code ec) {
        if (ec) {
          self->state_ = State::kDone;
          self->NotifyListenerClosed(1006, "sender handshake failed");
          return;
        }
        self->state_ = State::kOpen;
        self->DoRead();
        if (self->close_requested_) {
          self->MaybeStartClose();
        } else {
          self->DoWrite();
        }
      });
    });
  }

  void OnRejected(uint32_t http_status, std::string reason) override {
    net::post(ws_.get_executor(), [self = this->shared_from_this(), http_status,
                                   reason = std::move(reason)] {
      if (self->state_ != State::kPending) return;
      self->accept_timer_.cancel();
      self->RespondAndClose(static_cast<http::status>(http_status),
                            reason.empty() ? "rejected by listener" : reason);
    });
  }

  void DeliverData(std::string payload) override {
    std::size_t total = queued_bytes_.fetch_add(payload.size()) + payload.size();
    if (total > context_->options.channel_queue_bytes) {
      queued_bytes_.fetch_sub(payload.size());
      context_->metrics.queue_full_closes.fetch_add(1, std::memory_order_relaxed);
      NotifyListenerClosed(proto::RELAY_CLOSE_CODE_QUEUE_FULL, "queue full: the sender does not read");
      CloseFromListener(proto::RELAY_CLOSE_CODE_QUEUE_FULL, "queue full: the sender does not read");
      return;
    }
    net::post(ws_.get_executor(),
              [self = this->shared_from_this(), payload = std::move(payload)]() mutable {
                if (self->close_requested_) return;
                self->queue_.push_back(std::move(payload));
                self->DoWrite();
              });
  }

  void CloseFromListener(uint32_t code, std::string reason) override {
    net::post(ws_.get_executor(), [self = this->shared_from_this(), code,
                                   reason = std::move(reason)]() mutable {
      if (self->state_ == State::kPending) {
        self->accept_timer_.cancel();
        self->RespondAndClose(http::status::service_unavailable, reason);
        return;
      }
      if (self->close_requested_) return;
      self->close_requested_ = true;
      self->closed_by_listener_ = true;
      if (reason.size() > 120) reason.resize(120);
      self->close_reason_ =
          websocket::close_reason(static_cast<websocket::close_code>(code), reason);
      if (self->state_ == State::kOpen) self->MaybeStartClose();
    });
  }

 private:
  enum class State { kPending, kUpgrading, kOpen, kDone };

  SenderSession(RelayContext* context, Stream&& stream, Request request,
                std::shared_ptr<ListenerCore> listener)
      : context_(context),
        ws_(std::move(stream)),
        request_(std::move(request)),
        listener_(std::move(listener)),
        accept_timer_(ws_.get_executor()) {}

  void NotifyListenerClosed(uint32_t code, std::string reason) {
    if (auto listener = listener_.lock()) listener->SenderClosed(channel_id_, code, std::move(reason));
  }

  void RespondAndClose(http::status status, std::string reason) {
    state_ = State::kDone;
    auto response = TextResponse(status, std::move(reason), false);
    beast::get_lowest_layer(ws_).expires_after(std::chrono::seconds(10));
    http::async_write(ws_.next_layer(), *response,
                      [self = this->shared_from_this(), response](beast::error_code, std::size_t) {
                        ShutdownStream(self->ws_.next_layer(), self);
                      });
  }

  void DoRead() {
    ws_.async_read(buffer_, [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) {
        self->state_ = State::kDone;
        if (!self->closed_by_listener_) {
          uint32_t code = ReadCloseCode(self->ws_.reason(), ec);
          std::string reason = code == 1009 ? "message too big"
                                            : std::string(self->ws_.reason().reason.c_str());
          self->NotifyListenerClosed(code, reason.empty() ? "sender closed" : reason);
        }
        if (!self->writing_) self->queue_.clear();
        return;
      }
      if (auto listener = self->listener_.lock()) {
        listener->SenderData(self->channel_id_, beast::buffers_to_string(self->buffer_.data()));
      }
      self->buffer_.consume(self->buffer_.size());
      self->DoRead();
    });
  }

  void DoWrite() {
    if (writing_ || queue_.empty() || state_ != State::kOpen || close_started_) return;
    writing_ = true;
    ws_.async_write(net::buffer(queue_.front()),
                    [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                      self->writing_ = false;
                      self->queued_bytes_.fetch_sub(self->queue_.front().size());
                      self->queue_.pop_front();
                      if (ec || self->state_ == State::kDone) {
                        self->queue_.clear();
                        return;
                      }
                      if (self->close_requested_) {
                        self->MaybeStartClose();
                      } else {
                        self->DoWrite();
                      }
                    });
  }

  void MaybeStartClose() {
    if (close_started_ || writing_ || state_ != State::kOpen) return;
    // Frames already queued from the listener are sent before the close frame.
    if (!queue_.empty()) {
      DoWrite();
      return;
    }
    close_started_ = true;
    ws_.async_close(close_reason_, [self = this->shared_from_this()](beast::error_code) {});
  }

  RelayContext* const context_;
  websocket::stream<Stream> ws_;
  Request request_;
  // Weak: the listener owns its channels' senders, so a strong pointer back would be a cycle.
  std::weak_ptr<ListenerCore> listener_;
  net::steady_timer accept_timer_;
  uint64_t channel_id_ = 0;
  State state_ = State::kPending;
  beast::flat_buffer buffer_;
  std::deque<std::string> queue_;
  std::atomic<std::size_t> queued_bytes_{0};
  bool writing_ = false;
  bool close_requested_ = false;
  bool close_started_ = false;
  bool closed_by_listener_ = false;
  websocket::close_reason close_reason_;
};

// ---------------------------------------------------------------------------------------------
// One HTTP connection: reads requests, answers the plain ones, hands upgrades over.
template <class Stream>
class HttpSession : public std::enable_shared_from_this<HttpSession<Stream>> {
 public:
  HttpSession(RelayContext* context, Stream&& stream)
      : context_(context), stream_(std::move(stream)) {}

  void Run() {
    net::dispatch(stream_.get_executor(), [self = this->shared_from_this()] { self->Begin(); });
  }

 private:
  struct Target {
    std::string path;
    std::vector<std::pair<std::string, std::string>> query;
    const std::string* Param(absl::string_view name) const {
      for (const auto& [k, v] : query) {
        if (k == name) return &v;
      }
      return nullptr;
    }
  };

  void Begin() {
    beast::get_lowest_layer(stream_).expires_after(ToChrono(context_->options.handshake_timeout));
    if constexpr (std::is_same_v<Stream, beast::ssl_stream<beast::tcp_stream>>) {
      stream_.async_handshake(ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                if (ec) {
                                  if (ec == beast::error::timeout) self->CountTimeout();
                                  return;
                                }
                                self->DoRead();
                              });
    } else {
      DoRead();
    }
  }

  void CountTimeout() {
    context_->metrics.handshake_timeouts.fetch_add(1, std::memory_order_relaxed);
  }

  void DoRead() {
    parser_.emplace();
    parser_->header_limit(kHeaderLimit);
    parser_->body_limit(4 * (context_->options.max_frame_bytes + kFrameOverhead));
    if (!first_request_) beast::get_lowest_layer(stream_).expires_after(kKeepAliveIdle);
    http::async_read(stream_, buffer_, *parser_,
                     [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                       self->OnRead(ec);
                     });
  }

  void OnRead(beast::error_code ec) {
    if (ec == http::error::end_of_stream) return ShutdownStream(stream_, this->shared_from_this());
    if (ec == beast::error::timeout) {
      if (first_request_) CountTimeout();
      return;  // the stream is already closed by the timeout
    }
    if (ec == http::error::body_limit) {
      return Respond(http::status::payload_too_large, "request body too large", false);
    }
    if (ec) {
      if (ec != net::error::operation_aborted && ec != net::error::eof &&
          ec != net::error::connection_reset) {
        context_->metrics.bad_requests.fetch_add(1, std::memory_order_relaxed);
        return Respond(http::status::bad_request, "malformed HTTP request", false);
      }
      return;
    }
    first_request_ = false;
    Handle(parser_->release());
  }

  void Respond(http::status status, std::string body, bool keep_alive,
               const char* content_type = "text/plain") {
    WriteResponse(TextResponse(status, std::move(body), keep_alive, content_type), nullptr);
  }

  // Writes `response`; on failure runs `on_failure` (used to requeue long-poll frames).
  void WriteResponse(std::shared_ptr<Response> response, std::function<void()> on_failure) {
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(30));
    bool keep_alive = response->keep_alive();
    http::async_write(stream_, *response,
                      [self = this->shared_from_this(), response, keep_alive,
                       on_failure = std::move(on_failure)](beast::error_code ec, std::size_t) {
                        if (ec) {
                          if (on_failure) on_failure();
                          return;
                        }
                        if (!keep_alive) return ShutdownStream(self->stream_, self);
                        self->DoRead();
                      });
  }

  static std::optional<Target> ParseTarget(beast::string_view raw) {
    Target target;
    absl::string_view text(raw.data(), raw.size());
    std::size_t q = text.find('?');
    auto path = crypto::SasUrlDecode(text.substr(0, q));
    if (!path.ok()) return std::nullopt;
    target.path = *path;
    if (q != absl::string_view::npos) {
      for (absl::string_view pair : absl::StrSplit(text.substr(q + 1), '&', absl::SkipEmpty())) {
        std::size_t eq = pair.find('=');
        auto key = crypto::SasUrlDecode(pair.substr(0, eq));
        auto value = crypto::SasUrlDecode(eq == absl::string_view::npos ? "" : pair.substr(eq + 1));
        if (!key.ok() || !value.ok()) return std::nullopt;
        target.query.emplace_back(*key, *value);
      }
    }
    return target;
  }

  void BadRequest(const std::string& reason) {
    context_->metrics.bad_requests.fetch_add(1, std::memory_order_relaxed);
    Respond(http::status::bad_request, reason, true);
  }

  // Checks the request's token for `right` on entity `name`. On failure answers 401/403 and
  // returns nullopt; on success returns the token's expiry.
  std::optional<int64_t> Authorize(const Request& request, const Target& target,
                                   const std::string& name, crypto::SasRight right) {
    std::string token;
    if (auto header = request.find(http::field::authorization); header != request.end()) {
      token = View(header->value());
    } else if (const std::string* param = target.Param("sb-hc-token")) {
      token = *param;
    }
    std::string entity_path = absl::StrCat("/$hc/", name);
    absl::StatusOr<std::string> key =
        context_->options.keys->Authorize(token, entity_path, right, context_->NowUnix());
    if (!key.ok()) {
      crypto::SasFailure failure = crypto::SasFailureOf(key.status());
      context_->metrics.CountAuthFailure(failure);
      LogInfo("auth_refused", {{"entity", name},
                               {"reason", std::string(crypto::SasFailureLabel(failure))}});
      http::status status = key.status().code() == absl::StatusCode::kPermissionDenied
                                ? http::status::forbidden
                                : http::status::unauthorized;
      Respond(status, std::string(key.status().message()), true);
      return std::nullopt;
    }
    auto parsed = crypto::ParseSasToken(token);
    return parsed.ok() ? parsed->expiry_unix : 0;
  }

  void Handle(Request request) {
    std::optional<Target> target = ParseTarget(request.target());
    if (!target) return BadRequest("malformed request target");
    const std::string& path = target->path;

    if (path == "/healthz") {
      if (context_->draining) return Respond(http::status::service_unavailable, "draining", true);
      return Respond(http::status::ok, "ok", true);
    }
    if (path == "/metrics") {
      return Respond(http::status::ok, context_->metrics.RenderPrometheus(), true,
                     "text/plain; version=0.0.4");
    }
    if (!absl::StartsWith(path, "/$hc/")) return Respond(http::status::not_found, "not found", true);

    std::vector<std::string> parts = absl::StrSplit(path.substr(5), '/');
    const std::string& name = parts[0];
    if (!ValidName(name)) return BadRequest("invalid entity name");
    std::string suffix = parts.size() == 2 ? parts[1] : "";
    if (parts.size() > 2 || (parts.size() == 2 && suffix.empty())) {
      return Respond(http::status::not_found, "not found", true);
    }

    if (suffix.empty()) return HandleEntity(std::move(request), *target, name);
    if (suffix == "listeners") {
      if (request.method() != http::verb::get) {
        return Respond(http::status::method_not_allowed, "use GET", true);
      }
      if (!Authorize(request, *target, name, crypto::kSasManage)) return;
      std::vector<std::string> ids = context_->registry.ListenerIds(name);
      std::string json = absl::StrCat("{\"entity\":\"hc/", name, "\",\"listenerCount\":",
                                      ids.size(), ",\"listenerIds\":[");
      for (std::size_t i = 0; i < ids.size(); ++i) {
        absl::StrAppend(&json, i ? "," : "", "\"", JsonEscape(ids[i]), "\"");
      }
      json += "]}";
      return Respond(http::status::ok, json, true, "application/json");
    }
    if (suffix == "poll" || suffix == "send") {
      if (request.method() != http::verb::post) {
        return Respond(http::status::method_not_allowed, "use POST", true);
      }
      const std::string* id = target->Param("id");
      if (id == nullptr || !ValidName(*id)) return BadRequest("missing or invalid listener id");
      std::optional<int64_t> expiry = Authorize(request, *target, name, crypto::kSasListen);
      if (!expiry) return;
      if (suffix == "poll") return HandlePoll(*target, name, *id, *expiry);
      return HandleSend(request, name, *id);
    }
    return Respond(http::status::not_found, "not found", true);
  }

  void HandleEntity(Request request, const Target& target, const std::string& name) {
    const std::string* action = target.Param("action");
    if (action == nullptr || (*action != "listen" && *action != "connect")) {
      return BadRequest("unknown action: use action=listen or action=connect");
    }
    if (!websocket::is_upgrade(request)) return BadRequest("expected a WebSocket upgrade");
    bool listen = *action == "listen";
    const std::string* id = target.Param("id");
    if (listen && (id == nullptr || !ValidName(*id))) {
      return BadRequest("missing or invalid listener id");
    }
    std::optional<int64_t> expiry =
        Authorize(request, target, name, listen ? crypto::kSasListen : crypto::kSasSend);
    if (!expiry) return;
    if (context_->draining) {
      return Respond(http::status::service_unavailable, "relay is draining", false);
    }
    if (listen) return StartListener(std::move(request), name, *id, *expiry);
    if (id != nullptr && !ValidName(*id)) return BadRequest("invalid listener id");
    StartSender(std::move(request), name, id != nullptr ? *id : std::string());
  }

  void StartListener(Request request, const std::string& name, const std::string& id,
                     int64_t expiry) {
    if (context_->options.refuse_websocket_upgrade) {
      return BadRequest("websocket disabled");
    }
    auto listener =
        WebSocketListener<Stream>::Create(context_, std::move(stream_), name, id, expiry);
    auto replaced = context_->registry.Add(listener);
    if (!replaced.ok()) {
      // The stream moved into the listener; answer through a fresh session-less write.
      RefuseMovedListener(listener, std::string(replaced.status().message()));
      return;
    }
    context_->metrics.websocket_listeners.fetch_add(1, std::memory_order_relaxed);
    if (*replaced) {
      context_->metrics.listener_replacements.fetch_add(1, std::memory_order_relaxed);
      (*replaced)->Close(proto::RELAY_CLOSE_CODE_REPLACED,
                         "replaced by a new connection with the same listener id");
    }
    listener->Accept(std::move(request));
  }

  // The 26th listener: its stream already moved into a WebSocketListener that was never
  // registered, so the refusal goes out through that listener's stream.
  void RefuseMovedListener(const std::shared_ptr<WebSocketListener<Stream>>& listener,
                           std::string reason);

  // A sender gets the next listener round robin, or with `listener_id` that listener only (a
  // sender that must reach the listener it reached before, e.g. the cloud re-sending a job to the
  // gateway member that may hold it).
  void StartSender(Request request, const std::string& name, const std::string& listener_id) {
    std::shared_ptr<ListenerCore> listener =
        listener_id.empty() ? context_->registry.Pick(name) : context_->registry.Find(name, listener_id);
    if (!listener) return Respond(http::status::service_unavailable, "no listener", false);
    proto::RelayFrame::SenderMeta meta;
    beast::error_code ec;
    auto endpoint = beast::get_lowest_layer(stream_).socket().remote_endpoint(ec);
    if (!ec) {
      meta.set_remote_address(absl::StrCat(endpoint.address().to_string(), ":", endpoint.port()));
    }
    std::string target(request.target().data(), request.target().size());
    // The token never travels to the listener.
    if (std::size_t q = target.find('?'); q != std::string::npos) target.resize(q);
    meta.set_request_target(target);
    for (const auto& field : request) {
      if (field.name() == http::field::authorization) continue;
      std::string key = absl::AsciiStrToLower(View(field.name_string()));
      if (absl::StartsWith(key, "sec-websocket") || key == "upgrade" || key == "connection") {
        continue;
      }
      (*meta.mutable_headers())[key] = View(field.value());
    }
    auto sender = SenderSession<Stream>::Create(context_, std::move(stream_), std::move(request),
                                                std::move(listener));
    sender->Start(std::move(meta));
  }

  void HandlePoll(const Target& target, const std::string& name, const std::string& id,
                  int64_t expiry) {
    int wait_seconds = kDefaultLongPollWaitSeconds;
    if (const std::string* wait = target.Param("wait")) {
      if (!absl::SimpleAtoi(*wait, &wait_seconds) || wait_seconds < 0 ||
          wait_seconds > kMaxLongPollWaitSeconds) {
        return BadRequest("wait must be 0 to 60 seconds");
      }
    }
    if (context_->draining) {
      return Respond(http::status::service_unavailable, "relay is draining", false);
    }
    std::shared_ptr<ListenerCore> existing = context_->registry.Find(name, id);
    std::shared_ptr<LongPollListener> listener;
    if (existing && existing->transport() == ListenerTransport::kLongPoll) {
      listener = std::static_pointer_cast<LongPollListener>(existing);
    } else {
      listener = LongPollListener::Create(context_, context_->executor, name, id, expiry);
      auto replaced = context_->registry.Add(listener);
      if (!replaced.ok()) {
        return Respond(http::status::too_many_requests, std::string(replaced.status().message()),
                       true);
      }
      context_->metrics.longpoll_listeners.fetch_add(1, std::memory_order_relaxed);
      if (*replaced) {
        context_->metrics.listener_replacements.fetch_add(1, std::memory_order_relaxed);
        (*replaced)->Close(proto::RELAY_CLOSE_CODE_REPLACED,
                           "replaced by a new connection with the same listener id");
      }
      LogInfo("listener_connected", {{"entity", name}, {"listener_id", id}, {"transport", "longpoll"}});
      listener->Start();
    }
    // The client's read timeout must outlast the wait; keep the socket open meanwhile.
    beast::get_lowest_layer(stream_).expires_never();
    // Weak: the parked callback lives inside the listener.
    std::weak_ptr<LongPollListener> weak = listener;
    listener->Poll(absl::Seconds(wait_seconds),
                   [self = this->shared_from_this(), weak](std::vector<std::string> frames) {
                     net::post(self->stream_.get_executor(), [self, weak,
                                                              frames = std::move(frames)]() mutable {
                       self->SendPollResponse(weak, std::move(frames));
                     });
                   });
  }

  void SendPollResponse(std::weak_ptr<LongPollListener> listener,
                        std::vector<std::string> frames) {
    auto response = TextResponse(http::status::ok, proto::EncodeDelimitedSerialized(frames), true,
                                 "application/octet-stream");
    WriteResponse(response, [listener, frames = std::move(frames)]() mutable {
      if (auto l = listener.lock()) l->Requeue(std::move(frames));
    });
  }

  void HandleSend(const Request& request, const std::string& name, const std::string& id) {
    std::shared_ptr<ListenerCore> existing = context_->registry.Find(name, id);
    if (!existing || existing->transport() != ListenerTransport::kLongPoll) {
      return Respond(http::status::not_found, "no long-poll session for this listener id", true);
    }
    auto frames = proto::DecodeDelimited(request.body(), 4096,
                                         context_->options.max_frame_bytes + kFrameOverhead);
    if (!frames.ok()) {
      context_->metrics.invalid_frames.fetch_add(1, std::memory_order_relaxed);
      return BadRequest(absl::StrCat("invalid frames: ", frames.status().message()));
    }
    for (const proto::RelayFrame& frame : *frames) {
      if (frame.kind_case() == proto::RelayFrame::KIND_NOT_SET) {
        context_->metrics.invalid_frames.fetch_add(1, std::memory_order_relaxed);
        return BadRequest("invalid frame: no kind set");
      }
    }
    for (const proto::RelayFrame& frame : *frames) existing->HandleFrame(frame);
    Respond(http::status::no_content, "", true);
  }

  RelayContext* const context_;
  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  bool first_request_ = true;
};

// A listener that was never registered still owns the connection; it answers 429 by closing
// the HTTP exchange itself. Implemented as a tiny writer over the listener's stream.
template <class Stream>
class ListenerRefusal : public std::enable_shared_from_this<ListenerRefusal<Stream>> {
 public:
  ListenerRefusal(Stream&& stream, std::string reason)
      : stream_(std::move(stream)),
        response_(TextResponse(http::status::too_many_requests, std::move(reason), false)) {}
  void Run() {
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(10));
    http::async_write(stream_, *response_,
                      [self = this->shared_from_this()](beast::error_code, std::size_t) {
                        ShutdownStream(self->stream_, self);
                      });
  }

 private:
  Stream stream_;
  std::shared_ptr<Response> response_;
};

template <class Stream>
void HttpSession<Stream>::RefuseMovedListener(
    const std::shared_ptr<WebSocketListener<Stream>>& listener, std::string reason) {
  // Never registered, so OnTransportClosed must not run; the listener hands back its stream.
  std::make_shared<ListenerRefusal<Stream>>(listener->ReleaseStream(), std::move(reason))->Run();
}

}  // namespace

void StartHttpSession(RelayContext* context, tcp::socket socket, ssl::context* tls) {
  context->metrics.connections_accepted.fetch_add(1, std::memory_order_relaxed);
  if (tls == nullptr) {
    std::make_shared<HttpSession<beast::tcp_stream>>(context, beast::tcp_stream(std::move(socket)))
        ->Run();
  } else {
    std::make_shared<HttpSession<beast::ssl_stream<beast::tcp_stream>>>(
        context, beast::ssl_stream<beast::tcp_stream>(std::move(socket), *tls))
        ->Run();
  }
}

}  // namespace tether::relay
