#include "tools/bench/echo_server.h"

#include <openssl/ssl.h>

#include <deque>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include "absl/strings/str_cat.h"

namespace tether::bench {
namespace {

namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

// Past this many unsent echoes a session stops reading until the writer catches up.
constexpr std::size_t kMaxQueuedEchoes = 64;
constexpr auto kHandshakeTimeout = std::chrono::seconds(10);

template <class Stream>
class EchoSession : public std::enable_shared_from_this<EchoSession<Stream>> {
 public:
  explicit EchoSession(tcp::socket socket) : ws_(std::move(socket)) {}
  EchoSession(tcp::socket socket, ssl::context& tls) : ws_(std::move(socket), tls) {}

  void Run() {
    net::dispatch(ws_.get_executor(), [self = this->shared_from_this()] { self->OnRun(); });
  }

 private:
  struct Echo {
    std::string bytes;
    bool binary;
  };

  void OnRun() {
    if constexpr (std::is_same_v<Stream, TlsStream>) {
      beast::get_lowest_layer(ws_).expires_after(kHandshakeTimeout);
      ws_.next_layer().async_handshake(ssl::stream_base::server,
                                       [self = this->shared_from_this()](beast::error_code ec) {
                                         if (ec) return;
                                         self->Accept();
                                       });
    } else {
      Accept();
    }
  }

  void Accept() {
    beast::get_lowest_layer(ws_).expires_never();
    ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
    ws_.async_accept([self = this->shared_from_this()](beast::error_code ec) {
      if (ec) return;
      self->DoRead();
    });
  }

  void DoRead() {
    reading_ = true;
    ws_.async_read(buffer_, [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
      self->OnRead(ec);
    });
  }

  void OnRead(beast::error_code ec) {
    reading_ = false;
    if (ec) {
      done_ = true;
      return;
    }
    queue_.push_back(Echo{beast::buffers_to_string(buffer_.data()), ws_.got_binary()});
    buffer_.consume(buffer_.size());
    DoWrite();
    if (queue_.size() < kMaxQueuedEchoes) DoRead();
  }

  void DoWrite() {
    if (writing_ || queue_.empty() || done_) return;
    writing_ = true;
    ws_.binary(queue_.front().binary);
    ws_.async_write(net::buffer(queue_.front().bytes),
                    [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                      self->OnWrite(ec);
                    });
  }

  void OnWrite(beast::error_code ec) {
    writing_ = false;
    queue_.pop_front();
    if (ec) {
      done_ = true;
      return;
    }
    if (!reading_ && !done_ && queue_.size() < kMaxQueuedEchoes) DoRead();
    DoWrite();
  }

  websocket::stream<Stream> ws_;
  beast::flat_buffer buffer_;
  std::deque<Echo> queue_;
  bool reading_ = false;
  bool writing_ = false;
  bool done_ = false;
};

}  // namespace

struct EchoServer::Impl {
  explicit Impl(int threads) : ioc(threads), acceptor(net::make_strand(ioc)) {}

  void DoAccept() {
    acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket s) {
      if (ec == net::error::operation_aborted) return;
      if (!ec) {
        if (tls) {
          std::make_shared<EchoSession<TlsStream>>(std::move(s), *tls)->Run();
        } else {
          std::make_shared<EchoSession<beast::tcp_stream>>(std::move(s))->Run();
        }
      }
      DoAccept();
    });
  }

  net::io_context ioc;
  tcp::acceptor acceptor;
  std::unique_ptr<ssl::context> tls;
  uint16_t port = 0;
  std::vector<std::thread> threads;
};

EchoServer::EchoServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

absl::StatusOr<std::unique_ptr<EchoServer>> EchoServer::Start(int threads,
                                                              const std::string& tls_cert_file,
                                                              const std::string& tls_key_file) {
  auto impl = std::make_unique<Impl>(threads);
  beast::error_code ec;
  if (!tls_cert_file.empty() || !tls_key_file.empty()) {
    impl->tls = std::make_unique<ssl::context>(ssl::context::tls_server);
    impl->tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                           ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                           ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
    SSL_CTX_set_mode(impl->tls->native_handle(), SSL_MODE_RELEASE_BUFFERS);
    impl->tls->use_certificate_chain_file(tls_cert_file, ec);
    if (!ec) impl->tls->use_private_key_file(tls_key_file, ssl::context::pem, ec);
    if (ec) return absl::InvalidArgumentError(absl::StrCat("echo server TLS: ", ec.message()));
  }
  tcp::endpoint endpoint(net::ip::make_address_v4("127.0.0.1"), 0);
  impl->acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl->acceptor.bind(endpoint, ec);
  if (!ec) impl->acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("echo server: ", ec.message()));
  impl->port = impl->acceptor.local_endpoint().port();
  impl->DoAccept();
  for (int i = 0; i < threads; ++i) {
    impl->threads.emplace_back([raw = impl.get()] { raw->ioc.run(); });
  }
  return std::unique_ptr<EchoServer>(new EchoServer(std::move(impl)));
}

EchoServer::~EchoServer() {
  impl_->ioc.stop();
  for (auto& t : impl_->threads) t.join();
}

uint16_t EchoServer::port() const { return impl_->port; }

}  // namespace tether::bench
