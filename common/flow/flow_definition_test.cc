#include "common/flow/flow_definition.h"

#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tether::flow {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// A flow around the given JSON array bodies.
std::string Flow(absl::string_view actions, absl::string_view inputs = "[]",
                 absl::string_view outputs = "[]") {
  return absl::StrCat(R"({"name":"Test","inputs":)", inputs, R"(,"outputs":)", outputs,
                      R"(,"actions":)", actions, "}");
}

// Expects kInvalidArgument whose message starts with `prefix`.
void ExpectInvalid(absl::string_view text, absl::string_view prefix) {
  absl::StatusOr<FlowDefinition> flow = ParseFlowDefinition(text);
  ASSERT_FALSE(flow.ok()) << "parsed: " << text.substr(0, 300);
  EXPECT_EQ(flow.status().code(), absl::StatusCode::kInvalidArgument) << flow.status();
  EXPECT_THAT(std::string(flow.status().message()), StartsWith(std::string(prefix)));
}

FlowDefinition ExpectValid(absl::string_view text) {
  absl::StatusOr<FlowDefinition> flow = ParseFlowDefinition(text);
  EXPECT_TRUE(flow.ok()) << flow.status();
  return flow.ok() ? *std::move(flow) : FlowDefinition();
}

std::string Vars(const Expression& e) { return absl::StrJoin(e.ReferencedVariables(), ","); }

constexpr absl::string_view kEveryKind = R"json({
  "name": "Backup",
  "inputs": [{"name": "Src", "type": "text", "default": "/tmp", "description": "source"},
             {"name": "Count", "type": "number"},
             {"name": "Verbose", "type": "boolean", "default": false},
             {"name": "Ratio", "type": "number", "default": 2.5}],
  "outputs": [{"name": "Result", "description": "what happened"}],
  "actions": [
    {"action": "Variables.SetVariable", "variable": "Result", "value": "copied %Src%",
     "description": "first", "timeout_ms": 1000},
    {"action": "System.RunApplication", "path": "/bin/cp", "arguments": ["-r", "%Src%", "/b"],
     "working_directory": "/", "stdout_variable": "Out", "exit_code_variable": "Code",
     "fail_on_nonzero_exit": false},
    {"action": "File.ReadText", "path": "%Src%/a.txt", "variable": "Text"},
    {"action": "File.WriteText", "path": "/b/log", "text": "%Text%", "append": true},
    {"action": "Folder.Create", "path": "/b/%Code%"},
    {"action": "Flow.If", "condition": {"left": "%Code%", "operator": "not_equals", "right": "0"},
     "then": [{"action": "Flow.Fail", "message": "cp failed: %Out%"}],
     "else": [{"action": "Flow.Wait", "duration_ms": 250}]},
    {"action": "Flow.Loop", "times": "%Count%", "index_variable": "I",
     "body": [{"action": "File.WriteText", "path": "/b/%I%", "text": "%Result%"}]},
    {"action": "Flow.Loop", "times": 3, "body": []},
    {"action": "Flow.If", "condition": {"left": "%Out%", "operator": "is_empty"}, "then": []}
  ]
})json";

constexpr absl::string_view kDocExample = R"json({
  "name": "Backup",
  "inputs": [
    {"name": "Src", "type": "text", "default": "/tmp", "description": "folder to copy"},
    {"name": "Count", "type": "number"},
    {"name": "Verbose", "type": "boolean", "default": false}
  ],
  "outputs": [{"name": "Result", "description": "what the flow did"}],
  "actions": [
    {"action": "Folder.Create", "path": "/backup"},
    {"action": "System.RunApplication", "path": "/bin/cp",
     "arguments": ["-r", "%Src%", "/backup"], "working_directory": "/",
     "stdout_variable": "CopyOutput", "exit_code_variable": "ExitCode",
     "fail_on_nonzero_exit": false, "timeout_ms": 600000,
     "description": "copy the folder"},
    {"action": "Flow.If",
     "condition": {"left": "%ExitCode%", "operator": "not_equals", "right": "0"},
     "then": [{"action": "Flow.Fail", "message": "cp exited with %ExitCode%: %CopyOutput%"}],
     "else": [{"action": "Variables.SetVariable", "variable": "Result",
               "value": "copied %Src% (100%% done)"}]},
    {"action": "Flow.Loop", "times": "%Count%", "index_variable": "I", "body": [
      {"action": "File.WriteText", "path": "/backup/log.txt", "text": "pass %I%\n",
       "append": true},
      {"action": "Flow.Wait", "duration_ms": 1000}
    ]},
    {"action": "File.ReadText", "path": "/backup/log.txt", "variable": "Log"},
    {"action": "Flow.If", "condition": {"left": "%Verbose%", "operator": "equals", "right": "true"},
     "then": [{"action": "Variables.SetVariable", "variable": "Result",
               "value": "%Result%\n%Log%"}]}
  ]
}
)json";

TEST(FlowDefinitionTest, TheExampleInTheDocIsValid) {
  const FlowDefinition flow = ExpectValid(kDocExample);  // keep in sync with docs/FLOWS.md
  EXPECT_EQ(flow.name, "Backup");
  EXPECT_EQ(flow.action_count, 11u);
}

