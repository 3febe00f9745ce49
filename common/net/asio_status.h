// The one adapter from boost::system::error_code (Asio, Beast, Asio's OpenSSL errors) to
// absl::Status, so network errors cross module boundaries as statuses (STYLE: Errors).
#ifndef TETHER_COMMON_NET_ASIO_STATUS_H_
#define TETHER_COMMON_NET_ASIO_STATUS_H_

#include <boost/system/error_code.hpp>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace tether::net {

// OK for a clear `ec`. Otherwise "<context>: <ec.message()>" with a code that says what to do:
// kCancelled (operation_aborted), kDeadlineExceeded (timeouts), kUnavailable (everything a retry
// may fix: refused, reset, end of stream, unreachable, name not found, TLS failures).
absl::Status AsioStatus(const boost::system::error_code& ec, absl::string_view context);

}  // namespace tether::net

#endif  // TETHER_COMMON_NET_ASIO_STATUS_H_
