// Running one program for System.RunApplication: fork/exec without a shell, output streamed line
// by line, stdout optionally captured with a limit, stopped at a deadline or on cancellation, and
// always reaped. Also Cancellation, the flag that stops a run's waits and its running program.
#ifndef TETHER_AGENT_RUNNER_CHILD_PROCESS_H_
#define TETHER_AGENT_RUNNER_CHILD_PROCESS_H_

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace tether::agent {

// The cancel flag of a flow run. Cancel() may be called from any thread and from a signal handler:
// it sets the flag, makes wake_fd() readable and SIGKILLs the process group of the program
// RunChildProcess is running, if any. Cancellation is sticky. The other methods are for the
// thread running the flow.
class Cancellation {
 public:
  Cancellation();
  ~Cancellation();
  Cancellation(const Cancellation&) = delete;
  Cancellation& operator=(const Cancellation&) = delete;

  // Not OK when the wake-up pipe could not be created; waits then cannot be interrupted, and the
  // executor refuses to run.
  const absl::Status& status() const { return status_; }

  // Thread-safe and async-signal-safe (atomics, write(2) and kill(2) only).
  void Cancel();
  bool cancelled() const { return cancelled_.load(); }

  // Readable once Cancel() has been called (and stays readable).
  int wake_fd() const { return wake_read_; }

  // Blocks until `clock()` reaches `until` or Cancel() is called, without spinning. Returns false
  // if cancelled.
  bool SleepUntil(absl::Time until, const std::function<absl::Time()>& clock) const;

  // RunChildProcess publishes the process group of the program it runs (its pid), and clears it
  // before reaping the program so that Cancel() never signals a reused id.
  void PublishProcessGroup(pid_t pgid);
  void ClearProcessGroup();

 private:
  std::atomic<bool> cancelled_{false};
  std::atomic<pid_t> process_group_{0};
  int wake_read_ = -1;
  int wake_write_ = -1;
  absl::Status status_;
};

// What to run. The program is executed as given (execv: no PATH search, no shell), in its own
// process group, with stdin from /dev/null, the runner's environment, default signal dispositions
// and no file descriptors but 0, 1 and 2.
struct ChildProcessSpec {
  std::string path;
  std::vector<std::string> argv;  // argv[0] included
  std::string working_directory;  // "" = the runner's
  // Keep stdout in ChildOutcome::captured_stdout; more than capture_limit bytes stops the program.
  bool capture_stdout = false;
  size_t capture_limit = 0;
  // When the program is stopped if it has not ended yet.
  absl::Time deadline = absl::InfiniteFuture();
};

enum class ChildStream { kStdout, kStderr };

struct ChildOutcome {
  enum class Ending {
    kExited,          // exit_code holds its exit status
    kSignaled,        // killed by `signal` (not by us)
    kNotStarted,      // fork, chdir or exec failed; see error
    kOutputTooLarge,  // stdout exceeded capture_limit; killed
    kDeadline,        // still running at the deadline; killed
    kCancelled,       // Cancel() was called; killed
    kWatchFailed,     // the runner could not wait for it (poll failed); killed; see error
  };
  Ending ending = Ending::kExited;
  int exit_code = 0;
  int signal = 0;
  std::string error;  // kNotStarted: e.g. "cannot run /x: No such file or directory"
  std::string captured_stdout;
};

// Runs `spec` to its end and reaps it; the calling thread blocks meanwhile. Each line the program
// writes to stdout or stderr is passed to `on_line` as it arrives (LineSplitter: no terminator,
// long lines in pieces). When the program exits, what is left of its process group is killed, so
// background processes do not outlive it; when it is stopped (deadline, cancellation, capture
// limit), its whole process group is killed with SIGKILL. No descriptor or zombie is left behind.
ChildOutcome RunChildProcess(const ChildProcessSpec& spec, Cancellation& cancellation,
                             const std::function<absl::Time()>& clock,
                             const std::function<void(ChildStream, absl::string_view)>& on_line);

// strerror(3) text for an errno value, thread-safe.
std::string ErrnoText(int error_number);

}  // namespace tether::agent

#endif  // TETHER_AGENT_RUNNER_CHILD_PROCESS_H_
