// The web portal's static files (cloud/portal/static), embedded in cloud_server at build time
// (embed_assets.cc), and how the cloud's HTTPS server serves them.
//
//   GET /                 -> static/index.html
//   GET /static/<path>    -> static/<path>
//
// Every portal response carries a strict Content-Security-Policy (scripts, styles and fetches
// from this origin only; no inline script or style; no framing), X-Frame-Options: DENY and
// Referrer-Policy: no-referrer. The lookup is an exact match in the embedded table, so no request
// path can reach anything else.
#ifndef TETHER_CLOUD_PORTAL_PORTAL_ASSETS_H_
#define TETHER_CLOUD_PORTAL_PORTAL_ASSETS_H_

#include <cstddef>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "cloud/http/http_server.h"

namespace tether::cloud::portal {

struct EmbeddedAsset {
  const char* path;  // relative to cloud/portal/static, e.g. "js/app.js"
  const char* data;
  size_t size;
};

// The Content-Security-Policy of every portal page.
inline constexpr char kContentSecurityPolicy[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'";

// The embedded file at `path` (relative to static/), or nullptr.
const EmbeddedAsset* FindAsset(absl::string_view path);

// The MIME type served for `path`, by extension (application/octet-stream if unknown).
std::string ContentTypeFor(absl::string_view path);

// The response for a portal path ("/", "/index.html", "/static/..."), or nullopt when `request`
// is not for the portal (the caller answers it). Methods other than GET and HEAD get 405; an
// unknown file under /static/ gets 404.
std::optional<http::Response> ServePortal(const http::Request& request);

// The security headers every portal and REST API response carries.
void AddSecurityHeaders(http::Response& response);

namespace internal {
extern const EmbeddedAsset kPortalAssetTable[];
extern const int kPortalAssetCount;
}  // namespace internal

}  // namespace tether::cloud::portal

#endif  // TETHER_CLOUD_PORTAL_PORTAL_ASSETS_H_
