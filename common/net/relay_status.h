// Details the relay client attaches to its statuses, so callers can act on them without parsing
// messages: the HTTP status of a refused handshake, and the WebSocket / RelayFrame close code of
// a closed channel or connection.
#ifndef TETHER_COMMON_NET_RELAY_STATUS_H_
#define TETHER_COMMON_NET_RELAY_STATUS_H_

#include <cstdint>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace tether::net {

// The HTTP status a relay (or a listener's Reject) answered an upgrade or request with, if
// `status` came from such an answer.
std::optional<int> HttpStatusOf(const absl::Status& status);

// The close code of a channel or control connection, if `status` reports a close. 1006 (as in
// RFC 6455) when the connection ended without a close frame.
std::optional<uint32_t> CloseCodeOf(const absl::Status& status);

// Builds the status for a non-101/non-2xx answer: 401 kUnauthenticated, 403 kPermissionDenied,
// 404 kNotFound, 429 kResourceExhausted, 503 kUnavailable, 504 kDeadlineExceeded, other 4xx
// kFailedPrecondition (400 kInvalidArgument), other 5xx kUnavailable (500 kInternal). The message
// is "<what>: HTTP <code> <reason phrase>: <first line of body>"; the code is attached for
// HttpStatusOf().
absl::Status HttpRefusalStatus(absl::string_view what, int http_status,
                               absl::string_view reason_phrase, absl::string_view body);

// The status of a close with `code` and `reason`: `status_code` with the message
// "closed <code>: <reason>" (prefixed with `what` when not empty); the code is attached for
// CloseCodeOf().
absl::Status ClosedStatus(absl::StatusCode status_code, uint32_t code, absl::string_view reason,
                          absl::string_view what = "");

}  // namespace tether::net

#endif  // TETHER_COMMON_NET_RELAY_STATUS_H_
