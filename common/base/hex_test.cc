#include "common/base/hex.h"

#include "gtest/gtest.h"

namespace tether {
namespace {

TEST(HexTest, RoundTripsEveryByteValue) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  std::string hex = HexEncode(all);
  EXPECT_EQ(hex.substr(0, 8), "00010203");
  EXPECT_EQ(hex.substr(hex.size() - 4), "feff");
  EXPECT_EQ(HexDecode(hex).value(), all);
}

TEST(HexTest, AcceptsUpperCase) { EXPECT_EQ(HexDecode("ABcd").value(), "\xab\xcd"); }

TEST(HexTest, RejectsOddLength) {
  EXPECT_EQ(HexDecode("abc").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(HexTest, RejectsNonHexAndNamesTheOffset) {
  auto r = HexDecode("00zz");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("offset 2"), std::string::npos);
}

}  // namespace
}  // namespace tether
