// Blocking HTTP and WebSocket clients for relay tests: just enough to speak the relay protocol
// by hand, so tests can also send what a correct client never would. Not thread-safe; each
// object is used by one thread at a time.
#ifndef TETHER_RELAY_TESTING_TEST_CLIENT_H_
#define TETHER_RELAY_TESTING_TEST_CLIENT_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include "common/proto/relay.pb.h"

namespace tether::relay::testing {

struct HttpResult {
  int status = 0;
  std::string body;
};

// One HTTP request on a fresh connection (Connection: close). `token` goes into Authorization
// when not empty.
HttpResult HttpRequest(uint16_t port, boost::beast::http::verb method, const std::string& target,
                       const std::string& token = "", const std::string& body = "");

// A WebSocket to the relay. Open() returns the HTTP status of the handshake (101 on success)
// and keeps the refusal body in refusal_body().
class TestWebSocket {
 public:
  explicit TestWebSocket(uint16_t port);
  ~TestWebSocket();

  int Open(const std::string& target, const std::string& token);
  const std::string& refusal_body() const { return refusal_body_; }

  void Write(const std::string& message);
  void WriteFrame(const proto::RelayFrame& frame) { Write(frame.SerializeAsString()); }
  // Next message, or nullopt when the connection closed or `timeout` passed (timed_out() says
  // which). After a close, close_code() and close_reason() hold what the relay sent.
  std::optional<std::string> Read(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  std::optional<proto::RelayFrame> ReadFrame(
      std::chrono::milliseconds timeout = std::chrono::seconds(10));
  bool timed_out() const { return timed_out_; }
  int close_code() const { return close_code_; }
  const std::string& close_reason() const { return close_reason_; }
  void Close(int code = 1000, const std::string& reason = "");

 private:
  boost::asio::io_context ioc_;
  boost::beast::websocket::stream<boost::beast::tcp_stream> ws_;
  uint16_t port_;
  std::string refusal_body_;
  bool timed_out_ = false;
  bool read_pending_ = false;
  boost::beast::flat_buffer read_buffer_;
  std::optional<boost::beast::error_code> read_result_;
  int close_code_ = 0;
  std::string close_reason_;
};

// A listener driven by hand: connects with action=listen and answers with RelayFrames.
class TestListener {
 public:
  TestListener(uint16_t port, std::string entity, std::string id, std::string token);
  int Connect();
  TestWebSocket& ws() { return ws_; }

  // Waits for an Open frame and returns its channel id (0 on failure).
  uint64_t ExpectOpen();
  void Accept(uint64_t channel_id);
  void Reject(uint64_t channel_id, uint32_t status, const std::string& reason);
  void SendData(uint64_t channel_id, const std::string& payload);
  void CloseChannel(uint64_t channel_id, uint32_t code, const std::string& reason);

 private:
  TestWebSocket ws_;
  std::string entity_;
  std::string id_;
  std::string token_;
};

}  // namespace tether::relay::testing

#endif  // TETHER_RELAY_TESTING_TEST_CLIENT_H_
