// Following a run: its RunEvents rendered as progress lines (or JSON lines), the final summary,
// and the exit code its final state maps to. Shared by `tetherctl run --wait` and
// `tetherctl runs logs`.
#ifndef TETHER_TOOLS_TETHERCTL_RUN_WATCH_H_
#define TETHER_TOOLS_TETHERCTL_RUN_WATCH_H_

#include <optional>
#include <ostream>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/proto/cloud.pb.h"
#include "tools/tetherctl/client.h"

namespace tether::tetherctl {

bool IsTerminal(proto::RunState state);

// 0 for SUCCEEDED, kExitRunFailed for FAILED, kExitRunCancelled for CANCELLED and TIMED_OUT;
// 0 for a state that is not terminal.
int ExitCodeForRunState(proto::RunState state);

// "succeeded", "timed_out", ...
std::string RunStateLabel(proto::RunState state);

// Renders a run's events as they arrive. For people, one line per state change, action started or
// finished ("[index] name ok|fail (duration)"), log line (prefixed by its stream) and output, then
// a summary once the run is terminal (state, duration, outputs, error). With `json`, each event is
// one line of JSON. Not thread-safe.
class RunEventPrinter {
 public:
  RunEventPrinter(std::ostream& out, bool json) : out_(out), json_(json) {}

  absl::Status Print(const proto::RunEvent& event);
  // The run as of the last state_changed event, if there was one.
  const std::optional<proto::Run>& run() const { return run_; }

 private:
  void PrintStateChange(const proto::Run& run);
  void PrintSummary(const proto::Run& run);

  std::ostream& out_;
  const bool json_;
  std::optional<proto::Run> run_;
  std::string last_state_line_;
};

struct FollowOptions {
  // Keep following until the run is terminal. When false, show what the cloud has recorded so
  // far and stop (WatchRunRequest.recorded_only).
  bool until_terminal = true;
  // A stream broken by UNAVAILABLE is resumed (from the last event seen) this many times in a row.
  int max_reconnects = 5;
};

// Streams the events of `run_id` (WatchRun) into `printer` and returns the run as it is at the
// end (from the last state change, or GetRun).
absl::StatusOr<proto::Run> FollowRun(const CloudClient& client, const std::string& run_id,
                                     const FollowOptions& options, RunEventPrinter& printer);

}  // namespace tether::tetherctl

#endif  // TETHER_TOOLS_TETHERCTL_RUN_WATCH_H_
