// Test-only servers on 127.0.0.1 port 0, each with its own threads: an echo server (plain TCP or
// TLS) and a tiny HTTP CONNECT proxy. Plain POSIX sockets and OpenSSL, so they share no code with
// the client under test.
#ifndef TETHER_COMMON_NET_TEST_SERVERS_H_
#define TETHER_COMMON_NET_TEST_SERVERS_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

typedef struct ssl_ctx_st SSL_CTX;

namespace tether::net::testing {

// Accept loop on 127.0.0.1:0 with a thread per connection; Stop() (and the destructor) shut
// every connection down and join all threads.
class TestTcpServer {
 public:
  virtual ~TestTcpServer();
  uint16_t port() const { return port_; }
  int connections() const { return connections_.load(); }
  void Stop();

 protected:
  TestTcpServer() = default;
  absl::Status Listen();
  // Runs on the connection's own thread; the fd is closed afterwards.
  virtual void HandleConnection(int fd) = 0;

 private:
  void AcceptLoop();

  int listen_fd_ = -1;
  int stop_pipe_[2] = {-1, -1};
  uint16_t port_ = 0;
  std::atomic<int> connections_{0};
  std::thread accept_thread_;
  absl::Mutex mu_;
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
  std::vector<int> open_fds_ ABSL_GUARDED_BY(mu_);
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
};

// Echoes every byte back. With TLS, records the SNI name each handshake carried.
class EchoServer : public TestTcpServer {
 public:
  // Plain TCP when cert_file is empty.
  static absl::StatusOr<std::unique_ptr<EchoServer>> Start(const std::string& cert_file = "",
                                                           const std::string& key_file = "");
  ~EchoServer() override;

  // The SNI names seen, "" for a handshake without SNI.
  std::vector<std::string> sni_names();
  int failed_handshakes() const { return failed_handshakes_.load(); }

 protected:
  void HandleConnection(int fd) override;

 private:
  EchoServer() = default;
  SSL_CTX* tls_ = nullptr;
  std::atomic<int> failed_handshakes_{0};
  absl::Mutex mu_;
  std::vector<std::string> sni_names_ ABSL_GUARDED_BY(mu_);
};

// An HTTP proxy that only does CONNECT. Checks Proxy-Authorization against `expected_auth`
// (when set), then connects to the target and pipes bytes both ways.
class ConnectProxy : public TestTcpServer {
 public:
  enum class Mode {
    kTunnel,  // normal operation
    kSilent,  // reads the CONNECT and never answers (for timeouts)
    kRefuse,  // answers 403 Forbidden
  };
  // `expected_auth`: the exact Proxy-Authorization value required, e.g. "Basic dXNlcjpwYXNz";
  // nullopt accepts any request.
  static absl::StatusOr<std::unique_ptr<ConnectProxy>> Start(
      std::optional<std::string> expected_auth, Mode mode = Mode::kTunnel);
  ~ConnectProxy() override;

  std::string url() const;
  // The CONNECT targets ("host:port") and Proxy-Authorization values ("" when absent) seen.
  std::vector<std::string> connect_targets();
  std::vector<std::string> authorizations();
  int tunnels() const { return tunnels_.load(); }

 protected:
  void HandleConnection(int fd) override;

 private:
  ConnectProxy() = default;
  std::optional<std::string> expected_auth_;
  Mode mode_ = Mode::kTunnel;
  std::atomic<int> tunnels_{0};
  absl::Mutex mu_;
  std::vector<std::string> targets_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> authorizations_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tether::net::testing

#endif  // TETHER_COMMON_NET_TEST_SERVERS_H_
