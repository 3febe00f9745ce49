#include "common/flow/expression.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace tether::flow {
namespace {

bool IsNameStart(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
bool IsNameChar(char c) { return IsNameStart(c) || (c >= '0' && c <= '9'); }

// A bad name goes into an error message; keep hostile input from making that message huge.
std::string QuoteForError(absl::string_view text) {
  constexpr size_t kMaxShown = 40;
  if (text.size() <= kMaxShown) return absl::StrCat("\"", absl::CEscape(text), "\"");
  return absl::StrCat("\"", absl::CEscape(text.substr(0, kMaxShown)), "\"...");
}

}  // namespace

bool IsValidVariableName(absl::string_view name) {
  if (name.empty() || name.size() > kMaxVariableNameLength || !IsNameStart(name[0])) return false;
  return std::all_of(name.begin(), name.end(), IsNameChar);
}

Expression Expression::Literal(std::string text) {
  Expression expression;
  if (!text.empty()) expression.parts_.push_back({Part::Kind::kLiteral, std::move(text)});
  return expression;
}

void Expression::AppendLiteral(absl::string_view text) {
  if (text.empty()) return;
  if (!parts_.empty() && parts_.back().kind == Part::Kind::kLiteral) {
    parts_.back().text.append(text.data(), text.size());
  } else {
    parts_.push_back({Part::Kind::kLiteral, std::string(text)});
  }
}

bool Expression::IsLiteral() const {
  return std::none_of(parts_.begin(), parts_.end(),
                      [](const Part& part) { return part.kind == Part::Kind::kVariable; });
}

std::vector<std::string> Expression::ReferencedVariables() const {
  std::vector<std::string> names;
  for (const Part& part : parts_) {
    if (part.kind != Part::Kind::kVariable) continue;
    if (std::find(names.begin(), names.end(), part.text) == names.end()) names.push_back(part.text);
  }
  return names;
}

std::string Expression::Evaluate(
    absl::FunctionRef<std::string(absl::string_view name)> lookup) const {
  std::string out;
  for (const Part& part : parts_) {
    if (part.kind == Part::Kind::kLiteral) {
      out += part.text;
    } else {
      out += lookup(part.text);
    }
  }
  return out;
}

std::string Expression::ToSource() const {
  std::string out;
  for (const Part& part : parts_) {
    if (part.kind == Part::Kind::kLiteral) {
      out += absl::StrReplaceAll(part.text, {{"%", "%%"}});
    } else {
      absl::StrAppend(&out, "%", part.text, "%");
    }
  }
  return out;
}

absl::StatusOr<Expression> ParseExpression(absl::string_view text) {
  Expression expression;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t open = text.find('%', pos);
    if (open == absl::string_view::npos) {
      expression.AppendLiteral(text.substr(pos));
      break;
    }
    expression.AppendLiteral(text.substr(pos, open - pos));
    if (open + 1 < text.size() && text[open + 1] == '%') {
      expression.AppendLiteral("%");
      pos = open + 2;
      continue;
    }
    const size_t close = text.find('%', open + 1);
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("unterminated %...% at offset ", open,
                                                     " (write %% for a literal percent sign)"));
    }
    const absl::string_view name = text.substr(open + 1, close - open - 1);
    if (!IsValidVariableName(name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "invalid variable name ", QuoteForError(name), " in %...% at offset ", open,
          " (names match [A-Za-z_][A-Za-z0-9_]{0,63}; write %% for a literal percent sign)"));
    }
    expression.parts_.push_back({Expression::Part::Kind::kVariable, std::string(name)});
    pos = close + 1;
  }
  return expression;
}

}  // namespace tether::flow
