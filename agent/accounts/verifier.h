// Account verification for the agent (DESIGN §5): before a job's flow runs as a local account,
// the agent checks the account's password from the job's credential envelope.
//
// Two backends: "pam" (PamAccountVerifier, pam_verifier.h) for real hosts and "file"
// (FileAccountVerifier, file_verifier.h) with scrypt-hashed passwords for tests and the dev stack.
// The agent picks one with MakeVerifier(spec) from its configuration.
#ifndef TETHER_AGENT_ACCOUNTS_VERIFIER_H_
#define TETHER_AGENT_ACCOUNTS_VERIFIER_H_

#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/crypto/secret.h"

namespace tether::agent::accounts {

// Checks a username and password. Implementations are thread-safe.
//
// Verify returns OK when `password` is the account's password and the account may sign in now.
// Errors:
//   kNotFound          "unknown account \"x\"" (the backend does not know the account)
//   kPermissionDenied  "wrong password for \"x\"", or the account may not sign in (locked,
//                      expired, password change required) with the reason in the message
//   kUnavailable       the backend failed (file unreadable, PAM misconfigured); retrying later
//                      may succeed
// The password is never logged and never copied outside crypto::SecretBytes; temporaries are
// wiped. Messages name the account, never the password.
class AccountVerifier {
 public:
  virtual ~AccountVerifier() = default;
  virtual absl::Status Verify(absl::string_view username, const crypto::SecretBytes& password) = 0;
};

// A verifier from a configuration string:
//   "file:/path/to/accounts"  FileAccountVerifier::Load("/path/to/accounts")
//   "pam"                     PamAccountVerifier with the "login" service
//   "pam:SERVICE"             PamAccountVerifier with /etc/pam.d/SERVICE
// Anything else is kInvalidArgument; errors from FileAccountVerifier::Load pass through.
absl::StatusOr<std::unique_ptr<AccountVerifier>> MakeVerifier(absl::string_view spec);

}  // namespace tether::agent::accounts

#endif  // TETHER_AGENT_ACCOUNTS_VERIFIER_H_
