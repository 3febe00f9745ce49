// Internal to //common/net: opening a connection to a relay, directly or through an HTTP proxy
// (CONNECT, with Basic Proxy-Authorization when the proxy URL has credentials), then TLS with SNI,
// verification against the configured CA file and host name verification.
#ifndef TETHER_COMMON_NET_DIAL_H_
#define TETHER_COMMON_NET_DIAL_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/ssl/context.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/net/maybe_tls_stream.h"
#include "common/net/proxy.h"
#include "common/net/url.h"

namespace tether::net::internal {

// A TLS client context: TLS 1.2 or later, peer verification on, trusting the PEM certificates in
// `ca_file` (the dev CA, or a private CA), or the system's trust store when `ca_file` is empty.
// An unreadable or invalid file is kInvalidArgument naming the file.
absl::StatusOr<std::shared_ptr<boost::asio::ssl::context>> MakeTlsClientContext(
    const std::string& ca_file);

// Everything needed to reach one relay. Immutable after creation; shared by all connections.
struct DialTarget {
  RelayEndpoint endpoint;
  std::optional<ProxyUrl> proxy;                        // holds credentials: never log
  std::shared_ptr<boost::asio::ssl::context> tls;       // set iff endpoint.tls
  absl::Duration timeout = absl::Seconds(10);           // whole dial: DNS, TCP, CONNECT, TLS

  // "https://relay:9350" or "https://relay:9350 via proxy http://***@proxy:3128", for messages.
  std::string Describe() const;
};

// Parses `relay_url`, picks the proxy (`proxy` unset: from the environment) and builds the TLS
// context. Errors are kInvalidArgument.
absl::StatusOr<std::shared_ptr<const DialTarget>> MakeDialTarget(
    absl::string_view relay_url, const std::optional<ProxyConfig>& proxy,
    const std::string& ca_file, absl::Duration timeout);

// Connects `stream` (fresh, unconnected) to `target`. Calls `done` exactly once, on the stream's
// executor: OK, or kDeadlineExceeded (timeout), kUnauthenticated (proxy answered 407),
// kFailedPrecondition (the relay's certificate was not accepted: untrusted, expired, or for another
// host name), kUnavailable (DNS, TCP, proxy or TLS failures). Messages name the relay and the
// redacted proxy. `stream` must outlive the operation. On success the stream has no TCP timeout
// set.
void AsyncDial(MaybeTlsStream& stream, std::shared_ptr<const DialTarget> target,
               std::function<void(absl::Status)> done);

}  // namespace tether::net::internal

#endif  // TETHER_COMMON_NET_DIAL_H_
