// The desktop-flow definition model (DESIGN §6, format in docs/FLOWS.md): the typed form of a
// flow's JSON, its parser and validator, and the run-time helpers that must agree with the
// validator.
//
// The cloud calls ParseFlowDefinition at CreateFlow time so that a bad flow is refused with the
// JSON path of the error; the agent's flow runner parses the same text again and executes the
// result. Everything here is a pure function of its arguments and is thread-safe.
#ifndef TETHER_COMMON_FLOW_FLOW_DEFINITION_H_
#define TETHER_COMMON_FLOW_FLOW_DEFINITION_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/flow/expression.h"

namespace tether::flow {

// Limits. Anything beyond them is refused with kInvalidArgument.
inline constexpr size_t kMaxDefinitionBytes = 1 << 20;  // checked before any parsing
inline constexpr size_t kMaxJsonDepth = 64;             // nested JSON arrays and objects
inline constexpr int kMaxBlockNesting = 16;             // Flow.If / Flow.Loop inside each other
inline constexpr size_t kMaxActions = 10'000;           // all actions, nested ones included
inline constexpr size_t kMaxStringBytes = 64 << 10;     // any JSON string value
inline constexpr size_t kMaxFlowNameLength = 128;       // Unicode code points
inline constexpr int64_t kMaxTimeoutMs = 86'400'000;    // an action's timeout_ms
inline constexpr int64_t kMaxWaitMs = 86'400'000;       // Flow.Wait's duration_ms
inline constexpr int64_t kMaxLoopCount = 1'000'000;     // Flow.Loop's times

enum class InputType { kText, kNumber, kBoolean };

// "text", "number" or "boolean".
absl::string_view InputTypeName(InputType type);

struct FlowInput {
  std::string name;
  InputType type = InputType::kText;
  // The default as text: a number in decimal ("5", "2.5", "1e+21"), a boolean as "true"/"false".
  // No default means the input is required.
  std::optional<std::string> default_value;
  std::string description;
};

struct FlowOutput {
  std::string name;  // an input or a variable the flow assigns
  std::string description;
};

enum class ConditionOperator {
  kEquals,
  kNotEquals,
  kContains,
  kNotContains,
  kLessThan,
  kGreaterThan,
  kIsEmpty,
  kIsNotEmpty,
};

// The operator's name in the format, e.g. "not_equals".
absl::string_view ConditionOperatorName(ConditionOperator op);

// False for is_empty and is_not_empty, which look at the left operand only.
bool OperatorTakesRight(ConditionOperator op);

struct Condition {
  Expression left;
  ConditionOperator op = ConditionOperator::kEquals;
  std::optional<Expression> right;  // present exactly when OperatorTakesRight(op)
};

// Applies `op` to evaluated operands (`right` is ignored by is_empty/is_not_empty). equals,
// not_equals, less_than and greater_than compare as numbers when both operands are numbers by
// ParseNumber, otherwise as byte strings; contains/not_contains look for a byte substring.
bool ApplyOperator(ConditionOperator op, absl::string_view left, absl::string_view right);

// Evaluates both operands with `lookup` (see Expression::Evaluate) and applies the operator.
bool EvaluateCondition(const Condition& condition,
                       absl::FunctionRef<std::string(absl::string_view name)> lookup);

// The value of `text` if it is a number as the format defines it: an optional '-', decimal digits,
// optionally '.' and digits, optionally 'e'/'E', an optional sign and digits, with a finite value.
// No spaces, no leading '+', no ".5" or "5.", no hex, inf or nan.
std::optional<double> ParseNumber(absl::string_view text);

// A Flow.Loop count given as text (the run-time value of a `times` expression): decimal digits
// only, 0 to kMaxLoopCount. kInvalidArgument otherwise.
absl::StatusOr<int64_t> ParseLoopCount(absl::string_view text);

struct Action;

// Typed parameters, one struct per action kind. Optional expressions that are absent are
// std::nullopt; optional booleans hold their documented default.
struct SetVariableParams {
  std::string variable;
  Expression value;
};

struct RunApplicationParams {
  Expression path;
  std::vector<Expression> arguments;
  std::optional<Expression> working_directory;
  std::optional<std::string> stdout_variable;
  std::optional<std::string> exit_code_variable;
  bool fail_on_nonzero_exit = true;
};

struct ReadTextParams {
  Expression path;
  std::string variable;
};

struct WriteTextParams {
  Expression path;
  Expression text;
  bool append = false;
};

struct CreateFolderParams {
  Expression path;
};

struct IfParams {
  Condition condition;
  std::vector<Action> then_actions;
  std::vector<Action> else_actions;
};

struct LoopParams {
  // Always an expression: a JSON integer N becomes the literal "N". Evaluate it and pass the result
  // to ParseLoopCount; a literal count has already been checked by the parser.
  Expression times;
  std::optional<std::string> index_variable;  // 0, 1, ... as decimal text
  std::vector<Action> body;
};

struct WaitParams {
  absl::Duration duration;
};

struct FailParams {
  Expression message;
};

// The kinds of action. The enumerator's value is the index of its parameter struct in ActionParams.
enum class ActionType {
  kSetVariable = 0,     // Variables.SetVariable
  kRunApplication = 1,  // System.RunApplication
  kReadText = 2,        // File.ReadText
  kWriteText = 3,       // File.WriteText
  kCreateFolder = 4,    // Folder.Create
  kIf = 5,              // Flow.If
  kLoop = 6,            // Flow.Loop
  kWait = 7,            // Flow.Wait
  kFail = 8,            // Flow.Fail
};

using ActionParams =
    std::variant<SetVariableParams, RunApplicationParams, ReadTextParams, WriteTextParams,
                 CreateFolderParams, IfParams, LoopParams, WaitParams, FailParams>;

// The format's name of an action type, e.g. "Folder.Create".
absl::string_view ActionTypeName(ActionType type);

struct Action {
  ActionType type = ActionType::kSetVariable;
  std::string type_name;  // as written in the flow, e.g. "Flow.If"
  std::string path;       // JSON path of the action object, e.g. "$.actions[2].then[0]"
  uint32_t index = 0;     // depth-first (pre-order) number over all actions, from 0
  std::optional<absl::Duration> timeout;
  std::string description;
  ActionParams params;  // the alternative matching `type`

