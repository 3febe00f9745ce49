// Relay and proxy URLs as the relay client takes them from flags, config files and the
// environment. Parsing is strict for relay URLs (they come from Tether's own config) and lenient
// for proxy URLs (they come from HTTPS_PROXY and friends, where "host:port" without a scheme is
// common). Pure functions; thread-safe.
#ifndef TETHER_COMMON_NET_URL_H_
#define TETHER_COMMON_NET_URL_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tether::net {

// Where a relay listens: "https://host[:port]" (TLS) or "http://host[:port]" (plaintext, only for
// relays started with --insecure on loopback). The port defaults to the scheme's (443 / 80).
struct RelayEndpoint {
  bool tls = true;
  std::string host;  // lower-cased; IPv6 literals without brackets
  uint16_t port = 0;

  // "host:port" with IPv6 literals in brackets: the authority of a CONNECT request.
  std::string Authority() const;
  // The Host header: the authority without the port when it is the scheme's default.
  std::string HostHeader() const;
  // "https://host:port".
  std::string ToString() const;
};

// Parses a relay URL. Accepted: scheme http or https (case-insensitive), a host name or IPv4
// literal or bracketed IPv6 literal, an optional port 1-65535, and an optional trailing "/".
// User info, a path, a query or a fragment are kInvalidArgument (a relay URL names a server, the
// client builds the paths).
absl::StatusOr<RelayEndpoint> ParseRelayEndpoint(absl::string_view url);

// An HTTP proxy reached with HTTP CONNECT: "[http://][user[:password]@]host[:port][/]".
// The user name and password are percent-decoded. The port defaults to 80.
struct ProxyUrl {
  std::string host;  // lower-cased; IPv6 literals without brackets
  uint16_t port = 80;
  bool has_credentials = false;
  std::string username;
  std::string password;

  // "host:port" with IPv6 literals in brackets.
  std::string Authority() const;
  // A form safe to log and to put in error messages: "http://host:port", or
  // "http://***@host:port" when the URL carries credentials. Never contains them.
  std::string Redacted() const;
};

// Parses a proxy URL. Schemes other than http (an https:// proxy would need TLS to the proxy
// itself, socks5:// is another protocol) are kInvalidArgument. Error messages never contain the
// credentials.
absl::StatusOr<ProxyUrl> ParseProxyUrl(absl::string_view url);

// Checks an entity name ("machine-42", without "hc/") or listener id against the relay's rule:
// 1-128 characters of [A-Za-z0-9._-]. kInvalidArgument naming `what` otherwise.
absl::Status ValidateRelayName(absl::string_view what, absl::string_view name);

}  // namespace tether::net

#endif  // TETHER_COMMON_NET_URL_H_
