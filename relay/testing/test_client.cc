#include "relay/testing/test_client.h"

#include <boost/asio/connect.hpp>

#include "absl/strings/str_cat.h"

namespace tether::relay::testing {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;

tcp::endpoint Loopback(uint16_t port) { return tcp::endpoint(net::ip::make_address("127.0.0.1"), port); }

}  // namespace

HttpResult HttpRequest(uint16_t port, http::verb method, const std::string& target,
                       const std::string& token, const std::string& body) {
  net::io_context ioc;
  beast::tcp_stream stream(ioc);
  stream.expires_after(std::chrono::seconds(70));
  beast::error_code ec;
  stream.connect(Loopback(port), ec);
  if (ec) return {};
  http::request<http::string_body> req(method, target, 11);
  req.set(http::field::host, absl::StrCat("127.0.0.1:", port));
  if (!token.empty()) req.set(http::field::authorization, token);
  req.keep_alive(false);
  req.body() = body;
  req.prepare_payload();
  http::write(stream, req, ec);
  if (ec) return {};
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(stream, buffer, res, ec);
  if (ec) return {};
  return HttpResult{static_cast<int>(res.result_int()), res.body()};
}

TestWebSocket::TestWebSocket(uint16_t port) : ws_(ioc_), port_(port) {}

TestWebSocket::~TestWebSocket() {
  beast::error_code ec;
  beast::get_lowest_layer(ws_).socket().close(ec);
}

int TestWebSocket::Open(const std::string& target, const std::string& token) {
  beast::error_code ec;
  beast::get_lowest_layer(ws_).expires_after(std::chrono::seconds(60));
  beast::get_lowest_layer(ws_).connect(Loopback(port_), ec);
  if (ec) return 0;
  ws_.set_option(websocket::stream_base::decorator([token](websocket::request_type& req) {
    if (!token.empty()) req.set(http::field::authorization, token);
  }));
  websocket::response_type res;
  ws_.handshake(res, absl::StrCat("127.0.0.1:", port_), target, ec);
  if (ec) {
    refusal_body_ = res.body();
    return static_cast<int>(res.result_int());
  }
  beast::get_lowest_layer(ws_).expires_never();
  ws_.binary(true);
  ws_.read_message_max(64 << 20);
  return 101;
}

void TestWebSocket::Write(const std::string& message) {
  beast::error_code ec;
  ws_.write(net::buffer(message), ec);
}

std::optional<std::string> TestWebSocket::Read(std::chrono::milliseconds timeout) {
  timed_out_ = false;
  if (!read_pending_) {
    read_pending_ = true;
    read_result_.reset();
    read_buffer_.consume(read_buffer_.size());
    ws_.async_read(read_buffer_, [this](beast::error_code ec, std::size_t) { read_result_ = ec; });
  }
  ioc_.restart();
  ioc_.run_for(timeout);
  if (!read_result_) {
    // Timed out: the read stays pending and the next Read() continues it.
    timed_out_ = true;
    return std::nullopt;
  }
  read_pending_ = false;
  std::optional<beast::error_code> result = read_result_;
  if (*result) {
    close_code_ = ws_.reason().code;
    close_reason_ = std::string(ws_.reason().reason.c_str());
    if (*result != websocket::error::closed && close_code_ == 0) close_code_ = 1006;
    return std::nullopt;
  }
  return beast::buffers_to_string(read_buffer_.data());
}

std::optional<proto::RelayFrame> TestWebSocket::ReadFrame(std::chrono::milliseconds timeout) {
  // Skips Ping frames: liveness traffic is not what tests wait for.
  while (true) {
    std::optional<std::string> message = Read(timeout);
    if (!message) return std::nullopt;
    proto::RelayFrame frame;
    if (!frame.ParseFromString(*message)) return std::nullopt;
    if (frame.kind_case() == proto::RelayFrame::kPing) continue;
    return frame;
  }
}

void TestWebSocket::Close(int code, const std::string& reason) {
  beast::error_code ec;
  ws_.close(websocket::close_reason(static_cast<websocket::close_code>(code), reason), ec);
}

TestListener::TestListener(uint16_t port, std::string entity, std::string id, std::string token)
    : ws_(port), entity_(std::move(entity)), id_(std::move(id)), token_(std::move(token)) {}

int TestListener::Connect() {
  return ws_.Open(absl::StrCat("/$hc/", entity_, "?action=listen&id=", id_), token_);
}

uint64_t TestListener::ExpectOpen() {
  // Close frames of channels that ended earlier may come first.
  while (true) {
    std::optional<proto::RelayFrame> frame = ws_.ReadFrame();
    if (!frame) return 0;
    if (frame->kind_case() == proto::RelayFrame::kOpen) return frame->open().channel_id();
    if (frame->kind_case() != proto::RelayFrame::kClose) return 0;
  }
}

void TestListener::Accept(uint64_t channel_id) {
  proto::RelayFrame frame;
  frame.mutable_accept()->set_channel_id(channel_id);
  ws_.WriteFrame(frame);
}

void TestListener::Reject(uint64_t channel_id, uint32_t status, const std::string& reason) {
  proto::RelayFrame frame;
  frame.mutable_reject()->set_channel_id(channel_id);
  frame.mutable_reject()->set_http_status(status);
  frame.mutable_reject()->set_reason(reason);
  ws_.WriteFrame(frame);
}

void TestListener::SendData(uint64_t channel_id, const std::string& payload) {
  proto::RelayFrame frame;
  frame.mutable_data()->set_channel_id(channel_id);
  frame.mutable_data()->set_payload(payload);
  ws_.WriteFrame(frame);
}

void TestListener::CloseChannel(uint64_t channel_id, uint32_t code, const std::string& reason) {
  proto::RelayFrame frame;
  frame.mutable_close()->set_channel_id(channel_id);
  frame.mutable_close()->set_code(code);
  frame.mutable_close()->set_reason(reason);
  ws_.WriteFrame(frame);
}

}  // namespace tether::relay::testing
