// Load-generating WebSocket clients of the relay benchmark, all asynchronous on one caller-owned
// io_context (each connection on its own strand):
//
//   EchoSender       a sender: writes 1 KiB binary messages and counts the echoes, either one at a
//                    time (latency samples) or with a window in flight (throughput). Works against
//                    the relay (action=connect) and the direct echo server alike.
//   EchoListener     a relay listener (action=listen) that accepts every channel and echoes each
//                    Data frame back on its channel.
//   IdleListenerPool many listeners that connect, then only answer the relay's pings (memory).
//
// Public methods may be called from any thread; they post onto the connection's strand. Waiting is
// done with a CompletionGroup. Errors after a connection is up are counted in ClientCounters.
#ifndef TETHER_TOOLS_BENCH_RELAY_CLIENTS_H_
#define TETHER_TOOLS_BENCH_RELAY_CLIENTS_H_

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace tether::bench {

// Where and how a client connects: ws://127.0.0.1:<port><target>.
struct Dial {
  uint16_t port = 0;
  std::string target;         // e.g. "/$hc/bench?action=connect"
  std::string authorization;  // Authorization header value; empty for none
  uint32_t source_ip = 0;     // IPv4 to bind before connecting (host order); 0 = kernel's choice
};

// Counts asynchronous operations until they have all finished; keeps the first error.
// Thread-safe.
class CompletionGroup {
 public:
  void Add(int n = 1);
  void Done(absl::Status status);
  // OK once every added operation finished OK; otherwise the first error. kDeadlineExceeded when
  // `timeout` passes first.
  absl::Status Wait(absl::Duration timeout);

 private:
  absl::Mutex mu_;
  int pending_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status first_error_ ABSL_GUARDED_BY(mu_);
};

// What the clients of one measurement saw. Thread-safe.
class ClientCounters {
 public:
  std::atomic<uint64_t> sent{0};               // messages written by senders
  std::atomic<uint64_t> echoed{0};             // echoes received by senders
  std::atomic<uint64_t> unexpected_closes{0};  // Close frames a listener got with code != 1000

  // An error on a connection that was up (read or write failure, unexpected close).
  void Error(std::string what);
  uint64_t errors() const { return errors_.load(); }
  std::string first_error() const;

 private:
  std::atomic<uint64_t> errors_{0};
  mutable absl::Mutex mu_;
  std::string first_error_ ABSL_GUARDED_BY(mu_);
};

class EchoSender {
 public:
  // `payload` is sent as every message.
  static std::shared_ptr<EchoSender> Create(boost::asio::io_context& ioc, Dial dial,
                                            std::shared_ptr<const std::string> payload,
                                            std::shared_ptr<ClientCounters> counters);
  virtual ~EchoSender() = default;

  // Connects and completes the WebSocket handshake (for the relay: after the listener's Accept).
  virtual void Connect(std::shared_ptr<CompletionGroup> group) = 0;
  // One message at a time: `warmup` round trips unrecorded, then `samples` round-trip times in
  // microseconds appended to `out`, which the caller must not touch until `group` is done.
  virtual void MeasureLatency(int warmup, int samples, std::shared_ptr<std::vector<double>> out,
                              std::shared_ptr<CompletionGroup> group) = 0;
  // Keeps `window` messages in flight, counting echoes in counters->echoed, until StopLoad.
  virtual void StartLoad(int window) = 0;
  // Stops sending; `group` is done once every message in flight has come back.
  virtual void StopLoad(std::shared_ptr<CompletionGroup> group) = 0;
  // WebSocket close handshake (code 1000).
  virtual void Close(std::shared_ptr<CompletionGroup> group) = 0;
};

class EchoListener {
 public:
  static std::shared_ptr<EchoListener> Create(boost::asio::io_context& ioc, Dial dial,
                                              std::shared_ptr<ClientCounters> counters);
  virtual ~EchoListener() = default;

  virtual void Connect(std::shared_ptr<CompletionGroup> group) = 0;
  virtual void Close(std::shared_ptr<CompletionGroup> group) = 0;
  virtual uint64_t channels_accepted() const = 0;
};

class IdleListenerPool {
 public:
  // With `tls`, listeners speak TLS (certificate not verified: a benchmark against its own relay).
  IdleListenerPool(boost::asio::io_context& ioc, bool tls);
  // Closes every connection.
  ~IdleListenerPool();

  struct ConnectResult {
    int64_t connected = 0;
    int64_t failed = 0;
    std::string first_error;
    absl::Duration elapsed;
  };
  // Connects listeners 0..count-1 (listener i dials dial(i), called from I/O threads), with at
  // most `concurrency` connection attempts in flight. Returns when all attempts have finished or
  // `timeout` passed.
  ConnectResult ConnectAll(int count, int concurrency, std::function<Dial(int)> dial,
                           absl::Duration timeout);
  // Connected listeners whose connection has since ended without CloseAll.
  int64_t disconnected() const;
  // Closes every connection (TCP close, no WebSocket close handshake) and waits up to `timeout`
  // for their reads to end.
  void CloseAll(absl::Duration timeout);

  struct State;

 private:
  boost::asio::io_context& ioc_;
  std::shared_ptr<State> state_;
};

// GET http(s)://127.0.0.1:<port><target> on a fresh connection, blocking (own io_context).
// Returns the body of a 200 answer; kUnavailable otherwise.
absl::StatusOr<std::string> HttpGet(uint16_t port, bool tls, const std::string& target);

}  // namespace tether::bench

#endif  // TETHER_TOOLS_BENCH_RELAY_CLIENTS_H_
