#include "agent/runner/flow_executor.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/runner/line_splitter.h"
#include "common/base/clock.h"

namespace tether::agent {

using flow::Action;
using flow::ActionType;
using proto::JobEvent;
using proto::JobState;

namespace {

int64_t Millis(absl::Duration d) { return std::max<int64_t>(0, absl::ToInt64Milliseconds(d)); }

// The time an action (and everything inside it) must end by, and whose limit it is.
struct Limit {
  absl::Time at = absl::InfiniteFuture();
  const Action* owner = nullptr;  // nullptr: the run's deadline
};

// Why an action or a block of actions stopped before finishing.
struct Stop {
  enum class Reason {
    kFailed,     // `action` failed with `message`
    kCancelled,  // Cancel() was called while `action` was running
    kTimedOut,   // `owner`'s limit (nullptr: the run's) passed while `action` was running
  };
  Reason reason = Reason::kFailed;
  std::string message;
  const Action* action = nullptr;
  const Action* owner = nullptr;
};

std::string Describe(const Action& action) {
  return absl::StrCat("action ", action.index, " (", action.type_name, " at ", action.path, ")");
}

// "/dir" + "x" -> "/dir/x"; absolute paths and an empty base leave `path` as it is.
std::string Resolve(const std::string& base, std::string path) {
  if (base.empty() || path.empty() || path.front() == '/') return path;
  if (base.back() == '/') return base + path;
  return absl::StrCat(base, "/", path);
}

}  // namespace

// The state of one run: variables, the deadline, and the event sink.
class FlowExecutor::Execution {
 public:
  Execution(const ExecutorOptions& options, Cancellation& cancellation,
            const flow::FlowDefinition& flow, absl::Time deadline)
      : options_(options),
        cancellation_(cancellation),
        flow_(flow),
        deadline_(deadline),
        max_bytes_(options.max_capture_bytes == 0 ? kDefaultMaxCaptureBytes
                                                  : options.max_capture_bytes) {}

  // `started`: when the run began (RunJson counts the parsing in).
  RunnerResult Run(std::map<std::string, std::string> inputs, absl::Time started);

 private:
  using Outcome = std::optional<Stop>;  // std::nullopt: finished well

  absl::Time Now() const { return options_.clock ? options_.clock() : WallNow(); }
  void Emit(JobEvent event) {
    if (!options_.on_event) return;
    event.set_timestamp_unix_ms(absl::ToUnixMillis(Now()));
    options_.on_event(std::move(event));
  }

  std::string Lookup(absl::string_view name) const {
    const auto it = variables_.find(std::string(name));
    return it == variables_.end() ? std::string() : it->second;
  }
  std::string Evaluate(const flow::Expression& expression) const {
    return expression.Evaluate([this](absl::string_view name) { return Lookup(name); });
  }
  std::string ResolvePath(const flow::Expression& expression) const {
    return Resolve(base_directory_, Evaluate(expression));
  }

  Outcome RunBlock(const std::vector<Action>& actions, const Limit& limit);
  Outcome RunAction(const Action& action, const Limit& parent);
  Outcome Perform(const Action& action, const Limit& limit, std::string* note);
  Outcome CheckInterrupt(const Action& action, const Limit& limit) const;
  std::string FinishedMessage(const Stop& stop, const Action& action) const;

  Outcome RunApplication(const Action& action, const Limit& limit, std::string* note);
  Outcome ReadText(const Action& action, std::string* note);
  Outcome WriteText(const Action& action, std::string* note);
  Outcome CreateFolder(const Action& action, std::string* note);
  Outcome Loop(const Action& action, const Limit& limit, std::string* note);
  Outcome Wait(const Action& action, const Limit& limit);

  static Outcome Fail(const Action& action, std::string message) {
    return Stop{Stop::Reason::kFailed, std::move(message), &action, nullptr};
  }

