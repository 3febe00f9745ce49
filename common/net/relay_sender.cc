#include "common/net/relay_sender.h"

#include <deque>
#include <future>
#include <utility>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/base/clock.h"
#include "common/base/status_macros.h"
#include "common/net/asio_status.h"
#include "common/net/dial.h"
#include "common/net/io_thread.h"
#include "common/net/maybe_tls_stream.h"
#include "common/net/relay_status.h"

namespace tether::net {
namespace internal {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace websocket = boost::beast::websocket;

// RFC 6455 §5.5: a close frame's payload is at most 125 bytes, 2 of them the code.
constexpr std::size_t kMaxCloseReason = 123;
constexpr uint32_t kAbnormalClosure = 1006;

absl::string_view View(beast::string_view s) { return absl::string_view(s.data(), s.size()); }

absl::Status CheckHeaderValue(absl::string_view what, absl::string_view value) {
  if (value.find_first_of("\r\n") != absl::string_view::npos || value.find('\0') != value.npos) {
    return absl::InvalidArgumentError(absl::StrCat(what, " contains a line break or NUL"));
  }
  return absl::OkStatus();
}

}  // namespace

// One sender WebSocket. Network state lives on `strand_`; what user threads touch (the inbox,
// the send budget, the end status) is behind `mu_`.
class SenderSession : public std::enable_shared_from_this<SenderSession> {
 public:
  SenderSession(asio::io_context& context, const SenderOptions& options,
                std::shared_ptr<const DialTarget> target)
      : options_(options),
        target_(std::move(target)),
        strand_(asio::make_strand(context)),
        ws_(strand_) {}

  // Dials and upgrades; `done` runs once on the strand.
  void Start(std::function<void(absl::Status)> done) {
    asio::dispatch(strand_, [self = shared_from_this(), done = std::move(done)]() mutable {
      self->connect_done_ = std::move(done);
      AsyncDial(self->ws_.next_layer(), self->target_,
                [self](absl::Status status) { self->OnDial(std::move(status)); });
    });
  }

