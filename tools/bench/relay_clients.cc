#include "tools/bench/relay_clients.h"

#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <chrono>
#include <deque>
#include <type_traits>
#include <utility>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/proto/relay.pb.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24  // linux/in.h; glibc's netinet/in.h may lack it
#endif

namespace tether::bench {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;
using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

constexpr auto kConnectTimeout = std::chrono::seconds(10);
constexpr auto kHandshakeTimeout = std::chrono::seconds(10);
// A serialized RelayFrame whose first byte is this tag holds `data` (field 4, length-delimited):
// the oneof is the message's only top-level field, so it comes first.
constexpr unsigned char kDataFrameTag = (4 << 3) | 2;

absl::Status ErrorStatus(absl::string_view stage, const beast::error_code& ec) {
  return absl::UnavailableError(absl::StrCat(stage, ": ", ec.message()));
}

// Opens `socket` and, when asked, binds it to a source address; the port is chosen at connect
// time (IP_BIND_ADDRESS_NO_PORT), so each source address has the whole ephemeral range per
// destination.
beast::error_code OpenFrom(tcp::socket& socket, uint32_t source_ip) {
  beast::error_code ec;
  socket.open(tcp::v4(), ec);
  if (ec || source_ip == 0) return ec;
  int one = 1;
  setsockopt(socket.native_handle(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
  socket.bind(tcp::endpoint(net::ip::address_v4(source_ip), 0), ec);
  return ec;
}

// TCP connect, TLS handshake when Stream is TLS, WebSocket handshake with the Authorization
// header. `done` runs on the stream's executor. `dial` and `response` must outlive the operation
// (they are members of the connection object that `done` keeps alive).
template <class Stream>
void ConnectWebSocket(websocket::stream<Stream>& ws, const Dial& dial,
                      websocket::response_type& response, std::function<void(absl::Status)> done) {
  auto& lowest = beast::get_lowest_layer(ws);
  if (beast::error_code ec = OpenFrom(lowest.socket(), dial.source_ip)) {
    return done(ErrorStatus("bind", ec));
  }
  auto handshake = [&ws, &dial, &response, done]() {
    beast::get_lowest_layer(ws).expires_never();
    websocket::stream_base::timeout timeout =
        websocket::stream_base::timeout::suggested(beast::role_type::client);
    timeout.handshake_timeout = kHandshakeTimeout;
    ws.set_option(timeout);
    if (!dial.authorization.empty()) {
      ws.set_option(websocket::stream_base::decorator(
          [auth = dial.authorization](websocket::request_type& req) {
            req.set(http::field::authorization, auth);
          }));
    }
    ws.binary(true);
    ws.async_handshake(response, absl::StrCat("127.0.0.1:", dial.port), dial.target,
                       [&response, done](beast::error_code ec) {
                         if (!ec) return done(absl::OkStatus());
                         if (ec == websocket::error::upgrade_declined) {
                           std::string body = response.body();
                           while (!body.empty() && body.back() == '\n') body.pop_back();
                           return done(absl::UnavailableError(absl::StrCat(
                               "handshake refused: HTTP ", response.result_int(), " ", body)));
                         }
                         done(ErrorStatus("websocket handshake", ec));
                       });
  };
  lowest.expires_after(kConnectTimeout);
  lowest.async_connect(tcp::endpoint(net::ip::address_v4::loopback(), dial.port),
                       [&ws, handshake, done](beast::error_code ec) {
                         if (ec) return done(ErrorStatus("connect", ec));
                         beast::error_code ignored;
                         beast::get_lowest_layer(ws).socket().set_option(tcp::no_delay(true),
                                                                         ignored);
                         if constexpr (std::is_same_v<Stream, TlsStream>) {
                           ws.next_layer().async_handshake(
                               ssl::stream_base::client, [handshake, done](beast::error_code ec) {
                                 if (ec) return done(ErrorStatus("tls handshake", ec));
                                 handshake();
                               });
                         } else {
                           handshake();
                         }
                       });
}

// ---------------------------------------------------------------------------------------------
class EchoSenderImpl : public EchoSender, public std::enable_shared_from_this<EchoSenderImpl> {
 public:
  EchoSenderImpl(net::io_context& ioc, Dial dial, std::shared_ptr<const std::string> payload,
                 std::shared_ptr<ClientCounters> counters)
      : ws_(net::make_strand(ioc)),
        dial_(std::move(dial)),
        payload_(std::move(payload)),
        counters_(std::move(counters)) {}

  void Connect(std::shared_ptr<CompletionGroup> group) override {
    group->Add();
    net::dispatch(ws_.get_executor(), [self = shared_from_this(), group] {
      ConnectWebSocket(self->ws_, self->dial_, self->response_, [self, group](absl::Status s) {
        if (s.ok()) {
          self->connected_ = true;
          self->DoRead();
        }
        group->Done(std::move(s));
      });
    });
  }

  void MeasureLatency(int warmup, int samples, std::shared_ptr<std::vector<double>> out,
                      std::shared_ptr<CompletionGroup> group) override {
    group->Add();
    net::post(ws_.get_executor(), [self = shared_from_this(), warmup, samples, out, group] {
      if (!self->connected_ || self->closing_) {
        return group->Done(absl::FailedPreconditionError("sender not connected"));
      }
      self->mode_ = Mode::kLatency;
      self->warmup_left_ = warmup;
      self->samples_left_ = samples;
      self->samples_ = out;
      self->pending_group_ = group;
      self->SendOne();
    });
  }

  void StartLoad(int window) override {
    net::post(ws_.get_executor(), [self = shared_from_this(), window] {
      if (!self->connected_ || self->closing_) return;
      self->mode_ = Mode::kLoad;
      self->stopping_ = false;
      for (int i = 0; i < window; ++i) self->SendOne();
    });
  }

  void StopLoad(std::shared_ptr<CompletionGroup> group) override {
    group->Add();
    net::post(ws_.get_executor(), [self = shared_from_this(), group] {
      self->stopping_ = true;
      if (self->in_flight_ == 0 || !self->connected_ || self->failed_) {
        group->Done(self->failed_ ? absl::UnavailableError("sender failed") : absl::OkStatus());
        return;
      }
      self->pending_group_ = group;
    });
  }

  void Close(std::shared_ptr<CompletionGroup> group) override {
    group->Add();
    net::post(ws_.get_executor(), [self = shared_from_this(), group] {
      if (!self->connected_ || self->failed_ || self->closing_) {
        return group->Done(absl::OkStatus());
      }
      self->closing_ = true;
      self->ws_.async_close(websocket::close_code::normal, [self, group](beast::error_code ec) {
        group->Done(ec ? ErrorStatus("sender close", ec) : absl::OkStatus());
      });
    });
  }

 private:
  enum class Mode { kIdle, kLatency, kLoad };

  void SendOne() {
    ++in_flight_;
    ++to_write_;
    DoWrite();
  }

  void DoWrite() {
    if (writing_ || to_write_ == 0 || closing_ || failed_) return;
    writing_ = true;
    --to_write_;
    if (mode_ == Mode::kLatency) sent_at_ = Clock::now();
    ws_.async_write(net::buffer(*payload_),
                    [self = shared_from_this()](beast::error_code ec, std::size_t) {
                      self->writing_ = false;
                      if (ec) return self->Fail(ErrorStatus("sender write", ec));
                      self->counters_->sent.fetch_add(1, std::memory_order_relaxed);
                      self->DoWrite();
                    });
  }

  void DoRead() {
    ws_.async_read(buffer_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      self->OnRead(ec);
    });
  }

  void OnRead(beast::error_code ec) {
    if (ec) {
      if (!closing_) Fail(ErrorStatus("sender read", ec));
      return;
    }
    Clock::time_point now = Clock::now();
    std::size_t size = buffer_.size();
    buffer_.consume(size);
    if (in_flight_ == 0 || size != payload_->size()) {
      Fail(absl::DataLossError(
          absl::StrCat("sender got an unexpected message of ", size, " bytes")));
      return;
    }
    --in_flight_;
    counters_->echoed.fetch_add(1, std::memory_order_relaxed);
    if (mode_ == Mode::kLatency) {
      if (warmup_left_ > 0) {
        --warmup_left_;
      } else {
        samples_->push_back(std::chrono::duration<double, std::micro>(now - sent_at_).count());
        --samples_left_;
      }
      if (samples_left_ > 0) {
        SendOne();
      } else {
        mode_ = Mode::kIdle;
        FinishPending(absl::OkStatus());
      }
    } else if (mode_ == Mode::kLoad) {
      if (!stopping_) {
        SendOne();
      } else if (in_flight_ == 0) {
        mode_ = Mode::kIdle;
        FinishPending(absl::OkStatus());
      }
    }
    DoRead();
  }

  void Fail(absl::Status status) {
    if (failed_) return;
    failed_ = true;
    counters_->Error(std::string(status.message()));
    FinishPending(std::move(status));
  }

  void FinishPending(absl::Status status) {
    if (std::shared_ptr<CompletionGroup> group = std::exchange(pending_group_, nullptr)) {
      group->Done(std::move(status));
    }
  }

  websocket::stream<PlainStream> ws_;
  Dial dial_;
  websocket::response_type response_;
  std::shared_ptr<const std::string> payload_;
  std::shared_ptr<ClientCounters> counters_;
  beast::flat_buffer buffer_;

  Mode mode_ = Mode::kIdle;
  bool connected_ = false;
  bool closing_ = false;
  bool failed_ = false;
  bool writing_ = false;
  bool stopping_ = false;
  int64_t in_flight_ = 0;
  int64_t to_write_ = 0;
  int warmup_left_ = 0;
  int samples_left_ = 0;
  std::shared_ptr<std::vector<double>> samples_;
  Clock::time_point sent_at_;
  std::shared_ptr<CompletionGroup> pending_group_;
};

// ---------------------------------------------------------------------------------------------
class EchoListenerImpl : public EchoListener,
                         public std::enable_shared_from_this<EchoListenerImpl> {
 public:
  EchoListenerImpl(net::io_context& ioc, Dial dial, std::shared_ptr<ClientCounters> counters)
      : ws_(net::make_strand(ioc)), dial_(std::move(dial)), counters_(std::move(counters)) {}

  void Connect(std::shared_ptr<CompletionGroup> group) override {
    group->Add();
    net::dispatch(ws_.get_executor(), [self = shared_from_this(), group] {
      ConnectWebSocket(self->ws_, self->dial_, self->response_, [self, group](absl::Status s) {
        if (s.ok()) {
          self->connected_ = true;
          self->DoRead();
        }
        group->Done(std::move(s));
      });
    });
  }

  void Close(std::shared_ptr<CompletionGroup> group) override {
    group->Add();
    net::post(ws_.get_executor(), [self = shared_from_this(), group] {
      if (!self->connected_ || self->failed_ || self->closing_) {
        return group->Done(absl::OkStatus());
      }
      self->closing_ = true;
      self->ws_.async_close(websocket::close_code::normal, [self, group](beast::error_code ec) {
        group->Done(ec ? ErrorStatus("listener close", ec) : absl::OkStatus());
      });
    });
  }

  uint64_t channels_accepted() const override { return accepted_.load(); }

 private:
  void DoRead() {
    ws_.async_read(buffer_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      self->OnRead(ec);
    });
  }

  void OnRead(beast::error_code ec) {
    if (ec) {
      if (!closing_) Fail(absl::StrCat("listener read: ", ec.message()));
      return;
    }
    auto data = buffer_.cdata();
    const auto* bytes = static_cast<const unsigned char*>(data.data());
    if (data.size() > 0 && bytes[0] == kDataFrameTag) {
      // Data{channel_id, payload} echoed on the same channel is the very same frame.
      Queue(std::string(reinterpret_cast<const char*>(bytes), data.size()));
    } else {
      HandleControlFrame(bytes, data.size());
    }
    buffer_.consume(buffer_.size());
    DoRead();
  }

  void HandleControlFrame(const unsigned char* bytes, std::size_t size) {
    proto::RelayFrame frame;
    if (!frame.ParseFromArray(bytes, static_cast<int>(size))) {
      return Fail("listener got an unparsable frame");
    }
    proto::RelayFrame reply;
    switch (frame.kind_case()) {
      case proto::RelayFrame::kOpen:
        reply.mutable_accept()->set_channel_id(frame.open().channel_id());
        accepted_.fetch_add(1, std::memory_order_relaxed);
        break;
      case proto::RelayFrame::kPing:
        reply.mutable_pong()->set_nonce(frame.ping().nonce());
        reply.mutable_pong()->set_ping_sent_at_unix_ms(frame.ping().sent_at_unix_ms());
        break;
      case proto::RelayFrame::kClose:
        // Senders closing at the end of a run give 1000; anything else is worth reporting.
        if (frame.close().code() != 1000) {
          counters_->unexpected_closes.fetch_add(1, std::memory_order_relaxed);
          counters_->Error(absl::StrCat("listener got Close{channel ", frame.close().channel_id(),
                                        ", code ", frame.close().code(), ", \"",
                                        frame.close().reason(), "\"}"));
        }
        return;
      default:
        return Fail(absl::StrCat("listener got an unexpected frame kind ", frame.kind_case()));
    }
    Queue(reply.SerializeAsString());
  }

  void Queue(std::string bytes) {
    queue_.push_back(std::move(bytes));
    DoWrite();
  }

  void DoWrite() {
    if (writing_ || queue_.empty() || closing_ || failed_) return;
    writing_ = true;
    ws_.async_write(net::buffer(queue_.front()),
                    [self = shared_from_this()](beast::error_code ec, std::size_t) {
                      self->writing_ = false;
                      self->queue_.pop_front();
                      if (ec) return self->Fail(absl::StrCat("listener write: ", ec.message()));
                      self->DoWrite();
                    });
  }

  void Fail(std::string what) {
    if (failed_) return;
    failed_ = true;
    counters_->Error(std::move(what));
  }

  websocket::stream<PlainStream> ws_;
  Dial dial_;
  websocket::response_type response_;
  std::shared_ptr<ClientCounters> counters_;
  beast::flat_buffer buffer_;
  std::deque<std::string> queue_;
  std::atomic<uint64_t> accepted_{0};
  bool connected_ = false;
  bool closing_ = false;
  bool failed_ = false;
  bool writing_ = false;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
void CompletionGroup::Add(int n) {
  absl::MutexLock lock(&mu_);
  pending_ += n;
}

void CompletionGroup::Done(absl::Status status) {
  absl::MutexLock lock(&mu_);
  --pending_;
  if (!status.ok() && first_error_.ok()) first_error_ = std::move(status);
}

absl::Status CompletionGroup::Wait(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto all_done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return pending_ <= 0; };
  if (!mu_.AwaitWithTimeout(absl::Condition(&all_done), timeout)) {
    return absl::DeadlineExceededError(
        absl::StrCat(pending_, " operations still pending after ", absl::FormatDuration(timeout),
                     first_error_.ok() ? "" : "; first error: ", first_error_.message()));
  }
  return first_error_;
}

void ClientCounters::Error(std::string what) {
  errors_.fetch_add(1);
  absl::MutexLock lock(&mu_);
  if (first_error_.empty()) first_error_ = std::move(what);
}

std::string ClientCounters::first_error() const {
  absl::MutexLock lock(&mu_);
  return first_error_;
}

std::shared_ptr<EchoSender> EchoSender::Create(net::io_context& ioc, Dial dial,
                                               std::shared_ptr<const std::string> payload,
                                               std::shared_ptr<ClientCounters> counters) {
  return std::make_shared<EchoSenderImpl>(ioc, std::move(dial), std::move(payload), counters);
}

std::shared_ptr<EchoListener> EchoListener::Create(net::io_context& ioc, Dial dial,
                                                   std::shared_ptr<ClientCounters> counters) {
  return std::make_shared<EchoListenerImpl>(ioc, std::move(dial), counters);
}

// ---------------------------------------------------------------------------------------------
// Idle listeners.

class IdleConnection {
 public:
  virtual ~IdleConnection() = default;
  virtual void Start() = 0;
  virtual void Close() = 0;
};

struct IdleListenerPool::State {
  std::unique_ptr<ssl::context> tls;
  std::function<Dial(int)> dial;

