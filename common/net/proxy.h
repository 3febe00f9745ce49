// Which HTTP proxy (if any) the relay client goes through, following the conventions of curl
// and most HTTP clients: HTTPS_PROXY / https_proxy for https:// relays, HTTP_PROXY / http_proxy
// for http:// relays, and NO_PROXY / no_proxy to bypass the proxy for some hosts. The proxy is
// reached with HTTP CONNECT, with Basic authentication when its URL carries user:password.
// Pure functions; thread-safe.
#ifndef TETHER_COMMON_NET_PROXY_H_
#define TETHER_COMMON_NET_PROXY_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/net/url.h"

namespace tether::net {

// Proxy settings. Empty strings mean "not set". Tests and callers with explicit settings build
// one directly; services use FromEnvironment(). Holds credentials: do not log it (use
// ProxyUrl::Redacted() on the selected proxy instead).
struct ProxyConfig {
  std::string https_proxy;  // proxy for https:// relays
  std::string http_proxy;   // proxy for http:// relays
  std::string no_proxy;     // comma (or space) separated bypass list, see NoProxyMatches

  // No proxy at all.
  static ProxyConfig Direct() { return ProxyConfig(); }
  // The same proxy for both schemes, with an optional bypass list.
  static ProxyConfig Explicit(std::string proxy_url, std::string no_proxy = "");
  // Reads https_proxy, HTTPS_PROXY, http_proxy, HTTP_PROXY, no_proxy, NO_PROXY (for each pair,
  // the lower-case name wins when both are set, as in curl).
  static ProxyConfig FromEnvironment();
  // The same with an injected getenv (returns nullptr for unset variables), for tests.
  static ProxyConfig FromEnvironment(const std::function<const char*(const char*)>& getenv);
};

// True when `host` (and `port`) match the NO_PROXY list `no_proxy`. Entries are separated by
// commas or whitespace and compared case-insensitively:
//   "*"                 matches every host;
//   "example.com", ".example.com", "*.example.com"
//                       match example.com and every name under it (suffix match on a dot
//                       boundary: "example.com" does not match "badexample.com");
//   "10.1.2.3", "::1", "[::1]"   match that address literally;
//   "10.0.0.0/8", "fd00::/8"     match addresses in that CIDR block;
//   any entry may end in ":port" (IPv6 in brackets: "[::1]:9350"), then only that port matches.
// Loopback is not bypassed implicitly (as in curl): list "localhost,127.0.0.1,::1" if wanted.
bool NoProxyMatches(absl::string_view no_proxy, absl::string_view host, uint16_t port);

// The proxy to use for `relay`: none when the matching variable is empty or NO_PROXY matches,
// otherwise the parsed proxy URL. A malformed proxy URL is kInvalidArgument (without the
// credentials in the message).
absl::StatusOr<std::optional<ProxyUrl>> SelectProxy(const ProxyConfig& config,
                                                    const RelayEndpoint& relay);

// The value of a Basic Proxy-Authorization (or Authorization) header, RFC 7617:
// "Basic " + base64(user ":" password). The result is a secret.
std::string BasicAuthorization(absl::string_view username, absl::string_view password);

}  // namespace tether::net

#endif  // TETHER_COMMON_NET_PROXY_H_
