#include "tools/tetherctl/tetherctl.h"

#include <unistd.h>

#include <iostream>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "tools/tetherctl/commands.h"

namespace tether::tetherctl {
namespace {

constexpr char kGlobalFlagsHelp[] =
    "global flags:\n"
    "  --json          print the cloud's answers as JSON (one object a line) for scripts\n"
    "  --config FILE   config file (default $TETHER_CONFIG, else\n"
    "                  $XDG_CONFIG_HOME/tether/tetherctl.conf, else ~/.config/tether/tetherctl.conf)\n"
    "  --help, -h      help for any command\n";

constexpr char kExitCodesHelp[] =
    "exit codes: 0 ok; 1 usage or invalid argument; 2 not found; 3 not logged in, bad token or\n"
    "permission denied; 4 cloud unreachable; 5 the run failed; 6 the run was cancelled or timed\n"
    "out; 7 internal error (docs/TETHERCTL.md)\n";

std::vector<std::string> Words(absl::string_view name) { return absl::StrSplit(name, ' '); }

std::string Usage(const Command& command) {
  std::string usage = absl::StrCat("tetherctl ", command.name);
  if (!command.arguments.empty()) absl::StrAppend(&usage, " ", command.arguments);
  for (const FlagSpec& flag : command.flags) {
    absl::StrAppend(&usage, flag.required ? " --" : " [--", flag.name);
    if (!flag.value_name.empty()) absl::StrAppend(&usage, " ", flag.value_name);
    if (!flag.required) absl::StrAppend(&usage, "]");
    if (flag.repeated) absl::StrAppend(&usage, "...");
  }
  return usage;
}

void PrintCommandHelp(const Command& command, std::ostream& out) {
  out << "usage: " << Usage(command) << "\n\n" << command.summary << "\n";
  if (!command.details.empty()) out << "\n" << command.details;
  if (!command.flags.empty()) {
    out << "\nflags:\n";
    size_t width = 0;
    std::vector<std::string> lefts;
    for (const FlagSpec& flag : command.flags) {
      lefts.push_back(absl::StrCat("--", flag.name,
                                   flag.value_name.empty() ? "" : absl::StrCat(" ", flag.value_name)));
      width = std::max(width, lefts.back().size());
    }
    for (size_t i = 0; i < command.flags.size(); ++i) {
      out << "  " << lefts[i] << std::string(width - lefts[i].size() + 2, ' ')
          << command.flags[i].help << "\n";
    }
  }
  out << "\n" << kGlobalFlagsHelp;
}

// The help of every command whose name starts with `prefix` (all of them for an empty prefix).
void PrintCommandList(absl::string_view prefix, std::ostream& out) {
  out << "usage: tetherctl [--json] [--config FILE] COMMAND ...\n\n"
         "The Tether cloud from the command line. Credentials are sealed on this machine to the\n"
         "target's public key before they are sent: the cloud never sees a password.\n\ncommands:\n";
  size_t width = 0;
  for (const Command& c : AllCommands()) {
    if (absl::StartsWith(c.name, prefix)) width = std::max(width, c.name.size() + 1 + c.arguments.size());
  }
  for (const Command& c : AllCommands()) {
    if (!absl::StartsWith(c.name, prefix)) continue;
    const std::string left = absl::StrCat(c.name, " ", c.arguments);
    out << "  " << left << std::string(width - left.size() + 2, ' ') << c.summary << "\n";
  }
  out << "\n'tetherctl COMMAND --help' shows a command's flags.\n\n" << kGlobalFlagsHelp << "\n"
      << kExitCodesHelp;
}

int Fail(std::ostream& err, const absl::Status& status) {
  // One line, whatever the message holds.
  err << "tetherctl: " << absl::StrReplaceAll(status.message(), {{"\n", " "}, {"\r", " "}}) << "\n";
  return ExitCodeFor(status);
}

// The command `words` begin with (the longest match), and how many words it took.
const Command* FindCommand(const std::vector<std::string>& words, size_t* taken) {
  const Command* best = nullptr;
  *taken = 0;
  for (const Command& command : AllCommands()) {
    const std::vector<std::string> name = Words(command.name);
    if (name.size() > words.size() || name.size() <= *taken) continue;
    if (std::equal(name.begin(), name.end(), words.begin())) {
      best = &command;
      *taken = name.size();
    }
  }
  return best;
}

}  // namespace

int RunTetherctl(const std::vector<std::string>& args, const TetherctlIo& io) {
  std::ostream& out = *io.out;
  std::ostream& err = *io.err;
  GlobalFlags globals;
  absl::StatusOr<std::vector<std::string>> rest = ExtractGlobalFlags(args, &globals);
  if (!rest.ok()) return Fail(err, rest.status());

  const bool asked_for_help = globals.help || (!rest->empty() && (*rest)[0] == "help");
  if (!rest->empty() && (*rest)[0] == "help") rest->erase(rest->begin());
  size_t taken = 0;
  const Command* command = FindCommand(*rest, &taken);
  if (command == nullptr) {
    if (rest->empty()) {
      PrintCommandList("", asked_for_help ? out : err);
      return asked_for_help ? kExitOk : kExitUsage;
    }
    const std::string group = absl::StrCat((*rest)[0], " ");
    bool is_group = false;
    for (const Command& c : AllCommands()) is_group |= absl::StartsWith(c.name, group);
    if (is_group && asked_for_help) {
      PrintCommandList(group, out);
      return kExitOk;
    }
    if (is_group) {
      std::set<std::string> subcommands;
      for (const Command& c : AllCommands()) {
        if (absl::StartsWith(c.name, group)) subcommands.insert(c.name.substr(group.size()));
      }
      const std::string what = rest->size() > 1 && !absl::StartsWith((*rest)[1], "-")
                                   ? absl::StrCat("unknown subcommand \"", (*rest)[1], "\"")
                                   : "missing subcommand";
      return Fail(err, absl::InvalidArgumentError(absl::StrCat(
                           (*rest)[0], ": ", what, " (", absl::StrJoin(subcommands, ", "), ")")));
    }
    return Fail(err, absl::InvalidArgumentError(
                         absl::StrCat("unknown command \"", (*rest)[0], "\" (see tetherctl --help)")));
  }
  if (asked_for_help) {
    PrintCommandHelp(*command, out);
    return kExitOk;
  }

  const std::vector<std::string> tail(rest->begin() + static_cast<std::ptrdiff_t>(taken), rest->end());
  absl::StatusOr<ParsedArgs> parsed = ParsedArgs::Parse(tail, command->flags);
  if (!parsed.ok()) {
    return Fail(err, absl::InvalidArgumentError(absl::StrCat(
                         command->name, ": ", parsed.status().message(), " (usage: ", Usage(*command), ")")));
  }
  const size_t count = parsed->positional().size();
  if (count < command->min_args || count > command->max_args) {
    std::string what = count < command->min_args ? "missing arguments"
                                                 : absl::StrCat("unexpected argument \"",
                                                                parsed->positional()[command->max_args], "\"");
    return Fail(err, absl::InvalidArgumentError(
                         absl::StrCat(command->name, ": ", what, " (usage: ", Usage(*command), ")")));
  }
  Invocation invocation(command->name, *std::move(parsed), globals, io);
  absl::Status status = command->run(invocation);
  out.flush();
  if (!status.ok()) {
    return Fail(err, absl::Status(status.code(), absl::StrCat(command->name, ": ", status.message())));
  }
  return invocation.exit_code;
}

int RunTetherctl(const std::vector<std::string>& args, std::istream& in, std::ostream& out,
                 std::ostream& err) {
  TetherctlIo io;
  io.in = &in;
  io.out = &out;
  io.err = &err;
  io.env = Environment::FromProcess();
  if (&in == &std::cin && isatty(STDIN_FILENO)) io.prompt = TerminalPrompt(in, err, STDIN_FILENO);
  return RunTetherctl(args, io);
}

}  // namespace tether::tetherctl