  absl::Mutex mu;
  int count ABSL_GUARDED_BY(mu) = 0;
  int next ABSL_GUARDED_BY(mu) = 0;
  int64_t connected ABSL_GUARDED_BY(mu) = 0;
  int64_t failed ABSL_GUARDED_BY(mu) = 0;
  int64_t open ABSL_GUARDED_BY(mu) = 0;  // connected and still reading
  bool closing ABSL_GUARDED_BY(mu) = false;
  std::string first_error ABSL_GUARDED_BY(mu);
  std::vector<std::shared_ptr<IdleConnection>> connections ABSL_GUARDED_BY(mu);
  std::atomic<int64_t> disconnected{0};
};

namespace {

template <class Stream>
class IdleConnectionImpl : public IdleConnection,
                           public std::enable_shared_from_this<IdleConnectionImpl<Stream>> {
 public:
  IdleConnectionImpl(net::io_context& ioc, std::shared_ptr<IdleListenerPool::State> state,
                     Dial dial)
      : ioc_(ioc),
        ws_(MakeStream(ioc, state.get())),
        state_(std::move(state)),
        dial_(std::move(dial)) {}

  void Start() override {
    net::post(ws_.get_executor(), [self = this->shared_from_this()] {
      ConnectWebSocket(self->ws_, self->dial_, self->response_,
                       [self](absl::Status s) { self->OnConnected(std::move(s)); });
    });
  }

  void Close() override {
    net::post(ws_.get_executor(),
              [self = this->shared_from_this()] { beast::get_lowest_layer(self->ws_).close(); });
  }

 private:
  static websocket::stream<Stream> MakeStream(net::io_context& ioc,
                                              IdleListenerPool::State* state) {
    if constexpr (std::is_same_v<Stream, TlsStream>) {
      return websocket::stream<Stream>(net::make_strand(ioc), *state->tls);
    } else {
      return websocket::stream<Stream>(net::make_strand(ioc));
    }
  }

  void OnConnected(absl::Status status);

  void DoRead() {
    ws_.async_read(buffer_, [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->OnReadEnded();
      // The relay sends idle listeners nothing but WebSocket pings, which Beast answers itself.
      self->buffer_.consume(self->buffer_.size());
      self->DoRead();
    });
  }

  void OnReadEnded() {
    absl::MutexLock lock(&state_->mu);
    --state_->open;
    if (!state_->closing) state_->disconnected.fetch_add(1);
  }

  net::io_context& ioc_;
  websocket::stream<Stream> ws_;
  std::shared_ptr<IdleListenerPool::State> state_;
  Dial dial_;
  websocket::response_type response_;
  beast::flat_buffer buffer_;
};

// Starts connection `index` of the pool.
void LaunchIdle(net::io_context& ioc, const std::shared_ptr<IdleListenerPool::State>& state,
                int index);

template <class Stream>
void IdleConnectionImpl<Stream>::OnConnected(absl::Status status) {
  std::vector<int> launch;
  {
    absl::MutexLock lock(&state_->mu);
    if (status.ok()) {
      ++state_->connected;
      ++state_->open;
    } else {
      ++state_->failed;
      if (state_->first_error.empty()) state_->first_error = std::string(status.message());
    }
    if (state_->next < state_->count && !state_->closing) launch.push_back(state_->next++);
  }
  if (status.ok()) DoRead();
  for (int index : launch) LaunchIdle(ioc_, state_, index);
}

void LaunchIdle(net::io_context& ioc, const std::shared_ptr<IdleListenerPool::State>& state,
                int index) {
  Dial dial = state->dial(index);
  std::shared_ptr<IdleConnection> connection;
  if (state->tls) {
    connection = std::make_shared<IdleConnectionImpl<TlsStream>>(ioc, state, std::move(dial));
  } else {
    connection = std::make_shared<IdleConnectionImpl<PlainStream>>(ioc, state, std::move(dial));
  }
  {
    absl::MutexLock lock(&state->mu);
    state->connections.push_back(connection);
  }
  connection->Start();
}

}  // namespace

IdleListenerPool::IdleListenerPool(net::io_context& ioc, bool tls)
    : ioc_(ioc), state_(std::make_shared<State>()) {
  if (tls) {
    state_->tls = std::make_unique<ssl::context>(ssl::context::tls_client);
    state_->tls->set_verify_mode(ssl::verify_none);
    // Keeps the benchmark's own memory down; the relay's figure is what is measured.
    SSL_CTX_set_mode(state_->tls->native_handle(), SSL_MODE_RELEASE_BUFFERS);
  }
}

IdleListenerPool::~IdleListenerPool() { CloseAll(absl::Seconds(10)); }

IdleListenerPool::ConnectResult IdleListenerPool::ConnectAll(int count, int concurrency,
                                                             std::function<Dial(int)> dial,
                                                             absl::Duration timeout) {
  absl::Time start = absl::Now();
  state_->dial = std::move(dial);
  int first_batch = 0;
  {
    absl::MutexLock lock(&state_->mu);
    state_->count = count;
    state_->next = std::min(count, concurrency);
    first_batch = state_->next;
  }
  for (int i = 0; i < first_batch; ++i) LaunchIdle(ioc_, state_, i);

  ConnectResult result;
  absl::MutexLock lock(&state_->mu);
  auto finished = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    return state_->connected + state_->failed >= state_->count;
  };
  if (!state_->mu.AwaitWithTimeout(absl::Condition(&finished), timeout)) {
    state_->count = state_->next;  // launch no more
    if (state_->first_error.empty()) state_->first_error = "timed out connecting";
  }
  result.connected = state_->connected;
  result.failed = state_->failed;
  result.first_error = state_->first_error;
  result.elapsed = absl::Now() - start;
  return result;
}