TEST(FlowDefinitionTest, EveryActionKindParsesIntoTypedFields) {
  const FlowDefinition flow = ExpectValid(kEveryKind);
  EXPECT_EQ(flow.name, "Backup");
  ASSERT_EQ(flow.actions.size(), 9u);
  EXPECT_EQ(flow.action_count, 12u);

  const Action& set = flow.actions[0];
  EXPECT_EQ(set.type, ActionType::kSetVariable);
  EXPECT_EQ(set.type_name, "Variables.SetVariable");
  EXPECT_EQ(set.path, "$.actions[0]");
  EXPECT_EQ(set.description, "first");
  EXPECT_EQ(set.timeout, absl::Milliseconds(1000));
  EXPECT_EQ(set.Params<SetVariableParams>().variable, "Result");
  EXPECT_EQ(set.Params<SetVariableParams>().value.ToSource(), "copied %Src%");

  const Action& run = flow.actions[1];
  ASSERT_EQ(run.type, ActionType::kRunApplication);
  const auto& rp = run.Params<RunApplicationParams>();
  EXPECT_EQ(rp.path.ToSource(), "/bin/cp");
  ASSERT_EQ(rp.arguments.size(), 3u);
  EXPECT_EQ(rp.arguments[0].ToSource(), "-r");
  EXPECT_EQ(Vars(rp.arguments[1]), "Src");
  ASSERT_TRUE(rp.working_directory.has_value());
  EXPECT_EQ(rp.working_directory->ToSource(), "/");
  EXPECT_EQ(rp.stdout_variable, "Out");
  EXPECT_EQ(rp.exit_code_variable, "Code");
  EXPECT_FALSE(rp.fail_on_nonzero_exit);
  EXPECT_FALSE(run.timeout.has_value());

  ASSERT_EQ(flow.actions[2].type, ActionType::kReadText);
  EXPECT_EQ(Vars(flow.actions[2].Params<ReadTextParams>().path), "Src");
  EXPECT_EQ(flow.actions[2].Params<ReadTextParams>().variable, "Text");

  ASSERT_EQ(flow.actions[3].type, ActionType::kWriteText);
  EXPECT_EQ(flow.actions[3].Params<WriteTextParams>().path.ToSource(), "/b/log");
  EXPECT_EQ(Vars(flow.actions[3].Params<WriteTextParams>().text), "Text");
  EXPECT_TRUE(flow.actions[3].Params<WriteTextParams>().append);

  ASSERT_EQ(flow.actions[4].type, ActionType::kCreateFolder);
  EXPECT_EQ(flow.actions[4].Params<CreateFolderParams>().path.ToSource(), "/b/%Code%");

  const Action& branch = flow.actions[5];
  ASSERT_EQ(branch.type, ActionType::kIf);
  const auto& ip = branch.Params<IfParams>();
  EXPECT_EQ(Vars(ip.condition.left), "Code");
  EXPECT_EQ(ip.condition.op, ConditionOperator::kNotEquals);
  ASSERT_TRUE(ip.condition.right.has_value());
  EXPECT_EQ(ip.condition.right->ToSource(), "0");
  ASSERT_EQ(ip.then_actions.size(), 1u);
  EXPECT_EQ(ip.then_actions[0].type, ActionType::kFail);
  EXPECT_EQ(ip.then_actions[0].path, "$.actions[5].then[0]");
  EXPECT_EQ(ip.then_actions[0].Params<FailParams>().message.ToSource(), "cp failed: %Out%");
  ASSERT_EQ(ip.else_actions.size(), 1u);
  EXPECT_EQ(ip.else_actions[0].type, ActionType::kWait);
  EXPECT_EQ(ip.else_actions[0].path, "$.actions[5].else[0]");
  EXPECT_EQ(ip.else_actions[0].Params<WaitParams>().duration, absl::Milliseconds(250));

  const Action& loop = flow.actions[6];
  ASSERT_EQ(loop.type, ActionType::kLoop);
  const auto& lp = loop.Params<LoopParams>();
  EXPECT_EQ(Vars(lp.times), "Count");
  EXPECT_EQ(lp.index_variable, "I");
  ASSERT_EQ(lp.body.size(), 1u);
  EXPECT_EQ(lp.body[0].path, "$.actions[6].body[0]");

  const auto& literal_loop = flow.actions[7].Params<LoopParams>();
  EXPECT_TRUE(literal_loop.times.IsLiteral());
  EXPECT_EQ(literal_loop.times.ToSource(), "3");
  EXPECT_FALSE(literal_loop.index_variable.has_value());
  EXPECT_TRUE(literal_loop.body.empty());

  const auto& unary = flow.actions[8].Params<IfParams>();
  EXPECT_EQ(unary.condition.op, ConditionOperator::kIsEmpty);
  EXPECT_FALSE(unary.condition.right.has_value());
  EXPECT_TRUE(unary.else_actions.empty());

  // The enum and the variant agree for every action.
  for (const Action& action : flow.actions) {
    SCOPED_TRACE(action.path);
    EXPECT_EQ(static_cast<size_t>(action.type), action.params.index());
    EXPECT_EQ(ActionTypeName(action.type), action.type_name);
  }
}

TEST(FlowDefinitionTest, InputsAndOutputsParseWithDefaultsAsText) {
  const FlowDefinition flow = ExpectValid(kEveryKind);
  ASSERT_EQ(flow.inputs.size(), 4u);
  EXPECT_EQ(flow.inputs[0].name, "Src");
  EXPECT_EQ(flow.inputs[0].type, InputType::kText);
  EXPECT_EQ(flow.inputs[0].default_value, "/tmp");
  EXPECT_EQ(flow.inputs[0].description, "source");
  EXPECT_EQ(flow.inputs[1].type, InputType::kNumber);
  EXPECT_FALSE(flow.inputs[1].default_value.has_value());
  EXPECT_EQ(flow.inputs[2].type, InputType::kBoolean);
  EXPECT_EQ(flow.inputs[2].default_value, "false");
  EXPECT_EQ(flow.inputs[3].default_value, "2.5");
  ASSERT_EQ(flow.outputs.size(), 1u);
  EXPECT_EQ(flow.outputs[0].name, "Result");
  EXPECT_EQ(flow.outputs[0].description, "what happened");
}

TEST(FlowDefinitionTest, NumberDefaultsBecomeShortestDecimalText) {
  const struct {
    std::string json;
    std::string text;
  } cases[] = {{"5", "5"},   {"-7", "-7"},      {"0.1", "0.1"},
               {"1.0", "1"}, {"1e21", "1e+21"}, {"18446744073709551615", "18446744073709551615"}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.json);
    const FlowDefinition flow = ExpectValid(
        Flow("[]", absl::StrCat(R"([{"name":"N","type":"number","default":)", c.json, "}]")));
    ASSERT_EQ(flow.inputs.size(), 1u);
    EXPECT_EQ(flow.inputs[0].default_value, c.text);
    // A default is always acceptable to ResolveRunInputs as the same type.
    EXPECT_TRUE(ParseNumber(*flow.inputs[0].default_value).has_value());
  }
}

