// tetherctl's output: aligned tables and "key: value" blocks for people, JSON for scripts, and the
// small formatting rules both share (times, durations, enum names).
#ifndef TETHER_TOOLS_TETHERCTL_OUTPUT_H_
#define TETHER_TOOLS_TETHERCTL_OUTPUT_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"

namespace tether::tetherctl {

// Columns padded to their widest cell; the first row is the header. Prints "(none)" under the
// header when there are no rows.
class Table {
 public:
  explicit Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }
  void AddRow(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void Print(std::ostream& out) const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

// "key:   value" lines with the values aligned.
class Fields {
 public:
  void Add(std::string key, std::string value) { fields_.emplace_back(std::move(key), std::move(value)); }
  void Print(std::ostream& out) const;

 private:
  std::vector<std::pair<std::string, std::string>> fields_;
};

// The message as one line of JSON (proto field names, default values included, enums by name).
absl::Status PrintJson(const google::protobuf::Message& message, std::ostream& out);

// Local time "2024-05-01 12:00:00", or "-" for 0.
std::string FormatTime(int64_t unix_ms);
// "350ms", "1.2s", "2m03s", "1h02m".
std::string FormatDuration(int64_t ms);
// An enum value's name without its prefix, in lower case: ("RUN_STATE_TIMED_OUT", "RUN_STATE_")
// -> "timed_out".
std::string EnumLabel(absl::string_view name, absl::string_view prefix);
// "-" for an empty string.
std::string OrDash(absl::string_view text);

}  // namespace tether::tetherctl

#endif  // TETHER_TOOLS_TETHERCTL_OUTPUT_H_