  // Typed access, e.g. Params<IfParams>(). Asking for the wrong kind is a programming error (throws
  // std::bad_variant_access); switch on `type` or std::visit `params` instead of guessing.
  template <typename T>
  const T& Params() const {
    return std::get<T>(params);
  }
};

// The variables `action` itself assigns (not those of nested actions), in parameter order:
// SetVariable/ReadText variable, RunApplication stdout/exit-code variables, Loop index variable.
std::vector<std::string> AssignedVariables(const Action& action);

struct FlowDefinition {
  std::string name;
  std::vector<FlowInput> inputs;
  std::vector<FlowOutput> outputs;
  std::vector<Action> actions;
  uint32_t action_count = 0;  // all actions, nested ones included
};

// Parses and validates a flow definition. Every error is kInvalidArgument. Its message starts with
// the JSON path of the offending element, e.g.
//   "$.actions[2].then[0].path: unknown variable %Foo%"
//   "$.actions[1]: unknown action \"File.Delete\""
// except malformed JSON, which starts with the position: "line 3, column 7: syntax error".
// Structural errors are reported before variable-reference errors (docs/FLOWS.md).
absl::StatusOr<FlowDefinition> ParseFlowDefinition(absl::string_view json_text);

// The complete set of inputs for one run: `given` checked against the declared inputs, with the
// defaults filled in. kInvalidArgument, naming the input, for an input the flow does not declare
// ("input \"X\": not declared by the flow"), a missing required input, a value that is not a
// number (ParseNumber) or not "true"/"false" for those types, or a value over kMaxStringBytes.
absl::StatusOr<std::map<std::string, std::string>> ResolveRunInputs(
    const FlowDefinition& flow, const std::map<std::string, std::string>& given);

}  // namespace tether::flow

#endif  // TETHER_COMMON_FLOW_FLOW_DEFINITION_H_