TEST(FlowDefinitionTest, OptionalParametersTakeTheirDefaults) {
  const FlowDefinition flow = ExpectValid(Flow(R"([
      {"action": "System.RunApplication", "path": "/bin/true"},
      {"action": "File.WriteText", "path": "/x", "text": ""}])"));
  ASSERT_EQ(flow.actions.size(), 2u);
  const auto& run = flow.actions[0].Params<RunApplicationParams>();
  EXPECT_TRUE(run.arguments.empty());
  EXPECT_FALSE(run.working_directory.has_value());
  EXPECT_FALSE(run.stdout_variable.has_value());
  EXPECT_FALSE(run.exit_code_variable.has_value());
  EXPECT_TRUE(run.fail_on_nonzero_exit);
  EXPECT_FALSE(flow.actions[1].Params<WriteTextParams>().append);
  EXPECT_TRUE(flow.actions[1].Params<WriteTextParams>().text.parts().empty());
  EXPECT_TRUE(flow.actions[1].description.empty());
}

TEST(FlowDefinitionTest, IndicesArePreOrderDepthFirstOverNestedActions) {
  const FlowDefinition flow = ExpectValid(kEveryKind);
  std::vector<std::string> order;
  std::vector<uint32_t> indices;
  auto walk = [&](const std::vector<Action>& actions, auto& self) -> void {
    for (const Action& a : actions) {
      order.push_back(a.path);
      indices.push_back(a.index);
      if (a.type == ActionType::kIf) {
        self(a.Params<IfParams>().then_actions, self);
        self(a.Params<IfParams>().else_actions, self);
      } else if (a.type == ActionType::kLoop) {
        self(a.Params<LoopParams>().body, self);
      }
    }
  };
  walk(flow.actions, walk);
  ASSERT_EQ(order.size(), 12u);
  EXPECT_THAT(indices, ElementsAre(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11));
  EXPECT_EQ(order[6], "$.actions[5].then[0]");
  EXPECT_EQ(order[7], "$.actions[5].else[0]");
  EXPECT_EQ(order[8], "$.actions[6]");
  EXPECT_EQ(order[9], "$.actions[6].body[0]");
}

TEST(FlowDefinitionTest, EachMissingRequiredParameterIsNamed) {
  // One valid action of each kind, then each required key removed in turn.
  const struct {
    std::string type;
    std::map<std::string, std::string> required;  // key -> JSON value
  } kinds[] = {
      {"Variables.SetVariable", {{"variable", R"("V")"}, {"value", R"("x")"}}},
      {"System.RunApplication", {{"path", R"("/bin/true")"}}},
      {"File.ReadText", {{"path", R"("/f")"}, {"variable", R"("V")"}}},
      {"File.WriteText", {{"path", R"("/f")"}, {"text", R"("x")"}}},
      {"Folder.Create", {{"path", R"("/d")"}}},
      {"Flow.If",
       {{"condition", R"({"left":"a","operator":"equals","right":"b"})"}, {"then", "[]"}}},
      {"Flow.Loop", {{"times", "2"}, {"body", "[]"}}},
      {"Flow.Wait", {{"duration_ms", "10"}}},
      {"Flow.Fail", {{"message", R"("no")"}}},
  };
  for (const auto& kind : kinds) {
    std::vector<std::string> all;
    for (const auto& [key, value] : kind.required)
      all.push_back(absl::StrCat("\"", key, "\":", value));
    {
      SCOPED_TRACE(kind.type + " complete");
      ExpectValid(Flow(absl::StrCat(R"([{"action":"Flow.Wait","duration_ms":0},{"action":")",
                                    kind.type, "\",", absl::StrJoin(all, ","), "}]")));
    }
    for (const auto& [missing, unused] : kind.required) {
      SCOPED_TRACE(kind.type + " without " + missing);
      std::vector<std::string> rest;
      for (const auto& [key, value] : kind.required) {
        if (key != missing) rest.push_back(absl::StrCat(",\"", key, "\":", value));
      }
      ExpectInvalid(Flow(absl::StrCat(R"([{"action":"Flow.Wait","duration_ms":0},{"action":")",
                                      kind.type, "\"", absl::StrJoin(rest, ""), "}]")),
                    absl::StrCat("$.actions[1]: missing required key \"", missing, "\""));
    }
  }
  ExpectInvalid(Flow(R"([{"variable":"V","value":"x"}])"),
                "$.actions[0]: missing required key \"action\"");
  ExpectInvalid(R"({"actions":[]})", "$: missing required key \"name\"");
  ExpectInvalid(R"({"name":"x"})", "$: missing required key \"actions\"");
  ExpectInvalid(Flow("[]", R"([{"type":"text"}])"), "$.inputs[0]: missing required key \"name\"");
  ExpectInvalid(Flow("[]", R"([{"name":"A"}])"), "$.inputs[0]: missing required key \"type\"");
  ExpectInvalid(Flow("[]", "[]", R"([{"description":"d"}])"),
                "$.outputs[0]: missing required key \"name\"");
  ExpectInvalid(Flow(R"([{"action":"Flow.If","condition":{"operator":"is_empty"},"then":[]}])"),
                "$.actions[0].condition: missing required key \"left\"");
  ExpectInvalid(Flow(R"([{"action":"Flow.If","condition":{"left":"a"},"then":[]}])"),
                "$.actions[0].condition: missing required key \"operator\"");
  ExpectInvalid(
      Flow(R"([{"action":"Flow.If","condition":{"left":"a","operator":"less_than"},"then":[]}])"),
      "$.actions[0].condition: missing required key \"right\"");
}

TEST(FlowDefinitionTest, UnknownActionIsNamedAtItsPath) {
  ExpectInvalid(
      Flow(R"([{"action":"Folder.Create","path":"/a"},{"action":"File.Delete","path":"/a"}])"),
      "$.actions[1]: unknown action \"File.Delete\"");
  ExpectInvalid(Flow(R"([{"action":"Flow.If","condition":{"left":"a","operator":"is_empty"},
                         "then":[{"action":"variables.setvariable"}]}])"),
                "$.actions[0].then[0]: unknown action \"variables.setvariable\"");
  ExpectInvalid(Flow(R"([{"action":7}])"), "$.actions[0].action: expected a string, got a number");
}

