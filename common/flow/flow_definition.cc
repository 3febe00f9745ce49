#include "common/flow/flow_definition.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <exception>
#include <new>
#include <set>
#include <system_error>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/status_macros.h"
#include "common/flow/json.h"

namespace tether::flow {
namespace {

namespace json = ::boost::json;

// ActionType's values are the indices of their parameter structs in ActionParams.
template <ActionType kType, typename P>
constexpr bool kParamsMatch =
    std::is_same_v<std::variant_alternative_t<static_cast<size_t>(kType), ActionParams>, P>;
static_assert(kParamsMatch<ActionType::kSetVariable, SetVariableParams>);
static_assert(kParamsMatch<ActionType::kRunApplication, RunApplicationParams>);
static_assert(kParamsMatch<ActionType::kReadText, ReadTextParams>);
static_assert(kParamsMatch<ActionType::kWriteText, WriteTextParams>);
static_assert(kParamsMatch<ActionType::kCreateFolder, CreateFolderParams>);
static_assert(kParamsMatch<ActionType::kIf, IfParams>);
static_assert(kParamsMatch<ActionType::kLoop, LoopParams>);
static_assert(kParamsMatch<ActionType::kWait, WaitParams>);
static_assert(kParamsMatch<ActionType::kFail, FailParams>);

constexpr ActionType kAllActionTypes[] = {
    ActionType::kSetVariable, ActionType::kRunApplication, ActionType::kReadText,
    ActionType::kWriteText,   ActionType::kCreateFolder,   ActionType::kIf,
    ActionType::kLoop,        ActionType::kWait,           ActionType::kFail,
};

constexpr ConditionOperator kAllOperators[] = {
    ConditionOperator::kEquals,   ConditionOperator::kNotEquals,
    ConditionOperator::kContains, ConditionOperator::kNotContains,
    ConditionOperator::kLessThan, ConditionOperator::kGreaterThan,
    ConditionOperator::kIsEmpty,  ConditionOperator::kIsNotEmpty,
};

constexpr InputType kAllInputTypes[] = {InputType::kText, InputType::kNumber, InputType::kBoolean};

// Keys every action object may carry besides its parameters.
constexpr absl::string_view kCommonActionKeys[] = {"action", "timeout_ms", "description"};

std::vector<absl::string_view> ParameterNames(ActionType type) {
  switch (type) {
    case ActionType::kSetVariable:
      return {"variable", "value"};
    case ActionType::kRunApplication:
      return {"path",
              "arguments",
              "working_directory",
              "stdout_variable",
              "exit_code_variable",
              "fail_on_nonzero_exit"};
    case ActionType::kReadText:
      return {"path", "variable"};
    case ActionType::kWriteText:
      return {"path", "text", "append"};
    case ActionType::kCreateFolder:
      return {"path"};
    case ActionType::kIf:
      return {"condition", "then", "else"};
    case ActionType::kLoop:
      return {"times", "index_variable", "body"};
    case ActionType::kWait:
      return {"duration_ms"};
    case ActionType::kFail:
      return {"message"};
  }
  return {};
}

absl::string_view View(json::string_view s) { return absl::string_view(s.data(), s.size()); }
json::string_view JsonView(absl::string_view s) { return json::string_view(s.data(), s.size()); }

// Untrusted text quoted for an error message, escaped and cut short.
std::string Quote(absl::string_view text) {
  constexpr size_t kMaxShown = 64;
  if (text.size() <= kMaxShown) return absl::StrCat("\"", absl::CEscape(text), "\"");
  return absl::StrCat("\"", absl::CEscape(text.substr(0, kMaxShown)), "\"...");
}

bool IsPlainKey(absl::string_view key) {
  if (key.empty() || key.size() > 64) return false;
  for (char c : key) {
    const bool ok =
        (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || (c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return !(key[0] >= '0' && key[0] <= '9');
}

// JSON paths: $.key for plain keys, $["odd key"] for the rest, [i] for array elements.
std::string Field(absl::string_view base, absl::string_view key) {
  if (IsPlainKey(key)) return absl::StrCat(base, ".", key);
  return absl::StrCat(base, "[", Quote(key), "]");
}

std::string Element(absl::string_view base, size_t index) {
  return absl::StrCat(base, "[", index, "]");
}

template <typename... Args>
absl::Status Error(absl::string_view path, const Args&... args) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", args...));
}

absl::string_view KindName(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null:
      return "null";
    case json::kind::bool_:
      return "a boolean";
    case json::kind::int64:
    case json::kind::uint64:
    case json::kind::double_:
      return "a number";
    case json::kind::string:
      return "a string";
    case json::kind::array:
      return "an array";
    case json::kind::object:
      return "an object";
  }
  return "a value";
}

size_t CountCodePoints(absl::string_view utf8) {
  return std::count_if(utf8.begin(), utf8.end(),
                       [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; });
}

// "line L, column C" (both from 1, column in bytes) of a byte offset.
std::string Position(absl::string_view text, size_t offset) {
  offset = std::min(offset, text.size());
  size_t line = 1;
  size_t line_start = 0;
  for (size_t i = 0; i < offset; ++i) {
    if (text[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  }
  return absl::StrCat("line ", line, ", column ", offset - line_start + 1);
}

// Shortest decimal text that reads back as the same number.
std::string NumberText(const json::value& v) {
  if (v.is_int64()) return absl::StrCat(v.get_int64());
  if (v.is_uint64()) return absl::StrCat(v.get_uint64());
  char buffer[64];
  const auto result = std::to_chars(buffer, buffer + sizeof(buffer), v.get_double());
  return std::string(buffer, result.ptr);
}

absl::StatusOr<absl::string_view> GetString(const json::value& v, absl::string_view path) {
  const json::string* s = v.if_string();
  if (s == nullptr) return Error(path, "expected a string, got ", KindName(v));
  if (s->size() > kMaxStringBytes) {
    return Error(path, "string of ", s->size(), " bytes is longer than the limit of ",
                 kMaxStringBytes, " bytes");
  }
  return View(*s);
}

absl::StatusOr<Expression> GetExpression(const json::value& v, absl::string_view path) {
  ASSIGN_OR_RETURN(absl::string_view text, GetString(v, path));
  absl::StatusOr<Expression> expression = ParseExpression(text);
  if (!expression.ok()) return Error(path, expression.status().message());
  return expression;
}

absl::StatusOr<std::string> GetVariableName(const json::value& v, absl::string_view path) {
  ASSIGN_OR_RETURN(absl::string_view name, GetString(v, path));
  if (!IsValidVariableName(name)) {
    return Error(path, "invalid variable name ", Quote(name),
                 " (names match [A-Za-z_][A-Za-z0-9_]{0,63})");
  }
  return std::string(name);
}

absl::StatusOr<int64_t> GetInteger(const json::value& v, absl::string_view path, int64_t min,
                                   int64_t max) {
  if (v.is_int64() && v.get_int64() >= min && v.get_int64() <= max) return v.get_int64();
  if (v.is_number()) {
    return Error(path, "expected an integer from ", min, " to ", max, " (no fraction or exponent)");
  }
  return Error(path, "expected an integer from ", min, " to ", max, ", got ", KindName(v));
}

absl::StatusOr<const json::object*> GetObject(const json::value& v, absl::string_view path,
                                              absl::string_view what) {
  const json::object* object = v.if_object();
  if (object == nullptr) return Error(path, "expected ", what, ", got ", KindName(v));
  return object;
}

absl::StatusOr<const json::array*> GetArray(const json::value& v, absl::string_view path) {
  const json::array* array = v.if_array();
  if (array == nullptr) return Error(path, "expected an array, got ", KindName(v));
  return array;
}

// The members of one JSON object, read by key, with errors carrying the member's path.
class Members {
 public:
  Members(const json::object& object, std::string path) : object_(object), path_(std::move(path)) {}

  const std::string& path() const { return path_; }
  std::string PathOf(absl::string_view key) const { return Field(path_, key); }
  const json::value* Find(absl::string_view key) const {
    return object_.if_contains(JsonView(key));
  }

  // Any key outside `allowed` is an error naming the key and what `owner` takes.
  absl::Status CheckKeys(absl::string_view owner,
                         const std::vector<absl::string_view>& allowed) const {
    for (const json::key_value_pair& member : object_) {
      const absl::string_view key = View(member.key());
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
        return Error(PathOf(key), "unknown key (", owner, " takes ", absl::StrJoin(allowed, ", "),
                     ")");
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<const json::value*> Require(absl::string_view key) const {
    const json::value* v = Find(key);
    if (v == nullptr) return Error(path_, "missing required key \"", key, "\"");
    return v;
  }

  absl::StatusOr<Expression> RequiredExpression(absl::string_view key) const {
    ASSIGN_OR_RETURN(const json::value* v, Require(key));
    return GetExpression(*v, PathOf(key));
  }

  absl::StatusOr<std::optional<Expression>> OptionalExpression(absl::string_view key) const {
    const json::value* v = Find(key);
    if (v == nullptr) return std::optional<Expression>();
    ASSIGN_OR_RETURN(Expression expression, GetExpression(*v, PathOf(key)));
    return std::optional<Expression>(std::move(expression));
  }

  absl::StatusOr<std::string> RequiredName(absl::string_view key) const {
    ASSIGN_OR_RETURN(const json::value* v, Require(key));
    return GetVariableName(*v, PathOf(key));
  }

  absl::StatusOr<std::optional<std::string>> OptionalName(absl::string_view key) const {
    const json::value* v = Find(key);
    if (v == nullptr) return std::optional<std::string>();
    ASSIGN_OR_RETURN(std::string name, GetVariableName(*v, PathOf(key)));
    return std::optional<std::string>(std::move(name));
  }

  absl::StatusOr<std::string> OptionalString(absl::string_view key) const {
    const json::value* v = Find(key);
    if (v == nullptr) return std::string();
    ASSIGN_OR_RETURN(absl::string_view text, GetString(*v, PathOf(key)));
    return std::string(text);
  }

  absl::StatusOr<bool> OptionalBool(absl::string_view key, bool default_value) const {
    const json::value* v = Find(key);
    if (v == nullptr) return default_value;
    if (!v->is_bool()) return Error(PathOf(key), "expected true or false, got ", KindName(*v));
    return v->get_bool();
  }

 private:
  const json::object& object_;
  std::string path_;
};

// Pass 1: structure, types, names, expressions and limits.
class StructureParser {
 public:
  absl::StatusOr<FlowDefinition> Parse(const json::value& root) {
    ASSIGN_OR_RETURN(const json::object* object, GetObject(root, "$", "a flow object"));
    const Members members(*object, "$");
    RETURN_IF_ERROR(members.CheckKeys("a flow", {"name", "inputs", "outputs", "actions"}));
    FlowDefinition flow;
    ASSIGN_OR_RETURN(const json::value* name, members.Require("name"));
    ASSIGN_OR_RETURN(absl::string_view name_text, GetString(*name, members.PathOf("name")));
    if (name_text.empty()) return Error(members.PathOf("name"), "must not be empty");
    if (CountCodePoints(name_text) > kMaxFlowNameLength) {
      return Error(members.PathOf("name"), "longer than ", kMaxFlowNameLength, " characters");
    }
    flow.name = std::string(name_text);
    if (const json::value* inputs = members.Find("inputs")) {
      RETURN_IF_ERROR(ParseInputs(*inputs, members.PathOf("inputs"), &flow.inputs));
    }
    if (const json::value* outputs = members.Find("outputs")) {
      RETURN_IF_ERROR(ParseOutputs(*outputs, members.PathOf("outputs"), &flow.outputs));
    }
    ASSIGN_OR_RETURN(const json::value* actions, members.Require("actions"));
    RETURN_IF_ERROR(ParseActions(*actions, members.PathOf("actions"), 0, &flow.actions));
    flow.action_count = action_count_;
    return flow;
  }

 private:
  absl::Status ParseInputs(const json::value& v, const std::string& path,
                           std::vector<FlowInput>* inputs) {
    ASSIGN_OR_RETURN(const json::array* array, GetArray(v, path));
    for (size_t i = 0; i < array->size(); ++i) {
      const std::string input_path = Element(path, i);
      ASSIGN_OR_RETURN(const json::object* object,
                       GetObject((*array)[i], input_path, "an input object"));
      const Members members(*object, input_path);
      RETURN_IF_ERROR(members.CheckKeys("an input", {"name", "type", "default", "description"}));
      FlowInput input;
      ASSIGN_OR_RETURN(input.name, members.RequiredName("name"));
      for (const FlowInput& earlier : *inputs) {
        if (earlier.name == input.name) {
          return Error(members.PathOf("name"), "duplicate input name \"", input.name, "\"");
        }
      }
      ASSIGN_OR_RETURN(const json::value* type, members.Require("type"));
      ASSIGN_OR_RETURN(absl::string_view type_name, GetString(*type, members.PathOf("type")));
      const auto* found = std::find_if(std::begin(kAllInputTypes), std::end(kAllInputTypes),
                                       [&](InputType t) { return InputTypeName(t) == type_name; });
      if (found == std::end(kAllInputTypes)) {
        return Error(members.PathOf("type"), "unknown input type ", Quote(type_name),
                     " (use text, number or boolean)");
      }
      input.type = *found;
      if (const json::value* default_value = members.Find("default")) {
        ASSIGN_OR_RETURN(input.default_value,
                         DefaultText(*default_value, input.type, members.PathOf("default")));
      }
      ASSIGN_OR_RETURN(input.description, members.OptionalString("description"));
      inputs->push_back(std::move(input));
    }
    return absl::OkStatus();
  }

  static absl::StatusOr<std::string> DefaultText(const json::value& v, InputType type,
                                                 const std::string& path) {
    switch (type) {
      case InputType::kText: {
        if (!v.is_string()) return Error(path, "a text input's default must be a string");
        ASSIGN_OR_RETURN(absl::string_view text, GetString(v, path));
        return std::string(text);
      }
      case InputType::kNumber:
        if (!v.is_number()) return Error(path, "a number input's default must be a JSON number");
        if (v.is_double() && !std::isfinite(v.get_double())) {
          return Error(path, "a number input's default must be finite");
        }
        return NumberText(v);
      case InputType::kBoolean:
        if (!v.is_bool()) return Error(path, "a boolean input's default must be true or false");
        return std::string(v.get_bool() ? "true" : "false");
    }
    return Error(path, "unknown input type");
  }

  absl::Status ParseOutputs(const json::value& v, const std::string& path,
                            std::vector<FlowOutput>* outputs) {
    ASSIGN_OR_RETURN(const json::array* array, GetArray(v, path));
    for (size_t i = 0; i < array->size(); ++i) {
      const std::string output_path = Element(path, i);
      ASSIGN_OR_RETURN(const json::object* object,
                       GetObject((*array)[i], output_path, "an output object"));
      const Members members(*object, output_path);
      RETURN_IF_ERROR(members.CheckKeys("an output", {"name", "description"}));
      FlowOutput output;
      ASSIGN_OR_RETURN(output.name, members.RequiredName("name"));
      for (const FlowOutput& earlier : *outputs) {
        if (earlier.name == output.name) {
          return Error(members.PathOf("name"), "duplicate output name \"", output.name, "\"");
        }
      }
      ASSIGN_OR_RETURN(output.description, members.OptionalString("description"));
      outputs->push_back(std::move(output));
    }
    return absl::OkStatus();
  }

  // `depth` is the number of Flow.If/Flow.Loop blocks around the list.
  absl::Status ParseActions(const json::value& v, const std::string& path, int depth,
                            std::vector<Action>* actions) {
    ASSIGN_OR_RETURN(const json::array* array, GetArray(v, path));
    actions->reserve(array->size());
    for (size_t i = 0; i < array->size(); ++i) {
      ASSIGN_OR_RETURN(Action action, ParseAction((*array)[i], Element(path, i), depth));
      actions->push_back(std::move(action));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<Action> ParseAction(const json::value& v, std::string path, int depth) {
    ASSIGN_OR_RETURN(const json::object* object, GetObject(v, path, "an action object"));
    const Members members(*object, path);
    const json::value* type_value = members.Find("action");
    if (type_value == nullptr) {
      return Error(path,
                   "missing required key \"action\" (the action's type, e.g. "
                   "\"Variables.SetVariable\")");
    }
    ASSIGN_OR_RETURN(absl::string_view type_name, GetString(*type_value, members.PathOf("action")));
    const auto* type = std::find_if(std::begin(kAllActionTypes), std::end(kAllActionTypes),
                                    [&](ActionType t) { return ActionTypeName(t) == type_name; });
    if (type == std::end(kAllActionTypes)) return Error(path, "unknown action ", Quote(type_name));
    if (action_count_ >= kMaxActions) {
      return Error(path, "more than ", kMaxActions, " actions in the flow");
    }
    const bool is_block = *type == ActionType::kIf || *type == ActionType::kLoop;
    if (is_block && depth >= kMaxBlockNesting) {
      return Error(path, type_name, " nested inside ", depth, " Flow.If/Flow.Loop blocks; at most ",
                   kMaxBlockNesting, " may nest");
    }

    std::vector<absl::string_view> keys = ParameterNames(*type);
    keys.insert(keys.end(), std::begin(kCommonActionKeys), std::end(kCommonActionKeys));
    RETURN_IF_ERROR(members.CheckKeys(type_name, keys));

    Action action;
    action.type = *type;
    action.type_name = std::string(type_name);
    action.index = static_cast<uint32_t>(action_count_++);
    if (const json::value* timeout = members.Find("timeout_ms")) {
      ASSIGN_OR_RETURN(int64_t ms,
                       GetInteger(*timeout, members.PathOf("timeout_ms"), 1, kMaxTimeoutMs));
      action.timeout = absl::Milliseconds(ms);
    }
    ASSIGN_OR_RETURN(action.description, members.OptionalString("description"));
    ASSIGN_OR_RETURN(action.params, ParseParams(*type, members, depth));
    action.path = std::move(path);
    return action;
  }

  absl::StatusOr<ActionParams> ParseParams(ActionType type, const Members& m, int depth) {
    switch (type) {
      case ActionType::kSetVariable: {
        SetVariableParams p;
        ASSIGN_OR_RETURN(p.variable, m.RequiredName("variable"));
        ASSIGN_OR_RETURN(p.value, m.RequiredExpression("value"));
        return p;
      }
      case ActionType::kRunApplication: {
        RunApplicationParams p;
        ASSIGN_OR_RETURN(p.path, m.RequiredExpression("path"));
        if (const json::value* arguments = m.Find("arguments")) {
          const std::string arguments_path = m.PathOf("arguments");
          ASSIGN_OR_RETURN(const json::array* array, GetArray(*arguments, arguments_path));
          for (size_t i = 0; i < array->size(); ++i) {
            ASSIGN_OR_RETURN(Expression argument,
                             GetExpression((*array)[i], Element(arguments_path, i)));
            p.arguments.push_back(std::move(argument));
          }
        }
        ASSIGN_OR_RETURN(p.working_directory, m.OptionalExpression("working_directory"));
        ASSIGN_OR_RETURN(p.stdout_variable, m.OptionalName("stdout_variable"));
        ASSIGN_OR_RETURN(p.exit_code_variable, m.OptionalName("exit_code_variable"));
        ASSIGN_OR_RETURN(p.fail_on_nonzero_exit, m.OptionalBool("fail_on_nonzero_exit", true));
        return p;
      }
      case ActionType::kReadText: {
        ReadTextParams p;
        ASSIGN_OR_RETURN(p.path, m.RequiredExpression("path"));
        ASSIGN_OR_RETURN(p.variable, m.RequiredName("variable"));
        return p;
      }
      case ActionType::kWriteText: {
        WriteTextParams p;
        ASSIGN_OR_RETURN(p.path, m.RequiredExpression("path"));
        ASSIGN_OR_RETURN(p.text, m.RequiredExpression("text"));
        ASSIGN_OR_RETURN(p.append, m.OptionalBool("append", false));
        return p;
      }
      case ActionType::kCreateFolder: {
        CreateFolderParams p;
        ASSIGN_OR_RETURN(p.path, m.RequiredExpression("path"));
        return p;
      }
      case ActionType::kIf: {
        IfParams p;
        ASSIGN_OR_RETURN(const json::value* condition, m.Require("condition"));
        ASSIGN_OR_RETURN(p.condition, ParseCondition(*condition, m.PathOf("condition")));
        ASSIGN_OR_RETURN(const json::value* then_actions, m.Require("then"));
        RETURN_IF_ERROR(ParseActions(*then_actions, m.PathOf("then"), depth + 1, &p.then_actions));
        if (const json::value* else_actions = m.Find("else")) {
          RETURN_IF_ERROR(
              ParseActions(*else_actions, m.PathOf("else"), depth + 1, &p.else_actions));
        }
        return p;
      }
      case ActionType::kLoop: {
        LoopParams p;
        ASSIGN_OR_RETURN(const json::value* times, m.Require("times"));
        ASSIGN_OR_RETURN(p.times, ParseLoopTimes(*times, m.PathOf("times")));
        ASSIGN_OR_RETURN(p.index_variable, m.OptionalName("index_variable"));
        ASSIGN_OR_RETURN(const json::value* body, m.Require("body"));
        RETURN_IF_ERROR(ParseActions(*body, m.PathOf("body"), depth + 1, &p.body));
        return p;
      }
      case ActionType::kWait: {
        WaitParams p;
        ASSIGN_OR_RETURN(const json::value* duration, m.Require("duration_ms"));
        ASSIGN_OR_RETURN(int64_t ms, GetInteger(*duration, m.PathOf("duration_ms"), 0, kMaxWaitMs));
        p.duration = absl::Milliseconds(ms);
        return p;
      }
      case ActionType::kFail: {
        FailParams p;
        ASSIGN_OR_RETURN(p.message, m.RequiredExpression("message"));
        return p;
      }
    }
    return Error(m.path(), "unhandled action type");
  }

  static absl::StatusOr<Expression> ParseLoopTimes(const json::value& v, const std::string& path) {
    if (v.is_number()) {
      ASSIGN_OR_RETURN(int64_t count, GetInteger(v, path, 0, kMaxLoopCount));
      return Expression::Literal(absl::StrCat(count));
    }
    if (!v.is_string()) {
      return Error(path, "expected an integer from 0 to ", kMaxLoopCount, " or an expression, got ",
                   KindName(v));
    }
    ASSIGN_OR_RETURN(Expression times, GetExpression(v, path));
    if (times.IsLiteral()) {
      // Nothing to wait for: a bad literal count is a definition error, not a run-time one.
      const absl::StatusOr<int64_t> count =
          ParseLoopCount(times.Evaluate([](absl::string_view) { return std::string(); }));
      if (!count.ok()) return Error(path, count.status().message());
    }
    return times;
  }

  static absl::StatusOr<Condition> ParseCondition(const json::value& v, const std::string& path) {
    ASSIGN_OR_RETURN(const json::object* object, GetObject(v, path, "a condition object"));
    const Members members(*object, path);
    RETURN_IF_ERROR(members.CheckKeys("a condition", {"left", "operator", "right"}));
    Condition condition;
    ASSIGN_OR_RETURN(condition.left, members.RequiredExpression("left"));
    ASSIGN_OR_RETURN(const json::value* op, members.Require("operator"));
    ASSIGN_OR_RETURN(absl::string_view op_name, GetString(*op, members.PathOf("operator")));
    const auto* found =
        std::find_if(std::begin(kAllOperators), std::end(kAllOperators),
                     [&](ConditionOperator o) { return ConditionOperatorName(o) == op_name; });
    if (found == std::end(kAllOperators)) {
      std::vector<absl::string_view> names;
      for (ConditionOperator o : kAllOperators) names.push_back(ConditionOperatorName(o));
      return Error(members.PathOf("operator"), "unknown operator ", Quote(op_name), " (use ",
                   absl::StrJoin(names, ", "), ")");
    }
    condition.op = *found;
    if (OperatorTakesRight(condition.op)) {
      ASSIGN_OR_RETURN(condition.right, members.RequiredExpression("right"));
    } else if (members.Find("right") != nullptr) {
      return Error(members.PathOf("right"), "operator ", op_name, " takes no right operand");
    }
    return condition;
  }

  size_t action_count_ = 0;
};

// Pass 2: every %Name% names an input or a variable assigned earlier in depth-first document
// order, and every output names an input or an assigned variable.
class VariableChecker {
 public:
  absl::Status Check(const FlowDefinition& flow) {
    for (const FlowInput& input : flow.inputs) defined_.insert(input.name);
    CollectAssignments(flow.actions);
    RETURN_IF_ERROR(CheckActions(flow.actions));
    for (size_t i = 0; i < flow.outputs.size(); ++i) {
      const std::string& name = flow.outputs[i].name;
      if (defined_.count(name) == 0) {
        return Error(Field(Element("$.outputs", i), "name"), "output \"", name,
                     "\" is neither an input nor assigned by any action");
      }
    }
    return absl::OkStatus();
  }

 private:
  void CollectAssignments(const std::vector<Action>& actions) {
    for (const Action& action : actions) {
      for (std::string& name : AssignedVariables(action)) {
        first_assigned_.emplace(std::move(name), action.path);
      }
      if (action.type == ActionType::kIf) {
        CollectAssignments(action.Params<IfParams>().then_actions);
        CollectAssignments(action.Params<IfParams>().else_actions);
      } else if (action.type == ActionType::kLoop) {
        CollectAssignments(action.Params<LoopParams>().body);
      }
    }
  }

  absl::Status CheckExpression(const Expression& expression, const std::string& path) {
    for (const std::string& name : expression.ReferencedVariables()) {
      if (defined_.count(name) != 0) continue;
      const auto later = first_assigned_.find(name);
      if (later != first_assigned_.end()) {
        return Error(path, "variable %", name, "% is used before it is assigned (first by ",
                     later->second, ")");
      }
      return Error(path, "unknown variable %", name,
                   "% (neither an input nor assigned by any action)");
    }
    return absl::OkStatus();
  }

  void Define(const std::string& name) { defined_.insert(name); }
  void Define(const std::optional<std::string>& name) {
    if (name.has_value()) defined_.insert(*name);
  }

  absl::Status CheckActions(const std::vector<Action>& actions) {
    for (const Action& action : actions) RETURN_IF_ERROR(CheckAction(action));
    return absl::OkStatus();
  }

  // Within one action: its expressions first, then the variables it assigns, then nested actions
  // (a loop's index variable is assigned before its body).
  absl::Status CheckAction(const Action& action) {
    auto at = [&](absl::string_view key) { return Field(action.path, key); };
    switch (action.type) {
      case ActionType::kSetVariable: {
        const auto& p = action.Params<SetVariableParams>();
        RETURN_IF_ERROR(CheckExpression(p.value, at("value")));
        Define(p.variable);
        return absl::OkStatus();
      }
      case ActionType::kRunApplication: {
        const auto& p = action.Params<RunApplicationParams>();
        RETURN_IF_ERROR(CheckExpression(p.path, at("path")));
        for (size_t i = 0; i < p.arguments.size(); ++i) {
          RETURN_IF_ERROR(CheckExpression(p.arguments[i], Element(at("arguments"), i)));
        }
        if (p.working_directory.has_value()) {
          RETURN_IF_ERROR(CheckExpression(*p.working_directory, at("working_directory")));
        }
        Define(p.stdout_variable);
        Define(p.exit_code_variable);
        return absl::OkStatus();
      }
      case ActionType::kReadText: {
        const auto& p = action.Params<ReadTextParams>();
        RETURN_IF_ERROR(CheckExpression(p.path, at("path")));
        Define(p.variable);
        return absl::OkStatus();
      }
      case ActionType::kWriteText: {
        const auto& p = action.Params<WriteTextParams>();
        RETURN_IF_ERROR(CheckExpression(p.path, at("path")));
        return CheckExpression(p.text, at("text"));
      }
      case ActionType::kCreateFolder:
        return CheckExpression(action.Params<CreateFolderParams>().path, at("path"));
      case ActionType::kIf: {
        const auto& p = action.Params<IfParams>();
        const std::string condition = at("condition");
        RETURN_IF_ERROR(CheckExpression(p.condition.left, Field(condition, "left")));
        if (p.condition.right.has_value()) {
          RETURN_IF_ERROR(CheckExpression(*p.condition.right, Field(condition, "right")));
        }
        RETURN_IF_ERROR(CheckActions(p.then_actions));
        return CheckActions(p.else_actions);
      }
      case ActionType::kLoop: {
        const auto& p = action.Params<LoopParams>();
        RETURN_IF_ERROR(CheckExpression(p.times, at("times")));
        Define(p.index_variable);
        return CheckActions(p.body);
      }
      case ActionType::kWait:
        return absl::OkStatus();
      case ActionType::kFail:
        return CheckExpression(action.Params<FailParams>().message, at("message"));
    }
    return absl::OkStatus();
  }

  std::set<std::string> defined_;                      // inputs and variables assigned so far
  std::map<std::string, std::string> first_assigned_;  // variable → path of its first assignment
};

absl::StatusOr<FlowDefinition> ParseValidated(absl::string_view json_text) {
  if (json_text.size() > kMaxDefinitionBytes) {
    return Error("$", "definition is ", json_text.size(), " bytes; the limit is ",
                 kMaxDefinitionBytes, " bytes");
  }
  json::parse_options options;
  options.max_depth = kMaxJsonDepth;
  json::parser parser(json::storage_ptr(), options);
  json::error_code ec;
  const size_t consumed = parser.write(json_text.data(), json_text.size(), ec);
  if (ec) {
    const std::string reason =
        ec == json::error::too_deep
            ? absl::StrCat("JSON nested deeper than ", kMaxJsonDepth, " arrays and objects")
            : ec.message();
    return absl::InvalidArgumentError(absl::StrCat(Position(json_text, consumed), ": ", reason));
  }
  const json::value root = parser.release();
  ASSIGN_OR_RETURN(FlowDefinition flow, StructureParser().Parse(root));
  RETURN_IF_ERROR(VariableChecker().Check(flow));
  return flow;
}

}  // namespace

absl::string_view InputTypeName(InputType type) {
  switch (type) {
    case InputType::kText:
      return "text";
    case InputType::kNumber:
      return "number";
    case InputType::kBoolean:
      return "boolean";
  }
  return "unknown";
}

absl::string_view ConditionOperatorName(ConditionOperator op) {
  switch (op) {
    case ConditionOperator::kEquals:
      return "equals";
    case ConditionOperator::kNotEquals:
      return "not_equals";
    case ConditionOperator::kContains:
      return "contains";
    case ConditionOperator::kNotContains:
      return "not_contains";
    case ConditionOperator::kLessThan:
      return "less_than";
    case ConditionOperator::kGreaterThan:
      return "greater_than";
    case ConditionOperator::kIsEmpty:
      return "is_empty";
    case ConditionOperator::kIsNotEmpty:
      return "is_not_empty";
  }
  return "unknown";
}

bool OperatorTakesRight(ConditionOperator op) {
  return op != ConditionOperator::kIsEmpty && op != ConditionOperator::kIsNotEmpty;
}

bool ApplyOperator(ConditionOperator op, absl::string_view left, absl::string_view right) {
  const std::optional<double> left_number = ParseNumber(left);
  const std::optional<double> right_number = ParseNumber(right);
  const bool numeric = left_number.has_value() && right_number.has_value();
  switch (op) {
    case ConditionOperator::kEquals:
      return numeric ? *left_number == *right_number : left == right;
    case ConditionOperator::kNotEquals:
      return numeric ? *left_number != *right_number : left != right;
    case ConditionOperator::kContains:
      return absl::StrContains(left, right);
    case ConditionOperator::kNotContains:
      return !absl::StrContains(left, right);
    case ConditionOperator::kLessThan:
      return numeric ? *left_number < *right_number : left < right;
    case ConditionOperator::kGreaterThan:
      return numeric ? *left_number > *right_number : left > right;
    case ConditionOperator::kIsEmpty:
      return left.empty();
    case ConditionOperator::kIsNotEmpty:
      return !left.empty();
  }
  return false;
}

bool EvaluateCondition(const Condition& condition,
                       absl::FunctionRef<std::string(absl::string_view name)> lookup) {
  const std::string left = condition.left.Evaluate(lookup);
  const std::string right =
      condition.right.has_value() ? condition.right->Evaluate(lookup) : std::string();
  return ApplyOperator(condition.op, left, right);
}

std::optional<double> ParseNumber(absl::string_view text) {
  size_t i = 0;
  const size_t n = text.size();
  auto digits = [&] {
    const size_t start = i;
    while (i < n && text[i] >= '0' && text[i] <= '9') ++i;
    return i > start;
  };
  if (i < n && text[i] == '-') ++i;
  if (!digits()) return std::nullopt;
  if (i < n && text[i] == '.') {
    ++i;
    if (!digits()) return std::nullopt;
  }
  if (i < n && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    if (i < n && (text[i] == '+' || text[i] == '-')) ++i;
    if (!digits()) return std::nullopt;
  }
  if (i != n) return std::nullopt;
  double value = 0;
  const auto result = std::from_chars(text.data(), text.data() + n, value);
  if (result.ec != std::errc() || result.ptr != text.data() + n || !std::isfinite(value)) {
    return std::nullopt;
  }
  return value;
}

absl::StatusOr<int64_t> ParseLoopCount(absl::string_view text) {
  const bool all_digits = !text.empty() && std::all_of(text.begin(), text.end(),
                                                       [](char c) { return c >= '0' && c <= '9'; });
  int64_t count = 0;
  if (all_digits) {
    for (char c : text) {
      count = count * 10 + (c - '0');
      if (count > kMaxLoopCount) break;
    }
  }
  if (!all_digits || count > kMaxLoopCount) {
    return absl::InvalidArgumentError(absl::StrCat(
        "loop count ", Quote(text), " is not a whole number from 0 to ", kMaxLoopCount));
  }
  return count;
}

absl::string_view ActionTypeName(ActionType type) {
  switch (type) {
    case ActionType::kSetVariable:
      return "Variables.SetVariable";
    case ActionType::kRunApplication:
      return "System.RunApplication";
    case ActionType::kReadText:
      return "File.ReadText";
    case ActionType::kWriteText:
      return "File.WriteText";
    case ActionType::kCreateFolder:
      return "Folder.Create";
    case ActionType::kIf:
      return "Flow.If";
    case ActionType::kLoop:
      return "Flow.Loop";
    case ActionType::kWait:
      return "Flow.Wait";
    case ActionType::kFail:
      return "Flow.Fail";
  }
  return "unknown";
}

std::vector<std::string> AssignedVariables(const Action& action) {
  std::vector<std::string> names;
  auto add = [&](const std::optional<std::string>& name) {
    if (name.has_value()) names.push_back(*name);
  };
  switch (action.type) {
    case ActionType::kSetVariable:
      add(action.Params<SetVariableParams>().variable);
      break;
    case ActionType::kRunApplication:
      add(action.Params<RunApplicationParams>().stdout_variable);
      add(action.Params<RunApplicationParams>().exit_code_variable);
      break;
    case ActionType::kReadText:
      add(action.Params<ReadTextParams>().variable);
      break;
    case ActionType::kLoop:
      add(action.Params<LoopParams>().index_variable);
      break;
    case ActionType::kWriteText:
    case ActionType::kCreateFolder:
    case ActionType::kIf:
    case ActionType::kWait:
    case ActionType::kFail:
      break;
  }
  return names;
}

absl::StatusOr<FlowDefinition> ParseFlowDefinition(absl::string_view json_text) {
  // No exception leaves this module; with the 1 MiB limit the only candidate is allocation failure.
  try {
    return ParseValidated(json_text);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("out of memory while parsing a flow definition");
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("parsing a flow definition: ", e.what()));
  }
}

absl::StatusOr<std::map<std::string, std::string>> ResolveRunInputs(
    const FlowDefinition& flow, const std::map<std::string, std::string>& given) {
  for (const auto& [name, value] : given) {
    const bool declared = std::any_of(flow.inputs.begin(), flow.inputs.end(),
                                      [&](const FlowInput& input) { return input.name == name; });
    if (!declared) {
      return absl::InvalidArgumentError(
          absl::StrCat("input ", Quote(name), ": not declared by the flow"));
    }
  }
  std::map<std::string, std::string> resolved;
  for (const FlowInput& input : flow.inputs) {
    const std::string quoted = Quote(input.name);
    const auto it = given.find(input.name);
    if (it == given.end()) {
      if (!input.default_value.has_value()) {
        return absl::InvalidArgumentError(
            absl::StrCat("input ", quoted, ": required (it has no default) but not given"));
      }
      resolved.emplace(input.name, *input.default_value);
      continue;
    }
    const std::string& value = it->second;
    if (value.size() > kMaxStringBytes) {
      return absl::InvalidArgumentError(absl::StrCat("input ", quoted, ": value of ", value.size(),
                                                     " bytes is longer than the limit of ",
                                                     kMaxStringBytes, " bytes"));
    }
    if (input.type == InputType::kNumber && !ParseNumber(value).has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat("input ", quoted, ": ", Quote(value), " is not a number"));
    }
    if (input.type == InputType::kBoolean && value != "true" && value != "false") {
      return absl::InvalidArgumentError(absl::StrCat("input ", quoted, ": ", Quote(value),
                                                     " is not a boolean (\"true\" or \"false\")"));
    }
    resolved.emplace(input.name, value);
  }
  return resolved;
}

}  // namespace tether::flow
