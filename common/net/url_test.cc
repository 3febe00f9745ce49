#include "common/net/url.h"

#include "gtest/gtest.h"

namespace tether::net {
namespace {

TEST(ParseRelayEndpointTest, HttpsUrlWithPortParses) {
  auto endpoint = ParseRelayEndpoint("https://127.0.0.1:9350");
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  EXPECT_TRUE(endpoint->tls);
  EXPECT_EQ(endpoint->host, "127.0.0.1");
  EXPECT_EQ(endpoint->port, 9350);
  EXPECT_EQ(endpoint->Authority(), "127.0.0.1:9350");
  EXPECT_EQ(endpoint->HostHeader(), "127.0.0.1:9350");
  EXPECT_EQ(endpoint->ToString(), "https://127.0.0.1:9350");
}

TEST(ParseRelayEndpointTest, HttpIsPlaintextAndPortsDefaultToTheSchemes) {
  auto plain = ParseRelayEndpoint("http://relay.example/");
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_FALSE(plain->tls);
  EXPECT_EQ(plain->port, 80);
  EXPECT_EQ(plain->HostHeader(), "relay.example");

  auto tls = ParseRelayEndpoint("HTTPS://Relay.Example.COM");
  ASSERT_TRUE(tls.ok()) << tls.status();
  EXPECT_TRUE(tls->tls);
  EXPECT_EQ(tls->port, 443);
  EXPECT_EQ(tls->host, "relay.example.com");
}

TEST(ParseRelayEndpointTest, Ipv6LiteralNeedsBracketsAndKeepsThemInTheAuthority) {
  auto endpoint = ParseRelayEndpoint("https://[::1]:9350");
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  EXPECT_EQ(endpoint->host, "::1");
  EXPECT_EQ(endpoint->Authority(), "[::1]:9350");

  auto unbracketed = ParseRelayEndpoint("https://::1:9350");
  EXPECT_EQ(unbracketed.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ParseRelayEndpointTest, RejectsWhatIsNotARelayUrl) {
  const char* bad[] = {
      "127.0.0.1:9350",                  // no scheme
      "wss://relay:9350",                // not http(s)
      "https://relay:9350/$hc/machine",  // path
      "https://relay:9350?x=1",          // query
      "https://user:pw@relay:9350",      // user info
      "https://relay:0",                 // port 0
      "https://relay:65536",             // port too big
      "https://relay:12a",               // port not a number
      "https://relay:",                  // empty port
      "https://",                        // no host
      "https://re lay",                  // bad character
      "https://[zz::1]:1",               // not an IPv6 address
  };
  for (const char* url : bad) {
    SCOPED_TRACE(url);
    EXPECT_EQ(ParseRelayEndpoint(url).status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(ParseProxyUrlTest, CredentialsArePercentDecodedAndNeverInTheRedactedForm) {
  auto proxy = ParseProxyUrl("http://al%40ice:p%3Ass+w0rd@Proxy.Corp:3128/");
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  EXPECT_EQ(proxy->host, "proxy.corp");
  EXPECT_EQ(proxy->port, 3128);
  EXPECT_TRUE(proxy->has_credentials);
  EXPECT_EQ(proxy->username, "al@ice");
  EXPECT_EQ(proxy->password, "p:ss+w0rd");  // '+' is not a space in URL user info
  EXPECT_EQ(proxy->Redacted(), "http://***@proxy.corp:3128");
  EXPECT_EQ(proxy->Redacted().find("ice"), std::string::npos);
  EXPECT_EQ(proxy->Redacted().find("w0rd"), std::string::npos);
}

TEST(ParseProxyUrlTest, SchemeIsOptionalAndPortDefaultsTo80) {
  auto proxy = ParseProxyUrl("proxy.corp");
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  EXPECT_EQ(proxy->port, 80);
  EXPECT_FALSE(proxy->has_credentials);
  EXPECT_EQ(proxy->Redacted(), "http://proxy.corp:80");

  auto user_only = ParseProxyUrl("http://bob@[::1]:8080");
  ASSERT_TRUE(user_only.ok()) << user_only.status();
  EXPECT_EQ(user_only->username, "bob");
  EXPECT_EQ(user_only->password, "");
  EXPECT_EQ(user_only->Authority(), "[::1]:8080");
}

TEST(ParseProxyUrlTest, UnsupportedSchemesAndBadUrlsAreErrorsWithoutTheSecret) {
  const char* bad[] = {
      "https://user:hunter2@proxy:443",   // TLS to the proxy is not supported
      "socks5://user:hunter2@proxy:1080",
      "http://user:hunter2@proxy:99999",
      "http://user:hunter2@proxy:3128/path",
      "http://user:hunter2%zz@proxy:3128",
  };
  for (const char* url : bad) {
    SCOPED_TRACE(url);
    absl::Status status = ParseProxyUrl(url).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(status.message().find("hunter2"), absl::string_view::npos) << status;
  }
}

TEST(ValidateRelayNameTest, AcceptsTheRelaysAlphabetOnly) {
  EXPECT_TRUE(ValidateRelayName("entity", "machine-42").ok());
  EXPECT_TRUE(ValidateRelayName("entity", "Cluster_1.a").ok());
  EXPECT_TRUE(ValidateRelayName("entity", std::string(128, 'a')).ok());
  for (const std::string& bad : {std::string(), std::string(129, 'a'), std::string("a/b"),
                                 std::string("a?b"), std::string("a b"), std::string("hc/x")}) {
    SCOPED_TRACE(bad);
    EXPECT_EQ(ValidateRelayName("entity", bad).code(), absl::StatusCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace tether::net
