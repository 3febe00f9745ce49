#include "agent/runner/line_splitter.h"

#include <utility>

namespace tether::agent {
namespace {

bool IsContinuation(unsigned char c) { return (c & 0xC0) == 0x80; }

// Looks at the UTF-8 sequence at the start of non-empty `s`. Returns its length and sets *valid
// when it is a complete, valid sequence; otherwise returns the length of its maximal invalid
// subpart (Unicode's "maximal subpart" rule: the lead byte and the continuation bytes that could
// still have completed it, at least 1).
size_t ScanSequence(absl::string_view s, bool* valid) {
  *valid = false;
  const auto b0 = static_cast<unsigned char>(s[0]);
  if (b0 < 0x80) {
    *valid = true;
    return 1;
  }
  size_t length;
  unsigned char low = 0x80, high = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    length = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    length = 3;
    if (b0 == 0xE0) low = 0xA0;   // overlong
    if (b0 == 0xED) high = 0x9F;  // surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    length = 4;
    if (b0 == 0xF0) low = 0x90;   // overlong
    if (b0 == 0xF4) high = 0x8F;  // above U+10FFFF
  } else {
    return 1;
  }
  if (s.size() < 2) return 1;
  const auto b1 = static_cast<unsigned char>(s[1]);
  if (b1 < low || b1 > high) return 1;
  size_t i = 2;
  while (i < length && i < s.size() && IsContinuation(static_cast<unsigned char>(s[i]))) ++i;
  *valid = i == length;
  return i;
}

}  // namespace

LineSplitter::LineSplitter(std::function<void(absl::string_view line)> on_line,
                           size_t max_line_bytes)
    : on_line_(std::move(on_line)), max_line_bytes_(max_line_bytes < 4 ? 4 : max_line_bytes) {}

void LineSplitter::Emit(absl::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  on_line_(line);
}

void LineSplitter::Append(absl::string_view bytes) {
  // Invariant: pending_ holds at most max_line_bytes_ bytes and no newline.
  while (!bytes.empty()) {
    const size_t newline = bytes.find('\n');
    const size_t room = max_line_bytes_ - pending_.size();
    if (newline != absl::string_view::npos && newline <= room) {
      if (pending_.empty()) {
        Emit(bytes.substr(0, newline));
      } else {
        pending_.append(bytes.data(), newline);
        Emit(pending_);
        pending_.clear();
      }
      bytes.remove_prefix(newline + 1);
      continue;
    }
    if (newline == absl::string_view::npos && bytes.size() <= room) {
      pending_.append(bytes.data(), bytes.size());
      return;
    }
    // More than max_line_bytes_ bytes without a newline: pass on a piece. bytes[room] exists and
    // starts the rest; if it continues a character, cut before that character's lead byte.
    pending_.append(bytes.data(), room);
    bytes.remove_prefix(room);
    size_t cut = pending_.size();
    if (IsContinuation(static_cast<unsigned char>(bytes[0]))) {
      size_t lead = cut;
      while (lead > 0 && cut - lead < 3 &&
             IsContinuation(static_cast<unsigned char>(pending_[lead - 1]))) {
        --lead;
      }
      if (lead > 1 && !IsContinuation(static_cast<unsigned char>(pending_[lead - 1]))) {
        cut = lead - 1;
      }
    }
    std::string rest = pending_.substr(cut);
    pending_.resize(cut);
    on_line_(pending_);  // a piece of a line: nothing to strip
    pending_ = std::move(rest);
  }
}

void LineSplitter::Finish() {
  if (!pending_.empty()) Emit(pending_);
  pending_.clear();
}

std::string ToValidUtf8(absl::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  while (!bytes.empty()) {
    bool valid;
    const size_t length = ScanSequence(bytes, &valid);
    if (valid) {
      out.append(bytes.data(), length);
    } else {
      out.append("\xEF\xBF\xBD");
    }
    bytes.remove_prefix(length);
  }
  return out;
}

}  // namespace tether::agent
