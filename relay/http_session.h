// Entry point from the acceptor into the relay's per-connection handling: TLS handshake (unless
// insecure), HTTP/1.1 request routing, and the hand-over of upgraded connections to WebSocket
// listener and sender sessions. See docs/RELAY.md for the endpoints.
#ifndef TETHER_RELAY_HTTP_SESSION_H_
#define TETHER_RELAY_HTTP_SESSION_H_

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>

#include "relay/relay_context.h"

namespace tether::relay {

// Takes ownership of an accepted socket and serves it until it closes. `tls` is null for a
// plaintext (insecure) relay. Returns immediately; the work runs on the socket's executor.
void StartHttpSession(RelayContext* context, boost::asio::ip::tcp::socket socket,
                      boost::asio::ssl::context* tls);

}  // namespace tether::relay

#endif  // TETHER_RELAY_HTTP_SESSION_H_
