#include "common/store/key.h"

#include "absl/strings/str_cat.h"

namespace tether::store {
namespace {

constexpr char kEscape = '\x00';
constexpr char kEscapedZero = '\xff';
constexpr char kTerminator = '\x01';

}  // namespace

KeyBuilder& KeyBuilder::AddUint64(uint64_t value) {
  for (int shift = 56; shift >= 0; shift -= 8) {
    key_.push_back(static_cast<char>((value >> shift) & 0xff));
  }
  return *this;
}

KeyBuilder& KeyBuilder::AddString(std::string_view value) {
  for (char c : value) {
    key_.push_back(c);
    if (c == kEscape) key_.push_back(kEscapedZero);
  }
  key_.push_back(kEscape);
  key_.push_back(kTerminator);
  return *this;
}

absl::StatusOr<uint64_t> KeyReader::ReadUint64() {
  if (key_.size() - pos_ < 8) {
    return absl::InvalidArgumentError(absl::StrCat("key truncated: uint64 segment at offset ", pos_,
                                                   " needs 8 bytes, ", key_.size() - pos_,
                                                   " left"));
  }
  uint64_t value = 0;
  for (int i = 0; i < 8; ++i) {
    value = (value << 8) | static_cast<unsigned char>(key_[pos_ + i]);
  }
  pos_ += 8;
  return value;
}

absl::StatusOr<std::string> KeyReader::ReadString() {
  const size_t start = pos_;
  std::string value;
  for (size_t i = pos_; i < key_.size(); ++i) {
    if (key_[i] != kEscape) {
      value.push_back(key_[i]);
      continue;
    }
    if (i + 1 == key_.size()) break;  // 0x00 as the last byte: unterminated.
    if (key_[i + 1] == kTerminator) {
      pos_ = i + 2;
      return value;
    }
    if (key_[i + 1] != kEscapedZero) {
      return absl::InvalidArgumentError(absl::StrCat(
          "malformed string segment: invalid escape 0x00 0x",
          absl::Hex(static_cast<unsigned char>(key_[i + 1]), absl::kZeroPad2), " at offset ", i));
    }
    value.push_back(kEscape);
    ++i;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("key truncated: string segment at offset ", start, " has no terminator"));
}

absl::Status KeyReader::ExpectEnd() const {
  if (AtEnd()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("key has ", key_.size() - pos_, " unexpected trailing bytes at offset ", pos_));
}

}  // namespace tether::store
