#include "agent/runner/flow_executor.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/strings/substitute.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace tether::agent {
namespace {

using proto::JobEvent;

std::string TmpDir() { return std::getenv("TEST_TMPDIR"); }

// A fresh directory under TEST_TMPDIR for one test.
std::string FreshDir(const std::string& name) {
  std::string dir = absl::StrCat(TmpDir(), "/", name);
  mkdir(dir.c_str(), 0700);
  return dir;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

mode_t ModeOf(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

// True once `pid` no longer exists or is a zombie waiting for its (new) parent, waiting up to
// 10 s for the SIGKILL to be delivered.
bool ProcessGone(pid_t pid) {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (true) {
    if (kill(pid, 0) != 0 && errno == ESRCH) return true;
    const std::string stat = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
    const size_t paren = stat.rfind(')');
    if (paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z') {
      return true;
    }
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
}

pid_t ReadPid(const std::string& path) {
  pid_t pid = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadFile(path)), &pid)) return 0;
  return pid;
}

// Collects events from the executor's thread; tests wait on it with a deadline.
class EventLog {
 public:
  std::function<void(JobEvent)> Sink() {
    return [this](JobEvent event) {
      std::lock_guard<std::mutex> lock(mu_);
      events_.push_back(std::move(event));
      changed_.notify_all();
    };
  }

  std::vector<JobEvent> events() const {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }

  // Waits up to 30 s for an event matching `match`.
  bool WaitFor(const std::function<bool(const JobEvent&)>& match) {
    std::unique_lock<std::mutex> lock(mu_);
    return changed_.wait_for(lock, std::chrono::seconds(30), [&] {
      for (const JobEvent& e : events_) {
        if (match(e)) return true;
      }
      return false;
    });
  }

  // "+0 Flow.Loop $.actions[0]" for ActionStarted, "-0 ok" / "-0 fail: message" for ActionFinished.
  std::vector<std::string> Actions() const {
    std::vector<std::string> out;
    for (const JobEvent& e : events()) {
      if (e.has_action_started()) {
        out.push_back(absl::StrCat("+", e.action_started().index(), " ", e.action_started().name(),
                                   " ", e.action_started().path()));
      } else if (e.has_action_finished()) {
        out.push_back(absl::StrCat("-", e.action_finished().index(),
                                   e.action_finished().ok() ? " ok" : " fail: ",
                                   e.action_finished().ok() ? "" : e.action_finished().message()));
      }
    }
    return out;
  }

  // Indices of the started actions, in order.
  std::vector<uint32_t> Started() const {
    std::vector<uint32_t> out;
    for (const JobEvent& e : events()) {
      if (e.has_action_started()) out.push_back(e.action_started().index());
    }
    return out;
  }

  std::vector<std::string> Lines(JobEvent::LogLine::Stream stream) const {
    std::vector<std::string> out;
    for (const JobEvent& e : events()) {
      if (e.has_log_line() && e.log_line().stream() == stream) out.push_back(e.log_line().text());
    }
    return out;
  }

  const JobEvent* Finished(uint32_t index) const {
    for (const JobEvent& e : events_) {
      if (e.has_action_finished() && e.action_finished().index() == index) return &e;
    }
    return nullptr;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::vector<JobEvent> events_;
};

bool IsLine(const JobEvent& e, absl::string_view text) {
  return e.has_log_line() && e.log_line().text() == text;
}

RunnerResult RunFlow(absl::string_view json, EventLog& log,
                     std::map<std::string, std::string> inputs = {}, ExecutorOptions options = {},
                     absl::Time deadline = absl::InfiniteFuture()) {
  options.on_event = log.Sink();
  FlowExecutor executor(std::move(options));
  return executor.RunJson(json, std::move(inputs), deadline);
}

// ---------------------------------------------------------------------------------------------
// Variables, outputs, events

TEST(FlowExecutorTest, SetVariableEvaluatesAgainstInputsAndFillsOutputs) {
  EventLog log;
  const RunnerResult result = RunFlow(R"({
    "name": "t",
    "inputs": [{"name": "Who", "type": "text"}, {"name": "N", "type": "number", "default": 2}],
    "outputs": [{"name": "Greeting"}, {"name": "N"}],
    "actions": [
      {"action": "Variables.SetVariable", "variable": "Greeting", "value": "hello %Who% x%N% 100%%"}
    ]})",
                                      log, {{"Who", "Ada"}});
  ASSERT_EQ(result.state(), proto::JOB_STATE_SUCCEEDED) << result.DebugString();
  EXPECT_FALSE(result.has_error());
  EXPECT_EQ(result.outputs().at("Greeting"), "hello Ada x2 100%");
  EXPECT_EQ(result.outputs().at("N"), "2");
  EXPECT_GT(result.started_at_unix_ms(), 0);
  EXPECT_GE(result.finished_at_unix_ms(), result.started_at_unix_ms());
  EXPECT_EQ(log.Actions(),
            (std::vector<std::string>{"+0 Variables.SetVariable $.actions[0]", "-0 ok"}));
  // Output events come at the end, one per output with a value.
  std::map<std::string, std::string> outputs;
  for (const JobEvent& e : log.events()) {
    EXPECT_GT(e.timestamp_unix_ms(), 0);
    EXPECT_TRUE(e.job_id().empty());
    EXPECT_EQ(e.seq(), 0u);
    if (e.has_output()) outputs[e.output().name()] = e.output().value();
  }
  EXPECT_EQ(outputs,
            (std::map<std::string, std::string>{{"Greeting", "hello Ada x2 100%"}, {"N", "2"}}));
  EXPECT_TRUE(log.events().back().has_output());
}

