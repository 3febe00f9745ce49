#include "common/store/key.h"

#include <cstdint>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"

namespace tether::store {
namespace {

using RunKey = std::tuple<uint64_t, uint64_t, std::string>;  // priority | enqueue_seq | run_id

std::string Encode(const RunKey& k) {
  return KeyBuilder()
      .AddUint64(std::get<0>(k))
      .AddUint64(std::get<1>(k))
      .AddString(std::get<2>(k))
      .Build();
}

RunKey Decode(std::string_view key) {
  KeyReader r(key);
  RunKey out;
  std::get<0>(out) = r.ReadUint64().value();
  std::get<1>(out) = r.ReadUint64().value();
  std::get<2>(out) = r.ReadString().value();
  EXPECT_TRUE(r.ExpectEnd().ok());
  return out;
}

int Sign(int v) { return (v > 0) - (v < 0); }

// Values chosen around every boundary the encoding has: byte carries in the integers, and in the
// strings the escape byte, the terminator byte, 0xff, prefixes and the empty string.
std::vector<RunKey> EdgeCaseKeys() {
  // clang-format off
  const std::vector<uint64_t> numbers = {
      0, 1, 0xff, 0x100, 0xffff'ffff, 0x1'0000'0000,
      std::numeric_limits<uint64_t>::max() - 1, std::numeric_limits<uint64_t>::max()};
  const std::vector<std::string> strings = {
      "", std::string("\0", 1), std::string("\0\0", 2), std::string("\0\x01", 2), "\x01",
      std::string("a\0", 2), "a", "a\x01", "ab", "b", "\xfe", "\xff", "\xff\xff"};
  // clang-format on
  std::vector<RunKey> keys;
  for (uint64_t a : {uint64_t{0}, uint64_t{1}, std::numeric_limits<uint64_t>::max()}) {
    for (uint64_t b : numbers) {
      for (const std::string& s : strings) keys.emplace_back(a, b, s);
    }
  }
  return keys;
}

TEST(KeyTest, EncodedOrderMatchesTupleOrderForEveryPair) {
  const std::vector<RunKey> keys = EdgeCaseKeys();
  for (const RunKey& a : keys) {
    const std::string ea = Encode(a);
    for (const RunKey& b : keys) {
      const int want = a < b ? -1 : (b < a ? 1 : 0);
      const int got = Sign(ea.compare(Encode(b)));
      if (want != got) {
        ADD_FAILURE() << "(" << std::get<0>(a) << "," << std::get<1>(a) << ",\""
                      << absl::CHexEscape(std::get<2>(a)) << "\") vs (" << std::get<0>(b) << ","
                      << std::get<1>(b) << ",\"" << absl::CHexEscape(std::get<2>(b))
                      << "\"): tuple order " << want << ", encoded order " << got;
        return;
      }
    }
  }
}

TEST(KeyTest, StringSegmentsOrderAsBytesNotByLength) {
  // A length prefix would put "b" before "aa"; tuple order puts "aa" first.
  EXPECT_LT(KeyBuilder().AddString("aa").Build(), KeyBuilder().AddString("b").Build());
  // And a string ending early must not compare by what follows it in the key.
  EXPECT_LT(KeyBuilder().AddString("a").AddUint64(std::numeric_limits<uint64_t>::max()).Build(),
            KeyBuilder().AddString("a\x01").AddUint64(0).Build());
}

TEST(KeyTest, DecodeReturnsWhatWasEncoded) {
  for (const RunKey& k : EdgeCaseKeys()) {
    EXPECT_EQ(Decode(Encode(k)), k) << absl::CHexEscape(Encode(k));
  }
}

TEST(KeyTest, Uint64IsBigEndianFixedWidth) {
  EXPECT_EQ(KeyBuilder().AddUint64(0x0102030405060708).Build(),
            std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8));
}

TEST(KeyTest, StringEscapesZeroAndTerminates) {
  EXPECT_EQ(KeyBuilder().AddString(std::string("a\0b", 3)).Build(),
            (std::string{'a', '\0', '\xff', 'b', '\0', '\x01'}));
}

TEST(KeyTest, LeadingSegmentsArePrefixOnlyOfKeysWithThoseSegments) {
  const std::string prefix = KeyBuilder().AddUint64(7).AddString("ab").Build();
  EXPECT_TRUE(KeyBuilder().AddUint64(7).AddString("ab").AddUint64(1).Build().starts_with(prefix));
  EXPECT_FALSE(KeyBuilder().AddUint64(7).AddString("abc").Build().starts_with(prefix));
  EXPECT_FALSE(
      KeyBuilder().AddUint64(7).AddString(std::string("ab\0", 3)).Build().starts_with(prefix));
}

TEST(KeyTest, MalformedKeysAreInvalidArgument) {
  struct Case {
    const char* name;
    std::string key;
    bool read_string;  // else ReadUint64
  };
  const std::vector<Case> cases = {
      {"uint64 with 7 bytes", std::string(7, '\x01'), false},
      {"empty key as uint64", "", false},
      {"empty key as string", "", true},
      {"string without terminator", "abc", true},
      {"string ending in a lone escape", std::string("abc\0", 4), true},
      {"string with invalid escape", std::string("a\0\x02", 3), true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    KeyReader r(c.key);
    const absl::Status s = c.read_string ? r.ReadString().status() : r.ReadUint64().status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  }
}

TEST(KeyTest, ExpectEndRejectsTrailingBytes) {
  const std::string key = KeyBuilder().AddUint64(1).AddUint64(2).Build();
  KeyReader r(key);
  ASSERT_EQ(r.ReadUint64().value(), 1u);
  EXPECT_EQ(r.ExpectEnd().code(), absl::StatusCode::kInvalidArgument);
  ASSERT_EQ(r.ReadUint64().value(), 2u);
  EXPECT_TRUE(r.ExpectEnd().ok());
}

}  // namespace
}  // namespace tether::store
