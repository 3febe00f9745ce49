#include "cloud/http/http_server.h"

#include <openssl/ssl.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <exception>
#include <map>
#include <optional>
#include <thread>
#include <type_traits>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "common/base/log.h"
#include "common/base/service_main.h"
#include "common/base/status_macros.h"
#include "common/crypto/key_file.h"

namespace tether::cloud::http {

std::string Request::Header(absl::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (absl::EqualsIgnoreCase(key, name)) return value;
  }
  return "";
}

namespace {

namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

using BeastRequest = bhttp::request<bhttp::string_body>;
using BeastResponse = bhttp::response<bhttp::string_body>;

constexpr uint32_t kHeaderLimit = 16 * 1024;
// Bounds the polite part of closing (TLS close_notify, draining what the client still sends).
constexpr auto kCloseTimeout = std::chrono::seconds(2);
constexpr absl::Duration kMaxReadTimeout = absl::Hours(24);

std::string View(beast::string_view s) { return std::string(s.data(), s.size()); }

// ---------------------------------------------------------------------------------------------
// Parsing and building messages.

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// application/x-www-form-urlencoded decoding: %XX escapes and '+' for a space.
std::optional<std::string> PercentDecode(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '+') {
      out += ' ';
    } else if (c == '%') {
      if (i + 2 >= text.size()) return std::nullopt;
      int hi = HexValue(text[i + 1]);
      int lo = HexValue(text[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

// Fills `path` and `query` from `target` (origin-form only: it must start with '/').
bool ParseTarget(absl::string_view target, Request* request) {
  if (target.empty() || target[0] != '/') return false;
  std::size_t q = target.find('?');
  request->path = std::string(target.substr(0, q));
  if (q == absl::string_view::npos) return true;
  for (absl::string_view pair : absl::StrSplit(target.substr(q + 1), '&', absl::SkipEmpty())) {
    std::size_t eq = pair.find('=');
    std::optional<std::string> key = PercentDecode(pair.substr(0, eq));
    std::optional<std::string> value =
        PercentDecode(eq == absl::string_view::npos ? absl::string_view() : pair.substr(eq + 1));
    if (!key || !value) return false;
    request->query.emplace(*std::move(key), *std::move(value));  // the first value wins
  }
  return true;
}

// RFC 9110 token characters.
bool IsToken(absl::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (absl::ascii_isalnum(static_cast<unsigned char>(c))) continue;
    if (absl::string_view("!#$%&'*+-.^_`|~").find(c) == absl::string_view::npos) return false;
  }
  return true;
}

bool IsSafeValue(absl::string_view value) {
  return value.find_first_of(absl::string_view("\r\n\0", 3)) == absl::string_view::npos;
}

bool IsServerOwnedHeader(absl::string_view name) {
  return absl::EqualsIgnoreCase(name, "Content-Length") ||
         absl::EqualsIgnoreCase(name, "Transfer-Encoding") ||
         absl::EqualsIgnoreCase(name, "Connection");
}

// Turns a handler's Response into the message on the wire, with the default headers. Refuses
// (without touching `out` usefully) a response that would be malformed or inject headers.
absl::Status BuildResponse(const Response& in, unsigned version, bool keep_alive, bool head,
                           BeastResponse* out) {
  if (in.status < 200 || in.status > 599) {
    return absl::InvalidArgumentError(absl::StrCat("status ", in.status, " is not 200..599"));
  }
  if (!IsSafeValue(in.content_type)) {
    return absl::InvalidArgumentError("content_type contains CR, LF or NUL");
  }
  for (const auto& [name, value] : in.headers) {
    if (!IsToken(name)) return absl::InvalidArgumentError("a header name is not an HTTP token");
    if (!IsSafeValue(value)) {
      return absl::InvalidArgumentError(
          absl::StrCat("header ", name, " has CR, LF or NUL in its value"));
    }
  }
  auto handler_sets = [&in](absl::string_view name) {
    for (const auto& header : in.headers) {
      if (absl::EqualsIgnoreCase(header.first, name)) return true;
    }
    return false;
  };
  out->version(version);
  out->result(static_cast<unsigned>(in.status));
  const std::pair<absl::string_view, absl::string_view> defaults[] = {
      {"Server", "tether"},
      {"X-Content-Type-Options", "nosniff"},
      {"Cache-Control", "no-store"},
      {"Content-Type", in.content_type},
  };
  for (const auto& [name, value] : defaults) {
    if (handler_sets(name) || value.empty()) continue;
    out->set(beast::string_view(name.data(), name.size()),
             beast::string_view(value.data(), value.size()));
  }
  for (const auto& [name, value] : in.headers) {
    if (IsServerOwnedHeader(name)) continue;
    out->insert(beast::string_view(name), beast::string_view(value));
  }
  // 204 and 304 never carry a body (and Beast refuses to frame one).
  bool no_body = in.status == 204 || in.status == 304;
  out->body() = no_body ? std::string() : in.body;
  out->keep_alive(keep_alive);
  out->prepare_payload();
  // HEAD: the Content-Length of the body that a GET would get, and no body.
  if (head) out->body().clear();
  return absl::OkStatus();
}

Response TextResponse(int status, absl::string_view text) {
  Response response;
  response.status = status;
  response.body = absl::StrCat(text, "\n");
  return response;
}

// Calls the handler; nothing it throws gets past here.
Response CallHandler(const Handler& handler, const Request& request) {
  try {
    return handler(request);
  } catch (const std::exception& e) {
    LogError("http_handler_exception",
             {{"method", request.method}, {"path", request.path}, {"error", e.what()}});
  } catch (...) {
    LogError("http_handler_exception",
             {{"method", request.method}, {"path", request.path}, {"error", "unknown"}});
  }
  return TextResponse(500, "internal error");
}

// ---------------------------------------------------------------------------------------------
// Connections.

class Connection;

// What the acceptor and every connection share. Connections hold it by shared_ptr, so it
// outlives whichever of them goes last.
struct ServerState {
  Handler handler;
  std::size_t body_limit = 0;
  std::function<std::size_t(const Request&)> body_limit_for;
  std::chrono::milliseconds read_timeout{0};
  std::size_t max_connections = 0;
  std::unique_ptr<ssl::context> tls;  // null when plaintext

  std::atomic<std::size_t> connections{0};
  std::atomic<uint64_t> refused{0};

  absl::Mutex mu;
  uint64_t next_id ABSL_GUARDED_BY(mu) = 0;
  std::map<uint64_t, std::weak_ptr<Connection>> live ABSL_GUARDED_BY(mu);
};

// The type-erased side of a connection: counted while it exists, and closable by Stop().
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(std::shared_ptr<ServerState> state, std::string remote)
      : state_(std::move(state)), remote_(std::move(remote)) {
    state_->connections.fetch_add(1);
  }
  virtual ~Connection() {
    {
      absl::MutexLock lock(&state_->mu);
      state_->live.erase(id_);
    }
    state_->connections.fetch_sub(1);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void Register() {
    absl::MutexLock lock(&state_->mu);
    id_ = ++state_->next_id;
    state_->live.emplace(id_, weak_from_this());
  }

  virtual void Run() = 0;
  // Closes the socket at once. Only for Stop(), once no I/O thread runs.
  virtual void CloseNow() = 0;

 protected:
  const std::shared_ptr<ServerState> state_;
  const std::string remote_;

 private:
  uint64_t id_ = 0;
};

template <class Stream>
class Session : public Connection {
 public:
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

  Session(std::shared_ptr<ServerState> state, std::string remote, Stream stream)
      : Connection(std::move(state), std::move(remote)), stream_(std::move(stream)) {}

  void Run() override {
    net::dispatch(stream_.get_executor(), beast::bind_front_handler(&Session::OnRun, self()));
  }

  void CloseNow() override {
    beast::error_code ignored;
    beast::get_lowest_layer(stream_).socket().close(ignored);
  }

 private:
  std::shared_ptr<Session> self() {
    return std::static_pointer_cast<Session>(shared_from_this());
  }

  beast::tcp_stream& tcp() { return beast::get_lowest_layer(stream_); }

  void OnRun() {
    if constexpr (kTls) {
      tcp().expires_after(state_->read_timeout);
      stream_.async_handshake(ssl::stream_base::server,
                              beast::bind_front_handler(&Session::OnHandshake, self()));
    } else {
      DoReadHeader();
    }
  }

  void OnHandshake(beast::error_code ec) {
    if (ec) {
      Log(LogLevel::kDebug, "http_tls_handshake_failed",
          {{"remote", remote_}, {"error", ec.message()}});
      return Abort();
    }
    DoReadHeader();
  }

  void DoReadHeader() {
    parser_.emplace();
    parser_->header_limit(kHeaderLimit);
    parser_->body_limit(state_->body_limit);
    // Also the idle limit of a keep-alive connection.
    tcp().expires_after(state_->read_timeout);
    bhttp::async_read_header(stream_, buffer_, *parser_,
                             beast::bind_front_handler(&Session::OnReadHeader, self()));
  }

  void OnReadHeader(beast::error_code ec, std::size_t) {
    if (ec) return OnReadError(ec);
    if (state_->body_limit_for) {
      Request head;
      if (!HeadOf(parser_->get(), &head)) return Refuse(400, "malformed request target");
      const std::size_t limit = std::min(state_->body_limit, state_->body_limit_for(head));
      if (parser_->content_length().value_or(0) > limit) {
        return Refuse(413, absl::StrCat("request body is larger than ", limit, " bytes"));
      }
      parser_->body_limit(limit);  // a chunked body is counted as it arrives
    }
    if (!parser_->is_done() &&
        absl::EqualsIgnoreCase(View(parser_->get()[bhttp::field::expect]), "100-continue")) {
      // curl and others wait for this before sending a larger body.
      continue_.emplace(bhttp::status::continue_, 11);
      tcp().expires_after(state_->read_timeout);
      bhttp::async_write(stream_, *continue_,
                         beast::bind_front_handler(&Session::OnContinueWritten, self()));
      return;
    }
    DoReadBody();
  }

  void OnContinueWritten(beast::error_code ec, std::size_t) {
    if (ec) return Abort();
    DoReadBody();
  }

  void DoReadBody() {
    if (parser_->is_done()) return Handle();
    tcp().expires_after(state_->read_timeout);
    bhttp::async_read(stream_, buffer_, *parser_,
                      beast::bind_front_handler(&Session::OnReadBody, self()));
  }

  void OnReadBody(beast::error_code ec, std::size_t) {
    if (ec) return OnReadError(ec);
    Handle();
  }

  void OnReadError(beast::error_code ec) {
    if (ec == bhttp::error::end_of_stream) return Close();  // between requests: a normal close
    if (ec == beast::error::timeout) {
      Log(LogLevel::kDebug, "http_read_timeout", {{"remote", remote_}});
      return Abort();
    }
    if (ec == bhttp::error::body_limit) {
      return Refuse(413, absl::StrCat("request body is larger than ", state_->body_limit,
                                      " bytes"));
    }
    if (ec == bhttp::error::header_limit) return Refuse(431, "request header is too large");
    if (ec == bhttp::error::partial_message) return Abort();  // the client went away mid-request
    if (ec.category() == bhttp::make_error_code(bhttp::error::bad_target).category()) {
      return Refuse(400, "malformed request");
    }
    Abort();  // the transport failed (reset, TLS error, Stop)
  }

  // Answers a request that never reaches the handler, then closes.
  void Refuse(int status, absl::string_view reason) {
    LogInfo("http_request_refused",
            {{"remote", remote_}, {"status", absl::StrCat(status)}, {"reason", std::string(reason)}});
    Send(TextResponse(status, reason), 11, false, false);
  }

  // Method, target, path, query and headers of `raw`; false for an unparsable target.
  static bool HeadOf(const BeastRequest& raw, Request* request) {
    request->method = View(raw.method_string());
    request->target = View(raw.target());
    if (!ParseTarget(request->target, request)) return false;
    request->headers.reserve(std::distance(raw.begin(), raw.end()));
    for (const auto& field : raw) {
      request->headers.emplace_back(View(field.name_string()), View(field.value()));
    }
    return true;
  }

  void Handle() {
    BeastRequest raw = parser_->release();
    parser_.reset();
    Request request;
    if (!HeadOf(raw, &request)) return Refuse(400, "malformed request target");
    request.body = std::move(raw.body());
    Response response = CallHandler(state_->handler, request);
    Send(response, raw.version(), raw.keep_alive(), raw.method() == bhttp::verb::head);
  }

  void Send(const Response& response, unsigned version, bool keep_alive, bool head) {
    response_.emplace();
    absl::Status built = BuildResponse(response, version, keep_alive, head, &*response_);
    if (!built.ok()) {
      LogError("http_handler_bad_response", {{"remote", remote_}, {"error", built.ToString()}});
      response_.emplace();
      // Cannot fail: a plain 500.
      (void)BuildResponse(TextResponse(500, "internal error"), version, keep_alive, head,
                          &*response_);
    }
    tcp().expires_after(state_->read_timeout);
    bhttp::async_write(stream_, *response_, beast::bind_front_handler(&Session::OnWrite, self()));
  }

  void OnWrite(beast::error_code ec, std::size_t) {
    if (ec) return Abort();
    bool close = response_->need_eof();
    response_.reset();
    if (close) return Close();
    DoReadHeader();
  }

  // A polite close: TLS close_notify, or for plaintext a half-close followed by reading (and
  // dropping) what the client still sends, so that the kernel does not answer unread request
  // bytes with a reset that could destroy our last response before the client reads it.
  void Close() {
    tcp().expires_after(kCloseTimeout);
    if constexpr (kTls) {
      stream_.async_shutdown([self = self()](beast::error_code) { self->Abort(); });
    } else {
      beast::error_code ignored;
      tcp().socket().shutdown(tcp::socket::shutdown_send, ignored);
      DoDrain();
    }
  }

  void DoDrain() {
    tcp().async_read_some(net::buffer(drain_),
                          [self = self()](beast::error_code ec, std::size_t) {
                            if (ec) return self->Abort();
                            self->DoDrain();
                          });
  }

  void Abort() {
    beast::error_code ignored;
    tcp().socket().close(ignored);
  }

  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::optional<bhttp::response<bhttp::empty_body>> continue_;
  std::optional<BeastResponse> response_;
  std::array<char, 4096> drain_;
};

// ---------------------------------------------------------------------------------------------
// Start-up helpers.

struct ListenAddress {
  std::string host;
  tcp::endpoint endpoint;
};

absl::StatusOr<ListenAddress> ParseListen(absl::string_view listen) {
  auto invalid = [listen](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid listen address '", listen, "': ", why));
  };
  std::size_t colon = listen.rfind(':');
  if (colon == absl::string_view::npos) return invalid("expected host:port");
  absl::string_view host = listen.substr(0, colon);
  uint32_t port = 0;
  if (!absl::SimpleAtoi(listen.substr(colon + 1), &port) || port > 65535) {
    return invalid("bad port");
  }
  if (absl::ConsumePrefix(&host, "[")) {
    if (!absl::ConsumeSuffix(&host, "]")) return invalid("unbalanced '['");
  } else if (absl::StrContains(host, ':')) {
    return invalid("an IPv6 address needs brackets, as in [::1]:0");
  }
  if (host.empty()) return invalid("empty host");
  net::ip::address address;
  if (host == "localhost") {
    address = net::ip::address_v4::loopback();
  } else {
    beast::error_code ec;
    address = net::ip::make_address(std::string(host), ec);
    if (ec) return invalid("the host must be an IP address or localhost");
  }
  return ListenAddress{std::string(host), tcp::endpoint(address, static_cast<uint16_t>(port))};
}

absl::StatusOr<std::unique_ptr<ssl::context>> MakeTlsContext(const ServerOptions& options) {
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_server);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                   ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                   ssl::context::single_dh_use);
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  // Idle keep-alive connections give their TLS buffers back.
  SSL_CTX_set_mode(ctx->native_handle(), SSL_MODE_RELEASE_BUFFERS);
  beast::error_code ec;
  ctx->use_certificate_chain_file(options.tls_cert_file, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot load TLS certificate ", options.tls_cert_file, ": ", ec.message()));
  }
  absl::StatusOr<crypto::SecretBytes> key = crypto::ReadSecretFile(options.tls_key_file);
  if (!key.ok()) {
    return absl::Status(key.status().code(),
                        absl::StrCat("TLS key: ", key.status().message()));
  }
  ctx->use_private_key(net::buffer(key->data(), key->size()), ssl::context::pem, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot load TLS key ", options.tls_key_file, ": ", ec.message()));
  }
  if (SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("TLS key ", options.tls_key_file,
                                                   " does not match certificate ",
                                                   options.tls_cert_file));
  }
  return ctx;
}

