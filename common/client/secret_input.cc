#include "common/client/secret_input.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <istream>
#include <ostream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/crypto/key_file.h"

namespace tether::client {
namespace {

constexpr size_t kMaxSecretLine = 64 << 10;
constexpr int kRestoreSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

// The terminal state to put back if a signal arrives while echo is off.
struct termios g_saved_termios;
volatile sig_atomic_t g_saved_fd = -1;

void RestoreTerminalAndReraise(int signal_number) {
  if (g_saved_fd >= 0) tcsetattr(g_saved_fd, TCSANOW, &g_saved_termios);
  struct sigaction fallback = {};
  fallback.sa_handler = SIG_DFL;
  sigaction(signal_number, &fallback, nullptr);
  raise(signal_number);
}

// Turns echo off for its lifetime.
class EchoOff {
 public:
  explicit EchoOff(int fd) : fd_(fd) {
    if (tcgetattr(fd_, &saved_) != 0) return;
    struct termios quiet = saved_;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    quiet.c_lflag |= ECHONL;
    g_saved_termios = saved_;
    g_saved_fd = fd_;
    struct sigaction action = {};
    action.sa_handler = RestoreTerminalAndReraise;
    for (size_t i = 0; i < std::size(kRestoreSignals); ++i) {
      sigaction(kRestoreSignals[i], &action, &previous_[i]);
    }
    active_ = tcsetattr(fd_, TCSAFLUSH, &quiet) == 0;
  }
  ~EchoOff() {
    if (g_saved_fd < 0) return;
    if (active_) tcsetattr(fd_, TCSAFLUSH, &saved_);
    g_saved_fd = -1;
    for (size_t i = 0; i < std::size(kRestoreSignals); ++i) {
      sigaction(kRestoreSignals[i], &previous_[i], nullptr);
    }
  }
  EchoOff(const EchoOff&) = delete;
  EchoOff& operator=(const EchoOff&) = delete;

 private:
  int fd_;
  bool active_ = false;
  struct termios saved_ = {};
  struct sigaction previous_[std::size(kRestoreSignals)] = {};
};

// Cuts `secret` at its first line terminator and drops trailing spaces and tabs.
void KeepFirstLine(crypto::SecretBytes* secret) {
  absl::string_view view = secret->view();
  size_t end = view.find_first_of("\r\n");
  if (end == absl::string_view::npos) end = view.size();
  while (end > 0 && (view[end - 1] == ' ' || view[end - 1] == '\t')) --end;
  crypto::SecretBytes line(view.substr(0, end));
  *secret = std::move(line);
}

// Reads a pipe or character device to EOF (at most kMaxSecretLine bytes).
absl::StatusOr<crypto::SecretBytes> ReadStream(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    return absl::InvalidArgumentError(absl::StrCat("cannot open ", path, ": ", strerror(errno)));
  }
  crypto::SecretBytes data(kMaxSecretLine);
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = read(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      close(fd);
      return absl::InvalidArgumentError(absl::StrCat("cannot read ", path, ": ", strerror(err)));
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
    // One line is all that is wanted: stop at its end rather than waiting for EOF.
    if (data.view().substr(0, done).find('\n') != absl::string_view::npos) break;
  }
  close(fd);
  data.Resize(done);
  return data;
}

}  // namespace

SecretPrompt TerminalPrompt(std::istream& in, std::ostream& err, int tty_fd) {
  return [&in, &err, tty_fd](absl::string_view prompt) -> absl::StatusOr<crypto::SecretBytes> {
    err << prompt << std::flush;
    crypto::SecretBytes line;
    bool got_newline = false;
    {
      EchoOff quiet(tty_fd);
      char c;
      while (in.get(c)) {
        if (c == '\n') {
          got_newline = true;
          break;
        }
        if (line.size() >= kMaxSecretLine) {
          return absl::InvalidArgumentError("the line typed is too long");
        }
        line.Append(absl::string_view(&c, 1));
      }
      c = 0;
    }
    if (!got_newline && line.empty()) return absl::InvalidArgumentError("no input (end of file)");
    KeepFirstLine(&line);
    return line;
  };
}

absl::StatusOr<crypto::SecretBytes> ReadSecretLine(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read ", path, ": ", strerror(errno)));
  }
  absl::StatusOr<crypto::SecretBytes> data;
  if (S_ISREG(st.st_mode)) {
    data = crypto::ReadSecretFile(path);
    if (absl::IsPermissionDenied(data.status())) {
      return absl::FailedPreconditionError(std::string(data.status().message()));
    }
  } else if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode)) {
    data = ReadStream(path);
  } else {
    return absl::InvalidArgumentError(absl::StrCat(path, " is not a file"));
  }
  if (!data.ok()) return absl::InvalidArgumentError(std::string(data.status().message()));
  KeepFirstLine(&*data);
  if (data->empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": the first line is empty"));
  return data;
}

}  // namespace tether::client