TEST(FlowExecutorTest, AVariableWithoutValueIsEmptyAndAnUnsetOutputIsLeftOut) {
  EventLog log;
  const RunnerResult result = RunFlow(R"({
    "name": "t",
    "outputs": [{"name": "X"}, {"name": "Y"}],
    "actions": [
      {"action": "Flow.If", "condition": {"left": "a", "operator": "equals", "right": "b"},
       "then": [{"action": "Variables.SetVariable", "variable": "X", "value": "set"}]},
      {"action": "Variables.SetVariable", "variable": "Y", "value": "[%X%]"}
    ]})",
                                      log);
  ASSERT_EQ(result.state(), proto::JOB_STATE_SUCCEEDED) << result.DebugString();
  EXPECT_EQ(result.outputs().at("Y"), "[]");
  EXPECT_EQ(result.outputs().count("X"), 0u);
}

TEST(FlowExecutorTest, NestedIfInLoopAndLoopInIfAreNumberedDepthFirst) {
  EventLog log;
  const RunnerResult result = RunFlow(R"({
    "name": "t",
    "outputs": [{"name": "Trace"}],
    "actions": [
      {"action": "Variables.SetVariable", "variable": "Trace", "value": ""},
      {"action": "Flow.Loop", "times": 2, "index_variable": "I", "body": [
        {"action": "Flow.If", "condition": {"left": "%I%", "operator": "equals", "right": "1"},
         "then": [{"action": "Variables.SetVariable", "variable": "Trace", "value": "%Trace%t%I%"}],
         "else": [{"action": "Variables.SetVariable", "variable": "Trace", "value": "%Trace%e%I%"}]}
      ]},
      {"action": "Flow.If", "condition": {"left": "%Trace%", "operator": "is_not_empty"},
       "then": [
         {"action": "Flow.Loop", "times": "%I%", "index_variable": "J", "body": [
           {"action": "Variables.SetVariable", "variable": "Trace", "value": "%Trace%j%J%"}]}
       ]}
    ]})",
                                      log);
  ASSERT_EQ(result.state(), proto::JOB_STATE_SUCCEEDED) << result.DebugString();
  EXPECT_EQ(result.outputs().at("Trace"), "e0t1j0");
  EXPECT_EQ(
      log.Actions(),
      (std::vector<std::string>{
          "+0 Variables.SetVariable $.actions[0]", "-0 ok", "+1 Flow.Loop $.actions[1]",
          "+2 Flow.If $.actions[1].body[0]",
          "+4 Variables.SetVariable $.actions[1].body[0].else[0]", "-4 ok", "-2 ok",
          "+2 Flow.If $.actions[1].body[0]",
          "+3 Variables.SetVariable $.actions[1].body[0].then[0]", "-3 ok", "-2 ok", "-1 ok",
          "+5 Flow.If $.actions[2]", "+6 Flow.Loop $.actions[2].then[0]",
          "+7 Variables.SetVariable $.actions[2].then[0].body[0]", "-7 ok", "-6 ok", "-5 ok"}));
  ASSERT_NE(log.Finished(1), nullptr);
  EXPECT_EQ(log.Finished(1)->action_finished().message(), "2 iterations");
}

TEST(FlowExecutorTest, AFailureMidwayStopsTheFlowAndNamesTheAction) {
  const std::string dir = FreshDir("midway");
  EventLog log;
  const RunnerResult result = RunFlow(absl::Substitute(R"({
    "name": "t",
    "outputs": [{"name": "Before"}, {"name": "After"}],
    "actions": [
      {"action": "Variables.SetVariable", "variable": "Before", "value": "b"},
      {"action": "File.WriteText", "path": "$0/first.txt", "text": "1"},
      {"action": "Flow.Loop", "times": 3, "index_variable": "I", "body": [
        {"action": "Flow.If", "condition": {"left": "%I%", "operator": "equals", "right": "1"},
         "then": [{"action": "Flow.Fail", "message": "stopped at %I% [%Before%]"}]}
      ]},
      {"action": "File.WriteText", "path": "$0/later.txt", "text": "2"},
      {"action": "Variables.SetVariable", "variable": "After", "value": "a"}
    ]})",
                                                       dir),
                                      log);
  ASSERT_EQ(result.state(), proto::JOB_STATE_FAILED) << result.DebugString();
  EXPECT_EQ(result.error().message(), "stopped at 1 [b]");
  ASSERT_TRUE(result.error().has_action_index());
  EXPECT_EQ(result.error().action_index(), 4u);
  EXPECT_EQ(result.error().action_name(), "Flow.Fail");
  EXPECT_EQ(result.error().action_path(), "$.actions[2].body[0].then[0]");
  EXPECT_TRUE(Exists(dir + "/first.txt"));
  EXPECT_FALSE(Exists(dir + "/later.txt"));
  // Outputs set so far are reported; the enclosing blocks finish as failed, later actions never
  // start.
  EXPECT_EQ(result.outputs().at("Before"), "b");
  EXPECT_EQ(result.outputs().count("After"), 0u);
  EXPECT_EQ(log.Started(), (std::vector<uint32_t>{0, 1, 2, 3, 3, 4}));
  const std::vector<std::string> actions = log.Actions();
  ASSERT_GE(actions.size(), 3u);
  EXPECT_EQ(actions[actions.size() - 3], "-4 fail: stopped at 1 [b]");
  EXPECT_EQ(
      actions[actions.size() - 2],
      "-3 fail: action 4 (Flow.Fail at $.actions[2].body[0].then[0]) failed: stopped at 1 [b]");
  EXPECT_TRUE(absl::StartsWith(actions.back(), "-2 fail: action 4 (Flow.Fail"));
}

