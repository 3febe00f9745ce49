// Command-line parsing for tetherctl: flags declared per command, given as `--name value` or
// `--name=value`, in any order among the positional arguments; `--` ends the flags.
#ifndef TETHER_TOOLS_TETHERCTL_ARGS_H_
#define TETHER_TOOLS_TETHERCTL_ARGS_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tether::tetherctl {

// One flag a command accepts.
struct FlagSpec {
  std::string name;           // without the leading "--"
  std::string value_name;     // e.g. "FILE"; empty for a boolean flag (takes no value)
  std::string help;           // one line
  bool repeated = false;      // may be given several times (e.g. --input)
  bool required = false;      // the command cannot run without it
};

// The arguments of one command after parsing. Thread-compatible.
class ParsedArgs {
 public:
  // Parses `args` against `specs`. Errors (kInvalidArgument, message ready for the user): an
  // unknown flag, a missing value, a value given to a boolean flag, a non-repeated flag given
  // twice, a required flag missing.
  static absl::StatusOr<ParsedArgs> Parse(const std::vector<std::string>& args,
                                          const std::vector<FlagSpec>& specs);

  const std::vector<std::string>& positional() const { return positional_; }
  bool Has(absl::string_view name) const;
  // The flag's value, or `fallback` when it was not given.
  std::string Value(absl::string_view name, absl::string_view fallback = "") const;
  // Every value of a repeated flag, in order (empty when not given).
  std::vector<std::string> Values(absl::string_view name) const;

 private:
  std::vector<std::string> positional_;
  std::map<std::string, std::vector<std::string>, std::less<>> flags_;
};

// Flags every command accepts, wherever they appear on the line.
struct GlobalFlags {
  bool json = false;
  bool help = false;
  std::string config;  // --config FILE, empty when not given
};

// Takes the global flags (--json, --help / -h, --config FILE) out of `args` and returns the rest in
// order. Stops at `--`, which it keeps for the command's own parser.
absl::StatusOr<std::vector<std::string>> ExtractGlobalFlags(const std::vector<std::string>& args,
                                                            GlobalFlags* globals);

}  // namespace tether::tetherctl

#endif  // TETHER_TOOLS_TETHERCTL_ARGS_H_