TEST(FlowDefinitionTest, UnknownKeysAreErrorsEverywhere) {
  const struct {
    std::string text;
    std::string prefix;
  } cases[] = {
      {R"({"name":"x","actions":[],"version":2})", "$.version: unknown key (a flow takes"},
      {Flow(R"([{"action":"Flow.Wait","duration_ms":1,"durationMs":1}])"),
       "$.actions[0].durationMs: unknown key (Flow.Wait takes duration_ms, action"},
      {Flow(R"([{"action":"Folder.Create","path":"/a","value":"x"}])"),
       "$.actions[0].value: unknown key (Folder.Create takes"},
      {Flow(R"([{"action":"Flow.Fail","message":"m","my key":1}])"),
       R"($.actions[0]["my key"]: unknown key)"},
      {Flow("[]", R"([{"name":"A","type":"text","required":true}])"),
       "$.inputs[0].required: unknown key (an input takes"},
      {Flow("[]", "[]", R"([{"name":"A","type":"text"}])"), "$.outputs[0].type: unknown key"},
      {Flow(
           R"([{"action":"Flow.If","condition":{"left":"a","operator":"is_empty","not":true},"then":[]}])"),
       "$.actions[0].condition.not: unknown key (a condition takes left, operator, right)"},
      {Flow(
           R"([{"action":"Flow.Loop","times":1,"body":[{"action":"Flow.Wait","duration_ms":1,"x":0}]}])"),
       "$.actions[0].body[0].x: unknown key"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    ExpectInvalid(c.text, c.prefix);
  }
}

TEST(FlowDefinitionTest, WrongValueTypesAreRefusedAtTheirPath) {
  const struct {
    std::string text;
    std::string prefix;
  } cases[] = {
      {"[]", "$: expected a flow object, got an array"},
      {R"({"name":5,"actions":[]})", "$.name: expected a string, got a number"},
      {R"({"name":"","actions":[]})", "$.name: must not be empty"},
      {R"({"name":"x","actions":{}})", "$.actions: expected an array, got an object"},
      {R"({"name":"x","actions":[],"inputs":{}})", "$.inputs: expected an array"},
      {Flow("[5]"), "$.actions[0]: expected an action object, got a number"},
      {Flow(R"([{"action":"Variables.SetVariable","variable":"V","value":5}])"),
       "$.actions[0].value: expected a string, got a number"},
      {Flow(R"([{"action":"Variables.SetVariable","variable":"1V","value":"x"}])"),
       "$.actions[0].variable: invalid variable name \"1V\""},
      {Flow(R"([{"action":"Variables.SetVariable","variable":"%V%","value":"x"}])"),
       "$.actions[0].variable: invalid variable name \"%V%\""},
      {Flow(R"([{"action":"System.RunApplication","path":"/x","arguments":"-r"}])"),
       "$.actions[0].arguments: expected an array, got a string"},
      {Flow(R"([{"action":"System.RunApplication","path":"/x","arguments":["a",1]}])"),
       "$.actions[0].arguments[1]: expected a string, got a number"},
      {Flow(R"([{"action":"System.RunApplication","path":"/x","fail_on_nonzero_exit":"no"}])"),
       "$.actions[0].fail_on_nonzero_exit: expected true or false, got a string"},
      {Flow(R"([{"action":"File.WriteText","path":"/x","text":"t","append":1}])"),
       "$.actions[0].append: expected true or false"},
      {Flow(R"([{"action":"Flow.If","condition":"a","then":[]}])"),
       "$.actions[0].condition: expected a condition object, got a string"},
      {Flow(R"([{"action":"Flow.If","condition":{"left":"a","operator":"is_empty"},"then":null}])"),
       "$.actions[0].then: expected an array, got null"},
      {Flow(
           R"([{"action":"Flow.If","condition":{"left":"a","operator":"is_empty"},"then":[],"else":{}}])"),
       "$.actions[0].else: expected an array, got an object"},
      {Flow(
           R"([{"action":"Flow.If","condition":{"left":"a","operator":"matches","right":"b"},"then":[]}])"),
       "$.actions[0].condition.operator: unknown operator \"matches\""},
      {Flow(
           R"([{"action":"Flow.If","condition":{"left":"a","operator":"is_not_empty","right":"b"},"then":[]}])"),
       "$.actions[0].condition.right: operator is_not_empty takes no right operand"},
      {Flow(R"([{"action":"Flow.Description"}])"), "$.actions[0]: unknown action"},
      {Flow(R"([{"action":"Flow.Wait","duration_ms":1,"description":7}])"),
       "$.actions[0].description: expected a string"},
      {Flow("[]", R"([{"name":"A","type":"string"}])"),
       "$.inputs[0].type: unknown input type \"string\""},
      {Flow("[]", R"([{"name":"A B","type":"text"}])"), "$.inputs[0].name: invalid variable name"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    ExpectInvalid(c.text, c.prefix);
  }
}

TEST(FlowDefinitionTest, IntegerParametersAreRangeChecked) {
  const struct {
    std::string action;
    std::string prefix;  // empty = valid
  } cases[] = {
      {R"({"action":"Flow.Wait","duration_ms":0})", ""},
      {R"({"action":"Flow.Wait","duration_ms":86400000})", ""},
      {R"({"action":"Flow.Wait","duration_ms":86400001})",
       "$.actions[0].duration_ms: expected an integer from 0 to 86400000"},
      {R"({"action":"Flow.Wait","duration_ms":-1})",
       "$.actions[0].duration_ms: expected an integer"},
      {R"({"action":"Flow.Wait","duration_ms":1.5})",
       "$.actions[0].duration_ms: expected an integer"},
      {R"({"action":"Flow.Wait","duration_ms":1e3})",
       "$.actions[0].duration_ms: expected an integer"},
      {R"({"action":"Flow.Wait","duration_ms":"10"})",
       "$.actions[0].duration_ms: expected an integer"},
      {R"({"action":"Flow.Wait","duration_ms":18446744073709551615})",
       "$.actions[0].duration_ms: expected an integer"},
      {R"({"action":"Flow.Wait","duration_ms":1,"timeout_ms":1})", ""},
      {R"({"action":"Flow.Wait","duration_ms":1,"timeout_ms":86400000})", ""},
      {R"({"action":"Flow.Wait","duration_ms":1,"timeout_ms":0})",
       "$.actions[0].timeout_ms: expected an integer from 1 to 86400000"},
      {R"({"action":"Flow.Wait","duration_ms":1,"timeout_ms":86400001})",
       "$.actions[0].timeout_ms: expected an integer"},
      {R"({"action":"Flow.Wait","duration_ms":1,"timeout_ms":true})",
       "$.actions[0].timeout_ms: expected an integer"},
      {R"({"action":"Flow.Loop","times":0,"body":[]})", ""},
      {R"({"action":"Flow.Loop","times":1000000,"body":[]})", ""},
      {R"({"action":"Flow.Loop","times":"1000000","body":[]})", ""},
      {R"({"action":"Flow.Loop","times":1000001,"body":[]})",
       "$.actions[0].times: expected an integer from 0 to 1000000"},
      {R"({"action":"Flow.Loop","times":-1,"body":[]})", "$.actions[0].times: expected an integer"},
      {R"({"action":"Flow.Loop","times":2.0,"body":[]})",
       "$.actions[0].times: expected an integer"},
      {R"({"action":"Flow.Loop","times":"1000001","body":[]})",
       "$.actions[0].times: loop count \"1000001\" is not a whole number"},
      {R"({"action":"Flow.Loop","times":"three","body":[]})",
       "$.actions[0].times: loop count \"three\""},
      {R"({"action":"Flow.Loop","times":"","body":[]})", "$.actions[0].times: loop count \"\""},
      {R"({"action":"Flow.Loop","times":null,"body":[]})",
       "$.actions[0].times: expected an integer from 0 to 1000000 or an expression"},
      {R"({"action":"Flow.Loop","times":"%N","body":[]})",
       "$.actions[0].times: unterminated %...%"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.action);
    const std::string text = Flow(absl::StrCat("[", c.action, "]"));
    if (c.prefix.empty()) {
      ExpectValid(text);
    } else {
      ExpectInvalid(text, c.prefix);
    }
  }
}

TEST(FlowDefinitionTest, FlowNameLengthCountsCharactersNotBytes) {
  std::string name_128;
  for (int i = 0; i < 128; ++i) name_128 += "\xc3\xa9";  // é, two bytes
  EXPECT_EQ(ExpectValid(absl::StrCat(R"({"name":")", name_128, R"(","actions":[]})")).name,
            name_128);
  ExpectInvalid(absl::StrCat(R"({"name":")", name_128, R"(e","actions":[]})"),
                "$.name: longer than 128 characters");
}

TEST(FlowDefinitionTest, UndefinedVariableIsReportedAtTheExpression) {
  const struct {
    std::string actions;
    std::string prefix;
  } cases[] = {
      {R"([{"action":"Flow.If","condition":{"left":"a","operator":"is_empty"},
            "then":[{"action":"Folder.Create","path":"/x/%Foo%"}]}])",
       "$.actions[0].then[0].path: unknown variable %Foo%"},
      {R"([{"action":"Variables.SetVariable","variable":"A","value":"%src%"}])",
       "$.actions[0].value: unknown variable %src%"},  // names are case-sensitive
      {R"([{"action":"System.RunApplication","path":"/x","arguments":["a","%Nope%"]}])",
       "$.actions[0].arguments[1]: unknown variable %Nope%"},
      {R"([{"action":"System.RunApplication","path":"/x","working_directory":"%Nope%"}])",
       "$.actions[0].working_directory: unknown variable %Nope%"},
      {R"([{"action":"Flow.If","condition":{"left":"a","operator":"equals","right":"%R%"},"then":[]}])",
       "$.actions[0].condition.right: unknown variable %R%"},
      {R"([{"action":"Flow.If","condition":{"left":"%L%","operator":"is_empty"},"then":[]}])",
       "$.actions[0].condition.left: unknown variable %L%"},
      {R"([{"action":"Flow.Loop","times":"%N%","body":[]}])",
       "$.actions[0].times: unknown variable %N%"},
      {R"([{"action":"Flow.Fail","message":"%M%"}])", "$.actions[0].message: unknown variable %M%"},
      {R"([{"action":"File.WriteText","path":"/x","text":"%T%"}])",
       "$.actions[0].text: unknown variable %T%"},
      {R"([{"action":"File.ReadText","path":"%P%","variable":"P"}])",
       "$.actions[0].path: variable %P% is used before it is assigned (first by $.actions[0])"},
      {R"([{"action":"Variables.SetVariable","variable":"A","value":"bad %"}])",
       "$.actions[0].value: unterminated %...% at offset 4"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.actions);
    ExpectInvalid(Flow(c.actions, R"([{"name":"Src","type":"text","default":"/"}])"), c.prefix);
  }
}

