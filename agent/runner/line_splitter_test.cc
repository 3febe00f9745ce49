#include "agent/runner/line_splitter.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace tether::agent {
namespace {

struct Collected {
  std::vector<std::string> lines;
  LineSplitter splitter;
  explicit Collected(size_t max = kMaxLogLineBytes)
      : splitter([this](absl::string_view line) { lines.emplace_back(line); }, max) {}
};

TEST(LineSplitterTest, SplitsOnNewlinesAcrossChunksAndStripsTerminators) {
  Collected c;
  c.splitter.Append("one\ntw");
  c.splitter.Append("o\r\nthree\n\nfour");
  EXPECT_EQ(c.lines, (std::vector<std::string>{"one", "two", "three", ""}));
  c.splitter.Finish();
  EXPECT_EQ(c.lines, (std::vector<std::string>{"one", "two", "three", "", "four"}));
}

TEST(LineSplitterTest, FinishWithoutPendingBytesEmitsNothing) {
  Collected c;
  c.splitter.Append("a\n");
  c.splitter.Finish();
  EXPECT_EQ(c.lines, (std::vector<std::string>{"a"}));
}

TEST(LineSplitterTest, LongLinesAreCutIntoPiecesOfTheLimit) {
  Collected c(8);
  c.splitter.Append(std::string(20, 'x'));
  c.splitter.Append("\n");
  EXPECT_EQ(c.lines, (std::vector<std::string>{"xxxxxxxx", "xxxxxxxx", "xxxx"}));
}

TEST(LineSplitterTest, ALineOfExactlyTheLimitIsOneLineEvenWhenItsNewlineComesLater) {
  Collected c(8);
  c.splitter.Append("12345678");
  c.splitter.Append("\nnext\n");
  EXPECT_EQ(c.lines, (std::vector<std::string>{"12345678", "next"}));
}

TEST(LineSplitterTest, PiecesDoNotCutAUtf8Character) {
  Collected c(8);
  // "aaaaaaa" + "é" (2 bytes): the 8-byte cut would fall inside "é".
  c.splitter.Append("aaaaaaa\xC3\xA9zz\n");
  EXPECT_EQ(c.lines, (std::vector<std::string>{"aaaaaaa", "\xC3\xA9zz"}));
}

TEST(ToValidUtf8Test, KeepsValidTextAndReplacesInvalidSequences) {
  struct Case {
    std::string in, out;
  } cases[] = {
      {"plain", "plain"},
      {"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80", "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"},
      {"a\xFF"
       "b",
       "a\xEF\xBF\xBD"
       "b"},
      {"\xC0\xAF", "\xEF\xBF\xBD\xEF\xBF\xBD"},                  // overlong '/'
      {"\xED\xA0\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},  // surrogate
      {"\xE2\x82", "\xEF\xBF\xBD"},                              // truncated
      {std::string("nul\0ok", 6), std::string("nul\0ok", 6)},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.in);
    EXPECT_EQ(ToValidUtf8(c.in), c.out);
  }
}

}  // namespace
}  // namespace tether::agent
