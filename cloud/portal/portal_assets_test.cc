// The embedded portal files: exact-match lookup (no path tricks reach anything else), MIME types,
// methods, and the security headers on every answer.
#include "cloud/portal/portal_assets.h"

#include <optional>
#include <string>
#include <tuple>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace tether::cloud::portal {
namespace {

http::Response Get(const std::string& path, const std::string& method = "GET") {
  http::Request request;
  request.method = method;
  request.path = path;
  request.target = path;
  std::optional<http::Response> response = ServePortal(request);
  EXPECT_TRUE(response.has_value()) << path;
  return response.value_or(http::Response{});
}

std::string Header(const http::Response& response, const std::string& name) {
  for (const auto& [key, value] : response.headers) {
    if (key == name) return value;
  }
  return "";
}

TEST(PortalAssetsTest, EmbedsTheStaticFolder) {
  ASSERT_GT(internal::kPortalAssetCount, 0);
  const EmbeddedAsset* hpke = FindAsset("js/hpke.js");
  ASSERT_NE(hpke, nullptr);
  EXPECT_TRUE(absl::StrContains(absl::string_view(hpke->data, hpke->size), "export"));
  EXPECT_EQ(FindAsset("/js/hpke.js"), nullptr);
  EXPECT_EQ(FindAsset("js/../js/hpke.js"), nullptr);
  EXPECT_EQ(FindAsset(""), nullptr);
}

TEST(PortalAssetsTest, ServesIndexAndFilesWithTheirTypes) {
  http::Response index = Get("/");
  EXPECT_EQ(index.status, 200);
  EXPECT_EQ(index.content_type, "text/html; charset=utf-8");
  EXPECT_EQ(index.body, std::string(FindAsset("index.html")->data, FindAsset("index.html")->size));
  EXPECT_EQ(Get("/index.html").body, index.body);

  http::Response js = Get("/static/js/hpke.js");
  EXPECT_EQ(js.status, 200);
  EXPECT_EQ(js.content_type, "text/javascript; charset=utf-8");
  EXPECT_EQ(ContentTypeFor("css/portal.css"), "text/css; charset=utf-8");
  EXPECT_EQ(ContentTypeFor("x.bin"), "application/octet-stream");
}

TEST(PortalAssetsTest, EveryAnswerCarriesTheSecurityHeaders) {
  for (const auto& [path, method, status] :
       {std::tuple<std::string, std::string, int>{"/", "GET", 200},
        {"/static/js/hpke.js", "HEAD", 200},
        {"/static/%2e%2e/BUILD", "GET", 404},
        {"/static/../portal_assets.cc", "GET", 404},
        {"/static/js/hpke.js", "POST", 405},
        {"/", "DELETE", 405}}) {
    http::Response response = Get(path, method);
    EXPECT_EQ(response.status, status) << method << " " << path;
    EXPECT_EQ(Header(response, "Content-Security-Policy"), kContentSecurityPolicy) << path;
    EXPECT_EQ(Header(response, "X-Frame-Options"), "DENY") << path;
    EXPECT_EQ(Header(response, "Referrer-Policy"), "no-referrer") << path;
    EXPECT_EQ(Header(response, "Strict-Transport-Security"), "max-age=31536000") << path;
  }
  EXPECT_TRUE(absl::StrContains(kContentSecurityPolicy, "script-src 'self';"));
  EXPECT_FALSE(absl::StrContains(kContentSecurityPolicy, "unsafe-inline"));
}

TEST(PortalAssetsTest, LeavesOtherPathsToTheCaller) {
  for (const char* path : {"/healthz", "/metrics", "/api/v1/MachineService/ListMachines", "/staticx"}) {
    http::Request request;
    request.method = "GET";
    request.path = path;
    EXPECT_FALSE(ServePortal(request).has_value()) << path;
  }
}

}  // namespace
}  // namespace tether::cloud::portal
