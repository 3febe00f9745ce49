// The relay server (DESIGN §3): accepts listeners and senders on one port and bridges their
// channels. See docs/RELAY.md for the protocol as built.
//
//   ASSIGN_OR_RETURN(auto server, RelayServer::Create(options));
//   server->Start();            // serves on options.threads threads
//   ... server->port() ...
//   server->Drain();            // stop accepting, let channels finish, close listeners
//   server->Wait();             // until every thread has stopped
//
// Thread-safe: Drain and Stop may be called from any thread (e.g. a signal handler thread).
#ifndef TETHER_RELAY_RELAY_SERVER_H_
#define TETHER_RELAY_RELAY_SERVER_H_

#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "relay/relay_options.h"

namespace tether::relay {

struct RelayContext;

class RelayServer {
 public:
  // Loads the TLS certificate and key (the key file must be mode 0600), binds the port.
  // Errors: kInvalidArgument for bad options (insecure on a non-loopback address, missing keys),
  // kPermissionDenied for a key file readable by others, kUnavailable when the port is taken.
  static absl::StatusOr<std::unique_ptr<RelayServer>> Create(RelayOptions options);
  ~RelayServer();

  uint16_t port() const { return port_; }
  const RelayContext& context() const { return *context_; }
  RelayContext& mutable_context() { return *context_; }

  void Start();
  // Graceful: refuses new listeners and channels, waits up to drain_timeout for channels to
  // finish, closes listeners with 1001 so they reconnect elsewhere, then stops.
  void Drain();
  // Immediate stop.
  void Stop();
  void Wait();

 private:
  struct Impl;
  explicit RelayServer(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
  RelayContext* context_;
  uint16_t port_ = 0;
};

}  // namespace tether::relay

#endif  // TETHER_RELAY_RELAY_SERVER_H_
