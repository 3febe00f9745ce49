// tetherctl, the user's command-line client of the Tether cloud (docs/TETHERCTL.md): log in,
// manage machines, groups, connections (credentials sealed on this side) and flows, start runs and
// follow them. main.cc is a thin wrapper around RunTetherctl, which tests call directly.
#ifndef TETHER_TOOLS_TETHERCTL_TETHERCTL_H_
#define TETHER_TOOLS_TETHERCTL_TETHERCTL_H_

#include <istream>
#include <ostream>
#include <string>
#include <vector>

#include "tools/tetherctl/config.h"
#include "tools/tetherctl/client.h"

namespace tether::tetherctl {

struct TetherctlIo {
  std::istream* in = nullptr;
  std::ostream* out = nullptr;   // answers (tables, JSON, tokens shown once)
  std::ostream* err = nullptr;   // errors (one line each), prompts, notes
  // Reads a secret without echo; empty when stdin is not a terminal (then secrets come only from
  // the --*-file flags).
  SecretPrompt prompt;
  Environment env;  // where the config file is looked for
};

// Runs one command; `args` excludes the program name. Returns the exit code (docs/TETHERCTL.md).
int RunTetherctl(const std::vector<std::string>& args, const TetherctlIo& io);

// The same, for a process: the environment is the process's, and secrets are prompted for on the
// terminal when `in` is std::cin and stdin is a terminal.
int RunTetherctl(const std::vector<std::string>& args, std::istream& in, std::ostream& out,
                 std::ostream& err);

}  // namespace tether::tetherctl

#endif  // TETHER_TOOLS_TETHERCTL_TETHERCTL_H_
