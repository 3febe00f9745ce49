#include "tools/tetherctl/args.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace tether::tetherctl {

absl::StatusOr<ParsedArgs> ParsedArgs::Parse(const std::vector<std::string>& args,
                                             const std::vector<FlagSpec>& specs) {
  ParsedArgs parsed;
  bool flags_ended = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (flags_ended || !absl::StartsWith(arg, "--") || arg.size() == 2) {
      if (!flags_ended && arg == "--") {
        flags_ended = true;
        continue;
      }
      parsed.positional_.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2);
    std::string value;
    bool has_inline_value = false;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
      has_inline_value = true;
    }
    auto spec = std::find_if(specs.begin(), specs.end(),
                             [&](const FlagSpec& s) { return s.name == name; });
    if (spec == specs.end()) {
      if (name == "token" || name == "password") {
        return absl::InvalidArgumentError(absl::StrCat(
            "unknown flag --", name, ": secrets are never taken from the command line (use --",
            name, "-file FILE, or run on a terminal to be prompted)"));
      }
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    }
    if (spec->value_name.empty()) {
      if (has_inline_value) {
        return absl::InvalidArgumentError(absl::StrCat("--", name, " takes no value"));
      }
    } else if (!has_inline_value) {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", name, " needs a value (", spec->value_name, ")"));
      }
      value = args[++i];
    }
    std::vector<std::string>& values = parsed.flags_[name];
    if (!values.empty() && !spec->repeated) {
      return absl::InvalidArgumentError(absl::StrCat("--", name, " given twice"));
    }
    values.push_back(std::move(value));
  }
  for (const FlagSpec& spec : specs) {
    if (spec.required && !parsed.Has(spec.name)) {
      return absl::InvalidArgumentError(absl::StrCat("--", spec.name, " ", spec.value_name, " is required"));
    }
  }
  return parsed;
}

bool ParsedArgs::Has(absl::string_view name) const { return flags_.find(name) != flags_.end(); }

std::string ParsedArgs::Value(absl::string_view name, absl::string_view fallback) const {
  auto it = flags_.find(name);
  if (it == flags_.end()) return std::string(fallback);
  return it->second.back();
}

std::vector<std::string> ParsedArgs::Values(absl::string_view name) const {
  auto it = flags_.find(name);
  if (it == flags_.end()) return {};
  return it->second;
}

absl::StatusOr<std::vector<std::string>> ExtractGlobalFlags(const std::vector<std::string>& args,
                                                            GlobalFlags* globals) {
  std::vector<std::string> rest;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") {
      rest.insert(rest.end(), args.begin() + static_cast<std::ptrdiff_t>(i), args.end());
      break;
    }
    if (arg == "--json") {
      globals->json = true;
    } else if (arg == "--help" || arg == "-h") {
      globals->help = true;
    } else if (arg == "--config") {
      if (i + 1 >= args.size()) return absl::InvalidArgumentError("--config needs a value (FILE)");
      globals->config = args[++i];
    } else if (absl::StartsWith(arg, "--config=")) {
      globals->config = arg.substr(9);
      if (globals->config.empty()) return absl::InvalidArgumentError("--config needs a value (FILE)");
    } else {
      rest.push_back(arg);
    }
  }
  return rest;
}

}  // namespace tether::tetherctl