  const ExecutorOptions& options_;
  Cancellation& cancellation_;
  const flow::FlowDefinition& flow_;
  const absl::Time deadline_;
  const uint64_t max_bytes_;
  std::map<std::string, std::string> variables_;
  // Relative paths are resolved against it: the working directory, or the process's current
  // directory (so that a program's relative path does not depend on the directory it runs in).
  std::string base_directory_;
};

RunnerResult FlowExecutor::Execution::Run(std::map<std::string, std::string> inputs,
                                          absl::Time started) {
  RunnerResult result;
  result.set_started_at_unix_ms(absl::ToUnixMillis(started));
  auto end = [&](JobState state, std::string message, const Action* action) {
    result.set_state(state);
    if (state != proto::JOB_STATE_SUCCEEDED) {
      proto::FlowError* error = result.mutable_error();
      error->set_message(ToValidUtf8(message));
      if (action != nullptr) {
        error->set_action_index(action->index);
        error->set_action_name(action->type_name);
        error->set_action_path(action->path);
      }
    }
    result.set_finished_at_unix_ms(absl::ToUnixMillis(Now()));
    return result;
  };

  if (!cancellation_.status().ok()) {
    return end(proto::JOB_STATE_FAILED, std::string(cancellation_.status().message()), nullptr);
  }
  absl::StatusOr<std::map<std::string, std::string>> resolved =
      flow::ResolveRunInputs(flow_, inputs);
  if (!resolved.ok()) {
    return end(proto::JOB_STATE_FAILED,
               absl::StrCat("invalid inputs: ", resolved.status().message()), nullptr);
  }
  if (!options_.working_directory.empty()) {
    struct stat st;
    std::string problem;
    if (stat(options_.working_directory.c_str(), &st) != 0) {
      problem = ErrnoText(errno);
    } else if (!S_ISDIR(st.st_mode)) {
      problem = "not a directory";
    }
    if (!problem.empty()) {
      return end(proto::JOB_STATE_FAILED,
                 absl::StrCat("working directory ", options_.working_directory, ": ", problem),
                 nullptr);
    }
  }
  if (cancellation_.cancelled()) {
    return end(proto::JOB_STATE_CANCELLED, "the run was cancelled before it started", nullptr);
  }

  base_directory_ = options_.working_directory;
  if (base_directory_.empty()) {
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof cwd) != nullptr) base_directory_ = cwd;
  }
  variables_ = *std::move(resolved);
  const Outcome stop = RunBlock(flow_.actions, Limit{deadline_, nullptr});

  for (const flow::FlowOutput& output : flow_.outputs) {
    const auto it = variables_.find(output.name);
    if (it == variables_.end()) continue;
    std::string value = ToValidUtf8(it->second);
    (*result.mutable_outputs())[output.name] = value;
    JobEvent event;
    event.mutable_output()->set_name(output.name);
    event.mutable_output()->set_value(std::move(value));
    Emit(std::move(event));
  }

  if (!stop) return end(proto::JOB_STATE_SUCCEEDED, "", nullptr);
  switch (stop->reason) {
    case Stop::Reason::kFailed:
      return end(proto::JOB_STATE_FAILED, stop->message, stop->action);
    case Stop::Reason::kCancelled:
      return end(proto::JOB_STATE_CANCELLED,
                 absl::StrCat("the run was cancelled during ", Describe(*stop->action)),
                 stop->action);
    case Stop::Reason::kTimedOut:
      break;
  }
  return end(proto::JOB_STATE_TIMED_OUT,
             absl::StrCat("the run timed out after ",
                          std::max<int64_t>(
                              0, std::llround(absl::ToDoubleMilliseconds(deadline_ - started))),
                          " ms during ", Describe(*stop->action)),
             stop->action);
}

FlowExecutor::Execution::Outcome FlowExecutor::Execution::RunBlock(
    const std::vector<Action>& actions, const Limit& limit) {
  for (const Action& action : actions) {
    if (Outcome stop = RunAction(action, limit)) return stop;
  }
  return std::nullopt;
}

FlowExecutor::Execution::Outcome FlowExecutor::Execution::CheckInterrupt(const Action& action,
                                                                         const Limit& limit) const {
  if (cancellation_.cancelled()) return Stop{Stop::Reason::kCancelled, "", &action, nullptr};
  if (limit.at != absl::InfiniteFuture() && Now() >= limit.at) {
    return Stop{Stop::Reason::kTimedOut, "", &action, limit.owner};
  }
  return std::nullopt;
}

std::string FlowExecutor::Execution::FinishedMessage(const Stop& stop, const Action& action) const {
  switch (stop.reason) {
    case Stop::Reason::kFailed:
      if (stop.action == &action) return stop.message;
      return absl::StrCat(Describe(*stop.action), " failed: ", stop.message);
    case Stop::Reason::kCancelled:
      return "cancelled";
    case Stop::Reason::kTimedOut:
      break;
  }
  if (stop.owner == nullptr) return "stopped: the run timed out";
  return absl::StrCat("stopped: ", Describe(*stop.owner), " timed out after ",
                      Millis(*stop.owner->timeout), " ms");
}

