#include "agent/runner/child_process.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <optional>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "agent/runner/line_splitter.h"

namespace tether::agent {
namespace {

constexpr size_t kReadChunkBytes = 64 << 10;

// Without a pidfd the loop cannot wait for the program's exit directly; it then looks every so
// often (kernels before 5.3 only).
constexpr int kExitPollFallbackMs = 20;

// Owns a file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  ~Fd() { Reset(); }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void Reset() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

bool MakePipe(Fd& read_end, Fd& write_end) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return false;
  read_end = Fd(fds[0]);
  write_end = Fd(fds[1]);
  return true;
}

// Milliseconds for poll(2) until `deadline`: -1 for none, rounded up so that it never spins.
int PollTimeoutMs(absl::Time deadline, absl::Time now) {
  if (deadline == absl::InfiniteFuture()) return -1;
  if (deadline <= now) return 0;
  const int64_t ms = absl::ToInt64Milliseconds(absl::Ceil(deadline - now, absl::Milliseconds(1)));
  return static_cast<int>(std::min<int64_t>(ms, INT_MAX));
}

// What the child reports through the exec-error pipe when it cannot start the program.
struct StartFailure {
  int32_t stage;  // kStageChdir or kStageExec
  int32_t error_number;
};
constexpr int32_t kStageChdir = 1;
constexpr int32_t kStageExec = 2;

// In the child between fork and exec: async-signal-safe calls only.
[[noreturn]] void ChildAfterFork(pid_t parent, int null_fd, int out_fd, int err_fd, int report_fd,
                                 const char* path, char* const* argv,
                                 const char* working_directory) {
  auto report = [&](int32_t stage) {
    StartFailure failure{stage, errno};
    ssize_t ignored = write(report_fd, &failure, sizeof failure);
    (void)ignored;
    _exit(127);
  };
  // Dispositions the runner set (SIGTERM handler, SIGPIPE ignored) must not reach the program:
  // ignored signals stay ignored across exec.
  struct sigaction default_action = {};
  default_action.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &default_action, nullptr);
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);

  setpgid(0, 0);
  // If the runner dies without cleaning up (SIGKILL), the program goes with it.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(127);

  // Move the descriptors above 2 first so that installing 0, 1 and 2 cannot clobber one of them.
  null_fd = fcntl(null_fd, F_DUPFD_CLOEXEC, 3);
  out_fd = fcntl(out_fd, F_DUPFD_CLOEXEC, 3);
  err_fd = fcntl(err_fd, F_DUPFD_CLOEXEC, 3);
  if (null_fd < 0 || out_fd < 0 || err_fd < 0) report(kStageExec);
  if (dup2(null_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0) report(kStageExec);
  // Whatever else the runner inherited (its protocol pipes included) is closed by exec.
  if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
    for (int fd = 3; fd < 4096; ++fd) fcntl(fd, F_SETFD, FD_CLOEXEC);  // kernels before 5.11
  }

  if (working_directory != nullptr && chdir(working_directory) != 0) report(kStageChdir);
  execv(path, argv);
  report(kStageExec);
  _exit(127);  // not reached
}

// Reads what is available from `fd` and hands it to `sink`. Returns false at end of file (or on
// an error other than EINTR/EAGAIN).
template <typename Sink>
bool ReadAvailable(int fd, char* buffer, Sink&& sink, bool until_empty) {
  while (true) {
    const ssize_t n = read(fd, buffer, kReadChunkBytes);
    if (n > 0) {
      if (!sink(absl::string_view(buffer, static_cast<size_t>(n)))) return true;
      if (!until_empty) return true;
      continue;
    }
    if (n == 0) return false;
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK;
  }
}

}  // namespace

std::string ErrnoText(int error_number) {
  return std::error_code(error_number, std::generic_category()).message();
}

Cancellation::Cancellation() {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
    status_ = absl::InternalError(absl::StrCat("cannot create a pipe: ", ErrnoText(errno)));
    return;
  }
  wake_read_ = fds[0];
  wake_write_ = fds[1];
}

Cancellation::~Cancellation() {
  if (wake_read_ >= 0) close(wake_read_);
  if (wake_write_ >= 0) close(wake_write_);
}