TEST(FlowDefinitionTest, VariableUsedBeforeItsAssignmentIsRefused) {
  const struct {
    std::string actions;
    std::string prefix;
  } cases[] = {
      {R"([{"action":"Folder.Create","path":"%Dir%"},
           {"action":"Variables.SetVariable","variable":"Dir","value":"/d"}])",
       "$.actions[0].path: variable %Dir% is used before it is assigned (first by $.actions[1])"},
      {R"([{"action":"Variables.SetVariable","variable":"X","value":"%X%!"}])",
       "$.actions[0].value: variable %X% is used before it is assigned"},
      {R"([{"action":"System.RunApplication","path":"/x","arguments":["%Out%"],
            "stdout_variable":"Out"}])",
       "$.actions[0].arguments[0]: variable %Out% is used before it is assigned"},
      {R"([{"action":"Flow.Loop","times":"%I%","index_variable":"I","body":[]}])",
       "$.actions[0].times: variable %I% is used before it is assigned"},
      {R"([{"action":"Flow.Loop","times":2,"body":[
             {"action":"Folder.Create","path":"%Later%"},
             {"action":"Variables.SetVariable","variable":"Later","value":"x"}]}])",
       "$.actions[0].body[0].path: variable %Later% is used before it is assigned (first by "
       "$.actions[0].body[1])"},
      {R"([{"action":"Flow.If","condition":{"left":"%C%","operator":"is_empty"},
            "then":[{"action":"Variables.SetVariable","variable":"C","value":"x"}]}])",
       "$.actions[0].condition.left: variable %C% is used before it is assigned"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.actions);
    ExpectInvalid(Flow(c.actions), c.prefix);
  }
}

