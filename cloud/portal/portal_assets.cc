#include "cloud/portal/portal_assets.h"

#include <utility>

#include "absl/strings/match.h"

namespace tether::cloud::portal {

const EmbeddedAsset* FindAsset(absl::string_view path) {
  for (int i = 0; i < internal::kPortalAssetCount; ++i) {
    if (path == internal::kPortalAssetTable[i].path) return &internal::kPortalAssetTable[i];
  }
  return nullptr;
}

std::string ContentTypeFor(absl::string_view path) {
  static constexpr std::pair<const char*, const char*> kTypes[] = {
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".json", "application/json"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".ico", "image/x-icon"},
      {".txt", "text/plain; charset=utf-8"},
  };
  for (const auto& [extension, type] : kTypes) {
    if (absl::EndsWith(path, extension)) return type;
  }
  return "application/octet-stream";
}

void AddSecurityHeaders(http::Response& response) {
  response.headers.emplace_back("Content-Security-Policy", kContentSecurityPolicy);
  response.headers.emplace_back("X-Frame-Options", "DENY");
  response.headers.emplace_back("Referrer-Policy", "no-referrer");
  // Browsers honour it over HTTPS only, so it is harmless on a plaintext loopback server.
  response.headers.emplace_back("Strict-Transport-Security", "max-age=31536000");
  response.headers.emplace_back("Cross-Origin-Opener-Policy", "same-origin");
  response.headers.emplace_back("Cross-Origin-Resource-Policy", "same-origin");
}

std::optional<http::Response> ServePortal(const http::Request& request) {
  absl::string_view file;
  if (request.path == "/" || request.path == "/index.html") {
    file = "index.html";
  } else if (absl::StartsWith(request.path, "/static/")) {
    file = absl::string_view(request.path).substr(8);
  } else {
    return std::nullopt;
  }
  http::Response response;
  AddSecurityHeaders(response);
  if (request.method != "GET" && request.method != "HEAD") {
    response.status = 405;
    response.headers.emplace_back("Allow", "GET, HEAD");
    response.body = "method not allowed\n";
    return response;
  }
  const EmbeddedAsset* asset = FindAsset(file);
  if (asset == nullptr) {
    response.status = 404;
    response.body = "not found\n";
    return response;
  }
  response.content_type = ContentTypeFor(file);
  response.body.assign(asset->data, asset->size);
  return response;
}

}  // namespace tether::cloud::portal
