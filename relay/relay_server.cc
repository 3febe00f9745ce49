#include "relay/relay_server.h"

#include <openssl/ssl.h>

#include <chrono>
#include <utility>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/base/clock.h"
#include "common/base/log.h"
#include "common/base/status_macros.h"
#include "common/crypto/key_file.h"
#include "relay/http_session.h"
#include "relay/listener_core.h"
#include "relay/relay_context.h"

namespace tether::relay {
namespace {

namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

absl::StatusOr<std::unique_ptr<ssl::context>> MakeTlsContext(const RelayOptions& options) {
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_server);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                   ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                   ssl::context::single_dh_use);
  // Idle connections give their read and write buffers back (see docs/BENCHMARKS.md).
  SSL_CTX_set_mode(ctx->native_handle(), SSL_MODE_RELEASE_BUFFERS);
  boost::system::error_code ec;
  ctx->use_certificate_chain_file(options.tls_cert_file, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot load TLS certificate ", options.tls_cert_file, ": ", ec.message()));
  }
  ASSIGN_OR_RETURN(crypto::SecretBytes key, crypto::ReadSecretFile(options.tls_key_file));
  ctx->use_private_key(net::buffer(key.data(), key.size()), ssl::context::pem, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot load TLS key ", options.tls_key_file, ": ", ec.message()));
  }
  return ctx;
}

}  // namespace

struct RelayServer::Impl {
  explicit Impl(int threads) : ioc(threads), acceptor(net::make_strand(ioc)) {}

  void DoAccept() {
    acceptor.async_accept(net::make_strand(ioc), [this](boost::system::error_code ec,
                                                        tcp::socket socket) {
      if (ec) {
        if (ec == net::error::operation_aborted) return;
        // EMFILE and friends: keep serving the connections we have, try again shortly.
        LogWarning("accept_failed", {{"error", ec.message()}});
        retry_timer = std::make_unique<net::steady_timer>(acceptor.get_executor(),
                                                          std::chrono::milliseconds(100));
        retry_timer->async_wait([this](boost::system::error_code e) {
          if (!e) DoAccept();
        });
        return;
      }
      // Frames are whole messages written at once; Nagle would only add latency to small ones.
      boost::system::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      StartHttpSession(context.get(), std::move(socket), tls.get());
      DoAccept();
    });
  }

  net::io_context ioc;
  tcp::acceptor acceptor;
  std::unique_ptr<ssl::context> tls;
  std::unique_ptr<RelayContext> context;
  std::unique_ptr<net::steady_timer> retry_timer;
  std::vector<std::thread> threads;
  int thread_count = 1;
  absl::Mutex mu;
  bool stopped = false;
};

RelayServer::RelayServer(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)), context_(impl_->context.get()) {}

RelayServer::~RelayServer() {
  Stop();
  Wait();
}

absl::StatusOr<std::unique_ptr<RelayServer>> RelayServer::Create(RelayOptions options) {
  if (!options.keys || options.keys->size() == 0) {
    return absl::InvalidArgumentError("no SAS keys configured (--sas_keys_file)");
  }
  boost::system::error_code ec;
  auto address = net::ip::make_address(options.listen_host, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid listen address '", options.listen_host, "'"));
  }
  if (options.insecure && !address.is_loopback()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--insecure serves plaintext and is only allowed on loopback, not ",
                     options.listen_host));
  }
  if (!options.insecure && (options.tls_cert_file.empty() || options.tls_key_file.empty())) {
    return absl::InvalidArgumentError("TLS needs --tls_cert and --tls_key (or --insecure on loopback)");
  }
  int threads = options.threads > 0 ? options.threads
                                     : static_cast<int>(std::thread::hardware_concurrency());
  if (threads <= 0) threads = 1;
  auto impl = std::make_unique<Impl>(threads);
  impl->thread_count = threads;
  if (!options.insecure) {
    ASSIGN_OR_RETURN(impl->tls, MakeTlsContext(options));
  }
  tcp::endpoint endpoint(address, options.listen_port);
  impl->acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl->acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(endpoint, ec);
  if (!ec) impl->acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.listen_host, ":",
                                               options.listen_port, ": ", ec.message()));
  }
  uint16_t port = impl->acceptor.local_endpoint().port();
  impl->context = std::make_unique<RelayContext>(std::move(options), impl->ioc.get_executor());
  auto server = std::unique_ptr<RelayServer>(new RelayServer(std::move(impl)));
  server->port_ = port;
  return server;
}

void RelayServer::Start() {
  impl_->DoAccept();
  for (int i = 0; i < impl_->thread_count; ++i) {
    impl_->threads.emplace_back([this] { impl_->ioc.run(); });
  }
  LogInfo("relay_started", {{"port", absl::StrCat(port_)},
                            {"tls", impl_->tls ? "on" : "off"},
                            {"threads", absl::StrCat(impl_->thread_count)}});
}

void RelayServer::Drain() {
  if (context_->draining.exchange(true)) return;
  LogInfo("relay_draining", {{"channels", absl::StrCat(context_->metrics.channels.load())}});
  net::post(impl_->acceptor.get_executor(), [this] {
    boost::system::error_code ec;
    impl_->acceptor.close(ec);
  });
  absl::Time deadline = WallNow() + context_->options.drain_timeout;
  // Polling a counter here is a bounded shutdown wait, not test synchronisation.
  while (context_->metrics.channels.load() > 0 && WallNow() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  for (const auto& listener : context_->registry.All()) {
    listener->Close(proto::RELAY_CLOSE_CODE_GOING_AWAY, "relay shutting down");
  }
  absl::Time close_deadline = WallNow() + absl::Seconds(2);
  while (!context_->registry.All().empty() && WallNow() < close_deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  Stop();
}

void RelayServer::Stop() {
  absl::MutexLock lock(&impl_->mu);
  if (impl_->stopped) return;
  impl_->stopped = true;
  impl_->ioc.stop();
}

void RelayServer::Wait() {
  for (auto& t : impl_->threads) {
    if (t.joinable()) t.join();
  }
}

}  // namespace tether::relay