TEST(FlowDefinitionTest, AssignmentsAreVisibleLaterInDocumentOrder) {
  // The loop index inside and after its body; a then-branch assignment in the else-branch and
  // after the If; RunApplication's captures in later actions; inputs everywhere.
  ExpectValid(Flow(R"([
      {"action":"Flow.Loop","times":"%Count%","index_variable":"I","body":[
        {"action":"File.WriteText","path":"/x/%I%","text":"%Src%"}]},
      {"action":"Variables.SetVariable","variable":"Last","value":"%I%"},
      {"action":"Flow.If","condition":{"left":"%Last%","operator":"equals","right":"3"},
       "then":[{"action":"Variables.SetVariable","variable":"T","value":"t"}],
       "else":[{"action":"Variables.SetVariable","variable":"E","value":"%T%"}]},
      {"action":"System.RunApplication","path":"/bin/ls","stdout_variable":"Out",
       "exit_code_variable":"Code"},
      {"action":"Flow.Fail","message":"%T% %E% %Out% %Code% %%"}])",
                   R"([{"name":"Src","type":"text"},{"name":"Count","type":"number"}])",
                   R"([{"name":"Out"},{"name":"I"},{"name":"Src"}])"));
}

TEST(FlowDefinitionTest, OutputsMustNameAnInputOrAnAssignedVariable) {
  const std::string inputs = R"([{"name":"Src","type":"text"}])";
  const std::string actions = R"([{"action":"Flow.Loop","times":1,"index_variable":"I","body":[
      {"action":"File.ReadText","path":"/f","variable":"Text"}]}])";
  for (absl::string_view good : {"Src", "I", "Text"}) {
    SCOPED_TRACE(good);
    ExpectValid(Flow(actions, inputs, absl::StrCat(R"([{"name":")", good, R"("}])")));
  }
  ExpectInvalid(Flow(actions, inputs, R"([{"name":"Src"},{"name":"Result"}])"),
                "$.outputs[1].name: output \"Result\" is neither an input nor assigned");
  ExpectInvalid(Flow(actions, inputs, R"([{"name":"Src"},{"name":"Src"}])"),
                "$.outputs[1].name: duplicate output name \"Src\"");
}

TEST(FlowDefinitionTest, DuplicateInputNamesAreRefused) {
  ExpectInvalid(Flow("[]", R"([{"name":"A","type":"text"},{"name":"B","type":"number"},
                               {"name":"A","type":"boolean"}])"),
                "$.inputs[2].name: duplicate input name \"A\"");
  // Case matters, so these are two inputs.
  EXPECT_EQ(ExpectValid(Flow("[]", R"([{"name":"A","type":"text"},{"name":"a","type":"text"}])"))
                .inputs.size(),
            2u);
}

TEST(FlowDefinitionTest, DefaultMustHaveTheInputsType) {
  const struct {
    std::string type;
    std::string default_json;
    bool ok;
  } cases[] = {
      {"text", R"("x")", true},        {"text", "5", false},       {"text", "true", false},
      {"text", "null", false},         {"number", "5", true},      {"number", "-2.5", true},
      {"number", R"("5")", false},     {"number", "false", false}, {"boolean", "true", true},
      {"boolean", R"("true")", false}, {"boolean", "1", false},    {"boolean", "[]", false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.type + " " + c.default_json);
    const std::string text = Flow("[]", absl::StrCat(R"([{"name":"In","type":")", c.type,
                                                     R"(","default":)", c.default_json, "}]"));
    if (c.ok) {
      ExpectValid(text);
    } else {
      ExpectInvalid(text, absl::StrCat("$.inputs[0].default: a ", c.type, " input's default must"));
    }
  }
}

// Flow.If and Flow.Loop alternately, `levels` deep, with a Flow.Wait innermost.
std::string NestedBlocks(int levels) {
  std::string inner = R"({"action":"Flow.Wait","duration_ms":0})";
  for (int i = levels; i > 0; --i) {
    inner =
        i % 2 == 1
            ? absl::StrCat(R"({"action":"Flow.If","condition":{"left":"a","operator":"is_empty"},)",
                           R"("then":[)", inner, "]}")
            : absl::StrCat(R"({"action":"Flow.Loop","times":1,"body":[)", inner, "]}");
  }
  return Flow(absl::StrCat("[", inner, "]"));
}

TEST(FlowDefinitionTest, BlocksNestSixteenDeepButNotSeventeen) {
  EXPECT_EQ(ExpectValid(NestedBlocks(kMaxBlockNesting)).action_count, 17u);
  std::string path = "$.actions[0]";
  for (int i = 1; i < kMaxBlockNesting + 1; ++i) path += i % 2 == 1 ? ".then[0]" : ".body[0]";
  ExpectInvalid(NestedBlocks(kMaxBlockNesting + 1),
                absl::StrCat(path, ": Flow.If nested inside 16 Flow.If/Flow.Loop blocks"));
}

TEST(FlowDefinitionTest, TenMiBOfTextIsRefusedBeforeParsing) {
  // Valid JSON with an unknown key: had it been parsed, the error would name $.pad instead.
  const std::string text =
      absl::StrCat(R"({"name":"x","actions":[],"pad":")", std::string(10 << 20, 'a'), "\"}");
  ExpectInvalid(text,
                absl::StrCat("$: definition is ", text.size(), " bytes; the limit is 1048576"));
  const std::string just_over = absl::StrCat(R"({"name":"x","actions":[],"pad":")",
                                             std::string(kMaxDefinitionBytes, 'a'), "\"}");
  ExpectInvalid(just_over, "$: definition is");
  // Exactly at the limit the text is parsed (and refused for its content).
  std::string at_limit = R"({"name":"x","actions":[]})";
  at_limit += std::string(kMaxDefinitionBytes - at_limit.size(), ' ');
  ASSERT_EQ(at_limit.size(), kMaxDefinitionBytes);
  ExpectValid(at_limit);
}

