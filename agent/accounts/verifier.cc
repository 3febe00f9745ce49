#include "agent/accounts/verifier.h"

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "agent/accounts/file_verifier.h"
#include "agent/accounts/pam_verifier.h"
#include "common/base/status_macros.h"

namespace tether::agent::accounts {

absl::StatusOr<std::unique_ptr<AccountVerifier>> MakeVerifier(absl::string_view spec) {
  absl::string_view rest = spec;
  if (absl::ConsumePrefix(&rest, "file:")) {
    if (rest.empty()) return absl::InvalidArgumentError("account backend \"file:\" needs a path");
    ASSIGN_OR_RETURN(std::unique_ptr<FileAccountVerifier> verifier,
                     FileAccountVerifier::Load(std::string(rest)));
    return std::unique_ptr<AccountVerifier>(std::move(verifier));
  }
  if (spec == "pam") return std::unique_ptr<AccountVerifier>(new PamAccountVerifier());
  if (absl::ConsumePrefix(&rest, "pam:")) {
    // A service is a file name in /etc/pam.d.
    if (rest.empty() || rest == "." || rest == ".." ||
        rest.find_first_of(std::string("/\0", 2)) != absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("account backend \"", spec, "\": bad PAM service name"));
    }
    return std::unique_ptr<AccountVerifier>(new PamAccountVerifier(std::string(rest)));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown account backend \"", spec,
                   "\" (expected \"file:PATH\", \"pam\" or \"pam:SERVICE\")"));
}

}  // namespace tether::agent::accounts
