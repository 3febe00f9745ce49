#include "common/net/dial.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <chrono>
#include <utility>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/http.hpp>

#include "absl/strings/str_cat.h"
#include "common/net/asio_status.h"

namespace tether::net::internal {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace ssl = boost::asio::ssl;

class DialOp : public std::enable_shared_from_this<DialOp> {
 public:
  DialOp(MaybeTlsStream& stream, std::shared_ptr<const DialTarget> target,
         std::function<void(absl::Status)> done)
      : stream_(stream),
        target_(std::move(target)),
        done_(std::move(done)),
        resolver_(stream.get_executor()),
        timer_(stream.get_executor()) {}

  void Start() {
    timer_.expires_after(absl::ToChronoMilliseconds(target_->timeout));
    timer_.async_wait(beast::bind_front_handler(&DialOp::OnTimer, shared_from_this()));
    const std::string& host = target_->proxy ? target_->proxy->host : target_->endpoint.host;
    uint16_t port = target_->proxy ? target_->proxy->port : target_->endpoint.port;
    resolver_.async_resolve(host, std::to_string(port),
                            beast::bind_front_handler(&DialOp::OnResolve, shared_from_this()));
  }

 private:
  void OnTimer(beast::error_code ec) {
    if (ec || finished_) return;
    timed_out_ = true;
    resolver_.cancel();
    stream_.Abort();
  }

  void OnResolve(beast::error_code ec, asio::ip::tcp::resolver::results_type results) {
    if (ec) {
      return Finish(AsioStatus(ec, absl::StrCat("resolve ", HopName())));
    }
    stream_.tcp().async_connect(results,
                                beast::bind_front_handler(&DialOp::OnConnect, shared_from_this()));
  }

  void OnConnect(beast::error_code ec, const asio::ip::tcp::endpoint&) {
    if (ec) return Finish(AsioStatus(ec, absl::StrCat("connect to ", HopName())));
    // Relay traffic is small request/answer messages: without TCP_NODELAY, Nagle holds a second
    // small write until the first is ACKed, and the peer's delayed ACK turns that into ~40 ms.
    beast::error_code ignored;
    stream_.tcp().socket().set_option(asio::ip::tcp::no_delay(true), ignored);
    if (target_->proxy) return DoProxyConnect();
    DoTlsHandshake();
  }

  void DoProxyConnect() {
    const std::string authority = target_->endpoint.Authority();
    connect_request_.method(http::verb::connect);
    connect_request_.target(authority);
    connect_request_.version(11);
    connect_request_.set(http::field::host, authority);
    connect_request_.set(http::field::user_agent, "tether-relay-client");
    if (target_->proxy->has_credentials) {
      connect_request_.set(http::field::proxy_authorization,
                           BasicAuthorization(target_->proxy->username, target_->proxy->password));
    }
    http::async_write(stream_.tcp(), connect_request_,
                      beast::bind_front_handler(&DialOp::OnProxyWrite, shared_from_this()));
  }

  void OnProxyWrite(beast::error_code ec, std::size_t) {
    if (ec) return Finish(AsioStatus(ec, absl::StrCat("send CONNECT to ", HopName())));
    // A 2xx answer to CONNECT has no body whatever its headers say.
    connect_response_.skip(true);
    http::async_read_header(stream_.tcp(), buffer_, connect_response_,
                            beast::bind_front_handler(&DialOp::OnProxyRead, shared_from_this()));
  }

  void OnProxyRead(beast::error_code ec, std::size_t) {
    if (ec) return Finish(AsioStatus(ec, absl::StrCat("read CONNECT answer from ", HopName())));
    const auto& response = connect_response_.get();
    const unsigned status = response.result_int();
    if (status / 100 != 2) {
      std::string message =
          absl::StrCat("proxy ", target_->proxy->Redacted(), " refused CONNECT to ",
                       target_->endpoint.Authority(), ": ", status, " ",
                       std::string(response.reason()));
      if (status == 407) return Finish(absl::UnauthenticatedError(message));
      return Finish(absl::UnavailableError(message));
    }
    if (buffer_.size() != 0) {
      return Finish(absl::UnavailableError(absl::StrCat(
          "proxy ", target_->proxy->Redacted(), " sent data before the tunnel was used")));
    }
    DoTlsHandshake();
  }

  void DoTlsHandshake() {
    if (!target_->endpoint.tls) return Finish(absl::OkStatus());
    const std::string& host = target_->endpoint.host;
    stream_.EnableTls(*target_->tls);
    auto& tls = stream_.tls();
    beast::error_code ec;
    asio::ip::make_address(host, ec);
    const bool is_address = !ec;
    // SNI carries host names only (RFC 6066 §3).
    if (!is_address && SSL_set_tlsext_host_name(tls.native_handle(), host.c_str()) != 1) {
      return Finish(absl::InternalError(absl::StrCat("cannot set TLS SNI to ", host)));
    }
    tls.set_verify_mode(ssl::verify_peer, ec);
    if (!ec) {
      tls.set_verify_callback(
          [mismatch = host_name_mismatch_, check = ssl::host_name_verification(host)](
              bool preverified, ssl::verify_context& context) mutable {
            bool ok = check(preverified, context);
            if (preverified && !ok) *mismatch = true;
            return ok;
          },
          ec);
    }
    if (ec) return Finish(AsioStatus(ec, "configure TLS verification"));
    tls.async_handshake(ssl::stream_base::client,
                        beast::bind_front_handler(&DialOp::OnTlsHandshake, shared_from_this()));
  }

