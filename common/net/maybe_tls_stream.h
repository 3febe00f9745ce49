// Internal to //common/net: a byte stream that is plain TCP or TLS over TCP, chosen at run time,
// so the WebSocket and HTTP code exists once for http:// and https:// relays. It meets Beast's
// AsyncStream requirements (async_read_some / async_write_some / get_executor) and provides the
// WebSocket teardown customisation points. Like every Asio stream, not thread-safe: use it from
// its executor (a strand) only. Not movable: the TLS layer refers to the TCP layer.
#ifndef TETHER_COMMON_NET_MAYBE_TLS_STREAM_H_
#define TETHER_COMMON_NET_MAYBE_TLS_STREAM_H_

#include <optional>
#include <utility>

#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/beast/websocket/teardown.hpp>

namespace tether::net::internal {

class MaybeTlsStream {
 public:
  using executor_type = boost::beast::tcp_stream::executor_type;
  using next_layer_type = boost::beast::tcp_stream;
  using tls_stream_type = boost::asio::ssl::stream<boost::beast::tcp_stream&>;

  explicit MaybeTlsStream(const executor_type& executor) : tcp_(executor) {}
  MaybeTlsStream(const MaybeTlsStream&) = delete;
  MaybeTlsStream& operator=(const MaybeTlsStream&) = delete;

  executor_type get_executor() { return tcp_.get_executor(); }
  // Beast's get_lowest_layer() walks next_layer() down to the TCP stream (used to close the
  // socket on WebSocket timeouts).
  next_layer_type& next_layer() { return tcp_; }
  const next_layer_type& next_layer() const { return tcp_; }
  boost::beast::tcp_stream& tcp() { return tcp_; }

  // From now on reads and writes go through TLS (the handshake is the caller's job).
  void EnableTls(boost::asio::ssl::context& context) { tls_.emplace(tcp_, context); }
  bool tls_enabled() const { return tls_.has_value(); }
  tls_stream_type& tls() { return *tls_; }

  template <class MutableBufferSequence, class ReadHandler>
  void async_read_some(const MutableBufferSequence& buffers, ReadHandler&& handler) {
    if (tls_) {
      tls_->async_read_some(buffers, std::forward<ReadHandler>(handler));
    } else {
      tcp_.async_read_some(buffers, std::forward<ReadHandler>(handler));
    }
  }

  template <class ConstBufferSequence, class WriteHandler>
  void async_write_some(const ConstBufferSequence& buffers, WriteHandler&& handler) {
    if (tls_) {
      tls_->async_write_some(buffers, std::forward<WriteHandler>(handler));
    } else {
      tcp_.async_write_some(buffers, std::forward<WriteHandler>(handler));
    }
  }

  // Closes the socket at once (no TLS close_notify): ends every pending operation.
  void Abort() {
    boost::system::error_code ignored;
    tcp_.socket().shutdown(boost::asio::ip::tcp::socket::shutdown_both, ignored);
    tcp_.close();
  }

 private:
  boost::beast::tcp_stream tcp_;
  std::optional<tls_stream_type> tls_;
};

// WebSocket teardown (found by argument-dependent lookup from boost::beast::websocket).
inline void teardown(boost::beast::role_type role, MaybeTlsStream& stream,
                     boost::system::error_code& ec) {
  if (stream.tls_enabled()) {
    boost::beast::teardown(role, stream.tls(), ec);
  } else {
    boost::beast::websocket::teardown(role, stream.tcp().socket(), ec);
  }
}

template <class TeardownHandler>
void async_teardown(boost::beast::role_type role, MaybeTlsStream& stream,
                    TeardownHandler&& handler) {
  if (stream.tls_enabled()) {
    boost::beast::async_teardown(role, stream.tls(), std::forward<TeardownHandler>(handler));
  } else {
    boost::beast::websocket::async_teardown(role, stream.tcp().socket(),
                                            std::forward<TeardownHandler>(handler));
  }
}

}  // namespace tether::net::internal

#endif  // TETHER_COMMON_NET_MAYBE_TLS_STREAM_H_
