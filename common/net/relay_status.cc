#include "common/net/relay_status.h"

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace tether::net {
namespace {

constexpr absl::string_view kHttpStatusPayload = "type.tether.dev/relay-http-status";
constexpr absl::string_view kCloseCodePayload = "type.tether.dev/relay-close-code";
constexpr std::size_t kMaxReasonBytes = 200;

absl::StatusCode CodeForHttpStatus(int http_status) {
  switch (http_status) {
    case 400:
      return absl::StatusCode::kInvalidArgument;
    case 401:
      return absl::StatusCode::kUnauthenticated;
    case 403:
      return absl::StatusCode::kPermissionDenied;
    case 404:
      return absl::StatusCode::kNotFound;
    case 429:
      return absl::StatusCode::kResourceExhausted;
    case 500:
      return absl::StatusCode::kInternal;
    case 503:
      return absl::StatusCode::kUnavailable;
    case 504:
      return absl::StatusCode::kDeadlineExceeded;
    default:
      break;
  }
  if (http_status >= 400 && http_status < 500) return absl::StatusCode::kFailedPrecondition;
  return absl::StatusCode::kUnavailable;
}

std::optional<int64_t> IntPayload(const absl::Status& status, absl::string_view url) {
  auto payload = status.GetPayload(url);
  int64_t value = 0;
  if (!payload || !absl::SimpleAtoi(std::string(*payload), &value)) return std::nullopt;
  return value;
}

}  // namespace

std::optional<int> HttpStatusOf(const absl::Status& status) {
  auto value = IntPayload(status, kHttpStatusPayload);
  if (!value) return std::nullopt;
  return static_cast<int>(*value);
}

std::optional<uint32_t> CloseCodeOf(const absl::Status& status) {
  auto value = IntPayload(status, kCloseCodePayload);
  if (!value) return std::nullopt;
  return static_cast<uint32_t>(*value);
}

absl::Status HttpRefusalStatus(absl::string_view what, int http_status,
                               absl::string_view reason_phrase, absl::string_view body) {
  absl::string_view line = body.substr(0, body.find_first_of("\r\n"));
  line = absl::StripAsciiWhitespace(line.substr(0, kMaxReasonBytes));
  std::string message = absl::StrCat(what, ": HTTP ", http_status);
  if (!reason_phrase.empty()) absl::StrAppend(&message, " ", reason_phrase);
  if (!line.empty()) absl::StrAppend(&message, ": ", line);
  absl::Status status(CodeForHttpStatus(http_status), message);
  status.SetPayload(kHttpStatusPayload, absl::Cord(absl::StrCat(http_status)));
  return status;
}

absl::Status ClosedStatus(absl::StatusCode status_code, uint32_t code, absl::string_view reason,
                          absl::string_view what) {
  std::string message = absl::StrCat(what, what.empty() ? "" : ": ", "closed ", code);
  if (!reason.empty()) absl::StrAppend(&message, ": ", reason);
  absl::Status status(status_code, message);
  status.SetPayload(kCloseCodePayload, absl::Cord(absl::StrCat(code)));
  return status;
}

}  // namespace tether::net