  void OnTlsHandshake(beast::error_code ec) {
    if (ec && !timed_out_) {
      const std::string relay = target_->endpoint.Authority();
      if (*host_name_mismatch_) {
        return Finish(absl::FailedPreconditionError(
            absl::StrCat("TLS certificate of ", relay, " is not valid for host name '",
                         target_->endpoint.host, "'")));
      }
      long result = SSL_get_verify_result(stream_.tls().native_handle());
      if (result != X509_V_OK) {
        return Finish(absl::FailedPreconditionError(
            absl::StrCat("TLS certificate of ", relay,
                         " not accepted: ", X509_verify_cert_error_string(result))));
      }
      return Finish(AsioStatus(ec, absl::StrCat("TLS handshake with ", relay)));
    }
    Finish(AsioStatus(ec, "TLS handshake"));
  }

  // The host the current step talks to, for messages: the proxy or the relay.
  std::string HopName() const {
    return target_->proxy ? absl::StrCat("proxy ", target_->proxy->Redacted())
                          : absl::StrCat("relay ", target_->endpoint.Authority());
  }

  void Finish(absl::Status status) {
    if (finished_) return;
    finished_ = true;
    timer_.cancel();
    if (timed_out_) {
      status = absl::DeadlineExceededError(
          absl::StrCat("connecting to ", target_->Describe(), " timed out after ",
                       absl::FormatDuration(target_->timeout)));
    }
    if (status.ok()) stream_.tcp().expires_never();
    auto done = std::move(done_);
    done(std::move(status));
  }

  MaybeTlsStream& stream_;
  std::shared_ptr<const DialTarget> target_;
  std::function<void(absl::Status)> done_;
  asio::ip::tcp::resolver resolver_;
  asio::steady_timer timer_;
  http::request<http::empty_body> connect_request_;
  http::response_parser<http::empty_body> connect_response_;
  beast::flat_buffer buffer_;
  bool finished_ = false;
  bool timed_out_ = false;
  // Set by the verify callback, which the TLS stream keeps (so it must not own this op).
  std::shared_ptr<bool> host_name_mismatch_ = std::make_shared<bool>(false);
};

}  // namespace

absl::StatusOr<std::shared_ptr<ssl::context>> MakeTlsClientContext(const std::string& ca_file) {
  std::shared_ptr<ssl::context> context;
  try {
    context = std::make_shared<ssl::context>(ssl::context::tls_client);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("cannot create a TLS context: ", e.what()));
  }
  if (SSL_CTX_set_min_proto_version(context->native_handle(), TLS1_2_VERSION) != 1) {
    return absl::InternalError("cannot require TLS 1.2");
  }
  beast::error_code ec;
  context->set_verify_mode(ssl::verify_peer, ec);
  if (ec) return AsioStatus(ec, "configure TLS verification");
  if (ca_file.empty()) {
    context->set_default_verify_paths(ec);
    if (ec) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot load the system's trusted certificates: ", ec.message()));
    }
  } else {
    context->load_verify_file(ca_file, ec);
    if (ec) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot load CA file '", ca_file, "': ", ec.message()));
    }
  }
  return context;
}

std::string DialTarget::Describe() const {
  return proxy ? absl::StrCat(endpoint.ToString(), " via proxy ", proxy->Redacted())
               : endpoint.ToString();
}

absl::StatusOr<std::shared_ptr<const DialTarget>> MakeDialTarget(
    absl::string_view relay_url, const std::optional<ProxyConfig>& proxy,
    const std::string& ca_file, absl::Duration timeout) {
  auto target = std::make_shared<DialTarget>();
  auto endpoint = ParseRelayEndpoint(relay_url);
  if (!endpoint.ok()) return endpoint.status();
  target->endpoint = *std::move(endpoint);
  auto selected =
      SelectProxy(proxy.has_value() ? *proxy : ProxyConfig::FromEnvironment(), target->endpoint);
  if (!selected.ok()) return selected.status();
  target->proxy = *std::move(selected);
  if (target->endpoint.tls) {
    auto context = MakeTlsClientContext(ca_file);
    if (!context.ok()) return context.status();
    target->tls = *std::move(context);
  }
  if (timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("connect timeout must be positive");
  }
  target->timeout = timeout;
  return std::shared_ptr<const DialTarget>(std::move(target));
}

void AsyncDial(MaybeTlsStream& stream, std::shared_ptr<const DialTarget> target,
               std::function<void(absl::Status)> done) {
  std::make_shared<DialOp>(stream, std::move(target), std::move(done))->Start();
}

}  // namespace tether::net::internal