void Cancellation::Cancel() {
  const int saved_errno = errno;  // a signal handler must not change errno
  cancelled_.store(true);
  if (wake_write_ >= 0) {
    const char byte = 1;
    ssize_t ignored = write(wake_write_, &byte, 1);  // EAGAIN: already readable, fine
    (void)ignored;
  }
  const pid_t group = process_group_.load();
  if (group > 0) kill(-group, SIGKILL);
  errno = saved_errno;
}

void Cancellation::PublishProcessGroup(pid_t pgid) { process_group_.store(pgid); }

void Cancellation::ClearProcessGroup() { process_group_.store(0); }

bool Cancellation::SleepUntil(absl::Time until, const std::function<absl::Time()>& clock) const {
  while (!cancelled()) {
    const absl::Time now = clock();
    if (now >= until) return true;
    struct pollfd pfd = {wake_read_, POLLIN, 0};
    poll(&pfd, wake_read_ >= 0 ? 1 : 0, PollTimeoutMs(until, now));
  }
  return false;
}

ChildOutcome RunChildProcess(const ChildProcessSpec& spec, Cancellation& cancellation,
                             const std::function<absl::Time()>& clock,
                             const std::function<void(ChildStream, absl::string_view)>& on_line) {
  ChildOutcome outcome;
  auto not_started = [&](absl::string_view what, int error_number) {
    outcome.ending = ChildOutcome::Ending::kNotStarted;
    outcome.error = absl::StrCat(what, ": ", ErrnoText(error_number));
    return outcome;
  };
  const std::string cannot_run = absl::StrCat("cannot run ", spec.path);

  // Everything the child needs is prepared before fork: it may not allocate.
  std::vector<std::string> argv_storage = spec.argv;
  if (argv_storage.empty()) argv_storage.push_back(spec.path);
  std::vector<char*> argv;
  for (std::string& arg : argv_storage) argv.push_back(arg.data());
  argv.push_back(nullptr);
  const char* working_directory =
      spec.working_directory.empty() ? nullptr : spec.working_directory.c_str();

  Fd null_fd(open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!null_fd.valid()) return not_started(absl::StrCat(cannot_run, ": /dev/null"), errno);
  Fd out_read, out_write, err_read, err_write, report_read, report_write;
  if (!MakePipe(out_read, out_write) || !MakePipe(err_read, err_write) ||
      !MakePipe(report_read, report_write)) {
    return not_started(absl::StrCat(cannot_run, ": pipe"), errno);
  }

  // Signals stay blocked across fork so that no handler of the runner runs in the child.
  sigset_t all, saved;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &saved);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    ChildAfterFork(parent, null_fd.get(), out_write.get(), err_write.get(), report_write.get(),
                   spec.path.c_str(), argv.data(), working_directory);
  }
  const int fork_errno = errno;
  if (pid > 0) setpgid(pid, pid);  // also done by the child; whichever runs first wins the race
  pthread_sigmask(SIG_SETMASK, &saved, nullptr);
  if (pid < 0) return not_started(absl::StrCat(cannot_run, ": fork"), fork_errno);

  cancellation.PublishProcessGroup(pid);
  if (cancellation.cancelled()) kill(-pid, SIGKILL);  // Cancel() ran before the group was known
  null_fd.Reset();
  out_write.Reset();
  err_write.Reset();
  report_write.Reset();

  // Blocks until exec succeeded (the pipe closes) or the child reports why it failed.
  StartFailure failure{};
  size_t got = 0;
  while (got < sizeof failure) {
    const ssize_t n =
        read(report_read.get(), reinterpret_cast<char*>(&failure) + got, sizeof failure - got);
    if (n > 0) {
      got += static_cast<size_t>(n);
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  report_read.Reset();
  if (got == sizeof failure) {
    cancellation.ClearProcessGroup();
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (failure.stage == kStageChdir) {
      return not_started(
          absl::StrCat("cannot change to working directory ", spec.working_directory),
          failure.error_number);
    }
    return not_started(cannot_run, failure.error_number);
  }

  // Readable once the program has exited. (glibc 2.36's <sys/pidfd.h> lacks extern "C", hence the
  // raw system call.)
  Fd exit_fd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
  std::string buffer(kReadChunkBytes, '\0');
  LineSplitter stdout_lines([&](absl::string_view line) { on_line(ChildStream::kStdout, line); });
  LineSplitter stderr_lines([&](absl::string_view line) { on_line(ChildStream::kStderr, line); });
  bool too_large = false;
  auto on_stdout = [&](absl::string_view bytes) {
    stdout_lines.Append(bytes);
    if (spec.capture_stdout) {
      if (outcome.captured_stdout.size() + bytes.size() > spec.capture_limit) {
        too_large = true;
        return false;
      }
      outcome.captured_stdout.append(bytes.data(), bytes.size());
    }
    return true;
  };
  auto on_stderr = [&](absl::string_view bytes) {
    stderr_lines.Append(bytes);
    return true;
  };
  auto drain = [&] {
    for (Fd* fd : {&out_read, &err_read}) {
      if (!fd->valid()) continue;
      fcntl(fd->get(), F_SETFL, fcntl(fd->get(), F_GETFL) | O_NONBLOCK);
      const bool is_stdout = fd == &out_read;
      if (is_stdout) {
        ReadAvailable(fd->get(), buffer.data(), on_stdout, /*until_empty=*/true);
      } else {
        ReadAvailable(fd->get(), buffer.data(), on_stderr, /*until_empty=*/true);
      }
      fd->Reset();
    }
  };

  // The loop ends when the program has exited (exited = true) or has to be stopped.
  bool exited = false;
  std::optional<ChildOutcome::Ending> stopped;
  while (!exited && !stopped) {
    struct pollfd fds[4];
    nfds_t count = 0;
    int out_slot = -1, err_slot = -1, exit_slot = -1;
    if (out_read.valid()) {
      out_slot = static_cast<int>(count);
      fds[count++] = {out_read.get(), POLLIN, 0};
    }
    if (err_read.valid()) {
      err_slot = static_cast<int>(count);
      fds[count++] = {err_read.get(), POLLIN, 0};
    }
    if (exit_fd.valid()) {
      exit_slot = static_cast<int>(count);
      fds[count++] = {exit_fd.get(), POLLIN, 0};
    }
    if (cancellation.wake_fd() >= 0) fds[count++] = {cancellation.wake_fd(), POLLIN, 0};
    int timeout = PollTimeoutMs(spec.deadline, clock());
    if (!exit_fd.valid() && (timeout < 0 || timeout > kExitPollFallbackMs)) {
      timeout = kExitPollFallbackMs;
    }
    const int ready = poll(fds, count, timeout);
    if (ready < 0 && errno != EINTR) {
      outcome.error = absl::StrCat("cannot watch ", spec.path, ": poll: ", ErrnoText(errno));
      stopped = ChildOutcome::Ending::kWatchFailed;
      break;
    }
    if (cancellation.cancelled()) {
      stopped = ChildOutcome::Ending::kCancelled;
      break;
    }
    if (ready > 0) {
      if (out_slot >= 0 && fds[out_slot].revents != 0) {
        if (!ReadAvailable(out_read.get(), buffer.data(), on_stdout, /*until_empty=*/false)) {
          out_read.Reset();
        }
        if (too_large) {
          stopped = ChildOutcome::Ending::kOutputTooLarge;
          break;
        }
      }
      if (err_slot >= 0 && fds[err_slot].revents != 0) {
        if (!ReadAvailable(err_read.get(), buffer.data(), on_stderr, /*until_empty=*/false)) {
          err_read.Reset();
        }
      }
      if (exit_slot >= 0 && fds[exit_slot].revents != 0) exited = true;
    }
    if (!exit_fd.valid()) {
      siginfo_t info = {};
      if (waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
          info.si_pid == pid) {
        exited = true;
      }
    }
    if (!exited && clock() >= spec.deadline) stopped = ChildOutcome::Ending::kDeadline;
  }

  // The program has exited or is being stopped: kill what is left of its group while the
  // (possibly zombie) leader still holds the group id, then reap it.
  kill(-pid, SIGKILL);
  cancellation.ClearProcessGroup();
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  exit_fd.Reset();
  if (stopped == ChildOutcome::Ending::kOutputTooLarge) {
    out_read.Reset();
    err_read.Reset();
  } else {
    drain();  // what the program wrote before it ended is still in the pipes
  }
  stdout_lines.Finish();
  stderr_lines.Finish();

  if (!stopped && too_large) stopped = ChildOutcome::Ending::kOutputTooLarge;
  if (stopped) {
    outcome.ending = *stopped;
  } else if (WIFEXITED(status)) {
    outcome.ending = ChildOutcome::Ending::kExited;
    outcome.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    outcome.ending = ChildOutcome::Ending::kSignaled;
    outcome.signal = WTERMSIG(status);
  }
  return outcome;
}

}  // namespace tether::agent
