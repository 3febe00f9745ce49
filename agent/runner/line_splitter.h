// Turning a process's output bytes into LogLine texts: LineSplitter cuts a byte stream into lines,
// ToValidUtf8 makes any bytes fit a protobuf string field.
#ifndef TETHER_AGENT_RUNNER_LINE_SPLITTER_H_
#define TETHER_AGENT_RUNNER_LINE_SPLITTER_H_

#include <cstddef>
#include <functional>
#include <string>

#include "absl/strings/string_view.h"

namespace tether::agent {

// Longest line LineSplitter passes on; a longer one is cut into pieces of at most this size.
inline constexpr size_t kMaxLogLineBytes = 8 << 10;

// Cuts a byte stream, fed in chunks of any size, into lines. Each line is passed to `on_line`
// without its terminator ("\n", or "\r\n"). A line longer than `max_line_bytes` is passed on in
// pieces of at most that many bytes, cut before a UTF-8 continuation byte where possible so that
// a character is not split. Not thread-safe.
class LineSplitter {
 public:
  explicit LineSplitter(std::function<void(absl::string_view line)> on_line,
                        size_t max_line_bytes = kMaxLogLineBytes);

  // Feeds more bytes; complete lines are passed on at once.
  void Append(absl::string_view bytes);

  // The stream ended: passes on the last line if it has no terminator (and is not empty).
  void Finish();

 private:
  void Emit(absl::string_view line);

  std::function<void(absl::string_view)> on_line_;
  size_t max_line_bytes_;
  std::string pending_;  // bytes of the current, unterminated line; always < max_line_bytes_
};

// `bytes` with each maximal invalid UTF-8 subsequence replaced by U+FFFD (overlong forms,
// surrogates and code points above U+10FFFF are invalid), so that it can be put in a proto3
// string field, which a parser refuses when it is not valid UTF-8. Valid input comes back as is.
std::string ToValidUtf8(absl::string_view bytes);

}  // namespace tether::agent

#endif  // TETHER_AGENT_RUNNER_LINE_SPLITTER_H_