TEST(FlowExecutorTest, BadInputsFailWithoutRunningAnything) {
  EventLog log;
  const RunnerResult result = RunFlow(R"({
    "name": "t", "inputs": [{"name": "N", "type": "number"}],
    "actions": [{"action": "Variables.SetVariable", "variable": "X", "value": "1"}]})",
                                      log, {{"N", "five"}});
  EXPECT_EQ(result.state(), proto::JOB_STATE_FAILED);
  EXPECT_TRUE(absl::StartsWith(result.error().message(), "invalid inputs: input \"N\""))
      << result.error().message();
  EXPECT_FALSE(result.error().has_action_index());
  EXPECT_TRUE(log.events().empty());
}

TEST(FlowExecutorTest, BadDefinitionFailsWithoutRunningAnything) {
  EventLog log;
  const RunnerResult result = RunFlow(R"({"name": "t", "actions": [
    {"action": "Variables.SetVariable", "variable": "X", "value": "1"},
    {"action": "File.Delete", "path": "/"}]})",
                                      log);
  EXPECT_EQ(result.state(), proto::JOB_STATE_FAILED);
  EXPECT_EQ(result.error().message(),
            "invalid flow definition: $.actions[1]: unknown action \"File.Delete\"");
  EXPECT_FALSE(result.error().has_action_index());
  EXPECT_TRUE(log.events().empty());
}

TEST(FlowExecutorTest, LoopCountThatIsNotANumberAtRunTimeFailsTheLoop) {
  EventLog log;
  const RunnerResult result = RunFlow(R"({
    "name": "t", "inputs": [{"name": "T", "type": "text"}],
    "actions": [{"action": "Flow.Loop", "times": "%T%", "body": [
      {"action": "Variables.SetVariable", "variable": "X", "value": "1"}]}]})",
                                      log, {{"T", "-1"}});
  ASSERT_EQ(result.state(), proto::JOB_STATE_FAILED);
  EXPECT_EQ(result.error().action_index(), 0u);
  EXPECT_NE(result.error().message().find("is not a whole number"), std::string::npos)
      << result.error().message();
  EXPECT_EQ(log.Started(), (std::vector<uint32_t>{0}));
}

TEST(FlowExecutorTest, SetVariableLargerThanTheLimitFails) {
  EventLog log;
  ExecutorOptions options;
  options.max_capture_bytes = 10;
  const RunnerResult result = RunFlow(R"({"name": "t", "actions": [
    {"action": "Variables.SetVariable", "variable": "X", "value": "0123456789"},
    {"action": "Variables.SetVariable", "variable": "X", "value": "%X%%X%"}]})",
                                      log, {}, options);
  ASSERT_EQ(result.state(), proto::JOB_STATE_FAILED);
  EXPECT_EQ(result.error().action_index(), 1u);
  EXPECT_EQ(result.error().message(), "value of X is larger than 10 bytes");
}

// ---------------------------------------------------------------------------------------------
// Files and folders

TEST(FlowExecutorTest, WriteTextCreatesWith0600AppendsAndReadTextReadsItBack) {
  const std::string dir = FreshDir("files");
  EventLog log;
  const RunnerResult result = RunFlow(absl::Substitute(R"({
    "name": "t", "outputs": [{"name": "Text"}],
    "actions": [
      {"action": "File.WriteText", "path": "$0/f.txt", "text": "old contents\n"},
      {"action": "File.WriteText", "path": "$0/f.txt", "text": "one\n"},
      {"action": "File.WriteText", "path": "$0/f.txt", "text": "two\n", "append": true},
      {"action": "File.ReadText", "path": "$0/f.txt", "variable": "Text"}
    ]})",
                                                       dir),
                                      log);
  ASSERT_EQ(result.state(), proto::JOB_STATE_SUCCEEDED) << result.DebugString();
  EXPECT_EQ(result.outputs().at("Text"), "one\ntwo\n");
  EXPECT_EQ(ModeOf(dir + "/f.txt"), 0600u);
}