TEST(FlowDefinitionTest, MalformedJsonReportsLineAndColumn) {
  const struct {
    std::string text;
    std::string message;
  } cases[] = {
      {"", "line 1, column 1: incomplete JSON"},
      {"{\"name\": \"x\",\n \"actions\": [\n  {\"action\" \"Flow.Wait\"}]}",
       "line 3, column 13: syntax error"},
      {R"({"name":"x","actions":[]} x)", "line 1, column 27: extra data"},
      {"{\"name\":\"x\",\n\"actions\":[1,]}", "line 2, column 14: syntax error"},
      {"{\"name\":\"x\",\n\"actions\":[", "line 2, column 12: incomplete JSON"},
      {"{\"name\":\"\xff\",\"actions\":[]}", "line 1, column 10: syntax error"},
      {"{'name':'x'}", "line 1, column 2: syntax error"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    absl::StatusOr<FlowDefinition> flow = ParseFlowDefinition(c.text);
    ASSERT_FALSE(flow.ok());
    EXPECT_EQ(flow.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(flow.status().message(), c.message);
  }
}

TEST(FlowDefinitionTest, JsonNestingIsLimitedToSixtyFourLevels) {
  auto nested = [](int arrays) {
    return absl::StrCat(R"({"name":"x","actions":[],"inputs":[)", std::string(arrays - 1, '['),
                        std::string(arrays - 1, ']'), "]}");
  };
  // The object plus 63 arrays: deep enough for Boost.JSON, refused by the schema instead.
  ExpectInvalid(nested(63), "$.inputs[0]: expected an input object, got an array");
  ExpectInvalid(nested(64), "line 1, column 98: JSON nested deeper than 64 arrays and objects");
}

std::string Waits(size_t n) {
  std::vector<std::string> waits(n, R"({"action":"Flow.Wait","duration_ms":0})");
  return absl::StrJoin(waits, ",");
}

TEST(FlowDefinitionTest, AtMostTenThousandActionsCountingNestedOnes) {
  EXPECT_EQ(ExpectValid(Flow(absl::StrCat("[", Waits(kMaxActions), "]"))).action_count,
            kMaxActions);
  ExpectInvalid(Flow(absl::StrCat("[", Waits(kMaxActions + 1), "]")),
                "$.actions[10000]: more than 10000 actions in the flow");
  // The If is the 10,000th action; its first nested action is one too many.
  ExpectInvalid(
      Flow(absl::StrCat("[", Waits(kMaxActions - 1),
                        R"(,{"action":"Flow.If","condition":{"left":"a","operator":"is_empty"},)",
                        R"("then":[{"action":"Flow.Wait","duration_ms":0}]}])")),
      "$.actions[9999].then[0]: more than 10000 actions");
}

TEST(FlowDefinitionTest, StringsAreLimitedTo64KiB) {
  auto set = [](size_t n) {
    return Flow(absl::StrCat(R"([{"action":"Variables.SetVariable","variable":"V","value":")",
                             std::string(n, 'x'), "\"}]"));
  };
  ExpectValid(set(kMaxStringBytes));
  ExpectInvalid(set(kMaxStringBytes + 1),
                "$.actions[0].value: string of 65537 bytes is longer than the limit of 65536");
  ExpectInvalid(Flow("[]", absl::StrCat(R"([{"name":"A","type":"text","description":")",
                                        std::string(kMaxStringBytes + 1, 'd'), "\"}]")),
                "$.inputs[0].description: string of 65537 bytes");
}

TEST(FlowDefinitionTest, OddKeysAreQuotedInPathsAndCutShort) {
  const std::string long_key(300, 'k');
  absl::StatusOr<FlowDefinition> flow =
      ParseFlowDefinition(absl::StrCat(R"({"name":"x","actions":[],")", long_key, R"(":1})"));
  ASSERT_FALSE(flow.ok());
  EXPECT_THAT(std::string(flow.status().message()), StartsWith(R"($["kkkk)"));
  EXPECT_LT(flow.status().message().size(), 250u);
  ExpectInvalid(R"({"name":"x","actions":[],"a\"b":1})", R"($["a\"b"]: unknown key)");
}

TEST(FlowDefinitionTest, RepeatedKeyKeepsItsLastValue) {
  // RFC 8259 leaves repeated keys open; Boost.JSON keeps the last, and so do the cloud and the
  // runner, which parse the same text with this same code (docs/FLOWS.md).
  EXPECT_EQ(ExpectValid(R"({"name":"first","name":"last","actions":[]})").name, "last");
}

TEST(FlowDefinitionTest, AssignedVariablesListsOnlyTheActionsOwn) {
  const FlowDefinition flow = ExpectValid(kEveryKind);
  ASSERT_EQ(flow.actions.size(), 9u);
  EXPECT_THAT(AssignedVariables(flow.actions[0]), ElementsAre("Result"));
  EXPECT_THAT(AssignedVariables(flow.actions[1]), ElementsAre("Out", "Code"));
  EXPECT_THAT(AssignedVariables(flow.actions[2]), ElementsAre("Text"));
  EXPECT_TRUE(AssignedVariables(flow.actions[3]).empty());
  EXPECT_TRUE(AssignedVariables(flow.actions[5]).empty());  // nested ones are not the If's
  EXPECT_THAT(AssignedVariables(flow.actions[6]), ElementsAre("I"));
}

// ResolveRunInputs.

FlowDefinition InputsFlow() {
  return ExpectValid(Flow("[]", R"([
      {"name":"Src","type":"text","default":"/tmp"},
      {"name":"Count","type":"number"},
      {"name":"Verbose","type":"boolean","default":false},
      {"name":"Ratio","type":"number","default":2.5}])"));
}

