#include "common/proto/frame_codec.h"

#include <climits>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace tether::proto {
namespace {

// A varint encodes at most 64 bits in 7-bit groups, so it never needs more than 10 bytes.
constexpr size_t kMaxVarintBytes = 10;

// Explains why the varint at `offset` could not be read: the body ended inside it, or it runs
// past 10 bytes.
absl::Status BadLengthPrefix(std::string_view body, size_t offset, size_t index) {
  size_t n = 0;
  while (offset + n < body.size() && n < kMaxVarintBytes &&
         (static_cast<uint8_t>(body[offset + n]) & 0x80) != 0) {
    ++n;
  }
  if (offset + n == body.size() && n < kMaxVarintBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("relay frame batch truncated: the length prefix of frame ", index,
                     " at offset ", offset, " is cut off"));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("relay frame batch malformed: the length prefix of frame ", index, " at offset ",
                   offset, " is not a valid varint (over 10 bytes or 64 bits)"));
}

}  // namespace

std::string EncodeDelimited(const std::vector<RelayFrame>& frames) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream string_stream(&out);
    google::protobuf::io::CodedOutputStream coded(&string_stream);
    for (const RelayFrame& frame : frames) {
      coded.WriteVarint64(frame.ByteSizeLong());
      frame.SerializeWithCachedSizes(&coded);
    }
  }  // ~CodedOutputStream trims `out` to the bytes written.
  return out;
}

std::string EncodeDelimitedSerialized(const std::vector<std::string>& serialized_frames) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream string_stream(&out);
    google::protobuf::io::CodedOutputStream coded(&string_stream);
    for (const std::string& frame : serialized_frames) {
      coded.WriteVarint64(frame.size());
      coded.WriteRaw(frame.data(), static_cast<int>(frame.size()));
    }
  }
  return out;
}

absl::StatusOr<std::vector<RelayFrame>> DecodeDelimited(std::string_view body, size_t max_frames,
                                                        size_t max_frame_bytes) {
  if (body.size() > static_cast<size_t>(INT_MAX)) {
    return absl::InvalidArgumentError(
        absl::StrCat("relay frame batch of ", body.size(), " bytes is too large to decode"));
  }
  const auto* data = reinterpret_cast<const uint8_t*>(body.data());
  google::protobuf::io::CodedInputStream input(data, static_cast<int>(body.size()));

  std::vector<RelayFrame> frames;
  while (true) {
    const size_t offset = static_cast<size_t>(input.CurrentPosition());
    if (offset == body.size()) break;
    const size_t index = frames.size();
    if (index >= max_frames) {
      return absl::InvalidArgumentError(
          absl::StrCat("relay frame batch has more than ", max_frames, " frames (the limit)"));
    }
    uint64_t length = 0;
    if (!input.ReadVarint64(&length)) return BadLengthPrefix(body, offset, index);
    if (length > max_frame_bytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("relay frame batch malformed: frame ", index, " at offset ", offset, " is ",
                       length, " bytes, over the limit of ", max_frame_bytes));
    }
    const size_t start = static_cast<size_t>(input.CurrentPosition());
    const size_t remaining = body.size() - start;
    if (length > remaining) {
      return absl::InvalidArgumentError(absl::StrCat("relay frame batch truncated: frame ", index,
                                                     " at offset ", offset, " declares ", length,
                                                     " bytes but only ", remaining, " remain"));
    }
    RelayFrame& frame = frames.emplace_back();
    if (!frame.ParseFromArray(data + start, static_cast<int>(length))) {
      return absl::InvalidArgumentError(absl::StrCat("relay frame batch malformed: frame ", index,
                                                     " at offset ", offset,
                                                     " is not a valid RelayFrame"));
    }
    input.Skip(static_cast<int>(length));
  }
  return frames;
}

}  // namespace tether::proto