TEST(FlowExecutorTest, FileActionFailuresAreClear) {
  const std::string dir = FreshDir("file_failures");
  std::ofstream(dir + "/big.txt") << std::string(11, 'x');
  std::ofstream(dir + "/small.txt") << std::string(10, 'x');
  struct Case {
    std::string action;
    std::string message;
  } cases[] = {
      {R"({"action": "File.ReadText", "path": "$0/missing.txt", "variable": "V"})",
       "cannot read $0/missing.txt: No such file or directory"},
      {R"({"action": "File.ReadText", "path": "$0/big.txt", "variable": "V"})",
       "$0/big.txt: file larger than 10 bytes"},
      {R"({"action": "File.ReadText", "path": "$0", "variable": "V"})",
       "cannot read $0: not a regular file"},
      {R"({"action": "File.WriteText", "path": "$0/no/such/dir/f.txt", "text": "x"})",
       "cannot write $0/no/such/dir/f.txt: No such file or directory"},
      {R"({"action": "File.WriteText", "path": "$0", "text": "x"})",
       "cannot write $0: Is a directory"},
      {R"({"action": "Folder.Create", "path": "$0/small.txt/sub"})",
       "cannot create folder $0/small.txt/sub: $0/small.txt exists and is not a directory"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.action);
    EventLog log;
    ExecutorOptions options;
    options.max_capture_bytes = 10;
    const RunnerResult result = RunFlow(
        absl::Substitute(R"({"name": "t", "actions": [$1]})", dir, absl::Substitute(c.action, dir)),
        log, {}, options);
    ASSERT_EQ(result.state(), proto::JOB_STATE_FAILED) << result.DebugString();
    EXPECT_EQ(result.error().message(), absl::Substitute(c.message, dir));
    EXPECT_EQ(result.error().action_index(), 0u);
    EXPECT_EQ(log.Actions().back(), absl::StrCat("-0 fail: ", absl::Substitute(c.message, dir)));
  }
}

TEST(FlowExecutorTest, ReadTextOfExactlyTheLimitSucceeds) {
  const std::string dir = FreshDir("read_limit");
  std::ofstream(dir + "/ten.txt") << "0123456789";
  EventLog log;
  ExecutorOptions options;
  options.max_capture_bytes = 10;
  const RunnerResult result =
      RunFlow(absl::Substitute(R"({"name": "t", "outputs": [{"name": "V"}], "actions": [
        {"action": "File.ReadText", "path": "$0/ten.txt", "variable": "V"}]})",
                               dir),
              log, {}, options);
  ASSERT_EQ(result.state(), proto::JOB_STATE_SUCCEEDED) << result.DebugString();
  EXPECT_EQ(result.outputs().at("V"), "0123456789");
}

TEST(FlowExecutorTest, FolderCreateMakesParentsWith0700AndAcceptsAnExistingFolder) {
  const std::string dir = FreshDir("folders");
  EventLog log;
  const RunnerResult result = RunFlow(absl::Substitute(R"({"name": "t", "actions": [
    {"action": "Folder.Create", "path": "$0/a/b//c/"},
    {"action": "Folder.Create", "path": "$0/a/b/c"}]})",
                                                       dir),
                                      log);
  ASSERT_EQ(result.state(), proto::JOB_STATE_SUCCEEDED) << result.DebugString();
  EXPECT_EQ(ModeOf(dir + "/a"), 040700u & 07777);
  EXPECT_EQ(ModeOf(dir + "/a/b/c"), 0700u);
  ASSERT_NE(log.Finished(1), nullptr);
  EXPECT_EQ(log.Finished(1)->action_finished().message(), "already exists");
}

TEST(FlowExecutorTest, RelativePathsResolveAgainstTheWorkingDirectory) {
  const std::string dir = FreshDir("relative");
  std::ofstream(dir + "/tool.sh") << "#!/bin/sh\necho tool in $(pwd)\n";
  chmod((dir + "/tool.sh").c_str(), 0700);
  EventLog log;
  ExecutorOptions options;
  options.working_directory = dir;
  const RunnerResult result = RunFlow(R"({"name": "t",
    "outputs": [{"name": "Out"}, {"name": "Tool"}], "actions": [
    {"action": "Folder.Create", "path": "sub"},
    {"action": "File.WriteText", "path": "sub/f.txt", "text": "rel"},
    {"action": "System.RunApplication", "path": "/bin/pwd", "stdout_variable": "Out"},
    {"action": "System.RunApplication", "path": "tool.sh", "working_directory": "sub",
     "stdout_variable": "Tool"}]})",
                                      log, {}, options);
  ASSERT_EQ(result.state(), proto::JOB_STATE_SUCCEEDED) << result.DebugString();
  EXPECT_EQ(ReadFile(dir + "/sub/f.txt"), "rel");
  EXPECT_EQ(result.outputs().at("Out"), dir + "\n");
  // The program's relative path is resolved against the run's directory, not the action's.
  EXPECT_EQ(result.outputs().at("Tool"), absl::StrCat("tool in ", dir, "/sub\n"));
}

