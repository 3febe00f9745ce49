#include "tools/tetherctl/args.h"

#include "gtest/gtest.h"

namespace tether::tetherctl {
namespace {

const std::vector<FlagSpec> kSpecs = {
    {"file", "FILE", "a file"},
    {"input", "NAME=VALUE", "an input", /*repeated=*/true},
    {"wait", "", "a boolean"},
    {"connection", "C", "required", false, /*required=*/true},
};

TEST(ParsedArgsTest, FlagsMixWithPositionalsInBothSpellings) {
  auto parsed = ParsedArgs::Parse(
      {"Echo", "--connection", "c1", "--input=a=1", "--wait", "--input", "b=2", "extra"}, kSpecs);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->positional(), (std::vector<std::string>{"Echo", "extra"}));
  EXPECT_EQ(parsed->Value("connection"), "c1");
  EXPECT_EQ(parsed->Values("input"), (std::vector<std::string>{"a=1", "b=2"}));
  EXPECT_TRUE(parsed->Has("wait"));
  EXPECT_FALSE(parsed->Has("file"));
  EXPECT_EQ(parsed->Value("file", "fallback"), "fallback");
}

TEST(ParsedArgsTest, DoubleDashEndsFlags) {
  auto parsed = ParsedArgs::Parse({"--connection", "c", "--", "--wait"}, kSpecs);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->positional(), (std::vector<std::string>{"--wait"}));
  EXPECT_FALSE(parsed->Has("wait"));
}

TEST(ParsedArgsTest, RefusesWhatTheSpecDoesNotAllow) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const Case cases[] = {
      {{"--connection", "c", "--nope"}, "unknown flag --nope"},
      {{"--connection", "c", "--file"}, "--file needs a value"},
      {{"--connection", "c", "--wait=yes"}, "--wait takes no value"},
      {{"--connection", "c", "--file", "a", "--file", "b"}, "--file given twice"},
      {{"--wait"}, "--connection C is required"},
      {{"--connection", "c", "--token", "tt_x"}, "never taken from the command line"},
      {{"--connection", "c", "--password=x"}, "never taken from the command line"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.message);
    auto parsed = ParsedArgs::Parse(c.args, kSpecs);
    ASSERT_FALSE(parsed.ok());
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(parsed.status().message().find(c.message), absl::string_view::npos)
        << parsed.status().message();
  }
}

TEST(GlobalFlagsTest, TakenFromAnywhereBeforeDoubleDash) {
  GlobalFlags globals;
  auto rest = ExtractGlobalFlags(
      {"--json", "machines", "list", "--config=/tmp/c", "-h", "--", "--json"}, &globals);
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_TRUE(globals.json);
  EXPECT_TRUE(globals.help);
  EXPECT_EQ(globals.config, "/tmp/c");
  EXPECT_EQ(*rest, (std::vector<std::string>{"machines", "list", "--", "--json"}));

  GlobalFlags spaced;
  rest = ExtractGlobalFlags({"whoami", "--config", "/x"}, &spaced);
  ASSERT_TRUE(rest.ok());
  EXPECT_EQ(spaced.config, "/x");
  EXPECT_FALSE(spaced.json);
}

TEST(GlobalFlagsTest, ConfigWithoutValueIsRefused) {
  GlobalFlags globals;
  EXPECT_EQ(ExtractGlobalFlags({"whoami", "--config"}, &globals).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ExtractGlobalFlags({"whoami", "--config="}, &globals).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tether::tetherctl
