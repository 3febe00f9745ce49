#include "common/net/proxy.h"

#include <map>
#include <string>

#include "gtest/gtest.h"

namespace tether::net {
namespace {

struct NoProxyCase {
  const char* no_proxy;
  const char* host;
  uint16_t port;
  bool bypass;
};

TEST(NoProxyMatchesTest, MatchesTheWayCurlDocumentsIt) {
  const NoProxyCase cases[] = {
      {"", "relay.example.com", 443, false},
      {"*", "relay.example.com", 443, true},
      {"example.com", "example.com", 443, true},
      {"example.com", "relay.example.com", 443, true},
      {"example.com", "badexample.com", 443, false},  // suffix only on a dot boundary
      {".example.com", "relay.example.com", 443, true},
      {".example.com", "example.com", 443, true},
      {"*.example.com", "relay.example.com", 443, true},
      {"EXAMPLE.com", "Relay.Example.COM", 443, true},  // case-insensitive
      {"example.com.", "relay.example.com", 443, true},  // trailing dot
      {"other.org, example.com", "relay.example.com", 443, true},
      {"other.org example.com", "relay.example.com", 443, true},  // whitespace separated
      {"other.org,,", "relay.example.com", 443, false},
      {"example.com:9350", "relay.example.com", 9350, true},
      {"example.com:9350", "relay.example.com", 443, false},  // port must match when given
      {"127.0.0.1", "127.0.0.1", 9350, true},
      {"127.0.0.1", "127.0.0.2", 9350, false},
      {"127.0.0.1:9350", "127.0.0.1", 9351, false},
      {"10.0.0.0/8", "10.20.30.40", 443, true},
      {"10.0.0.0/8", "11.0.0.1", 443, false},
      {"10.0.0.0/8", "ten.example", 443, false},
      {"192.168.1.0/25", "192.168.1.127", 443, true},
      {"192.168.1.0/25", "192.168.1.128", 443, false},
      {"::1", "::1", 443, true},
      {"[::1]", "::1", 443, true},
      {"[::1]:9350", "::1", 9350, true},
      {"[::1]:9350", "::1", 9351, false},
      {"fd00::/8", "fd12::5", 443, true},
      {"fd00::/8", "fe80::1", 443, false},
      {"localhost", "127.0.0.1", 443, false},  // no implicit name resolution or loopback rule
      {"0.0.1", "10.0.0.1", 443, false},       // an address is not a domain suffix
  };
  for (const NoProxyCase& c : cases) {
    SCOPED_TRACE(testing::Message() << "NO_PROXY='" << c.no_proxy << "' host=" << c.host << ":"
                                    << c.port);
    EXPECT_EQ(NoProxyMatches(c.no_proxy, c.host, c.port), c.bypass);
  }
}

TEST(ProxyConfigTest, FromEnvironmentPrefersLowerCaseAndReadsEachScheme) {
  std::map<std::string, std::string> env = {
      {"HTTPS_PROXY", "http://upper:3128"},
      {"https_proxy", "http://lower:3128"},
      {"HTTP_PROXY", "http://plain:3128"},
      {"NO_PROXY", "internal.example"},
  };
  ProxyConfig config = ProxyConfig::FromEnvironment([&](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
  EXPECT_EQ(config.https_proxy, "http://lower:3128");
  EXPECT_EQ(config.http_proxy, "http://plain:3128");
  EXPECT_EQ(config.no_proxy, "internal.example");
}

TEST(ProxyConfigTest, EmptyVariablesCountAsUnset) {
  std::map<std::string, std::string> env = {{"https_proxy", ""}, {"HTTPS_PROXY", "http://u:1"}};
  ProxyConfig config = ProxyConfig::FromEnvironment([&](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
  EXPECT_EQ(config.https_proxy, "http://u:1");
  EXPECT_EQ(config.http_proxy, "");
}

TEST(SelectProxyTest, HttpsRelayUsesHttpsProxyAndHttpRelayUsesHttpProxy) {
  ProxyConfig config;
  config.https_proxy = "http://secure-proxy:3128";
  config.http_proxy = "http://plain-proxy:8080";
  RelayEndpoint tls{true, "relay.example", 9350};
  RelayEndpoint plain{false, "relay.example", 9350};

  auto for_tls = SelectProxy(config, tls);
  ASSERT_TRUE(for_tls.ok()) << for_tls.status();
  ASSERT_TRUE(for_tls->has_value());
  EXPECT_EQ((*for_tls)->host, "secure-proxy");

  auto for_plain = SelectProxy(config, plain);
  ASSERT_TRUE(for_plain.ok()) << for_plain.status();
  ASSERT_TRUE(for_plain->has_value());
  EXPECT_EQ((*for_plain)->host, "plain-proxy");
}

TEST(SelectProxyTest, NoProxyAndEmptySettingsMeanDirect) {
  RelayEndpoint relay{true, "relay.internal.example", 9350};
  auto direct = SelectProxy(ProxyConfig::Direct(), relay);
  ASSERT_TRUE(direct.ok());
  EXPECT_FALSE(direct->has_value());

  auto bypassed =
      SelectProxy(ProxyConfig::Explicit("http://proxy:3128", "internal.example"), relay);
  ASSERT_TRUE(bypassed.ok());
  EXPECT_FALSE(bypassed->has_value());
}

TEST(SelectProxyTest, MalformedProxyIsInvalidArgumentWithoutCredentials) {
  RelayEndpoint relay{true, "relay.example", 9350};
  auto selected = SelectProxy(ProxyConfig::Explicit("socks5://bob:s3cret@proxy:1080"), relay);
  EXPECT_EQ(selected.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(selected.status().message().find("s3cret"), absl::string_view::npos);
}

TEST(BasicAuthorizationTest, MatchesRfc7617Example) {
  // RFC 7617 §2: user "Aladdin", password "open sesame".
  EXPECT_EQ(BasicAuthorization("Aladdin", "open sesame"), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
}

TEST(BasicAuthorizationTest, EmptyPasswordKeepsTheColon) {
  EXPECT_EQ(BasicAuthorization("bob", ""), "Basic Ym9iOg==");  // base64("bob:")
}

}  // namespace
}  // namespace tether::net