TEST(FlowExecutorTest, AMissingWorkingDirectoryFailsBeforeAnyAction) {
  EventLog log;
  ExecutorOptions options;
  options.working_directory = TmpDir() + "/does-not-exist";
  const RunnerResult result = RunFlow(R"({"name": "t", "actions": [
    {"action": "Variables.SetVariable", "variable": "X", "value": "1"}]})",
                                      log, {}, options);
  EXPECT_EQ(result.state(), proto::JOB_STATE_FAILED);
  EXPECT_EQ(result.error().message(), absl::StrCat("working directory ", options.working_directory,
                                                   ": No such file or directory"));
  EXPECT_TRUE(log.events().empty());
}

// ---------------------------------------------------------------------------------------------
// System.RunApplication

TEST(FlowExecutorTest, RunApplicationCapturesStdoutAndExitCodeAndStreamsLines) {
  EventLog log;
  const RunnerResult result = RunFlow(R"({
    "name": "t", "inputs": [{"name": "Word", "type": "text", "default": "a b"}],
    "outputs": [{"name": "Out"}, {"name": "Code"}],
    "actions": [{"action": "System.RunApplication", "path": "/bin/echo",
                 "arguments": ["hello", "%Word%"], "stdout_variable": "Out",
                 "exit_code_variable": "Code"}]})",
                                      log);
  ASSERT_EQ(result.state(), proto::JOB_STATE_SUCCEEDED) << result.DebugString();
  EXPECT_EQ(result.outputs().at("Out"), "hello a b\n");  // "a b" stayed one argument
  EXPECT_EQ(result.outputs().at("Code"), "0");
  EXPECT_EQ(log.Lines(JobEvent::LogLine::STREAM_STDOUT), (std::vector<std::string>{"hello a b"}));
  EXPECT_EQ(log.Actions(),
            (std::vector<std::string>{"+0 System.RunApplication $.actions[0]", "-0 ok"}));
  EXPECT_EQ(log.Finished(0)->action_finished().message(), "exited with code 0");
}

TEST(FlowExecutorTest, NonZeroExitFailsUnlessToldOtherwiseAndStderrIsStreamed) {
  const std::string script = "echo out; echo err1 >&2; printf 'err2' >&2; exit 3";
  {
    EventLog log;
    const RunnerResult result =
        RunFlow(absl::Substitute(R"({"name": "t", "outputs": [{"name": "Code"}], "actions": [
          {"action": "System.RunApplication", "path": "/bin/sh", "arguments": ["-c", "$0"],
           "exit_code_variable": "Code"},
          {"action": "Variables.SetVariable", "variable": "Later", "value": "x"}]})",
                                 script),
                log);
    ASSERT_EQ(result.state(), proto::JOB_STATE_FAILED) << result.DebugString();
    EXPECT_EQ(result.error().message(), "exited with code 3");
    EXPECT_EQ(result.error().action_index(), 0u);
    EXPECT_EQ(result.error().action_name(), "System.RunApplication");
    EXPECT_EQ(result.outputs().at("Code"), "3");
    EXPECT_EQ(log.Lines(JobEvent::LogLine::STREAM_STDERR),
              (std::vector<std::string>{"err1", "err2"}));
    EXPECT_EQ(log.Lines(JobEvent::LogLine::STREAM_STDOUT), (std::vector<std::string>{"out"}));
    EXPECT_EQ(log.Started(), (std::vector<uint32_t>{0}));
  }
  {
    EventLog log;
    const RunnerResult result =
        RunFlow(absl::Substitute(R"({"name": "t", "outputs": [{"name": "Code"}], "actions": [
          {"action": "System.RunApplication", "path": "/bin/sh", "arguments": ["-c", "$0"],
           "exit_code_variable": "Code", "fail_on_nonzero_exit": false}]})",
                                 script),
                log);
    ASSERT_EQ(result.state(), proto::JOB_STATE_SUCCEEDED) << result.DebugString();
    EXPECT_EQ(result.outputs().at("Code"), "3");
  }
}

TEST(FlowExecutorTest, OutputOverTheCaptureLimitFailsAndKillsTheProgram) {
  const std::string dir = FreshDir("capture");
  EventLog log;
  ExecutorOptions options;
  options.max_capture_bytes = 1000;
  const RunnerResult result =
      RunFlow(absl::Substitute(R"({"name": "t", "outputs": [{"name": "Out"}], "actions": [
        {"action": "System.RunApplication", "path": "/bin/sh", "stdout_variable": "Out",
         "arguments": ["-c", "echo $$$$ > $0/pid; while :; do echo 0123456789; done"]}]})",
                               dir),
              log, {}, options);
  ASSERT_EQ(result.state(), proto::JOB_STATE_FAILED) << result.DebugString();
  EXPECT_EQ(result.error().message(), "output larger than the capture limit (1000 bytes)");
  EXPECT_EQ(result.outputs().count("Out"), 0u);
  const pid_t pid = ReadPid(dir + "/pid");
  ASSERT_GT(pid, 0);
  EXPECT_TRUE(ProcessGone(pid));
}