FlowExecutor::Execution::Outcome FlowExecutor::Execution::RunAction(const Action& action,
                                                                    const Limit& parent) {
  JobEvent started_event;
  auto* started = started_event.mutable_action_started();
  started->set_index(action.index);
  started->set_name(action.type_name);
  started->set_path(action.path);
  Emit(std::move(started_event));

  const absl::Time start = Now();
  Limit limit = parent;
  if (action.timeout && start + *action.timeout <= limit.at) {
    limit = Limit{start + *action.timeout, &action};
  }
  std::string note;
  Outcome stop = CheckInterrupt(action, limit);
  if (!stop) stop = Perform(action, limit, &note);
  if (stop && stop->reason == Stop::Reason::kTimedOut && stop->owner == &action) {
    // This action's own timeout: from here on it is an ordinary failure of this action.
    stop = Stop{Stop::Reason::kFailed,
                absl::StrCat("timed out after ", Millis(*action.timeout), " ms"), &action, nullptr};
  }

  JobEvent finished_event;
  auto* finished = finished_event.mutable_action_finished();
  finished->set_index(action.index);
  finished->set_name(action.type_name);
  finished->set_path(action.path);
  finished->set_ok(!stop);
  finished->set_message(ToValidUtf8(stop ? FinishedMessage(*stop, action) : note));
  finished->set_duration_ms(Millis(Now() - start));
  Emit(std::move(finished_event));
  return stop;
}

FlowExecutor::Execution::Outcome FlowExecutor::Execution::Perform(const Action& action,
                                                                  const Limit& limit,
                                                                  std::string* note) {
  switch (action.type) {
    case ActionType::kSetVariable: {
      const auto& params = action.Params<flow::SetVariableParams>();
      std::string value = Evaluate(params.value);
      if (value.size() > max_bytes_) {
        return Fail(action, absl::StrCat("value of ", params.variable, " is larger than ",
                                         max_bytes_, " bytes"));
      }
      variables_[params.variable] = std::move(value);
      return std::nullopt;
    }
    case ActionType::kRunApplication:
      return RunApplication(action, limit, note);
    case ActionType::kReadText:
      return ReadText(action, note);
    case ActionType::kWriteText:
      return WriteText(action, note);
    case ActionType::kCreateFolder:
      return CreateFolder(action, note);
    case ActionType::kIf: {
      const auto& params = action.Params<flow::IfParams>();
      const bool holds = flow::EvaluateCondition(
          params.condition, [this](absl::string_view name) { return Lookup(name); });
      *note = holds ? "condition is true" : "condition is false";
      return RunBlock(holds ? params.then_actions : params.else_actions, limit);
    }
    case ActionType::kLoop:
      return Loop(action, limit, note);
    case ActionType::kWait:
      return Wait(action, limit);
    case ActionType::kFail:
      return Fail(action, Evaluate(action.Params<flow::FailParams>().message));
  }
  return Fail(action, absl::StrCat("unsupported action ", action.type_name));
}

