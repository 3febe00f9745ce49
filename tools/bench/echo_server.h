// The direct baseline of the relay benchmark: a Boost.Beast WebSocket echo server on
// 127.0.0.1 with its own io_context and threads. Every message is sent back as it came (same
// opcode), full duplex: reading continues while echoes are written, as the relay does. Optional
// TLS with the same OpenSSL settings as the relay (SSL_MODE_RELEASE_BUFFERS).
//
// relay_bench runs it in a child process (relay_bench --serve_echo), like the relay, so both
// servers' CPU time and resident memory are measured the same way.
#ifndef TETHER_TOOLS_BENCH_ECHO_SERVER_H_
#define TETHER_TOOLS_BENCH_ECHO_SERVER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace tether::bench {

class EchoServer {
 public:
  // Binds 127.0.0.1:0 and starts serving on `threads` threads; TLS when `tls_cert_file` and
  // `tls_key_file` (PEM) are given. Errors: kUnavailable when no port can be bound,
  // kInvalidArgument when the certificate or key does not load.
  static absl::StatusOr<std::unique_ptr<EchoServer>> Start(int threads,
                                                           const std::string& tls_cert_file,
                                                           const std::string& tls_key_file);
  // Stops the io_context and joins the threads; open connections are dropped.
  ~EchoServer();

  uint16_t port() const;

 private:
  struct Impl;
  explicit EchoServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tether::bench

#endif  // TETHER_TOOLS_BENCH_ECHO_SERVER_H_
