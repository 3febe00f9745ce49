#include "common/net/http_client.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/net/asio_status.h"

namespace tether::net::internal {
namespace {

namespace beast = boost::beast;
namespace http = boost::beast::http;

}  // namespace

HttpClient::HttpClient(beast::tcp_stream::executor_type executor,
                       std::shared_ptr<const DialTarget> target)
    : executor_(std::move(executor)), target_(std::move(target)) {}

void HttpClient::AsyncRequest(HttpRequest request, absl::Duration timeout, std::size_t body_limit,
                              Done done) {
  cancelled_ = false;
  request_ = std::move(request);
  request_.version(11);
  request_.set(http::field::host, target_->endpoint.HostHeader());
  request_.set(http::field::user_agent, "tether-relay-client");
  request_.prepare_payload();
  timeout_ = timeout;
  body_limit_ = body_limit;
  done_ = std::move(done);
  if (connected_ && absl::Now() - last_used_ < kMaxIdle) {
    reused_ = true;
    return DoWrite();
  }
  Connect();
}

void HttpClient::Cancel() {
  cancelled_ = true;
  // Dropping the callback also breaks the reference cycle owner -> client -> callback -> owner
  // even if the loop stops before the aborted operation's handler runs.
  done_ = nullptr;
  if (stream_) stream_->Abort();
  connected_ = false;
}

void HttpClient::Connect() {
  reused_ = false;
  connected_ = false;
  // The previous stream has no operation outstanding (one request at a time), so it can go.
  stream_ = std::make_unique<MaybeTlsStream>(executor_);
  buffer_.clear();
  AsyncDial(*stream_, target_,
            [self = shared_from_this()](absl::Status status) { self->OnConnect(std::move(status)); });
}

void HttpClient::OnConnect(absl::Status status) {
  if (cancelled_) {
    stream_->Abort();
    return Finish(absl::CancelledError("request cancelled"));
  }
  if (!status.ok()) return Finish(std::move(status));
  connected_ = true;
  DoWrite();
}

void HttpClient::DoWrite() {
  if (cancelled_) return Finish(absl::CancelledError("request cancelled"));
  parser_.emplace();
  parser_->body_limit(body_limit_);
  stream_->tcp().expires_after(absl::ToChronoMilliseconds(timeout_));
  http::async_write(*stream_, request_,
                    beast::bind_front_handler(&HttpClient::OnWrite, shared_from_this()));
}

void HttpClient::OnWrite(beast::error_code ec, std::size_t) {
  if (ec) return FailOrRetry(ec, false, "send request to");
  http::async_read(*stream_, buffer_, *parser_,
                   beast::bind_front_handler(&HttpClient::OnRead, shared_from_this()));
}

void HttpClient::OnRead(beast::error_code ec, std::size_t) {
  if (ec == http::error::body_limit) {
    connected_ = false;
    stream_->Abort();
    return Finish(absl::ResourceExhaustedError(
        absl::StrCat("response from ", target_->endpoint.ToString(), " is over ", body_limit_,
                     " bytes")));
  }
  if (ec) return FailOrRetry(ec, parser_->got_some(), "read response from");
  stream_->tcp().expires_never();
  last_used_ = absl::Now();
  HttpResponse response = parser_->release();
  if (response.need_eof()) {
    connected_ = false;
    stream_->Abort();
  }
  Finish(std::move(response));
}

void HttpClient::FailOrRetry(beast::error_code ec, bool got_response_bytes, const char* what) {
  connected_ = false;
  if (stream_) stream_->Abort();
  if (cancelled_) return Finish(absl::CancelledError("request cancelled"));
  if (reused_ && !got_response_bytes && ec != beast::error::timeout) {
    return Connect();
  }
  Finish(AsioStatus(ec, absl::StrCat(what, " ", target_->Describe())));
}

void HttpClient::Finish(absl::StatusOr<HttpResponse> result) {
  Done done = std::move(done_);
  done_ = nullptr;
  if (done) done(std::move(result));
}

}  // namespace tether::net::internal