FlowExecutor::Execution::Outcome FlowExecutor::Execution::RunApplication(const Action& action,
                                                                         const Limit& limit,
                                                                         std::string* note) {
  const auto& params = action.Params<flow::RunApplicationParams>();
  ChildProcessSpec spec;
  spec.path = ResolvePath(params.path);
  if (spec.path.empty()) return Fail(action, "cannot run: the path is empty");
  spec.argv.push_back(spec.path);
  for (const flow::Expression& argument : params.arguments) spec.argv.push_back(Evaluate(argument));
  spec.working_directory = options_.working_directory;
  if (params.working_directory) {
    std::string directory = ResolvePath(*params.working_directory);
    if (!directory.empty()) spec.working_directory = std::move(directory);
  }
  spec.capture_stdout = params.stdout_variable.has_value();
  spec.capture_limit = max_bytes_;
  spec.deadline = limit.at;

  const ChildOutcome outcome = RunChildProcess(
      spec, cancellation_, [this] { return Now(); },
      [this](ChildStream stream, absl::string_view line) {
        JobEvent event;
        auto* log_line = event.mutable_log_line();
        log_line->set_stream(stream == ChildStream::kStdout ? JobEvent::LogLine::STREAM_STDOUT
                                                            : JobEvent::LogLine::STREAM_STDERR);
        log_line->set_text(ToValidUtf8(line));
        Emit(std::move(event));
      });

  switch (outcome.ending) {
    case ChildOutcome::Ending::kNotStarted:
    case ChildOutcome::Ending::kWatchFailed:
      return Fail(action, outcome.error);
    case ChildOutcome::Ending::kOutputTooLarge:
      return Fail(action,
                  absl::StrCat("output larger than the capture limit (", max_bytes_, " bytes)"));
    case ChildOutcome::Ending::kDeadline:
      return Stop{Stop::Reason::kTimedOut, "", &action, limit.owner};
    case ChildOutcome::Ending::kCancelled:
      return Stop{Stop::Reason::kCancelled, "", &action, nullptr};
    case ChildOutcome::Ending::kSignaled:
    case ChildOutcome::Ending::kExited:
      break;
  }
  if (params.stdout_variable) variables_[*params.stdout_variable] = outcome.captured_stdout;
  if (outcome.ending == ChildOutcome::Ending::kSignaled) {
    return Fail(action, absl::StrCat("killed by signal ", outcome.signal));
  }
  if (params.exit_code_variable) {
    variables_[*params.exit_code_variable] = absl::StrCat(outcome.exit_code);
  }
  *note = absl::StrCat("exited with code ", outcome.exit_code);
  if (outcome.exit_code != 0 && params.fail_on_nonzero_exit) return Fail(action, *note);
  return std::nullopt;
}

FlowExecutor::Execution::Outcome FlowExecutor::Execution::ReadText(const Action& action,
                                                                   std::string* note) {
  const auto& params = action.Params<flow::ReadTextParams>();
  const std::string path = ResolvePath(params.path);
  if (path.empty()) return Fail(action, "cannot read: the path is empty");
  const std::string cannot = absl::StrCat("cannot read ", path, ": ");
  // O_NONBLOCK: opening a FIFO must not hang the run; it is refused below anyway.
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) return Fail(action, cannot + ErrnoText(errno));
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{fd};
  struct stat st;
  if (fstat(fd, &st) != 0) return Fail(action, cannot + ErrnoText(errno));
  if (!S_ISREG(st.st_mode)) return Fail(action, cannot + "not a regular file");
  const std::string too_large = absl::StrCat(path, ": file larger than ", max_bytes_, " bytes");
  if (static_cast<uint64_t>(st.st_size) > max_bytes_) return Fail(action, too_large);

  std::string text;
  char buffer[64 << 10];
  while (true) {
    const ssize_t n = read(fd, buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Fail(action, cannot + ErrnoText(errno));
    }
    if (n == 0) break;
    if (text.size() + static_cast<size_t>(n) > max_bytes_) return Fail(action, too_large);
    text.append(buffer, static_cast<size_t>(n));
  }
  *note = absl::StrCat("read ", text.size(), " bytes");
  variables_[params.variable] = std::move(text);
  return std::nullopt;
}

FlowExecutor::Execution::Outcome FlowExecutor::Execution::WriteText(const Action& action,
                                                                    std::string* note) {
  const auto& params = action.Params<flow::WriteTextParams>();
  const std::string path = ResolvePath(params.path);
  if (path.empty()) return Fail(action, "cannot write: the path is empty");
  const std::string text = Evaluate(params.text);
  const std::string cannot = absl::StrCat("cannot write ", path, ": ");
  const int flags =
      O_WRONLY | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | (params.append ? O_APPEND : O_TRUNC);
  const int fd = open(path.c_str(), flags, 0600);
  if (fd < 0) return Fail(action, cannot + ErrnoText(errno));
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{fd};
  struct stat st;
  if (fstat(fd, &st) != 0) return Fail(action, cannot + ErrnoText(errno));
  if (!S_ISREG(st.st_mode)) return Fail(action, cannot + "not a regular file");
  size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = write(fd, text.data() + written, text.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Fail(action, cannot + ErrnoText(errno));
    }
    written += static_cast<size_t>(n);
  }
  *note = absl::StrCat(params.append ? "appended " : "wrote ", written, " bytes");
  return std::nullopt;
}

