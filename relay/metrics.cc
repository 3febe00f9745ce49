#include "relay/metrics.h"

#include "absl/strings/str_cat.h"

namespace tether::relay {
namespace {

void Metric(std::string* out, const char* name, const char* type, const char* help) {
  absl::StrAppend(out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
}

}  // namespace

void RelayMetrics::CountAuthFailure(crypto::SasFailure failure) {
  auth_failures_[static_cast<int>(failure)].fetch_add(1, std::memory_order_relaxed);
}

uint64_t RelayMetrics::auth_failures(crypto::SasFailure failure) const {
  return auth_failures_[static_cast<int>(failure)].load(std::memory_order_relaxed);
}

std::string RelayMetrics::RenderPrometheus() const {
  std::string out;
  Metric(&out, "tether_relay_listeners", "gauge", "Connected listeners by transport.");
  absl::StrAppend(&out, "tether_relay_listeners{transport=\"websocket\"} ",
                  websocket_listeners.load(), "\n");
  absl::StrAppend(&out, "tether_relay_listeners{transport=\"longpoll\"} ",
                  longpoll_listeners.load(), "\n");
  Metric(&out, "tether_relay_channels", "gauge", "Open or pending channels.");
  absl::StrAppend(&out, "tether_relay_channels ", channels.load(), "\n");
  Metric(&out, "tether_relay_channels_opened_total", "counter", "Channels offered to listeners.");
  absl::StrAppend(&out, "tether_relay_channels_opened_total ", channels_opened.load(), "\n");
  Metric(&out, "tether_relay_channels_rejected_total", "counter",
         "Channels refused by a listener or timed out.");
  absl::StrAppend(&out, "tether_relay_channels_rejected_total ", channels_rejected.load(), "\n");
  Metric(&out, "tether_relay_frames_forwarded_total", "counter", "Data frames forwarded.");
  absl::StrAppend(&out, "tether_relay_frames_forwarded_total{direction=\"to_listener\"} ",
                  frames_to_listener.load(), "\n");
  absl::StrAppend(&out, "tether_relay_frames_forwarded_total{direction=\"to_sender\"} ",
                  frames_to_sender.load(), "\n");
  Metric(&out, "tether_relay_bytes_forwarded_total", "counter", "Data payload bytes forwarded.");
  absl::StrAppend(&out, "tether_relay_bytes_forwarded_total{direction=\"to_listener\"} ",
                  bytes_to_listener.load(), "\n");
  absl::StrAppend(&out, "tether_relay_bytes_forwarded_total{direction=\"to_sender\"} ",
                  bytes_to_sender.load(), "\n");
  Metric(&out, "tether_relay_auth_failures_total", "counter", "Refused tokens by reason.");
  for (crypto::SasFailure f : {crypto::SasFailure::kMalformed, crypto::SasFailure::kUnknownKey,
                               crypto::SasFailure::kBadSignature, crypto::SasFailure::kExpired,
                               crypto::SasFailure::kOutOfScope,
                               crypto::SasFailure::kMissingRight}) {
    absl::StrAppend(&out, "tether_relay_auth_failures_total{reason=\"",
                    crypto::SasFailureLabel(f), "\"} ", auth_failures(f), "\n");
  }
  Metric(&out, "tether_relay_queue_full_closes_total", "counter",
         "Channels or connections closed because a peer did not read.");
  absl::StrAppend(&out, "tether_relay_queue_full_closes_total ", queue_full_closes.load(), "\n");
  Metric(&out, "tether_relay_longpoll_polls_total", "counter", "Long-poll requests served.");
  absl::StrAppend(&out, "tether_relay_longpoll_polls_total ", longpoll_polls.load(), "\n");
  Metric(&out, "tether_relay_connections_accepted_total", "counter", "TCP connections accepted.");
  absl::StrAppend(&out, "tether_relay_connections_accepted_total ", connections_accepted.load(),
                  "\n");
  Metric(&out, "tether_relay_handshake_timeouts_total", "counter",
         "Connections closed for sending no complete request in time.");
  absl::StrAppend(&out, "tether_relay_handshake_timeouts_total ", handshake_timeouts.load(), "\n");
  Metric(&out, "tether_relay_bad_requests_total", "counter", "Requests refused as malformed.");
  absl::StrAppend(&out, "tether_relay_bad_requests_total ", bad_requests.load(), "\n");
  Metric(&out, "tether_relay_invalid_frames_total", "counter",
         "Listener messages that were not RelayFrames.");
  absl::StrAppend(&out, "tether_relay_invalid_frames_total ", invalid_frames.load(), "\n");
  Metric(&out, "tether_relay_listener_replacements_total", "counter",
         "Listeners replaced by a reconnect with the same id.");
  absl::StrAppend(&out, "tether_relay_listener_replacements_total ", listener_replacements.load(),
                  "\n");
  return out;
}

}  // namespace tether::relay
