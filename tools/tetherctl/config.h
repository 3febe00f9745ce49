// tetherctl's configuration file: which cloud to talk to, how to trust it, and the user's API
// token. Written by `tetherctl login` as a secret file (mode 0600, crypto::WriteSecretFile); a file
// that group or others may read is refused, because the token in it is a bearer credential.
//
// Format, one "key value" per line ('#' starts a comment line):
//   cloud cloud.example.com:8443
//   ca /etc/tether/ca.pem          (absent with --insecure)
//   insecure false
//   token tt_...
#ifndef TETHER_TOOLS_TETHERCTL_CONFIG_H_
#define TETHER_TOOLS_TETHERCTL_CONFIG_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/crypto/secret.h"

namespace tether::tetherctl {

struct Config {
  std::string cloud;    // host:port of the cloud's gRPC API
  std::string ca_file;  // absolute path of the CA certificate (PEM) that verifies the cloud
  bool insecure = false;  // plaintext (loopback clouds only)
  crypto::SecretBytes token;  // the bearer API token
};

// The process environment variables the config path depends on (empty when unset).
struct Environment {
  std::string tether_config;    // $TETHER_CONFIG
  std::string xdg_config_home;  // $XDG_CONFIG_HOME
  std::string home;             // $HOME

  static Environment FromProcess();
};

// The config file: `flag` (--config) if given, else $TETHER_CONFIG, else
// $XDG_CONFIG_HOME/tether/tetherctl.conf, else $HOME/.config/tether/tetherctl.conf.
// kFailedPrecondition when none of them is available.
absl::StatusOr<std::string> ConfigPath(absl::string_view flag, const Environment& env);

// The file's bytes for `config` (kept in a zeroizing buffer: it holds the token).
crypto::SecretBytes SerializeConfig(const Config& config);
// Parses a config file's bytes. kInvalidArgument naming the line on a malformed or unknown entry
// or a missing cloud or token.
absl::StatusOr<Config> ParseConfig(const crypto::SecretBytes& text);

// Reads the config at `path`. Errors: kUnauthenticated "not logged in" when the file does not
// exist; kFailedPrecondition when it is not private (group/other mode bits, another owner) or
// cannot be read; kInvalidArgument when it does not parse.
absl::StatusOr<Config> LoadConfig(const std::string& path);

// Writes `config` to `path` with mode 0600 (atomically), creating missing parent directories with
// mode 0700.
absl::Status SaveConfig(const std::string& path, const Config& config);

}  // namespace tether::tetherctl

#endif  // TETHER_TOOLS_TETHERCTL_CONFIG_H_
