#include "common/base/service_main.h"

#include <fstream>
#include <sstream>

#include "gtest/gtest.h"

namespace tether {
namespace {

TEST(ServiceMainTest, ConfigBecomesFlagfileAndOtherArgumentsStay) {
  char a0[] = "prog", a1[] = "--config=/etc/x.conf", a2[] = "--port_file=p";
  char* argv[] = {a0, a1, a2};
  std::vector<std::string> storage;
  std::vector<char*> args = ExpandConfigFlag(3, argv, &storage);
  ASSERT_EQ(args.size(), 3u);
  EXPECT_STREQ(args[1], "--flagfile=/etc/x.conf");
  EXPECT_STREQ(args[2], "--port_file=p");
}

TEST(ServiceMainTest, DashedFlagNamesBecomeUnderscoredButValuesStay) {
  char a0[] = "prog", a1[] = "--token-file=/a-b/c-d", a2[] = "--data-dir", a3[] = "x-y", a4[] = "-v";
  char* argv[] = {a0, a1, a2, a3, a4};
  std::vector<std::string> storage;
  std::vector<char*> args = ExpandConfigFlag(5, argv, &storage);
  EXPECT_STREQ(args[1], "--token_file=/a-b/c-d");
  EXPECT_STREQ(args[2], "--data_dir");
  EXPECT_STREQ(args[3], "x-y");
  EXPECT_STREQ(args[4], "-v");
}

TEST(ServiceMainTest, PortFileHoldsThePortAndANewline) {
  const std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/port";
  ASSERT_TRUE(WritePortFile(path, 43210).ok());
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), "43210\n");
  EXPECT_FALSE(WritePortFile("/nonexistent-dir/port", 1).ok());
}

TEST(ServiceMainTest, LoopbackHosts) {
  for (const char* host : {"localhost", "127.0.0.1", "127.9.8.7", "::1", "[::1]"}) {
    SCOPED_TRACE(host);
    EXPECT_TRUE(IsLoopbackHost(host));
  }
  for (const char* host : {"0.0.0.0", "10.0.0.1", "::", "example.com", "128.0.0.1", ""}) {
    SCOPED_TRACE(host);
    EXPECT_FALSE(IsLoopbackHost(host));
  }
}

}  // namespace
}  // namespace tether
