// Settings of a relay server (flags of //relay:relay_server; see docs/RELAY.md).
#ifndef TETHER_RELAY_RELAY_OPTIONS_H_
#define TETHER_RELAY_RELAY_OPTIONS_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "common/crypto/sas_token.h"

namespace tether::relay {

struct RelayOptions {
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 9350;  // 0 picks a free port
  // TLS certificate chain and private key (PEM). Both empty requires `insecure`.
  std::string tls_cert_file;
  std::string tls_key_file;
  // Plaintext HTTP/WebSocket; refused unless listen_host is a loopback address.
  bool insecure = false;
  int threads = 0;  // 0 = one per core

  std::shared_ptr<const crypto::SasKeyRing> keys;

  std::size_t max_listeners_per_entity = 25;
  std::size_t max_frame_bytes = 1 << 20;
  std::size_t channel_queue_bytes = 4 << 20;
  std::size_t connection_queue_bytes = 16 << 20;
  absl::Duration ping_interval = absl::Seconds(20);
  absl::Duration longpoll_idle_timeout = absl::Seconds(60);
  absl::Duration handshake_timeout = absl::Seconds(10);
  absl::Duration accept_timeout = absl::Seconds(30);
  absl::Duration drain_timeout = absl::Seconds(10);
  // Answer WebSocket upgrades of listeners with 400, as a proxy that strips upgrades would
  // (tests of the long-poll fallback).
  bool refuse_websocket_upgrade = false;
};

}  // namespace tether::relay

#endif  // TETHER_RELAY_RELAY_OPTIONS_H_