absl::Status CheckOptions(const ServerOptions& options, const Handler& handler,
                          const ListenAddress& listen) {
  if (!handler) return absl::InvalidArgumentError("no handler");
  if (options.threads < 1) return absl::InvalidArgumentError("threads must be at least 1");
  if (options.max_connections < 1) {
    return absl::InvalidArgumentError("max_connections must be at least 1");
  }
  if (options.read_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("read_timeout must be positive");
  }
  bool has_tls_files = !options.tls_cert_file.empty() || !options.tls_key_file.empty();
  if (options.insecure) {
    if (!IsLoopbackHost(listen.host)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "insecure (plaintext) HTTP is only allowed on loopback, not ", listen.host));
    }
    if (has_tls_files) {
      return absl::InvalidArgumentError("insecure and TLS files are mutually exclusive");
    }
    return absl::OkStatus();
  }
  if (options.tls_cert_file.empty() || options.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "HTTPS needs tls_cert_file and tls_key_file (or insecure, on loopback only)");
  }
  return absl::OkStatus();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The server.

struct Server::Impl {
  explicit Impl(int threads) : ioc(threads), acceptor(net::make_strand(ioc)) {}

  void DoAccept() {
    acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
      OnAccept(ec, std::move(socket));
    });
  }

  void OnAccept(beast::error_code ec, tcp::socket socket) {
    if (ec) {
      if (ec == net::error::operation_aborted) return;
      // EMFILE and friends: keep serving the connections we have, try again shortly.
      LogWarning("http_accept_failed", {{"error", ec.message()}});
      retry_timer.expires_after(std::chrono::milliseconds(100));
      retry_timer.async_wait([this](beast::error_code e) {
        if (!e) DoAccept();
      });
      return;
    }
    // Only this strand adds connections, so the check cannot race with another accept.
    if (state->connections.load() >= state->max_connections) {
      uint64_t refused = state->refused.fetch_add(1) + 1;
      if (refused == 1 || refused % 1000 == 0) {
        LogWarning("http_connection_refused", {{"reason", "max_connections"},
                                               {"max_connections",
                                                absl::StrCat(state->max_connections)},
                                               {"refused_total", absl::StrCat(refused)}});
      }
      beast::error_code ignored;
      socket.close(ignored);
      return DoAccept();
    }
    beast::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    std::string remote;
    if (auto endpoint = socket.remote_endpoint(ignored); !ignored) {
      remote = absl::StrCat(endpoint.address().to_string(), ":", endpoint.port());
    }
    std::shared_ptr<Connection> connection;
    if (state->tls) {
      connection = std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(
          state, std::move(remote),
          beast::ssl_stream<beast::tcp_stream>(std::move(socket), *state->tls));
    } else {
      connection = std::make_shared<Session<beast::tcp_stream>>(
          state, std::move(remote), beast::tcp_stream(std::move(socket)));
    }
    connection->Register();
    connection->Run();
    DoAccept();
  }

  void RunIo() {
    for (;;) {
      try {
        ioc.run();
        return;
      } catch (const std::exception& e) {
        // Handlers are caught in CallHandler; this is Beast or the allocator. Keep serving.
        LogError("http_io_exception", {{"error", e.what()}});
      } catch (...) {
        LogError("http_io_exception", {{"error", "unknown"}});
      }
    }
  }

  // Declared first so that it is destroyed last: the I/O objects below, and the connections
  // owned by its pending handlers, go before it.
  net::io_context ioc;
  tcp::acceptor acceptor;
  net::steady_timer retry_timer{acceptor.get_executor()};
  std::shared_ptr<ServerState> state = std::make_shared<ServerState>();
  std::vector<std::thread> threads;
  uint16_t port = 0;

  absl::Mutex stop_mu;
  bool stopped ABSL_GUARDED_BY(stop_mu) = false;
};

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() { Stop(); }

