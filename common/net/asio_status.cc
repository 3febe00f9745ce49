#include "common/net/asio_status.h"

#include <boost/asio/error.hpp>
#include <boost/beast/core/error.hpp>

#include "absl/strings/str_cat.h"

namespace tether::net {

absl::Status AsioStatus(const boost::system::error_code& ec, absl::string_view context) {
  if (!ec) return absl::OkStatus();
  std::string message = absl::StrCat(context, ": ", ec.message());
  if (ec == boost::asio::error::operation_aborted) return absl::CancelledError(message);
  if (ec == boost::beast::error::timeout || ec == boost::asio::error::timed_out) {
    return absl::DeadlineExceededError(message);
  }
  return absl::UnavailableError(message);
}

}  // namespace tether::net
