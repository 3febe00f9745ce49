#include "common/base/log.h"

#include "gtest/gtest.h"

namespace tether {
namespace {

TEST(LogTest, FormatsOneJsonObjectWithEscapedFields) {
  std::string line = FormatLogLine(LogLevel::kWarning, "relay_start",
                                   {{"addr", "127.0.0.1:9350"}, {"note", "a \"q\"\n\x01"}});
  EXPECT_EQ(line.front(), '{');
  EXPECT_EQ(line.back(), '}');
  EXPECT_NE(line.find("\"level\":\"warning\""), std::string::npos);
  EXPECT_NE(line.find("\"event\":\"relay_start\""), std::string::npos);
  EXPECT_NE(line.find("\"addr\":\"127.0.0.1:9350\""), std::string::npos);
  EXPECT_NE(line.find("\"note\":\"a \\\"q\\\"\\n\\u0001\""), std::string::npos);
  EXPECT_EQ(line.find('\n'), std::string::npos);
}

}  // namespace
}  // namespace tether
