// Long-poll body format of the relay (DESIGN §3): a sequence of RelayFrames, each preceded by its
// length as a varint (protobuf's "delimited" framing). An empty body is an empty batch.
#ifndef TETHER_COMMON_PROTO_FRAME_CODEC_H_
#define TETHER_COMMON_PROTO_FRAME_CODEC_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/proto/relay.pb.h"

namespace tether::proto {

// Serializes `frames` in order, each as varint(length) || RelayFrame bytes.
std::string EncodeDelimited(const std::vector<RelayFrame>& frames);

// The same format from frames that are already serialized (the relay queues frames as bytes).
std::string EncodeDelimitedSerialized(const std::vector<std::string>& serialized_frames);

// Parses a body made by EncodeDelimited. The body is untrusted: every malformed input is
// kInvalidArgument with a message naming the frame index and byte offset:
//   - the body ends inside a length prefix or inside a frame (truncated);
//   - a length prefix is not a valid varint (over 10 bytes or 64 bits);
//   - a frame's declared length is over `max_frame_bytes` (checked before anything is copied,
//     so a huge declared length allocates nothing);
//   - the body holds more than `max_frames` frames;
//   - a frame's bytes are not a valid RelayFrame.
// A frame that parses but has no kind set (e.g. a kind added by a newer peer) is returned as is;
// receivers ignore it. `max_frame_bytes` bounds the serialized frame, so callers allow some bytes
// on top of their payload limit for the frame's own fields.
absl::StatusOr<std::vector<RelayFrame>> DecodeDelimited(std::string_view body, size_t max_frames,
                                                        size_t max_frame_bytes);

}  // namespace tether::proto

#endif  // TETHER_COMMON_PROTO_FRAME_CODEC_H_
