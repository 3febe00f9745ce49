#include "common/flow/expression.h"

#include <map>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tether::flow {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using Kind = Expression::Part::Kind;

Expression::Part Lit(std::string text) { return {Kind::kLiteral, std::move(text)}; }
Expression::Part Var(std::string name) { return {Kind::kVariable, std::move(name)}; }

TEST(ExpressionTest, ParsesIntoLiteralAndVariableParts) {
  struct Case {
    std::string source;
    std::vector<Expression::Part> parts;
  };
  const Case cases[] = {
      {"", {}},
      {"plain text", {Lit("plain text")}},
      {"%Src%", {Var("Src")}},
      {"copied %Src% to %Dst%", {Lit("copied "), Var("Src"), Lit(" to "), Var("Dst")}},
      {"%%", {Lit("%")}},
      {"100%% done", {Lit("100% done")}},
      {"%%%%", {Lit("%%")}},
      {"%%Src%%", {Lit("%Src%")}},
      {"%%%Src%", {Lit("%"), Var("Src")}},
      {"%Src%%%", {Var("Src"), Lit("%")}},
      {"%a%%b%", {Var("a"), Var("b")}},
      {"%_x9%", {Var("_x9")}},
      {std::string("%") + std::string(64, 'v') + "%", {Var(std::string(64, 'v'))}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.source);
    absl::StatusOr<Expression> e = ParseExpression(c.source);
    ASSERT_TRUE(e.ok()) << e.status();
    EXPECT_EQ(e->parts(), c.parts);
  }
}

TEST(ExpressionTest, RejectsUnterminatedAndBadNamesWithTheOffset) {
  struct Case {
    std::string source;
    std::string message_prefix;
  };
  const Case cases[] = {
      {"%", "unterminated %...% at offset 0"},
      {"100% done", "unterminated %...% at offset 3"},
      {"%%%", "unterminated %...% at offset 2"},
      {"ok %Src", "unterminated %...% at offset 3"},
      {"%1abc%", "invalid variable name \"1abc\" in %...% at offset 0"},
      {"a % b %", "invalid variable name \" b \" in %...% at offset 2"},
      {"%Src-x%", "invalid variable name \"Src-x\""},
      {"%a.b%", "invalid variable name \"a.b\""},
      {std::string("%") + std::string(65, 'v') + "%", "invalid variable name"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.source);
    absl::StatusOr<Expression> e = ParseExpression(c.source);
    ASSERT_FALSE(e.ok());
    EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(e.status().message()), StartsWith(c.message_prefix));
  }
}

TEST(ExpressionTest, EmptyNameIsALiteralPercentNotAVariable) {
  // `%%` could read as a reference with an empty name; the format defines it as a literal '%'.
  absl::StatusOr<Expression> e = ParseExpression("a%%b");
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(e->IsLiteral());
  EXPECT_TRUE(e->ReferencedVariables().empty());
  EXPECT_EQ(e->Evaluate([](absl::string_view) { return std::string("X"); }), "a%b");
}

TEST(ExpressionTest, ReferencedVariablesAreUniqueInFirstAppearanceOrder) {
  absl::StatusOr<Expression> e = ParseExpression("%B% %A% %B% %%C%% %A%");
  ASSERT_TRUE(e.ok());
  EXPECT_THAT(e->ReferencedVariables(), ElementsAre("B", "A"));
  EXPECT_FALSE(e->IsLiteral());
}

TEST(ExpressionTest, EvaluateSubstitutesEachReferenceAndLeavesValuesUnexpanded) {
  const std::map<std::string, std::string> vars = {{"Src", "/tmp/%Dst%"}, {"Dst", "/out"}};
  auto lookup = [&](absl::string_view name) {
    auto it = vars.find(std::string(name));
    return it == vars.end() ? std::string() : it->second;
  };
  absl::StatusOr<Expression> e = ParseExpression("cp %Src% %Dst% %Missing%100%%");
  ASSERT_TRUE(e.ok());
  // A value that itself contains %...% is data, not expanded again.
  EXPECT_EQ(e->Evaluate(lookup), "cp /tmp/%Dst% /out 100%");
}

TEST(ExpressionTest, ToSourceRoundTrips) {
  for (absl::string_view source : {"", "x", "%%", "a %B% 50%% %C%%%", "%%%A%%%"}) {
    SCOPED_TRACE(source);
    absl::StatusOr<Expression> e = ParseExpression(source);
    ASSERT_TRUE(e.ok());
    absl::StatusOr<Expression> again = ParseExpression(e->ToSource());
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(*again, *e);
  }
  EXPECT_EQ(ParseExpression("50%% %A%")->ToSource(), "50%% %A%");
}

TEST(ExpressionTest, LiteralTakesTextVerbatim) {
  Expression e = Expression::Literal("100% %A%");
  EXPECT_TRUE(e.IsLiteral());
  EXPECT_EQ(e.Evaluate([](absl::string_view) { return std::string("X"); }), "100% %A%");
  EXPECT_TRUE(Expression::Literal("").parts().empty());
}

TEST(ExpressionTest, VariableNameRule) {
  for (absl::string_view good : {"a", "A", "_", "_1", "Src", "x_Y_9"}) {
    SCOPED_TRACE(good);
    EXPECT_TRUE(IsValidVariableName(good));
  }
  EXPECT_TRUE(IsValidVariableName(std::string(64, 'a')));
  for (absl::string_view bad : {"", "1a", "a-b", "a b", "é", "a.b", "$a"}) {
    SCOPED_TRACE(bad);
    EXPECT_FALSE(IsValidVariableName(bad));
  }
  EXPECT_FALSE(IsValidVariableName(std::string(65, 'a')));
}

TEST(ExpressionTest, LongBadNameIsCutShortInTheMessage) {
  const std::string source = "%" + std::string(5000, '-') + "%";
  absl::StatusOr<Expression> e = ParseExpression(source);
  ASSERT_FALSE(e.ok());
  EXPECT_LT(e.status().message().size(), 300u);
  EXPECT_THAT(std::string(e.status().message()), HasSubstr("\"..."));
}

}  // namespace
}  // namespace tether::flow