uint16_t Server::port() const { return impl_->port; }

absl::StatusOr<std::unique_ptr<Server>> Server::Start(ServerOptions options, Handler handler) {
  ASSIGN_OR_RETURN(ListenAddress listen, ParseListen(options.listen));
  RETURN_IF_ERROR(CheckOptions(options, handler, listen));
  auto impl = std::make_unique<Impl>(options.threads);
  ServerState& state = *impl->state;
  if (!options.insecure) {
    ASSIGN_OR_RETURN(state.tls, MakeTlsContext(options));
  }
  state.handler = std::move(handler);
  state.body_limit = options.body_limit;
  state.body_limit_for = options.body_limit_for;
  // Capped so that "now + timeout" cannot overflow the steady clock (InfiniteDuration included).
  absl::Duration read_timeout = std::min(options.read_timeout, kMaxReadTimeout);
  state.read_timeout =
      std::chrono::milliseconds(std::max<int64_t>(1, absl::ToInt64Milliseconds(read_timeout)));
  state.max_connections = options.max_connections;

  beast::error_code ec;
  impl->acceptor.open(listen.endpoint.protocol(), ec);
  if (!ec) impl->acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(listen.endpoint, ec);
  if (!ec) impl->acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.listen, ": ", ec.message()));
  }
  impl->port = impl->acceptor.local_endpoint(ec).port();
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot read the bound port of ", options.listen, ": ", ec.message()));
  }
  impl->DoAccept();
  for (int i = 0; i < options.threads; ++i) {
    impl->threads.emplace_back([impl = impl.get()] { impl->RunIo(); });
  }
  LogInfo("http_server_started", {{"listen", options.listen},
                                  {"port", absl::StrCat(impl->port)},
                                  {"tls", state.tls ? "on" : "off"},
                                  {"threads", absl::StrCat(options.threads)}});
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

void Server::Stop() {
  absl::MutexLock lock(&impl_->stop_mu);
  if (impl_->stopped) return;
  impl_->stopped = true;
  impl_->ioc.stop();
  for (std::thread& thread : impl_->threads) thread.join();
  // No I/O thread runs any more, so the sockets can be closed from here without their strands.
  beast::error_code ignored;
  impl_->acceptor.close(ignored);
  impl_->retry_timer.cancel();
  std::vector<std::shared_ptr<Connection>> open;
  {
    absl::MutexLock state_lock(&impl_->state->mu);
    for (const auto& [id, weak] : impl_->state->live) {
      if (auto connection = weak.lock()) open.push_back(std::move(connection));
    }
  }
  for (const auto& connection : open) connection->CloseNow();
  // The connections themselves are freed with the io_context's pending handlers, in ~Impl.
  open.clear();
  LogInfo("http_server_stopped", {{"port", absl::StrCat(impl_->port)}});
}

}  // namespace tether::cloud::http
