// How the CLIs read secrets (API tokens, account, group and recovery passwords): from a file named by a
// flag, or typed at a prompt with the terminal's echo off. Never from a flag value or an
// environment variable, which other local users can read from /proc and which land in shell
// history.
#ifndef TETHER_COMMON_CLIENT_SECRET_INPUT_H_
#define TETHER_COMMON_CLIENT_SECRET_INPUT_H_

#include <functional>
#include <iosfwd>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/crypto/secret.h"

namespace tether::client {

// Shows `prompt` and reads one line without echoing it; the line terminator is not included.
using SecretPrompt = std::function<absl::StatusOr<crypto::SecretBytes>(absl::string_view prompt)>;

// A SecretPrompt for a terminal: writes the prompt to `err`, turns echo off on `tty_fd` (restored
// afterwards, and on SIGINT/SIGTERM/SIGHUP/SIGQUIT before the signal's default action), reads a
// line from `in`. Not thread-safe (the terminal is process-wide state).
SecretPrompt TerminalPrompt(std::istream& in, std::ostream& err, int tty_fd);

// The first line of `path`, without its line terminator and trailing spaces. A regular file must
// be private to the caller (mode 0600 or stricter, as crypto::ReadSecretFile demands); a pipe or a
// character device (e.g. /dev/stdin, a shell's <(...)) is read as it is. Errors are
// kInvalidArgument / kFailedPrecondition with the path named; an empty first line is
// kInvalidArgument.
absl::StatusOr<crypto::SecretBytes> ReadSecretLine(const std::string& path);

}  // namespace tether::client

#endif  // TETHER_COMMON_CLIENT_SECRET_INPUT_H_
