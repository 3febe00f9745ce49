#include "common/proto/frame_codec.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace tether::proto {
namespace {

constexpr size_t kManyFrames = 100;
constexpr size_t kBigFrame = 1 << 20;

std::vector<RelayFrame> SampleFrames() {
  std::vector<RelayFrame> frames(4);
  frames[0].mutable_open()->set_channel_id(1);
  frames[0].mutable_open()->mutable_sender_meta()->set_remote_address("127.0.0.1:1");
  frames[1].mutable_data()->set_channel_id(1);
  frames[1].mutable_data()->set_payload(std::string(300, 'x'));  // Needs a 2-byte length prefix.
  frames[2].mutable_close()->set_channel_id(1);
  frames[2].mutable_close()->set_code(1000);
  frames[3].mutable_ping()->set_nonce(5);
  return frames;
}

void ExpectInvalidArgumentMentioning(const absl::StatusOr<std::vector<RelayFrame>>& result,
                                     const std::string& text) {
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(result.status().message().find(text), std::string::npos) << result.status();
}

TEST(FrameCodecTest, RoundTripsFramesInOrder) {
  const std::vector<RelayFrame> frames = SampleFrames();
  const std::string body = EncodeDelimited(frames);
  auto decoded = DecodeDelimited(body, kManyFrames, kBigFrame);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ASSERT_EQ(decoded->size(), frames.size());
  for (size_t i = 0; i < frames.size(); ++i) {
    EXPECT_EQ((*decoded)[i].SerializeAsString(), frames[i].SerializeAsString()) << i;
  }
}

TEST(FrameCodecTest, LayoutIsVarintLengthThenFrame) {
  RelayFrame frame;
  frame.mutable_ping()->set_nonce(1);
  const std::string bytes = frame.SerializeAsString();
  ASSERT_LT(bytes.size(), 128u);
  EXPECT_EQ(EncodeDelimited({frame}), std::string(1, static_cast<char>(bytes.size())) + bytes);
}

TEST(FrameCodecTest, EmptyBodyIsAnEmptyBatch) {
  EXPECT_EQ(EncodeDelimited({}), "");
  auto decoded = DecodeDelimited("", 0, kBigFrame);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_TRUE(decoded->empty());
}

TEST(FrameCodecTest, EmptyFrameDecodesWithNoKindSet) {
  RelayFrame empty;
  auto decoded = DecodeDelimited(EncodeDelimited({empty, empty}), kManyFrames, kBigFrame);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ASSERT_EQ(decoded->size(), 2u);
  EXPECT_EQ((*decoded)[0].kind_case(), RelayFrame::KIND_NOT_SET);
}

TEST(FrameCodecTest, BodyCutInsideAFrameIsTruncated) {
  const std::string body = EncodeDelimited(SampleFrames());
  const std::string first = EncodeDelimited({SampleFrames()[0]});
  auto decoded = DecodeDelimited(body.substr(0, first.size() + 10), kManyFrames, kBigFrame);
  ExpectInvalidArgumentMentioning(decoded, "truncated");
  ExpectInvalidArgumentMentioning(decoded, "frame 1 ");
}

TEST(FrameCodecTest, EveryPrefixNotOnAFrameBoundaryFails) {
  const std::vector<RelayFrame> frames = SampleFrames();
  std::vector<size_t> boundaries = {0};
  for (const RelayFrame& frame : frames) {
    boundaries.push_back(boundaries.back() + EncodeDelimited({frame}).size());
  }
  const std::string body = EncodeDelimited(frames);
  ASSERT_EQ(boundaries.back(), body.size());
  for (size_t cut = 0; cut <= body.size(); ++cut) {
    SCOPED_TRACE(cut);
    auto decoded = DecodeDelimited(body.substr(0, cut), kManyFrames, kBigFrame);
    const bool on_boundary =
        std::find(boundaries.begin(), boundaries.end(), cut) != boundaries.end();
    if (on_boundary) {
      EXPECT_TRUE(decoded.ok()) << decoded.status();
    } else {
      ExpectInvalidArgumentMentioning(decoded, "truncated");
    }
  }
}

TEST(FrameCodecTest, BodyCutInsideALengthPrefixIsTruncated) {
  // 0x80 announces another varint byte that never comes.
  ExpectInvalidArgumentMentioning(DecodeDelimited("\x80", kManyFrames, kBigFrame),
                                  "length prefix of frame 0 at offset 0 is cut off");
}

TEST(FrameCodecTest, OverLongVarintIsRejected) {
  // Eleven continuation bytes: no valid varint is that long.
  const std::string body = std::string(11, '\x80') + std::string(1, '\x01');
  ExpectInvalidArgumentMentioning(DecodeDelimited(body, kManyFrames, kBigFrame),
                                  "not a valid varint");
  // Ten bytes that all continue cannot become valid either, even with more input.
  ExpectInvalidArgumentMentioning(DecodeDelimited(std::string(10, '\xff'), kManyFrames, kBigFrame),
                                  "not a valid varint");
}

TEST(FrameCodecTest, OversizedFrameIsRejectedBeforeReadingIt) {
  RelayFrame frame;
  frame.mutable_data()->set_payload(std::string(200, 'x'));
  const std::string body = EncodeDelimited({frame});
  const size_t size = frame.ByteSizeLong();
  ExpectInvalidArgumentMentioning(DecodeDelimited(body, kManyFrames, size - 1),
                                  "over the limit of " + std::to_string(size - 1));
  EXPECT_TRUE(DecodeDelimited(body, kManyFrames, size).ok());
  // A huge declared length with no bytes behind it is "oversized", not an allocation.
  ExpectInvalidArgumentMentioning(DecodeDelimited("\xff\xff\xff\xff\x0f", kManyFrames, kBigFrame),
                                  "over the limit");
}

TEST(FrameCodecTest, TooManyFramesIsRejected) {
  const std::vector<RelayFrame> frames = SampleFrames();
  const std::string body = EncodeDelimited(frames);
  EXPECT_TRUE(DecodeDelimited(body, frames.size(), kBigFrame).ok());
  ExpectInvalidArgumentMentioning(DecodeDelimited(body, frames.size() - 1, kBigFrame),
                                  "more than 3 frames");
}

TEST(FrameCodecTest, UnparsableFrameIsRejected) {
  // A well-delimited frame whose bytes are not protobuf (wire type 7 does not exist).
  RelayFrame good;
  good.mutable_ping()->set_nonce(1);
  const std::string body = EncodeDelimited({good}) + std::string("\x02\x0f\x0f", 3);
  ExpectInvalidArgumentMentioning(DecodeDelimited(body, kManyFrames, kBigFrame),
                                  "frame 1 at offset");
  ExpectInvalidArgumentMentioning(DecodeDelimited(body, kManyFrames, kBigFrame),
                                  "not a valid RelayFrame");
}

TEST(FrameCodecTest, SerializedFramesEncodeToTheSameBody) {
  std::vector<RelayFrame> frames(2);
  frames[0].mutable_data()->set_channel_id(7);
  frames[0].mutable_data()->set_payload(std::string(300, 'p'));  // a two-byte varint length
  frames[1].mutable_ping()->set_nonce(9);
  std::vector<std::string> serialized = {frames[0].SerializeAsString(),
                                         frames[1].SerializeAsString()};
  EXPECT_EQ(EncodeDelimitedSerialized(serialized), EncodeDelimited(frames));
  EXPECT_EQ(EncodeDelimitedSerialized({}), "");
}

}  // namespace
}  // namespace tether::proto
