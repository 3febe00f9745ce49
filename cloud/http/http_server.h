// A small HTTP/1.1 server for the cloud's /healthz, /metrics, REST API and web portal (DESIGN §4,
// §7). TLS 1.2+ by default; plaintext only when asked for (`insecure`) and only on loopback.
// Boost.Beast does the work behind this interface; callers see plain structs.
//
//   auto server = Server::Start(options, [](const Request& request) {
//     if (request.path == "/healthz") return Response{.body = "ok\n"};
//     return Response{.status = 404, .body = "not found\n"};
//   });
//
// Every connection is served on its own strand with keep-alive. Requests are refused before the
// handler sees them when they are malformed (400, connection closed), when the header is too large
// (431) or when the body exceeds `body_limit` (413); a client that does not deliver a whole request
// within `read_timeout` is disconnected. Connections over `max_connections` are closed at once.
//
// The structs have default member initializers throughout, so designated initializers
// (`Response{.status = 404}`) compile cleanly under -Wextra.
//
// Every response carries `X-Content-Type-Options: nosniff`, `Cache-Control: no-store` and
// `Server: tether`. The handler's own headers come after these; a handler header with the same
// name (case-insensitive) as one of these defaults, or as `Content-Type`, replaces it.
// `Content-Length`, `Transfer-Encoding` and `Connection` belong to the server and are dropped
// from handler responses.
//
// SIGPIPE: the process must ignore it (`signal(SIGPIPE, SIG_IGN)`, as every Tether main does);
// a write to a peer that has gone must fail with EPIPE, not kill the service.
#ifndef TETHER_CLOUD_HTTP_HTTP_SERVER_H_
#define TETHER_CLOUD_HTTP_HTTP_SERVER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace tether::cloud::http {

struct Request {
  std::string method{};  // as sent: "GET", "POST", ...
  std::string target{};  // path + query, as sent
  std::string path{};    // `target` up to the '?', not percent-decoded
  // The query parameters, percent-decoded ('+' is a space). For a repeated name the first value
  // wins; a name without '=' has the value "".
  std::map<std::string, std::string> query{};
  std::vector<std::pair<std::string, std::string>> headers{};  // in order, names as sent
  std::string body{};

  // The value of the first header called `name` (case-insensitive), or "" if there is none.
  std::string Header(absl::string_view name) const;
};

struct Response {
  int status = 200;  // 200..599; anything else is answered as 500 (and logged)
  std::string content_type = "text/plain; charset=utf-8";
  // Added after the defaults (see the file comment). A name that is not an HTTP token, or a value
  // with CR, LF or NUL in it, turns the response into a 500: no header injection.
  std::vector<std::pair<std::string, std::string>> headers{};
  std::string body{};  // not sent for HEAD requests, nor with 204 and 304
};

// Called on an I/O thread, concurrently from several threads when `threads` > 1, so it must be
// thread-safe. It may block briefly (it holds up its thread's other connections meanwhile). An
// exception that escapes it is caught at the server's boundary, logged, and answered with a 500.
using Handler = std::function<Response(const Request&)>;

struct ServerOptions {
  // "host:port": the host is an IP address ("[::1]" for IPv6) or localhost (127.0.0.1); names
  // are not resolved. Port 0 picks a free port; see Server::port().
  std::string listen = "127.0.0.1:0";
  std::string tls_cert_file{};  // PEM certificate chain, leaf first
  std::string tls_key_file{};   // PEM private key, mode 0600 (crypto::ReadSecretFile)
  bool insecure = false;        // plaintext; only with a loopback `listen` and no TLS files
  int threads = 1;              // I/O threads, >= 1
  size_t body_limit = 1 << 20;
  // Optional: the body limit of one request, decided from its header before any of the body is
  // read (the Request has method, target, path, query and headers; no body). At most
  // `body_limit` is used. A larger Content-Length is answered 413 at once, so a client cannot make
  // the server hold a large body it would refuse anyway (the cloud allows large bodies only to
  // callers whose token authenticates). Called on an I/O thread, like the handler.
  std::function<size_t(const Request& head)> body_limit_for{};
  // How long a client has to deliver a request (header and body, each) and to take a response;
  // also how long an idle keep-alive connection is kept open. At most 24 hours are used.
  absl::Duration read_timeout = absl::Seconds(30);
  size_t max_connections = 1024;
};

// A running server. Thread-safe: port() and Stop() may be called from any thread except the
// server's own I/O threads (that is, not from inside a Handler).
class Server {
 public:
  // Binds, loads TLS material and starts serving. Errors: kInvalidArgument for bad options
  // (unparsable `listen`, `insecure` off loopback or together with TLS files, neither TLS files
  // nor `insecure`, an unloadable certificate or a key that does not match it); the error of
  // crypto::ReadSecretFile for the key file (kPermissionDenied when group or others can read it,
  // kNotFound); kUnavailable when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<Server>> Start(ServerOptions options, Handler handler);

  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  ~Server();  // calls Stop()

  // The bound port (the chosen one when `listen` asked for port 0).
  uint16_t port() const;

  // Stops accepting, closes every connection (requests in flight are abandoned: a handler that is
  // running finishes, its response is not sent) and joins the I/O threads. Idempotent.
  void Stop();

 private:
  struct Impl;
  explicit Server(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
};

}  // namespace tether::cloud::http

#endif  // TETHER_CLOUD_HTTP_HTTP_SERVER_H_
