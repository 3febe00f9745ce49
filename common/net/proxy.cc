#include "common/net/proxy.h"

#include <arpa/inet.h>

#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/crypto/digest.h"

namespace tether::net {
namespace {

// An IPv4 or IPv6 address as bytes (4 or 16 of them); empty when `text` is not an address.
std::string AddressBytes(const std::string& text) {
  in_addr v4;
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1) {
    return std::string(reinterpret_cast<const char*>(&v4), sizeof(v4));
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, text.c_str(), &v6) == 1) {
    return std::string(reinterpret_cast<const char*>(&v6), sizeof(v6));
  }
  return "";
}

bool PrefixMatches(const std::string& a, const std::string& b, int bits) {
  if (a.size() != b.size() || bits < 0 || bits > static_cast<int>(a.size()) * 8) return false;
  int full = bits / 8;
  if (a.compare(0, full, b, 0, full) != 0) return false;
  int rest = bits % 8;
  if (rest == 0) return true;
  unsigned char mask = static_cast<unsigned char>(0xff << (8 - rest));
  return (static_cast<unsigned char>(a[full]) & mask) == (static_cast<unsigned char>(b[full]) & mask);
}

// Splits "name:port" / "[v6]:port" / "v6" into the name and an optional port (0 = any).
void SplitEntryPort(absl::string_view entry, std::string* name, uint32_t* port) {
  *port = 0;
  if (absl::StartsWith(entry, "[")) {
    std::size_t close = entry.find(']');
    if (close != absl::string_view::npos) {
      absl::string_view rest = entry.substr(close + 1);
      if (absl::ConsumePrefix(&rest, ":")) absl::SimpleAtoi(rest, port);
      *name = std::string(entry.substr(1, close - 1));
      return;
    }
  }
  std::size_t colon = entry.rfind(':');
  if (colon != absl::string_view::npos && entry.find(':') == colon) {
    // Exactly one colon: name:port. (Several colons: a bare IPv6 address.)
    absl::SimpleAtoi(entry.substr(colon + 1), port);
    entry = entry.substr(0, colon);
  }
  *name = std::string(entry);
}

bool EntryMatches(absl::string_view raw_entry, const std::string& host,
                  const std::string& host_address, uint16_t port) {
  std::string entry = absl::AsciiStrToLower(raw_entry);
  if (entry == "*") return true;
  // CIDR block (no port allowed with it).
  if (std::size_t slash = entry.find('/'); slash != std::string::npos) {
    int bits = 0;
    if (host_address.empty() || !absl::SimpleAtoi(absl::string_view(entry).substr(slash + 1), &bits)) {
      return false;
    }
    std::string network = AddressBytes(entry.substr(0, slash));
    return !network.empty() && PrefixMatches(host_address, network, bits);
  }
  std::string name;
  uint32_t entry_port = 0;
  SplitEntryPort(entry, &name, &entry_port);
  if (entry_port != 0 && entry_port != port) return false;
  if (name.empty()) return false;
  std::string name_address = AddressBytes(name);
  if (!name_address.empty() || !host_address.empty()) {
    return !name_address.empty() && name_address == host_address;
  }
  absl::string_view suffix = name;
  absl::ConsumePrefix(&suffix, "*");
  absl::ConsumePrefix(&suffix, ".");
  while (absl::ConsumeSuffix(&suffix, ".")) {
  }
  if (suffix.empty()) return false;
  return host == suffix || absl::EndsWith(host, absl::StrCat(".", suffix));
}

}  // namespace

ProxyConfig ProxyConfig::Explicit(std::string proxy_url, std::string no_proxy) {
  ProxyConfig config;
  config.https_proxy = proxy_url;
  config.http_proxy = std::move(proxy_url);
  config.no_proxy = std::move(no_proxy);
  return config;
}

ProxyConfig ProxyConfig::FromEnvironment() {
  return FromEnvironment([](const char* name) { return std::getenv(name); });
}

ProxyConfig ProxyConfig::FromEnvironment(const std::function<const char*(const char*)>& getenv) {
  auto first = [&](const char* lower, const char* upper) -> std::string {
    for (const char* name : {lower, upper}) {
      const char* value = getenv(name);
      if (value != nullptr && *value != '\0') return value;
    }
    return "";
  };
  ProxyConfig config;
  config.https_proxy = first("https_proxy", "HTTPS_PROXY");
  config.http_proxy = first("http_proxy", "HTTP_PROXY");
  config.no_proxy = first("no_proxy", "NO_PROXY");
  return config;
}

bool NoProxyMatches(absl::string_view no_proxy, absl::string_view host, uint16_t port) {
  std::string normalized_host = absl::AsciiStrToLower(host);
  if (absl::StartsWith(normalized_host, "[") && absl::EndsWith(normalized_host, "]")) {
    normalized_host = normalized_host.substr(1, normalized_host.size() - 2);
  }
  while (absl::EndsWith(normalized_host, ".")) normalized_host.pop_back();
  std::string host_address = AddressBytes(normalized_host);
  for (absl::string_view entry :
       absl::StrSplit(no_proxy, absl::ByAnyChar(", \t\n"), absl::SkipEmpty())) {
    if (EntryMatches(entry, normalized_host, host_address, port)) return true;
  }
  return false;
}

absl::StatusOr<std::optional<ProxyUrl>> SelectProxy(const ProxyConfig& config,
                                                    const RelayEndpoint& relay) {
  const std::string& url = relay.tls ? config.https_proxy : config.http_proxy;
  if (url.empty() || NoProxyMatches(config.no_proxy, relay.host, relay.port)) {
    return std::optional<ProxyUrl>();
  }
  auto proxy = ParseProxyUrl(url);
  if (!proxy.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(relay.tls ? "HTTPS_PROXY" : "HTTP_PROXY",
                                                   ": ", proxy.status().message()));
  }
  return std::optional<ProxyUrl>(*std::move(proxy));
}

std::string BasicAuthorization(absl::string_view username, absl::string_view password) {
  return absl::StrCat("Basic ", crypto::Base64Encode(absl::StrCat(username, ":", password)));
}

}  // namespace tether::net
