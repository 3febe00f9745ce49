// account_file_tool: writes entries of the "file" account backend (file_verifier.h) for the dev
// stack and tests.
//
//   account_file_tool add FILE USERNAME [--password-file PATH]
//
// Adds USERNAME to FILE, or replaces its line, keeping every other line. The password comes from
// the first line of PATH (a 0600 file, or "-" for standard input; the line terminator is not part
// of it), or else is typed twice at a no-echo prompt when standard input is a terminal; never
// from a flag value. FILE is created if missing and is always rewritten with mode 0600 through a
// temporary file and rename, so readers see the old file or the new one. Two tools editing the
// same file at once may lose one of the edits (there is no lock; this is a developer's tool).
//
// Exit status: 0 done, 1 failed (the message says why), 2 usage error.
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "agent/accounts/file_verifier.h"
#include "common/base/status_macros.h"
#include "common/crypto/key_file.h"
#include "common/crypto/secret.h"

namespace tether::agent::accounts {
namespace {

constexpr std::size_t kMaxPasswordSize = 4096;
constexpr char kUsage[] =
    "usage: account_file_tool add FILE USERNAME [--password-file PATH|-]\n"
    "  Adds USERNAME to the account file FILE (mode 0600) or replaces its entry.\n"
    "  Without --password-file the password is typed twice at a prompt.\n";

// The first line of `data`, without its terminator.
crypto::SecretBytes FirstLine(const crypto::SecretBytes& data) {
  absl::string_view view = data.view();
  std::size_t end = view.find('\n');
  if (end == absl::string_view::npos) end = view.size();
  if (end > 0 && view[end - 1] == '\r') --end;
  return crypto::SecretBytes(view.substr(0, end));
}

// Reads `fd` up to the end of its first line (or EOF), at most kMaxPasswordSize bytes.
absl::StatusOr<crypto::SecretBytes> ReadLineFromFd(int fd) {
  crypto::SecretBytes line;
  while (true) {
    char c = 0;
    ssize_t n = read(fd, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return absl::UnavailableError(absl::StrCat("read: ", strerror(errno)));
    if (n == 0 || c == '\n') break;
    if (line.size() >= kMaxPasswordSize) {
      c = 0;
      return absl::InvalidArgumentError("the password is longer than 4096 bytes");
    }
    line.Append(absl::string_view(&c, 1));
    c = 0;
  }
  return FirstLine(line);
}

absl::StatusOr<crypto::SecretBytes> ReadPasswordFile(const std::string& path) {
  if (path == "-") return ReadLineFromFd(STDIN_FILENO);
  ASSIGN_OR_RETURN(crypto::SecretBytes data, crypto::ReadSecretFile(path));
  return FirstLine(data);
}

// The terminal state to restore if a signal arrives while echo is off.
struct termios g_saved_termios;
volatile sig_atomic_t g_echo_off = 0;

void RestoreTerminalAndReraise(int signal_number) {
  if (g_echo_off) tcsetattr(STDIN_FILENO, TCSANOW, &g_saved_termios);
  signal(signal_number, SIG_DFL);
  raise(signal_number);
}

absl::StatusOr<crypto::SecretBytes> PromptNoEcho(const char* prompt) {
  std::cerr << prompt << std::flush;
  struct termios quiet;
  if (tcgetattr(STDIN_FILENO, &g_saved_termios) != 0) {
    return absl::FailedPreconditionError(absl::StrCat("tcgetattr: ", strerror(errno)));
  }
  quiet = g_saved_termios;
  quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
  quiet.c_lflag |= ECHONL;
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) signal(s, RestoreTerminalAndReraise);
  g_echo_off = 1;
  if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) != 0) {
    g_echo_off = 0;
    return absl::FailedPreconditionError(absl::StrCat("tcsetattr: ", strerror(errno)));
  }
  absl::StatusOr<crypto::SecretBytes> line = ReadLineFromFd(STDIN_FILENO);
  tcsetattr(STDIN_FILENO, TCSAFLUSH, &g_saved_termios);
  g_echo_off = 0;
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) signal(s, SIG_DFL);
  return line;
}

absl::StatusOr<crypto::SecretBytes> PromptPassword(absl::string_view username) {
  if (!isatty(STDIN_FILENO)) {
    return absl::InvalidArgumentError(
        "standard input is not a terminal: pass --password-file PATH (or - for a pipe)");
  }
  const std::string prompt = absl::StrCat("Password for \"", username, "\": ");
  ASSIGN_OR_RETURN(crypto::SecretBytes first, PromptNoEcho(prompt.c_str()));
  ASSIGN_OR_RETURN(crypto::SecretBytes again, PromptNoEcho("Again: "));
  if (!crypto::ConstantTimeEquals(first.view(), again.view())) {
    return absl::InvalidArgumentError("the two passwords differ");
  }
  return first;
}

absl::Status Add(const std::string& path, const std::string& username,
                 const crypto::SecretBytes& password) {
  crypto::SecretBytes existing;
  absl::StatusOr<crypto::SecretBytes> read = crypto::ReadSecretFile(path);
  if (read.ok()) {
    existing = *std::move(read);
  } else if (!absl::IsNotFound(read.status())) {
    return read.status();
  }
  ASSIGN_OR_RETURN(std::string line, MakeFileAccountLine(username, password));
  absl::StatusOr<crypto::SecretBytes> updated =
      ReplaceFileAccountLine(existing.view(), username, line);
  if (!updated.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", updated.status().message()));
  }
  return crypto::WriteSecretFile(path, *updated, /*overwrite=*/true);
}

int Main(int argc, char** argv) {
  std::vector<std::string> positional;
  std::string password_file;
  bool have_password_file = false;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--password-file" || arg == "--password_file") {
      if (i + 1 >= argc) {
        std::cerr << kUsage;
        return 2;
      }
      password_file = argv[++i];
      have_password_file = true;
    } else if (absl::ConsumePrefix(&arg, "--password-file=") ||
               absl::ConsumePrefix(&arg, "--password_file=")) {
      password_file = std::string(arg);
      have_password_file = true;
    } else if (arg == "-h" || arg == "--help") {
      std::cout << kUsage;
      return 0;
    } else if (absl::StartsWith(arg, "--")) {
      std::cerr << "account_file_tool: unknown flag " << arg << "\n" << kUsage;
      return 2;
    } else {
      positional.emplace_back(arg);
    }
  }
  if (positional.size() != 3 || positional[0] != "add") {
    std::cerr << kUsage;
    return 2;
  }
  const std::string& path = positional[1];
  const std::string& username = positional[2];

  absl::StatusOr<crypto::SecretBytes> password =
      have_password_file ? ReadPasswordFile(password_file) : PromptPassword(username);
  if (!password.ok()) {
    std::cerr << "account_file_tool: " << password.status().message() << "\n";
    return 1;
  }
  if (absl::Status status = Add(path, username, *password); !status.ok()) {
    std::cerr << "account_file_tool: " << status.message() << "\n";
    return 1;
  }
  std::cerr << "account_file_tool: wrote the entry of \"" << username << "\" to " << path << "\n";
  return 0;
}

}  // namespace
}  // namespace tether::agent::accounts

int main(int argc, char** argv) { return tether::agent::accounts::Main(argc, argv); }