TEST(FlowExecutorTest, OutputOfExactlyTheLimitIsCapturedAndUncapturedOutputIsNotLimited) {
  EventLog log;
  ExecutorOptions options;
  options.max_capture_bytes = 1000;
  const RunnerResult result = RunFlow(R"({"name": "t", "outputs": [{"name": "Out"}], "actions": [
    {"action": "System.RunApplication", "path": "/bin/sh", "stdout_variable": "Out",
     "arguments": ["-c", "head -c 1000 /dev/zero | tr '\\000' a"]},
    {"action": "System.RunApplication", "path": "/bin/sh",
     "arguments": ["-c", "head -c 20000 /dev/zero | tr '\\000' b"]}]})",
                                      log, {}, options);
  ASSERT_EQ(result.state(), proto::JOB_STATE_SUCCEEDED) << result.DebugString();
  EXPECT_EQ(result.outputs().at("Out"), std::string(1000, 'a'));
  // Lines longer than 8 KiB are streamed in pieces.
  const std::vector<std::string> lines = log.Lines(JobEvent::LogLine::STREAM_STDOUT);
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0], std::string(1000, 'a'));
  EXPECT_EQ(lines[1], std::string(8192, 'b'));
  EXPECT_EQ(lines[2], std::string(8192, 'b'));
  EXPECT_EQ(lines[3], std::string(20000 - 2 * 8192, 'b'));
}

TEST(FlowExecutorTest, InvalidUtf8OutputIsStreamedAsValidText) {
  EventLog log;
  const RunnerResult result = RunFlow(R"({"name": "t", "outputs": [{"name": "Out"}], "actions": [
    {"action": "System.RunApplication", "path": "/bin/sh", "stdout_variable": "Out",
     "arguments": ["-c", "printf 'a\\377b\\n'"]}]})",
                                      log);
  ASSERT_EQ(result.state(), proto::JOB_STATE_SUCCEEDED) << result.DebugString();
  EXPECT_EQ(log.Lines(JobEvent::LogLine::STREAM_STDOUT), (std::vector<std::string>{"a\xEF\xBF\xBD"
                                                                                   "b"}));
  EXPECT_EQ(result.outputs().at("Out"),
            "a\xEF\xBF\xBD"
            "b\n");
  RunnerResult parsed;
  EXPECT_TRUE(parsed.ParseFromString(result.SerializeAsString()));
}

TEST(FlowExecutorTest, KilledBySignalFails) {
  EventLog log;
  const RunnerResult result = RunFlow(R"({"name": "t", "actions": [
    {"action": "System.RunApplication", "path": "/bin/sh", "arguments": ["-c", "kill -TERM $$"],
     "fail_on_nonzero_exit": false}]})",
                                      log);
  ASSERT_EQ(result.state(), proto::JOB_STATE_FAILED) << result.DebugString();
  EXPECT_EQ(result.error().message(), absl::StrCat("killed by signal ", SIGTERM));
}

TEST(FlowExecutorTest, ProgramsThatCannotStartFailWithTheReason) {
  const std::string dir = FreshDir("cannot_start");
  std::ofstream(dir + "/not-executable") << "#!/bin/sh\n";
  chmod((dir + "/not-executable").c_str(), 0600);
  struct Case {
    std::string action;
    std::string message;
  } cases[] = {
      {R"({"action": "System.RunApplication", "path": "/no/such/program"})",
       "cannot run /no/such/program: No such file or directory"},
      {R"({"action": "System.RunApplication", "path": "$0/not-executable"})",
       "cannot run $0/not-executable: Permission denied"},
      {R"({"action": "System.RunApplication", "path": "/bin/true",
           "working_directory": "$0/no-such-dir"})",
       "cannot change to working directory $0/no-such-dir: No such file or directory"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.action);
    EventLog log;
    const RunnerResult result = RunFlow(
        absl::Substitute(R"({"name": "t", "actions": [$0]})", absl::Substitute(c.action, dir)),
        log);
    ASSERT_EQ(result.state(), proto::JOB_STATE_FAILED) << result.DebugString();
    EXPECT_EQ(result.error().message(), absl::Substitute(c.message, dir));
  }
}

TEST(FlowExecutorTest, RunApplicationRunsInItsWorkingDirectoryWithStdinFromDevNull) {
  const std::string dir = FreshDir("app_dir");
  EventLog log;
  const RunnerResult result =
      RunFlow(absl::Substitute(R"({"name": "t", "outputs": [{"name": "Out"}], "actions": [
        {"action": "System.RunApplication", "path": "/bin/sh", "working_directory": "$0",
         "arguments": ["-c", "pwd; cat; echo end"], "stdout_variable": "Out"}]})",
                               dir),
              log);
  ASSERT_EQ(result.state(), proto::JOB_STATE_SUCCEEDED) << result.DebugString();
  EXPECT_EQ(result.outputs().at("Out"), dir + "\nend\n");
}

