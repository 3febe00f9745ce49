// The flow_runner binary as the agent drives it: a request on fd 0, messages on fd 1, SIGTERM to
// its process group to cancel.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/strings/substitute.h"
#include "absl/time/clock.h"
#include "agent/runner/runner.pb.h"
#include "google/protobuf/io/zero_copy_stream_impl.h"
#include "google/protobuf/util/delimited_message_util.h"
#include "gtest/gtest.h"

namespace tether::agent {
namespace {

using proto::JobEvent;

std::string Tmp(const std::string& name) {
  return absl::StrCat(std::getenv("TEST_TMPDIR"), "/", name);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// True once `pid` no longer exists or is a zombie, waiting up to 10 s.
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

// One flow_runner process in its own process group (as the agent starts it), with pipes on fd 0
// and fd 1 and its stderr in a file.
class Runner {
 public:
  explicit Runner(const std::string& name) : stderr_path_(Tmp(name + ".stderr")) {
    int to_runner[2], from_runner[2];
    if (pipe2(to_runner, O_CLOEXEC) != 0 || pipe2(from_runner, O_CLOEXEC) != 0) abort();
    pid_ = fork();
    if (pid_ == 0) {
      setpgid(0, 0);
      const int err = open(stderr_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      dup2(to_runner[0], 0);
      dup2(from_runner[1], 1);
      dup2(err, 2);
      execl("agent/runner/flow_runner", "flow_runner", nullptr);
      _exit(127);
    }
    setpgid(pid_, pid_);
    close(to_runner[0]);
    close(from_runner[1]);
    input_fd_ = to_runner[1];
    output_ = std::make_unique<google::protobuf::io::FileInputStream>(from_runner[0]);
    output_->SetCloseOnDelete(true);
  }

  ~Runner() {
    CloseInput();
    if (pid_ > 0 && exit_code_ == kRunning) {
      kill(-pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  void SendBytes(const std::string& bytes) {
    size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = write(input_fd_, bytes.data() + done, bytes.size() - done);
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
  }

  void Send(const RunnerRequest& request) {
    std::string bytes;
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::util::SerializeDelimitedToZeroCopyStream(request, &stream);
    SendBytes(bytes);
    CloseInput();
  }

  void CloseInput() {
    if (input_fd_ >= 0) close(input_fd_);
    input_fd_ = -1;
  }

  // The next message, or false at the end of the output (*clean_eof says whether it ended
  // between messages).
  bool Next(RunnerMessage* message, bool* clean_eof = nullptr) {
    bool eof = false;
    const bool ok =
        google::protobuf::util::ParseDelimitedFromZeroCopyStream(message, output_.get(), &eof);
    if (clean_eof != nullptr) *clean_eof = eof;
    return ok;
  }

  // All remaining messages up to the end of the output. Fails the test if the output does not
  // end cleanly right after them.
  std::vector<RunnerMessage> ReadAll() {
    std::vector<RunnerMessage> messages;
    RunnerMessage message;
    bool clean_eof = false;
    while (Next(&message, &clean_eof)) messages.push_back(message);
    EXPECT_TRUE(clean_eof) << "fd 1 holds bytes that are not a RunnerMessage";
    return messages;
  }

  int Wait() {
    int status = 0;
    waitpid(pid_, &status, 0);
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return exit_code_;
  }

  pid_t pid() const { return pid_; }
  std::string Stderr() const { return ReadFile(stderr_path_); }

 private:
  static constexpr int kRunning = -1;
  std::string stderr_path_;
  pid_t pid_ = -1;
  int input_fd_ = -1;
  std::unique_ptr<google::protobuf::io::FileInputStream> output_;
  int exit_code_ = kRunning;
};

RunnerRequest Request(const std::string& json) {
  RunnerRequest request;
  request.set_job_id("job-1");
  request.set_flow_definition_json(json);
  return request;
}

// Checks the framing every run must have: events, then exactly one result, last.
RunnerResult ResultOf(const std::vector<RunnerMessage>& messages) {
  EXPECT_FALSE(messages.empty());
  if (messages.empty()) return RunnerResult();
  for (size_t i = 0; i + 1 < messages.size(); ++i) {
    EXPECT_TRUE(messages[i].has_event()) << i;
    EXPECT_TRUE(messages[i].event().job_id().empty());
    EXPECT_EQ(messages[i].event().seq(), 0u);
    EXPECT_GT(messages[i].event().timestamp_unix_ms(), 0);
  }
  EXPECT_TRUE(messages.back().has_result());
  return messages.back().result();
}

TEST(FlowRunnerTest, RunsAFlowStreamingEventsThenOneResult) {
  const std::string dir = Tmp("run_dir");
  ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
  Runner runner("run");
  RunnerRequest request = Request(R"({
    "name": "t", "inputs": [{"name": "Who", "type": "text"}],
    "outputs": [{"name": "Out"}, {"name": "Where"}],
    "actions": [
      {"action": "System.RunApplication", "path": "/bin/echo", "arguments": ["hi", "%Who%"],
       "stdout_variable": "Out"},
      {"action": "System.RunApplication", "path": "/bin/pwd", "stdout_variable": "Where"}]})");
  (*request.mutable_inputs())["Who"] = "Ada";
  request.set_working_directory(dir);
  runner.Send(request);
  const std::vector<RunnerMessage> messages = runner.ReadAll();
  EXPECT_EQ(runner.Wait(), 0) << runner.Stderr();
  const RunnerResult result = ResultOf(messages);
  ASSERT_EQ(result.state(), proto::JOB_STATE_SUCCEEDED) << result.DebugString();
  EXPECT_EQ(result.outputs().at("Out"), "hi Ada\n");
  EXPECT_EQ(result.outputs().at("Where"), dir + "\n");
  ASSERT_GE(messages.size(), 4u);
  EXPECT_EQ(messages[0].event().action_started().name(), "System.RunApplication");
  EXPECT_EQ(messages[1].event().log_line().text(), "hi Ada");
  EXPECT_EQ(messages[1].event().log_line().stream(), JobEvent::LogLine::STREAM_STDOUT);
  EXPECT_TRUE(messages[2].event().action_finished().ok());
}

TEST(FlowRunnerTest, AFailedFlowStillExitsZeroAndHonoursTheCaptureLimit) {
  Runner runner("capture");
  RunnerRequest request = Request(R"({"name": "t", "actions": [
    {"action": "System.RunApplication", "path": "/bin/echo", "arguments": ["0123456789"],
     "stdout_variable": "Out"}]})");
  request.set_max_capture_bytes(5);
  runner.Send(request);
  const RunnerResult result = ResultOf(runner.ReadAll());
  EXPECT_EQ(runner.Wait(), 0) << runner.Stderr();
  EXPECT_EQ(result.state(), proto::JOB_STATE_FAILED);
  EXPECT_EQ(result.error().message(), "output larger than the capture limit (5 bytes)");
  EXPECT_EQ(result.error().action_index(), 0u);
}

TEST(FlowRunnerTest, ABadDefinitionOrBadInputsEndFailedWithoutRunningAnything) {
  const std::string marker = Tmp("bad_marker");
  struct Case {
    std::string json;
    std::map<std::string, std::string> inputs;
    std::string message;
  } cases[] = {
      {"{\"name\": ", {}, "invalid flow definition: line 1, column 10: incomplete JSON"},
      {absl::Substitute(R"({"name": "t", "actions": [
         {"action": "File.WriteText", "path": "$0", "text": "x"},
         {"action": "Flow.Nope"}]})",
                        marker),
       {},
       "invalid flow definition: $.actions[1]: unknown action \"Flow.Nope\""},
      {absl::Substitute(R"({"name": "t", "inputs": [{"name": "N", "type": "number"}],
         "actions": [{"action": "File.WriteText", "path": "$0", "text": "x"}]})",
                        marker),
       {{"Extra", "1"}, {"N", "1"}},
       "invalid inputs: input \"Extra\": not declared by the flow"},
  };
  int i = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.message);
    Runner runner(absl::StrCat("bad", i++));
    RunnerRequest request = Request(c.json);
    request.mutable_inputs()->insert(c.inputs.begin(), c.inputs.end());
    runner.Send(request);
    const std::vector<RunnerMessage> messages = runner.ReadAll();
    EXPECT_EQ(runner.Wait(), 0) << runner.Stderr();
    ASSERT_EQ(messages.size(), 1u);
    const RunnerResult result = ResultOf(messages);
    EXPECT_EQ(result.state(), proto::JOB_STATE_FAILED);
    EXPECT_EQ(result.error().message(), c.message);
    EXPECT_FALSE(result.error().has_action_index());
    EXPECT_EQ(access(marker.c_str(), F_OK), -1);
  }
}

