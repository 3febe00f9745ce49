// FlowExecutor: runs one desktop flow (docs/FLOWS.md) in the calling thread and reports what
// happens as JobEvents and a RunnerResult. The semantics the format leaves open are written down in
// agent/runner/README.md. //agent/runner:flow_runner wraps it in the agent's pipe protocol.
//
//   FlowExecutor executor({.on_event = [&](proto::JobEvent e) { Send(e); }});
//   RunnerResult result = executor.RunJson(json, inputs, WallNow() + absl::Minutes(5));
//   // from another thread or a SIGTERM handler: executor.Cancel();
#ifndef TETHER_AGENT_RUNNER_FLOW_EXECUTOR_H_
#define TETHER_AGENT_RUNNER_FLOW_EXECUTOR_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/runner/child_process.h"
#include "agent/runner/runner.pb.h"
#include "common/flow/flow_definition.h"
#include "common/proto/job.pb.h"

namespace tether::agent {

// Used when ExecutorOptions::max_capture_bytes is 0.
inline constexpr uint64_t kDefaultMaxCaptureBytes = 1 << 20;

struct ExecutorOptions {
  // The largest stdout a System.RunApplication may capture into its stdout_variable, the largest
  // file File.ReadText reads, and the largest value Variables.SetVariable may assign. 0 means
  // kDefaultMaxCaptureBytes.
  uint64_t max_capture_bytes = 0;
  // Relative paths in actions are resolved against this directory, and System.RunApplication
  // runs in it unless the action names another. "" = the process's current directory.
  std::string working_directory;
  // Receives every event, in order, on the thread that called Run. The executor fills the kind
  // and timestamp_unix_ms; job_id and seq are left for the caller. May be empty.
  std::function<void(proto::JobEvent)> on_event;
  // Time source for timestamps, durations, timeouts and waits; empty = WallNow(). Waits block on
  // real time, so an injected clock must advance with it.
  std::function<absl::Time()> clock;
};

// Executes flows. Run blocks until the flow has ended and every program it started has been
// reaped. Run may be called again after it returned, but not concurrently. Cancel() is sticky:
// once called, this executor's runs end as CANCELLED.
class FlowExecutor {
 public:
  explicit FlowExecutor(ExecutorOptions options);
  ~FlowExecutor();
  FlowExecutor(const FlowExecutor&) = delete;
  FlowExecutor& operator=(const FlowExecutor&) = delete;

  // Runs `flow` with `inputs` (checked and completed with ResolveRunInputs first: bad inputs give
  // FAILED without running any action) until it ends or `deadline` passes
  // (absl::InfiniteFuture() = no limit). The result's state is
  //   SUCCEEDED  every action finished;
  //   FAILED     an action failed (the first failure stops the flow; error names that action), or
  //              the inputs or the working directory are bad (error without an action);
  //   CANCELLED  Cancel() was called (error names the action that was running, if any);
  //   TIMED_OUT  `deadline` passed (error names the action that was running).
  // outputs holds the declared outputs whose variables have a value at the end, in every state.
  RunnerResult Run(const flow::FlowDefinition& flow, std::map<std::string, std::string> inputs,
                   absl::Time deadline);

  // ParseFlowDefinition(definition_json), then Run. An invalid definition gives FAILED with the
  // parser's message and runs nothing.
  RunnerResult RunJson(absl::string_view definition_json, std::map<std::string, std::string> inputs,
                       absl::Time deadline);

  // Stops the current run (or the next one, if none is running): sets a flag that every wait
  // watches and SIGKILLs the process group of the running program, if any. Thread-safe and
  // async-signal-safe, so a SIGTERM handler may call it.
  void Cancel();

 private:
  class Execution;

  RunnerResult RunFrom(const flow::FlowDefinition& flow, std::map<std::string, std::string> inputs,
                       absl::Time deadline, absl::Time started);
  absl::Time Now() const;

  ExecutorOptions options_;
  Cancellation cancellation_;
};

}  // namespace tether::agent

#endif  // TETHER_AGENT_RUNNER_FLOW_EXECUTOR_H_