TEST(FlowExecutorTest, ProgramsInheritNoDescriptorsButTheStandardThree) {
  // A descriptor the runner holds without close-on-exec (as one inherited from the agent would be).
  const int inheritable = open("/dev/null", O_RDONLY);
  ASSERT_GE(inheritable, 3);
  EventLog log;
  const RunnerResult result = RunFlow(R"({"name": "t", "outputs": [{"name": "Out"}], "actions": [
    {"action": "System.RunApplication", "path": "/bin/ls", "arguments": ["/proc/self/fd"],
     "stdout_variable": "Out"}]})",
                                      log);
  ASSERT_EQ(result.state(), proto::JOB_STATE_SUCCEEDED) << result.DebugString();
  close(inheritable);
  // 0, 1, 2 and the directory ls itself has open.
  EXPECT_EQ(result.outputs().at("Out"), "0\n1\n2\n3\n");
}

TEST(FlowExecutorTest, ActionTimeoutKillsTheProgramAndItsChildren) {
  const std::string dir = FreshDir("timeout");
  EventLog log;
  const RunnerResult result = RunFlow(absl::Substitute(R"({"name": "t", "actions": [
        {"action": "System.RunApplication", "path": "/bin/sh", "timeout_ms": 1500,
         "arguments": ["-c", "echo $$$$ > $0/pid; sleep 1000 & echo $$! > $0/grandchild; wait"]},
        {"action": "Variables.SetVariable", "variable": "X", "value": "never"}]})",
                                                       dir),
                                      log);
  ASSERT_EQ(result.state(), proto::JOB_STATE_FAILED) << result.DebugString();
  EXPECT_EQ(result.error().message(), "timed out after 1500 ms");
  EXPECT_EQ(result.error().action_index(), 0u);
  EXPECT_EQ(log.Started(), (std::vector<uint32_t>{0}));
  const pid_t pid = ReadPid(dir + "/pid");
  const pid_t grandchild = ReadPid(dir + "/grandchild");
  ASSERT_GT(pid, 0);
  ASSERT_GT(grandchild, 0);
  EXPECT_TRUE(ProcessGone(pid));
  EXPECT_TRUE(ProcessGone(grandchild));
}

TEST(FlowExecutorTest, ABlockTimeoutStopsTheActionsInsideAndFailsTheBlock) {
  EventLog log;
  const RunnerResult result = RunFlow(R"({"name": "t", "actions": [
    {"action": "Flow.Loop", "times": 3, "timeout_ms": 200, "body": [
      {"action": "Flow.Wait", "duration_ms": 60000}]}]})",
                                      log);
  ASSERT_EQ(result.state(), proto::JOB_STATE_FAILED) << result.DebugString();
  EXPECT_EQ(result.error().message(), "timed out after 200 ms");
  EXPECT_EQ(result.error().action_index(), 0u);
  EXPECT_EQ(result.error().action_name(), "Flow.Loop");
  EXPECT_EQ(log.Actions(),
            (std::vector<std::string>{
                "+0 Flow.Loop $.actions[0]", "+1 Flow.Wait $.actions[0].body[0]",
                "-1 fail: stopped: action 0 (Flow.Loop at $.actions[0]) timed out after 200 ms",
                "-0 fail: timed out after 200 ms"}));
}

TEST(FlowExecutorTest, WaitWaitsItsDuration) {
  EventLog log;
  const absl::Time before = absl::Now();
  const RunnerResult result = RunFlow(R"({"name": "t", "actions": [
    {"action": "Flow.Wait", "duration_ms": 50}]})",
                                      log);
  ASSERT_EQ(result.state(), proto::JOB_STATE_SUCCEEDED) << result.DebugString();
  EXPECT_GE(absl::Now() - before, absl::Milliseconds(50));
  EXPECT_GE(log.Finished(0)->action_finished().duration_ms(), 50);
}

TEST(FlowExecutorTest, RunDeadlineTimesOutNamingTheRunningAction) {
  EventLog log;
  const RunnerResult result = RunFlow(R"({"name": "t", "outputs": [{"name": "X"}], "actions": [
        {"action": "Variables.SetVariable", "variable": "X", "value": "1"},
        {"action": "System.RunApplication", "path": "/bin/sleep", "arguments": ["1000"]},
        {"action": "Variables.SetVariable", "variable": "X", "value": "2"}]})",
                                      log, {}, {}, absl::Now() + absl::Milliseconds(500));
  ASSERT_EQ(result.state(), proto::JOB_STATE_TIMED_OUT) << result.DebugString();
  EXPECT_EQ(result.error().action_index(), 1u);
  EXPECT_EQ(result.error().action_name(), "System.RunApplication");
  EXPECT_EQ(result.error().action_path(), "$.actions[1]");
  EXPECT_TRUE(absl::StartsWith(result.error().message(), "the run timed out after "))
      << result.error().message();
  EXPECT_TRUE(absl::EndsWith(result.error().message(),
                             "during action 1 (System.RunApplication at $.actions[1])"));
  EXPECT_EQ(result.outputs().at("X"), "1");
  EXPECT_EQ(log.Started(), (std::vector<uint32_t>{0, 1}));
  EXPECT_EQ(log.Actions().back(), "-1 fail: stopped: the run timed out");
}