TEST(FlowRunnerTest, AnUnreadableRequestExitsTwoWithNothingOnStdout) {
  std::string truncated;
  {
    google::protobuf::io::StringOutputStream stream(&truncated);
    google::protobuf::util::SerializeDelimitedToZeroCopyStream(
        Request(R"({"name": "t", "actions": []})"), &stream);
  }
  truncated.resize(truncated.size() - 3);
  struct Case {
    std::string name;
    std::string bytes;
  } cases[] = {
      {"empty", ""},
      {"bad_varint", std::string(11, '\xff')},
      {"not_a_message", std::string("\x04\xff\xff\xff\xff", 5)},
      {"truncated", truncated},
      {"invalid_utf8", std::string("\x03\x12\x01\xff", 4)},  // flow_definition_json = "\xff"
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Runner runner("unreadable_" + c.name);
    runner.SendBytes(c.bytes);
    runner.CloseInput();
    RunnerMessage message;
    bool clean_eof = false;
    EXPECT_FALSE(runner.Next(&message, &clean_eof));
    EXPECT_TRUE(clean_eof) << "something was written on fd 1";
    EXPECT_EQ(runner.Wait(), 2);
    EXPECT_NE(runner.Stderr().find("runner_request_unreadable"), std::string::npos)
        << runner.Stderr();
  }
}