  absl::Status Send(absl::string_view message) {
    if (message.size() > options_.max_message_bytes) {
      return absl::InvalidArgumentError(absl::StrCat("message of ", message.size(),
                                                     " bytes is over the limit of ",
                                                     options_.max_message_bytes));
    }
    absl::MutexLock lock(&mu_);
    const absl::Time deadline = WallNow() + options_.send_timeout;
    auto has_room = [&] {
      return ended_ || close_requested_ || send_queued_bytes_ == 0 ||
             send_queued_bytes_ + message.size() <= options_.send_queue_bytes;
    };
    while (!has_room()) {
      if (cv_.WaitWithDeadline(&mu_, deadline) && !has_room()) {
        return absl::DeadlineExceededError(
            absl::StrCat("send queue stayed full for ", absl::FormatDuration(options_.send_timeout)));
      }
    }
    if (ended_) return end_status_;
    if (close_requested_) return absl::FailedPreconditionError("channel is closing");
    send_queued_bytes_ += message.size();
    asio::post(strand_, [self = shared_from_this(), bytes = std::string(message)]() mutable {
      self->write_queue_.push_back(std::move(bytes));
      if (!self->writing_) self->DoWrite();
    });
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> Receive(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    const absl::Time deadline = WallNow() + timeout;
    while (inbox_.empty() && !ended_) {
      if (cv_.WaitWithDeadline(&mu_, deadline)) break;
    }
    if (!inbox_.empty()) {
      std::string message = std::move(inbox_.front());
      inbox_.pop_front();
      inbox_bytes_ -= message.size();
      if (read_paused_ && inbox_bytes_ < options_.receive_queue_bytes) {
        read_paused_ = false;
        asio::post(strand_, [self = shared_from_this()] { self->DoRead(); });
      }
      return message;
    }
    if (ended_) return end_status_;
    return absl::DeadlineExceededError(
        absl::StrCat("no message within ", absl::FormatDuration(timeout)));
  }

  // Starts the close handshake and waits for its end (or close_timeout).
  absl::Status Close(uint32_t code, absl::string_view reason) {
    {
      absl::MutexLock lock(&mu_);
      if (ended_ && !close_requested_) {
        return absl::FailedPreconditionError(
            absl::StrCat("channel had already ended: ", end_status_.message()));
      }
      if (!close_requested_) {
        close_requested_ = true;
        asio::post(strand_, [self = shared_from_this(), code,
                             reason = std::string(reason.substr(0, kMaxCloseReason))]() mutable {
          self->StartClose(code, std::move(reason));
        });
      }
      const absl::Time deadline = WallNow() + options_.close_timeout;
      while (!ended_) {
        if (cv_.WaitWithDeadline(&mu_, deadline)) break;
      }
      if (ended_) return close_error_;
    }
    // No answer in time: drop the connection.
    asio::post(strand_, [self = shared_from_this()] { self->ws_.next_layer().Abort(); });
    return absl::DeadlineExceededError(
        absl::StrCat("the relay did not answer the close within ",
                     absl::FormatDuration(options_.close_timeout)));
  }

  std::optional<uint32_t> close_code() const {
    absl::MutexLock lock(&mu_);
    return close_code_;
  }

  std::string close_reason() const {
    absl::MutexLock lock(&mu_);
    return close_reason_;
  }

 private:
  void OnDial(absl::Status status) {
    if (!status.ok()) return FinishConnect(std::move(status));
    websocket::stream_base::timeout timeouts;
    timeouts.handshake_timeout = absl::ToChronoMilliseconds(options_.handshake_timeout);
    timeouts.idle_timeout = absl::ToChronoMilliseconds(options_.idle_timeout);
    timeouts.keep_alive_pings = true;
    ws_.set_option(timeouts);
    ws_.set_option(websocket::stream_base::decorator(
        [token = options_.token, headers = options_.headers](websocket::request_type& request) {
          request.set(http::field::user_agent, "tether-relay-client");
          for (const auto& [name, value] : headers) request.set(name, value);
          request.set(http::field::authorization, token);
        }));
    ws_.read_message_max(options_.max_message_bytes);
    ws_.binary(true);
    ws_.async_handshake(response_, target_->endpoint.HostHeader(),
                        absl::StrCat("/$hc/", options_.entity, "?action=connect",
                                     options_.listener_id.empty()
                                         ? ""
                                         : absl::StrCat("&id=", options_.listener_id)),
                        beast::bind_front_handler(&SenderSession::OnHandshake, shared_from_this()));
  }

  void OnHandshake(beast::error_code ec) {
    if (ec == websocket::error::upgrade_declined) {
      ws_.next_layer().Abort();
      return FinishConnect(HttpRefusalStatus(
          absl::StrCat("relay ", target_->endpoint.ToString(), " refused a channel to ",
                       options_.entity),
          static_cast<int>(response_.result_int()), View(response_.reason()), response_.body()));
    }
    if (ec) {
      ws_.next_layer().Abort();
      return FinishConnect(
          AsioStatus(ec, absl::StrCat("WebSocket upgrade with ", target_->Describe())));
    }
    open_ = true;
    FinishConnect(absl::OkStatus());
    DoRead();
  }

  void FinishConnect(absl::Status status) {
    if (!status.ok()) {
      absl::MutexLock lock(&mu_);
      ended_ = true;
      end_status_ = status;
      cv_.SignalAll();
    }
    auto done = std::move(connect_done_);
    connect_done_ = nullptr;
    if (done) done(std::move(status));
  }

  void DoRead() {
    if (!open_) return;
    ws_.async_read(read_buffer_,
                   beast::bind_front_handler(&SenderSession::OnRead, shared_from_this()));
  }

  void OnRead(beast::error_code ec, std::size_t) {
    if (ec) return OnReadError(ec);
    std::string message = beast::buffers_to_string(read_buffer_.data());
    read_buffer_.consume(read_buffer_.size());
    {
      absl::MutexLock lock(&mu_);
      if (ended_) return;
      inbox_bytes_ += message.size();
      inbox_.push_back(std::move(message));
      cv_.SignalAll();
      if (inbox_bytes_ >= options_.receive_queue_bytes) {
        read_paused_ = true;  // Receive() resumes reading
        return;
      }
    }
    DoRead();
  }

  void OnReadError(beast::error_code ec) {
    open_ = false;
    if (closing_) return EndLocally();
    if (ec == websocket::error::closed) {
      const websocket::close_reason& reason = ws_.reason();
      return End(ClosedStatus(absl::StatusCode::kAborted, reason.code, reason.reason.c_str(),
                              "channel"),
                 reason.code, reason.reason.c_str());
    }
    ws_.next_layer().Abort();
    absl::Status lost = AsioStatus(ec, "connection to the relay lost");
    End(ClosedStatus(absl::StatusCode::kUnavailable, kAbnormalClosure, lost.message(), "channel"),
        kAbnormalClosure, std::string(lost.message()));
  }

  void DoWrite() {
    if (write_queue_.empty() || !open_) {
      writing_ = false;
      if (close_pending_) DoClose();
      return;
    }
    writing_ = true;
    ws_.async_write(asio::buffer(write_queue_.front()),
                    beast::bind_front_handler(&SenderSession::OnWrite, shared_from_this()));
  }

  void OnWrite(beast::error_code ec, std::size_t) {
    {
      absl::MutexLock lock(&mu_);
      send_queued_bytes_ -= write_queue_.front().size();
      cv_.SignalAll();
    }
    write_queue_.pop_front();
    if (ec) {
      // The read side reports how the connection ended.
      writing_ = false;
      ws_.next_layer().Abort();
      return;
    }
    DoWrite();
  }

  void StartClose(uint32_t code, std::string reason) {
    local_close_code_ = code;
    local_close_reason_ = std::move(reason);
    if (!open_) return EndLocally();
    close_pending_ = true;
    if (!writing_) DoClose();
  }

  void DoClose() {
    close_pending_ = false;
    if (closing_) return;
    closing_ = true;
    websocket::close_reason reason;
    reason.code = static_cast<uint16_t>(local_close_code_);
    reason.reason = local_close_reason_;
    ws_.async_close(reason, [self = shared_from_this()](beast::error_code ec) {
      if (ec) {
        self->ws_.next_layer().Abort();
        absl::MutexLock lock(&self->mu_);
        self->close_error_ = AsioStatus(ec, "close handshake");
      }
      self->EndLocally();
    });
  }

  void EndLocally() {
    End(ClosedStatus(absl::StatusCode::kCancelled, local_close_code_, local_close_reason_,
                     "channel closed by this side"),
        local_close_code_, local_close_reason_);
  }

  void End(absl::Status status, uint32_t code, std::string reason) {
    absl::MutexLock lock(&mu_);
    if (ended_) return;
    ended_ = true;
    end_status_ = std::move(status);
    close_code_ = code;
    close_reason_ = std::move(reason);
    cv_.SignalAll();
  }

  const SenderOptions options_;
  const std::shared_ptr<const DialTarget> target_;
  asio::strand<asio::io_context::executor_type> strand_;

  // Strand only.
  websocket::stream<MaybeTlsStream> ws_;
  websocket::response_type response_;
  std::function<void(absl::Status)> connect_done_;
  beast::flat_buffer read_buffer_;
  std::deque<std::string> write_queue_;
  bool open_ = false;
  bool writing_ = false;
  bool close_pending_ = false;  // close once the write queue is flushed
  bool closing_ = false;        // async_close issued
  uint32_t local_close_code_ = 1000;
  std::string local_close_reason_;

  mutable absl::Mutex mu_;
  absl::CondVar cv_;
  std::deque<std::string> inbox_ ABSL_GUARDED_BY(mu_);
  std::size_t inbox_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool read_paused_ ABSL_GUARDED_BY(mu_) = false;
  std::size_t send_queued_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool close_requested_ ABSL_GUARDED_BY(mu_) = false;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status end_status_ ABSL_GUARDED_BY(mu_);
  absl::Status close_error_ ABSL_GUARDED_BY(mu_);
  std::optional<uint32_t> close_code_ ABSL_GUARDED_BY(mu_);
  std::string close_reason_ ABSL_GUARDED_BY(mu_);
};

}  // namespace internal

SenderChannel::SenderChannel(std::unique_ptr<internal::IoThread> io,
                             std::shared_ptr<internal::SenderSession> session)
    : io_(std::move(io)), session_(std::move(session)) {}

SenderChannel::~SenderChannel() {
  Close().IgnoreError();
  io_->Stop();
}

absl::Status SenderChannel::Send(absl::string_view message) { return session_->Send(message); }

absl::StatusOr<std::string> SenderChannel::Receive(absl::Duration timeout) {
  return session_->Receive(timeout);
}

absl::Status SenderChannel::Close(uint32_t code, absl::string_view reason) {
  return session_->Close(code, reason);
}

std::optional<uint32_t> SenderChannel::close_code() const { return session_->close_code(); }

std::string SenderChannel::close_reason() const { return session_->close_reason(); }

absl::StatusOr<std::unique_ptr<SenderChannel>> RelaySender::Connect(const SenderOptions& options) {
  RETURN_IF_ERROR(ValidateRelayName("entity", options.entity));
  if (options.token.empty()) return absl::InvalidArgumentError("token is empty");
  RETURN_IF_ERROR(internal::CheckHeaderValue("token", options.token));
  for (const auto& [name, value] : options.headers) {
    if (name.empty() || absl::EqualsIgnoreCase(name, "authorization")) {
      return absl::InvalidArgumentError(absl::StrCat("header name '", name, "' is not allowed"));
    }
    RETURN_IF_ERROR(internal::CheckHeaderValue(absl::StrCat("header ", name), name));
    RETURN_IF_ERROR(internal::CheckHeaderValue(absl::StrCat("header ", name), value));
  }
  if (options.max_message_bytes == 0 || options.send_queue_bytes == 0 ||
      options.receive_queue_bytes == 0) {
    return absl::InvalidArgumentError("message and queue limits must be positive");
  }
  ASSIGN_OR_RETURN(auto target, internal::MakeDialTarget(options.relay_url, options.proxy,
                                                         options.ca_file, options.connect_timeout));
  auto io = std::make_unique<internal::IoThread>();
  auto session = std::make_shared<internal::SenderSession>(io->context(), options, target);
  auto promise = std::make_shared<std::promise<absl::Status>>();
  std::future<absl::Status> result = promise->get_future();
  session->Start([promise](absl::Status status) { promise->set_value(std::move(status)); });
  // The dial and the WebSocket handshake have their own timeouts; this is a safety net.
  const absl::Duration limit =
      options.connect_timeout + options.handshake_timeout + absl::Seconds(5);
  if (result.wait_for(absl::ToChronoMilliseconds(limit)) != std::future_status::ready) {
    io->Stop();
    return absl::DeadlineExceededError(absl::StrCat("connecting to the relay took over ",
                                                    absl::FormatDuration(limit)));
  }
  absl::Status status = result.get();
  if (!status.ok()) {
    io->Stop();
    return status;
  }
  return std::unique_ptr<SenderChannel>(new SenderChannel(std::move(io), std::move(session)));
}

}  // namespace tether::net