int64_t IdleListenerPool::disconnected() const { return state_->disconnected.load(); }

void IdleListenerPool::CloseAll(absl::Duration timeout) {
  std::vector<std::shared_ptr<IdleConnection>> connections;
  {
    absl::MutexLock lock(&state_->mu);
    state_->closing = true;
    connections.swap(state_->connections);
  }
  for (auto& c : connections) c->Close();
  connections.clear();
  absl::MutexLock lock(&state_->mu);
  auto closed = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) { return state_->open <= 0; };
  state_->mu.AwaitWithTimeout(absl::Condition(&closed), timeout);
}

absl::StatusOr<std::string> HttpGet(uint16_t port, bool tls, const std::string& target) {
  net::io_context ioc;
  ssl::context ctx(ssl::context::tls_client);
  ctx.set_verify_mode(ssl::verify_none);
  TlsStream stream(ioc, ctx);
  beast::tcp_stream& lowest = beast::get_lowest_layer(stream);
  beast::error_code ec;
  lowest.expires_after(std::chrono::seconds(10));
  lowest.connect(tcp::endpoint(net::ip::address_v4::loopback(), port), ec);
  if (ec) return ErrorStatus("connect", ec);
  // Blocking calls ignore tcp_stream's expiry: the socket's own timeouts keep a stuck relay from
  // hanging the benchmark.
  timeval limit{10, 0};
  setsockopt(lowest.socket().native_handle(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit));
  setsockopt(lowest.socket().native_handle(), SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof(limit));
  http::request<http::empty_body> request(http::verb::get, target, 11);
  request.set(http::field::host, absl::StrCat("127.0.0.1:", port));
  request.keep_alive(false);
  http::response<http::string_body> response;
  beast::flat_buffer buffer;
  if (tls) {
    stream.handshake(ssl::stream_base::client, ec);
    if (!ec) http::write(stream, request, ec);
    if (!ec) http::read(stream, buffer, response, ec);
  } else {
    http::write(lowest, request, ec);
    if (!ec) http::read(lowest, buffer, response, ec);
  }
  if (ec) return ErrorStatus(absl::StrCat("GET ", target), ec);
  if (response.result_int() != 200) {
    return absl::UnavailableError(absl::StrCat("GET ", target, ": HTTP ", response.result_int()));
  }
  return std::move(response.body());
}

}  // namespace tether::bench
