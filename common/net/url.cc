#include "common/net/url.h"

#include <arpa/inet.h>

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace tether::net {
namespace {

struct HostPort {
  std::string host;
  uint16_t port = 0;
};

// Percent-decoding of URL user info ('+' stays a plus sign, unlike form encoding).
absl::StatusOr<std::string> PercentDecode(absl::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out.push_back(text[i]);
      continue;
    }
    int value = 0;
    if (i + 2 >= text.size()) {
      return absl::InvalidArgumentError("truncated percent escape");
    }
    for (int k = 1; k <= 2; ++k) {
      unsigned char h = static_cast<unsigned char>(text[i + k]);
      if (!absl::ascii_isxdigit(h)) return absl::InvalidArgumentError("invalid percent escape");
      value = value * 16 + (absl::ascii_isdigit(h) ? h - '0' : absl::ascii_tolower(h) - 'a' + 10);
    }
    out.push_back(static_cast<char>(value));
    i += 2;
  }
  return out;
}

bool IsIpv6Literal(const std::string& host) {
  in6_addr addr;
  return inet_pton(AF_INET6, host.c_str(), &addr) == 1;
}

std::string Bracketed(const std::string& host) {
  return host.find(':') != std::string::npos ? absl::StrCat("[", host, "]") : host;
}

// Parses "host", "host:port", "[v6]" or "[v6]:port". `what` names the URL kind in errors.
absl::StatusOr<HostPort> ParseHostPort(absl::string_view authority, uint16_t default_port,
                                       absl::string_view what) {
  HostPort out;
  absl::string_view port_text;
  if (absl::StartsWith(authority, "[")) {
    std::size_t close = authority.find(']');
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": unterminated '[' in host"));
    }
    out.host = std::string(authority.substr(1, close - 1));
    absl::string_view rest = authority.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') {
        return absl::InvalidArgumentError(absl::StrCat(what, ": unexpected text after ']'"));
      }
      port_text = rest.substr(1);
      if (port_text.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(what, ": empty port"));
      }
    }
    if (!IsIpv6Literal(out.host)) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": '", out.host, "' is not an IPv6 address"));
    }
  } else {
    std::size_t colon = authority.rfind(':');
    if (colon != absl::string_view::npos) {
      if (authority.find(':') != colon) {
        return absl::InvalidArgumentError(
            absl::StrCat(what, ": IPv6 addresses must be in brackets"));
      }
      port_text = authority.substr(colon + 1);
      if (port_text.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(what, ": empty port"));
      }
      authority = authority.substr(0, colon);
    }
    out.host = std::string(authority);
    if (out.host.empty()) return absl::InvalidArgumentError(absl::StrCat(what, ": empty host"));
    for (char c : out.host) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' &&
          c != '_') {
        return absl::InvalidArgumentError(
            absl::StrCat(what, ": invalid character in host '", out.host, "'"));
      }
    }
  }
  absl::AsciiStrToLower(&out.host);
  out.port = default_port;
  if (!port_text.empty()) {
    uint32_t port = 0;
    bool digits = port_text.size() <= 5;
    for (char c : port_text) digits = digits && absl::ascii_isdigit(static_cast<unsigned char>(c));
    if (!digits || !absl::SimpleAtoi(port_text, &port) || port == 0 || port > 65535) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": port '", port_text, "' is not in 1-65535"));
    }
    out.port = static_cast<uint16_t>(port);
  }
  return out;
}

// Splits "scheme://rest"; returns false when there is no scheme.
bool SplitScheme(absl::string_view url, std::string* scheme, absl::string_view* rest) {
  std::size_t sep = url.find("://");
  if (sep == absl::string_view::npos) return false;
  *scheme = absl::AsciiStrToLower(url.substr(0, sep));
  *rest = url.substr(sep + 3);
  return true;
}

}  // namespace

std::string RelayEndpoint::Authority() const { return absl::StrCat(Bracketed(host), ":", port); }

std::string RelayEndpoint::HostHeader() const {
  return port == (tls ? 443 : 80) ? Bracketed(host) : Authority();
}

std::string RelayEndpoint::ToString() const {
  return absl::StrCat(tls ? "https" : "http", "://", Authority());
}

absl::StatusOr<RelayEndpoint> ParseRelayEndpoint(absl::string_view url) {
  constexpr absl::string_view kWhat = "relay URL";
  std::string scheme;
  absl::string_view rest;
  if (!SplitScheme(url, &scheme, &rest)) {
    return absl::InvalidArgumentError(
        absl::StrCat(kWhat, " '", url, "' needs a scheme (https:// or http://)"));
  }
  RelayEndpoint endpoint;
  if (scheme == "https") {
    endpoint.tls = true;
  } else if (scheme == "http") {
    endpoint.tls = false;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat(kWhat, ": scheme '", scheme, "' is not https or http"));
  }
  if (absl::EndsWith(rest, "/")) rest.remove_suffix(1);
  if (rest.find_first_of("/?#") != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(kWhat, " '", url, "' must not have a path, query or fragment"));
  }
  if (rest.find('@') != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(kWhat, " must not carry user info"));
  }
  auto host_port = ParseHostPort(rest, endpoint.tls ? 443 : 80, kWhat);
  if (!host_port.ok()) return host_port.status();
  endpoint.host = std::move(host_port->host);
  endpoint.port = host_port->port;
  return endpoint;
}

std::string ProxyUrl::Authority() const { return absl::StrCat(Bracketed(host), ":", port); }

std::string ProxyUrl::Redacted() const {
  return absl::StrCat("http://", has_credentials ? "***@" : "", Authority());
}

absl::StatusOr<ProxyUrl> ParseProxyUrl(absl::string_view url) {
  constexpr absl::string_view kWhat = "proxy URL";
  std::string scheme;
  absl::string_view rest = url;
  if (SplitScheme(url, &scheme, &rest) && scheme != "http") {
    return absl::InvalidArgumentError(
        absl::StrCat(kWhat, ": scheme '", scheme, "' is not supported (only http:// proxies)"));
  }
  if (absl::EndsWith(rest, "/")) rest.remove_suffix(1);
  ProxyUrl proxy;
  // The user info ends at the last '@' (a password may contain '@' if it was not escaped).
  if (std::size_t at = rest.rfind('@'); at != absl::string_view::npos) {
    absl::string_view userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    absl::string_view user = userinfo, password;
    if (std::size_t colon = userinfo.find(':'); colon != absl::string_view::npos) {
      user = userinfo.substr(0, colon);
      password = userinfo.substr(colon + 1);
    }
    auto decoded_user = PercentDecode(user);
    auto decoded_password = PercentDecode(password);
    if (!decoded_user.ok() || !decoded_password.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(kWhat, ": bad percent escape in the credentials"));
    }
    proxy.has_credentials = true;
    proxy.username = *std::move(decoded_user);
    proxy.password = *std::move(decoded_password);
  }
  if (rest.find_first_of("/?#") != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(kWhat, " must not have a path, query or fragment"));
  }
  auto host_port = ParseHostPort(rest, 80, kWhat);
  if (!host_port.ok()) return host_port.status();
  proxy.host = std::move(host_port->host);
  proxy.port = host_port->port;
  return proxy;
}

absl::Status ValidateRelayName(absl::string_view what, absl::string_view name) {
  if (name.empty() || name.size() > 128) {
    return absl::InvalidArgumentError(absl::StrCat(what, " must be 1-128 characters"));
  }
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " '", name, "' may only contain A-Z a-z 0-9 . _ -"));
    }
  }
  return absl::OkStatus();
}

}  // namespace tether::net