TEST(FlowExecutorTest, RunDeadlineStopsAWaitAndALongLoop) {
  for (const char* body :
       {R"({"action": "Flow.Wait", "duration_ms": 86400000})",
        R"({"action": "Variables.SetVariable", "variable": "X", "value": "x"})"}) {
    SCOPED_TRACE(body);
    EventLog log;
    const RunnerResult result = RunFlow(absl::Substitute(R"({"name": "t", "actions": [
          {"action": "Flow.Loop", "times": 1000000, "body": [$0]}]})",
                                                         body),
                                        log, {}, {}, absl::Now() + absl::Milliseconds(200));
    EXPECT_EQ(result.state(), proto::JOB_STATE_TIMED_OUT) << result.error().message();
  }
}

// Runs `json` on a thread and cancels it once `ready` matches an event.
RunnerResult RunAndCancel(absl::string_view json, EventLog& log,
                          const std::function<bool(const JobEvent&)>& ready) {
  ExecutorOptions options;
  options.on_event = log.Sink();
  FlowExecutor executor(std::move(options));
  RunnerResult result;
  std::thread runner([&] { result = executor.RunJson(json, {}, absl::InfiniteFuture()); });
  const bool was_ready = log.WaitFor(ready);
  executor.Cancel();
  runner.join();
  EXPECT_TRUE(was_ready);
  return result;
}

TEST(FlowExecutorTest, CancelKillsTheRunningProgramAndEndsCancelled) {
  const std::string dir = FreshDir("cancel");
  EventLog log;
  const RunnerResult result =
      RunAndCancel(absl::Substitute(R"({"name": "t", "actions": [
        {"action": "Flow.Loop", "times": 1, "body": [
          {"action": "System.RunApplication", "path": "/bin/sh",
           "arguments": ["-c", "echo $$$$ > $0/pid; echo ready; exec sleep 1000"]}]},
        {"action": "Variables.SetVariable", "variable": "X", "value": "never"}]})",
                                    dir),
                   log, [](const JobEvent& e) { return IsLine(e, "ready"); });
  ASSERT_EQ(result.state(), proto::JOB_STATE_CANCELLED) << result.DebugString();
  EXPECT_EQ(result.error().action_index(), 1u);
  EXPECT_EQ(
      result.error().message(),
      "the run was cancelled during action 1 (System.RunApplication at $.actions[0].body[0])");
  EXPECT_EQ(log.Actions().back(), "-0 fail: cancelled");
  EXPECT_EQ(log.Started(), (std::vector<uint32_t>{0, 1}));
  const pid_t pid = ReadPid(dir + "/pid");
  ASSERT_GT(pid, 0);
  EXPECT_TRUE(ProcessGone(pid));
}

TEST(FlowExecutorTest, CancelInterruptsAWait) {
  EventLog log;
  const RunnerResult result = RunAndCancel(
      R"({"name": "t", "actions": [{"action": "Flow.Wait", "duration_ms": 86400000}]})", log,
      [](const JobEvent& e) { return e.has_action_started(); });
  ASSERT_EQ(result.state(), proto::JOB_STATE_CANCELLED) << result.DebugString();
  EXPECT_EQ(result.error().action_name(), "Flow.Wait");
}

TEST(FlowExecutorTest, CancelBeforeRunRunsNothing) {
  EventLog log;
  ExecutorOptions options;
  options.on_event = log.Sink();
  FlowExecutor executor(std::move(options));
  executor.Cancel();
  const RunnerResult result = executor.RunJson(
      R"({"name": "t", "actions": [
        {"action": "Variables.SetVariable", "variable": "X", "value": "1"}]})",
      {}, absl::InfiniteFuture());
  EXPECT_EQ(result.state(), proto::JOB_STATE_CANCELLED);
  EXPECT_FALSE(result.error().has_action_index());
  EXPECT_TRUE(log.events().empty());
}

int CountOpenFds() {
  int count = 0;
  DIR* dir = opendir("/proc/self/fd");
  while (readdir(dir) != nullptr) ++count;
  closedir(dir);
  return count;
}

TEST(FlowExecutorTest, RunsLeaveNoDescriptorsAndNoZombiesBehind) {
  const std::string dir = FreshDir("leaks");
  const int fds_before = CountOpenFds();
  for (const std::string& action : {
           std::string(
               R"({"action": "System.RunApplication", "path": "/bin/echo", "arguments": ["x"]})"),
           std::string(R"({"action": "System.RunApplication", "path": "/no/such/program"})"),
           std::string(R"({"action": "System.RunApplication", "path": "/bin/sleep",
                           "arguments": ["1000"], "timeout_ms": 50})"),
           absl::Substitute(R"({"action": "File.WriteText", "path": "$0/f", "text": "x"})", dir),
           absl::Substitute(R"({"action": "File.ReadText", "path": "$0/f", "variable": "V"})", dir),
       }) {
    EventLog log;
    RunFlow(absl::Substitute(R"({"name": "t", "actions": [$0]})", action), log);
  }
  EXPECT_EQ(CountOpenFds(), fds_before);
  errno = 0;
  EXPECT_EQ(waitpid(-1, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
}

}  // namespace
}  // namespace tether::agent