TEST(FlowRunnerTest, SigtermToTheProcessGroupCancelsTheRunAndKillsTheProgram) {
  const std::string later = Tmp("sigterm_later");
  Runner runner("sigterm");
  runner.Send(Request(absl::Substitute(R"({"name": "t", "actions": [
    {"action": "System.RunApplication", "path": "/bin/sh",
     "arguments": ["-c", "echo pid $$$$; sleep 1000 & echo grandchild $$!; wait"]},
    {"action": "File.WriteText", "path": "$0", "text": "x"}]})",
                                       later)));
  std::vector<RunnerMessage> messages;
  pid_t pid = 0, grandchild = 0;
  RunnerMessage message;
  while (grandchild == 0 && runner.Next(&message)) {
    messages.push_back(message);
    if (!message.event().has_log_line()) continue;
    absl::string_view text = message.event().log_line().text();
    if (absl::ConsumePrefix(&text, "pid ")) {
      ASSERT_TRUE(absl::SimpleAtoi(text, &pid));
    } else if (absl::ConsumePrefix(&text, "grandchild ")) {
      ASSERT_TRUE(absl::SimpleAtoi(text, &grandchild));
    }
  }
  ASSERT_GT(pid, 0);
  ASSERT_GT(grandchild, 0);
  ASSERT_EQ(kill(-runner.pid(), SIGTERM), 0);
  for (const RunnerMessage& m : runner.ReadAll()) messages.push_back(m);
  EXPECT_EQ(runner.Wait(), 0) << runner.Stderr();
  const RunnerResult result = ResultOf(messages);
  EXPECT_EQ(result.state(), proto::JOB_STATE_CANCELLED) << result.DebugString();
  EXPECT_EQ(result.error().action_index(), 0u);
  EXPECT_EQ(result.error().action_name(), "System.RunApplication");
  EXPECT_TRUE(ProcessGone(pid));
  EXPECT_TRUE(ProcessGone(grandchild));
  EXPECT_EQ(access(later.c_str(), F_OK), -1);
}

TEST(FlowRunnerTest, TheRunTimeoutEndsTimedOutNamingTheRunningAction) {
  Runner runner("timeout");
  RunnerRequest request = Request(R"({"name": "t", "actions": [
    {"action": "Variables.SetVariable", "variable": "X", "value": "1"},
    {"action": "Flow.Loop", "times": 1, "body": [
      {"action": "System.RunApplication", "path": "/bin/sleep", "arguments": ["1000"]}]}]})");
  request.set_timeout_ms(1000);
  runner.Send(request);
  const RunnerResult result = ResultOf(runner.ReadAll());
  EXPECT_EQ(runner.Wait(), 0) << runner.Stderr();
  EXPECT_EQ(result.state(), proto::JOB_STATE_TIMED_OUT) << result.DebugString();
  EXPECT_EQ(result.error().action_index(), 2u);
  EXPECT_EQ(result.error().action_path(), "$.actions[1].body[0]");
  EXPECT_EQ(result.error().message(),
            "the run timed out after 1000 ms during action 2 (System.RunApplication at "
            "$.actions[1].body[0])");
}

TEST(FlowRunnerTest, OutputThatIsNotUtf8DoesNotBreakTheStream) {
  Runner runner("utf8");
  runner.Send(Request(R"({"name": "t", "outputs": [{"name": "Out"}], "actions": [
    {"action": "System.RunApplication", "path": "/bin/sh", "stdout_variable": "Out",
     "arguments": ["-c", "printf '\\377\\376 bytes\\n' >&2; printf '\\300x'"]}]})"));
  const RunnerResult result = ResultOf(runner.ReadAll());
  EXPECT_EQ(runner.Wait(), 0) << runner.Stderr();
  EXPECT_EQ(result.state(), proto::JOB_STATE_SUCCEEDED) << result.DebugString();
  EXPECT_EQ(result.outputs().at("Out"), "\xEF\xBF\xBDx");
}

}  // namespace
}  // namespace tether::agent
