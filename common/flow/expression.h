// Expressions of the desktop-flow format (docs/FLOWS.md): text in which `%Name%` refers to a
// variable and `%%` is a literal percent sign. The cloud parses them to validate a flow; the
// agent's flow runner evaluates them.
#ifndef TETHER_COMMON_FLOW_EXPRESSION_H_
#define TETHER_COMMON_FLOW_EXPRESSION_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tether::flow {

// Longest variable name, in bytes. Names match [A-Za-z_][A-Za-z0-9_]{0,63} and are case-sensitive.
inline constexpr size_t kMaxVariableNameLength = 64;

// True if `name` is a valid variable name (see kMaxVariableNameLength).
bool IsValidVariableName(absl::string_view name);

// A parsed expression: a sequence of literal text and variable references. Adjacent literals are
// merged, and empty literals are dropped, so "a%%b" is one literal part "a%b" and "" has no
// parts. Immutable after parsing; safe to share between threads.
class Expression {
 public:
  struct Part {
    enum class Kind { kLiteral, kVariable };
    Kind kind;
    // The literal text (with `%%` already turned into `%`) or the variable name.
    std::string text;

    friend bool operator==(const Part&, const Part&) = default;
  };

  // The empty expression; evaluates to "".
  Expression() = default;

  // An expression that evaluates to `text` whatever the variables hold (no `%` processing).
  static Expression Literal(std::string text);

  const std::vector<Part>& parts() const { return parts_; }

  // True if the expression refers to no variable.
  bool IsLiteral() const;

  // Names of the referenced variables, each once, in order of first appearance.
  std::vector<std::string> ReferencedVariables() const;

  // Concatenates the parts, replacing each variable with lookup(name). What a variable without a
  // value yields is the caller's choice (the flow runner uses the empty string).
  std::string Evaluate(absl::FunctionRef<std::string(absl::string_view name)> lookup) const;

  // The expression in source form again (`%` written as `%%`); ParseExpression(ToSource()) gives
  // back an equal expression.
  std::string ToSource() const;

  friend bool operator==(const Expression&, const Expression&) = default;

 private:
  friend absl::StatusOr<Expression> ParseExpression(absl::string_view text);
  void AppendLiteral(absl::string_view text);

  std::vector<Part> parts_;
};

// Parses expression source text. A `%` that is not followed by `%` opens a variable reference
// that the next `%` closes; the name between them must be a valid variable name. Errors are
// kInvalidArgument naming the byte offset of the offending `%`, e.g.
// "unterminated %...% at offset 4 (write %% for a literal percent sign)".
absl::StatusOr<Expression> ParseExpression(absl::string_view text);

}  // namespace tether::flow

#endif  // TETHER_COMMON_FLOW_EXPRESSION_H_
