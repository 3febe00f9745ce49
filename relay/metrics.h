// Counters and gauges of a relay, rendered as Prometheus text for GET /metrics. Thread-safe
// (relaxed atomics: each value is exact, a scrape is not a consistent snapshot across values).
#ifndef TETHER_RELAY_METRICS_H_
#define TETHER_RELAY_METRICS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

#include "common/crypto/sas_token.h"

namespace tether::relay {

class RelayMetrics {
 public:
  std::atomic<int64_t> websocket_listeners{0};
  std::atomic<int64_t> longpoll_listeners{0};
  std::atomic<int64_t> channels{0};
  std::atomic<uint64_t> channels_opened{0};
  std::atomic<uint64_t> channels_rejected{0};
  std::atomic<uint64_t> frames_to_listener{0};
  std::atomic<uint64_t> frames_to_sender{0};
  std::atomic<uint64_t> bytes_to_listener{0};
  std::atomic<uint64_t> bytes_to_sender{0};
  std::atomic<uint64_t> queue_full_closes{0};
  std::atomic<uint64_t> longpoll_polls{0};
  std::atomic<uint64_t> connections_accepted{0};
  std::atomic<uint64_t> handshake_timeouts{0};
  std::atomic<uint64_t> bad_requests{0};
  std::atomic<uint64_t> invalid_frames{0};
  std::atomic<uint64_t> listener_replacements{0};

  void CountAuthFailure(crypto::SasFailure failure);
  uint64_t auth_failures(crypto::SasFailure failure) const;

  std::string RenderPrometheus() const;

 private:
  static constexpr int kFailureKinds = 7;
  std::array<std::atomic<uint64_t>, kFailureKinds> auth_failures_{};
};

}  // namespace tether::relay

#endif  // TETHER_RELAY_METRICS_H_
