#include "tools/tetherctl/config.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/crypto/key_file.h"

namespace tether::tetherctl {
namespace {

std::string Getenv(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

// mkdir -p for the directories above `path`, each created with mode 0700.
absl::Status MakeParentDirectories(const std::string& path) {
  for (size_t slash = path.find('/', 1); slash != std::string::npos;
       slash = path.find('/', slash + 1)) {
    const std::string dir = path.substr(0, slash);
    if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot create directory ", dir, ": ", strerror(errno)));
    }
  }
  return absl::OkStatus();
}

}  // namespace

Environment Environment::FromProcess() {
  Environment env;
  env.tether_config = Getenv("TETHER_CONFIG");
  env.xdg_config_home = Getenv("XDG_CONFIG_HOME");
  env.home = Getenv("HOME");
  return env;
}

absl::StatusOr<std::string> ConfigPath(absl::string_view flag, const Environment& env) {
  if (!flag.empty()) return std::string(flag);
  if (!env.tether_config.empty()) return env.tether_config;
  if (!env.xdg_config_home.empty()) return absl::StrCat(env.xdg_config_home, "/tether/tetherctl.conf");
  if (!env.home.empty()) return absl::StrCat(env.home, "/.config/tether/tetherctl.conf");
  return absl::FailedPreconditionError(
      "no config file location: pass --config FILE or set TETHER_CONFIG, XDG_CONFIG_HOME or HOME");
}

crypto::SecretBytes SerializeConfig(const Config& config) {
  crypto::SecretBytes text;
  text.Append("# tetherctl configuration, written by `tetherctl login` (keep it mode 0600)\n");
  text.Append(absl::StrCat("cloud ", config.cloud, "\n"));
  if (!config.ca_file.empty()) text.Append(absl::StrCat("ca ", config.ca_file, "\n"));
  text.Append(config.insecure ? "insecure true\n" : "insecure false\n");
  text.Append("token ");
  text.Append(config.token.view());
  text.Append("\n");
  return text;
}

absl::StatusOr<Config> ParseConfig(const crypto::SecretBytes& text) {
  Config config;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text.view(), '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line.front() == '#') continue;
    const size_t space = line.find(' ');
    const absl::string_view key = line.substr(0, space);
    const absl::string_view value =
        space == absl::string_view::npos ? "" : absl::StripLeadingAsciiWhitespace(line.substr(space));
    auto bad = [&](absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat("line ", line_number, ": ", why));
    };
    if (value.empty()) return bad(absl::StrCat("\"", key, "\" has no value"));
    if (key == "cloud") {
      config.cloud = std::string(value);
    } else if (key == "ca") {
      config.ca_file = std::string(value);
    } else if (key == "insecure") {
      if (value != "true" && value != "false") return bad("insecure must be true or false");
      config.insecure = value == "true";
    } else if (key == "token") {
      config.token = crypto::SecretBytes(value);
    } else {
      return bad(absl::StrCat("unknown key \"", key, "\""));
    }
  }
  if (config.cloud.empty()) return absl::InvalidArgumentError("no \"cloud\" entry");
  if (config.token.empty()) return absl::InvalidArgumentError("no \"token\" entry");
  if (!config.insecure && config.ca_file.empty()) {
    return absl::InvalidArgumentError("no \"ca\" entry and not insecure");
  }
  return config;
}

absl::StatusOr<Config> LoadConfig(const std::string& path) {
  absl::StatusOr<crypto::SecretBytes> text = crypto::ReadSecretFile(path);
  if (absl::IsNotFound(text.status())) {
    return absl::UnauthenticatedError(
        absl::StrCat("not logged in: no config file ", path, " (run tetherctl login)"));
  }
  if (!text.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("config file refused: ", text.status().message()));
  }
  absl::StatusOr<Config> config = ParseConfig(*text);
  if (!config.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("config file ", path, ": ", config.status().message()));
  }
  return config;
}

absl::Status SaveConfig(const std::string& path, const Config& config) {
  if (absl::Status made = MakeParentDirectories(path); !made.ok()) return made;
  absl::Status written = crypto::WriteSecretFile(path, SerializeConfig(config), /*overwrite=*/true);
  if (!written.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot write config file: ", written.message()));
  }
  return absl::OkStatus();
}

}  // namespace tether::tetherctl