TEST(ResolveRunInputsTest, FillsDefaultsAndKeepsGivenValues) {
  const FlowDefinition flow = InputsFlow();
  absl::StatusOr<std::map<std::string, std::string>> resolved =
      ResolveRunInputs(flow, {{"Count", "3"}});
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(*resolved,
            (std::map<std::string, std::string>{
                {"Src", "/tmp"}, {"Count", "3"}, {"Verbose", "false"}, {"Ratio", "2.5"}}));
  resolved = ResolveRunInputs(
      flow, {{"Src", ""}, {"Count", "-1.5e3"}, {"Verbose", "true"}, {"Ratio", "007"}});
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(*resolved,
            (std::map<std::string, std::string>{
                {"Src", ""}, {"Count", "-1.5e3"}, {"Verbose", "true"}, {"Ratio", "007"}}));
}

TEST(ResolveRunInputsTest, RefusesUndeclaredMissingAndMistypedInputs) {
  const FlowDefinition flow = InputsFlow();
  const struct {
    std::map<std::string, std::string> given;
    std::string message_prefix;
  } cases[] = {
      {{{"Count", "1"}, {"Nope", "x"}}, "input \"Nope\": not declared by the flow"},
      {{{"count", "1"}}, "input \"count\": not declared by the flow"},
      {{}, "input \"Count\": required"},
      {{{"Src", "/x"}}, "input \"Count\": required"},
      {{{"Count", "abc"}}, "input \"Count\": \"abc\" is not a number"},
      {{{"Count", "1"}, {"Verbose", "yes"}}, "input \"Verbose\": \"yes\" is not a boolean"},
      {{{"Count", "1"}, {"Verbose", "True"}}, "input \"Verbose\": \"True\" is not a boolean"},
      {{{"Count", "1"}, {"Verbose", ""}}, "input \"Verbose\": \"\" is not a boolean"},
      {{{"Count", "1"}, {"Ratio", "1,5"}}, "input \"Ratio\": \"1,5\" is not a number"},
      {{{"Count", "1"}, {"Src", std::string(kMaxStringBytes + 1, 's')}},
       "input \"Src\": value of 65537 bytes"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.message_prefix);
    absl::StatusOr<std::map<std::string, std::string>> resolved = ResolveRunInputs(flow, c.given);
    ASSERT_FALSE(resolved.ok());
    EXPECT_EQ(resolved.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(resolved.status().message()), StartsWith(c.message_prefix));
  }
}

TEST(ParseNumberTest, AcceptsDecimalIntegersAndFloatsOnly) {
  const struct {
    std::string text;
    std::optional<double> value;
  } cases[] = {
      {"0", 0},
      {"7", 7},
      {"-7", -7},
      {"007", 7},
      {"1.5", 1.5},
      {"-0.25", -0.25},
      {"1e3", 1000},
      {"2E-2", 0.02},
      {"1e+2", 100},
      {"", std::nullopt},
      {"-", std::nullopt},
      {"+1", std::nullopt},
      {" 1", std::nullopt},
      {"1 ", std::nullopt},
      {".5", std::nullopt},
      {"5.", std::nullopt},
      {"1e", std::nullopt},
      {"1e+", std::nullopt},
      {"0x10", std::nullopt},
      {"inf", std::nullopt},
      {"nan", std::nullopt},
      {"1e999", std::nullopt},
      {"--1", std::nullopt},
      {"1.2.3", std::nullopt},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    EXPECT_EQ(ParseNumber(c.text), c.value);
  }
}

TEST(ParseLoopCountTest, AcceptsWholeNumbersUpToTheLimit) {
  EXPECT_EQ(ParseLoopCount("0").value(), 0);
  EXPECT_EQ(ParseLoopCount("0005").value(), 5);
  EXPECT_EQ(ParseLoopCount("1000000").value(), 1000000);
  for (absl::string_view bad :
       {"", "1000001", "-1", "+1", "1.0", "1e3", " 2", "99999999999999999999999"}) {
    SCOPED_TRACE(bad);
    absl::StatusOr<int64_t> count = ParseLoopCount(bad);
    ASSERT_FALSE(count.ok());
    EXPECT_EQ(count.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(count.status().message()), HasSubstr("is not a whole number"));
  }
}

TEST(ConditionTest, OperatorsCompareNumbersNumericallyAndTextByBytes) {
  using Op = ConditionOperator;
  const struct {
    Op op;
    std::string left;
    std::string right;
    bool result;
  } cases[] = {
      {Op::kEquals, "abc", "abc", true},     {Op::kEquals, "abc", "ABC", false},
      {Op::kEquals, "1.0", "1", true},       {Op::kEquals, "1.0", "1x", false},
      {Op::kNotEquals, "a", "b", true},      {Op::kNotEquals, "2", "2.00", false},
      {Op::kContains, "backup", "ck", true}, {Op::kContains, "backup", "CK", false},
      {Op::kContains, "x", "", true},        {Op::kNotContains, "backup", "z", true},
      {Op::kLessThan, "9", "10", true},      {Op::kLessThan, "9a", "10a", false},
      {Op::kLessThan, "-1", "0", true},      {Op::kGreaterThan, "1e3", "999", true},
      {Op::kGreaterThan, "b", "a", true},    {Op::kGreaterThan, "a", "a", false},
      {Op::kIsEmpty, "", "ignored", true},   {Op::kIsEmpty, " ", "", false},
      {Op::kIsNotEmpty, "x", "", true},      {Op::kIsNotEmpty, "", "x", false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(absl::StrCat(c.left, " ", ConditionOperatorName(c.op), " ", c.right));
    EXPECT_EQ(ApplyOperator(c.op, c.left, c.right), c.result);
  }
}

TEST(ConditionTest, EvaluateConditionUsesTheParsedOperands) {
  const FlowDefinition flow = ExpectValid(kEveryKind);
  ASSERT_EQ(flow.actions.size(), 9u);
  const Condition& condition = flow.actions[5].Params<IfParams>().condition;  // %Code% != 0
  auto with_code = [](std::string code) {
    return [code](absl::string_view name) { return name == "Code" ? code : std::string(); };
  };
  EXPECT_TRUE(EvaluateCondition(condition, with_code("1")));
  EXPECT_FALSE(EvaluateCondition(condition, with_code("0")));
  EXPECT_FALSE(EvaluateCondition(condition, with_code("0.0")));
}

}  // namespace
}  // namespace tether::flow
