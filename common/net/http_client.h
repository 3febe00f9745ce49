// Internal to //common/net: one keep-alive HTTP/1.1 client connection to the relay, for the
// long-poll transport. Opened on first use, reopened after errors and after idling (the relay
// closes idle connections), one request at a time. Not thread-safe: use it from its executor.
#ifndef TETHER_COMMON_NET_HTTP_CLIENT_H_
#define TETHER_COMMON_NET_HTTP_CLIENT_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/net/dial.h"
#include "common/net/maybe_tls_stream.h"

namespace tether::net::internal {

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;
using HttpResponse = boost::beast::http::response<boost::beast::http::string_body>;

class HttpClient : public std::enable_shared_from_this<HttpClient> {
 public:
  using Done = std::function<void(absl::StatusOr<HttpResponse>)>;

  // A keep-alive connection idle longer than this is not reused (the relay's handshake timeout,
  // 10 s, closes idle connections; reusing one that is being closed costs a failed request).
  static constexpr absl::Duration kMaxIdle = absl::Seconds(5);

  HttpClient(boost::beast::tcp_stream::executor_type executor,
             std::shared_ptr<const DialTarget> target);

  // Sends `request` (Host, User-Agent and Content-Length are filled in) and reads the response,
  // whatever its status code, with a body of at most `body_limit` bytes. `timeout` bounds the
  // exchange after the connection is open. A request that fails on a reused connection before
  // any response byte arrived is retried once on a fresh connection. `done` runs on the
  // executor: the response, or kDeadlineExceeded, kUnavailable, or
  // kResourceExhausted (body over the limit). Only one request may be outstanding, and none
  // after Cancel().
  void AsyncRequest(HttpRequest request, absl::Duration timeout, std::size_t body_limit,
                    Done done);

  // Closes the connection. The outstanding request's `done` is dropped without being called.
  void Cancel();

 private:
  void Connect();
  void OnConnect(absl::Status status);
  void DoWrite();
  void OnWrite(boost::beast::error_code ec, std::size_t bytes);
  void OnRead(boost::beast::error_code ec, std::size_t bytes);
  // Retries once on a fresh connection if the failure may be a stale keep-alive connection.
  void FailOrRetry(boost::beast::error_code ec, bool got_response_bytes, const char* what);
  void Finish(absl::StatusOr<HttpResponse> result);

  boost::beast::tcp_stream::executor_type executor_;
  std::shared_ptr<const DialTarget> target_;
  std::unique_ptr<MaybeTlsStream> stream_;
  bool connected_ = false;
  absl::Time last_used_;
  boost::beast::flat_buffer buffer_;

  // The outstanding request.
  bool cancelled_ = false;
  bool reused_ = false;
  HttpRequest request_;
  absl::Duration timeout_;
  std::size_t body_limit_ = 0;
  std::optional<boost::beast::http::response_parser<boost::beast::http::string_body>> parser_;
  Done done_;
};

}  // namespace tether::net::internal

#endif  // TETHER_COMMON_NET_HTTP_CLIENT_H_