FlowExecutor::Execution::Outcome FlowExecutor::Execution::CreateFolder(const Action& action,
                                                                       std::string* note) {
  const std::string path = ResolvePath(action.Params<flow::CreateFolderParams>().path);
  if (path.empty()) return Fail(action, "cannot create folder: the path is empty");
  // mkdir -p: every missing component is created with mode 0700.
  bool created = false;
  size_t end = 0;
  while (end < path.size()) {
    end = path.find('/', end + 1);
    if (end == std::string::npos) end = path.size();
    const std::string prefix = path.substr(0, end);
    if (prefix.empty() || prefix.back() == '/') continue;  // "/" itself, or "//"
    if (mkdir(prefix.c_str(), 0700) == 0) {
      created = true;
      continue;
    }
    const int error_number = errno;
    struct stat st;
    if (error_number == EEXIST && stat(prefix.c_str(), &st) == 0) {
      if (S_ISDIR(st.st_mode)) continue;
      return Fail(action, absl::StrCat("cannot create folder ", path, ": ", prefix,
                                       " exists and is not a directory"));
    }
    return Fail(action, absl::StrCat("cannot create folder ", path, ": ", prefix, ": ",
                                     ErrnoText(error_number)));
  }
  *note = created ? "created" : "already exists";
  return std::nullopt;
}

FlowExecutor::Execution::Outcome FlowExecutor::Execution::Loop(const Action& action,
                                                               const Limit& limit,
                                                               std::string* note) {
  const auto& params = action.Params<flow::LoopParams>();
  const absl::StatusOr<int64_t> count = flow::ParseLoopCount(Evaluate(params.times));
  if (!count.ok()) return Fail(action, std::string(count.status().message()));
  for (int64_t i = 0; i < *count; ++i) {
    // Checked here too so that a long loop over an empty body still stops.
    if (Outcome stop = CheckInterrupt(action, limit)) return stop;
    if (params.index_variable) variables_[*params.index_variable] = absl::StrCat(i);
    if (Outcome stop = RunBlock(params.body, limit)) return stop;
  }
  *note = absl::StrCat(*count, *count == 1 ? " iteration" : " iterations");
  return std::nullopt;
}

FlowExecutor::Execution::Outcome FlowExecutor::Execution::Wait(const Action& action,
                                                               const Limit& limit) {
  const absl::Time until = Now() + action.Params<flow::WaitParams>().duration;
  const bool limited = limit.at < until;
  if (!cancellation_.SleepUntil(limited ? limit.at : until, [this] { return Now(); })) {
    return Stop{Stop::Reason::kCancelled, "", &action, nullptr};
  }
  if (limited) return Stop{Stop::Reason::kTimedOut, "", &action, limit.owner};
  return std::nullopt;
}

FlowExecutor::FlowExecutor(ExecutorOptions options) : options_(std::move(options)) {}

FlowExecutor::~FlowExecutor() = default;

RunnerResult FlowExecutor::Run(const flow::FlowDefinition& flow,
                               std::map<std::string, std::string> inputs, absl::Time deadline) {
  return RunFrom(flow, std::move(inputs), deadline, Now());
}

RunnerResult FlowExecutor::RunFrom(const flow::FlowDefinition& flow,
                                   std::map<std::string, std::string> inputs, absl::Time deadline,
                                   absl::Time started) {
  Execution execution(options_, cancellation_, flow, deadline);
  return execution.Run(std::move(inputs), started);
}

absl::Time FlowExecutor::Now() const { return options_.clock ? options_.clock() : WallNow(); }

RunnerResult FlowExecutor::RunJson(absl::string_view definition_json,
                                   std::map<std::string, std::string> inputs, absl::Time deadline) {
  const absl::Time started = Now();
  absl::StatusOr<flow::FlowDefinition> flow = flow::ParseFlowDefinition(definition_json);
  if (!flow.ok()) {
    RunnerResult result;
    result.set_started_at_unix_ms(absl::ToUnixMillis(started));
    result.set_finished_at_unix_ms(absl::ToUnixMillis(Now()));
    result.set_state(proto::JOB_STATE_FAILED);
    result.mutable_error()->set_message(
        ToValidUtf8(absl::StrCat("invalid flow definition: ", flow.status().message())));
    return result;
  }
  return RunFrom(*flow, std::move(inputs), deadline, started);
}

void FlowExecutor::Cancel() { cancellation_.Cancel(); }

}  // namespace tether::agent
