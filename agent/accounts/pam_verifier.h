// The "pam" account backend (DESIGN §5): checks a host account's password through the system's
// PAM policy, as login(1) would, for agents on real Linux hosts.
#ifndef TETHER_AGENT_ACCOUNTS_PAM_VERIFIER_H_
#define TETHER_AGENT_ACCOUNTS_PAM_VERIFIER_H_

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "agent/accounts/verifier.h"
#include "common/crypto/secret.h"

namespace tether::agent::accounts {

inline constexpr absl::string_view kDefaultPamService = "login";

// Runs pam_start, pam_authenticate and pam_acct_mgmt (both with PAM_SILENT and
// PAM_DISALLOW_NULL_AUTHTOK), then pam_end, for each Verify. The conversation answers every
// PAM_PROMPT_ECHO_OFF prompt with a copy of the password in a malloc'd buffer, which PAM owns and
// frees (Linux-PAM's modules overwrite it first); PAM_PROMPT_ECHO_ON (a module asking for a
// username or a one-time code) fails the conversation, and messages are ignored.
//
// Result codes:
//   PAM_SUCCESS                                    OK
//   PAM_USER_UNKNOWN                               kNotFound "unknown account \"x\""
//   PAM_AUTH_ERR                                   kPermissionDenied "wrong password for \"x\""
//   PAM_ACCT_EXPIRED, PAM_NEW_AUTHTOK_REQD,        kPermissionDenied "account \"x\" may not sign
//   PAM_AUTHTOK_EXPIRED, PAM_PERM_DENIED,          in: <pam_strerror>" (the account's state, not
//   PAM_MAXTRIES                                   a backend failure: retrying will not help)
//   anything else                                  kUnavailable "PAM service \"s\" failed for
//                                                  \"x\": <pam_strerror>"
// Which code an unknown account gets depends on the policy: Debian's default stack
// (common-auth: "pam_unix [success=1 default=ignore]" then "requisite pam_deny") hides
// pam_unix's PAM_USER_UNKNOWN behind pam_deny's PAM_AUTH_ERR, so there an unknown account is
// kPermissionDenied, indistinguishable from a wrong password; a policy whose failing module is
// "required pam_unix" reports kNotFound.
//
// An empty password, or one containing a NUL byte (which a C string would cut short), is
// kPermissionDenied without asking PAM; an empty username or one containing a NUL byte is
// kNotFound.
//
// Thread-safe: calls are serialised, because PAM modules are not all safe to run concurrently in
// one process (several use getpwnam and other non-reentrant calls). A failed attempt may take a
// few seconds when the policy asks for it (pam_faildelay in Debian's "login" policy: 3 s).
class PamAccountVerifier : public AccountVerifier {
 public:
  // `service` names the policy, /etc/pam.d/<service>. A non-empty `confdir` is read instead of
  // /etc/pam.d (pam_start_confdir, Linux-PAM >= 1.4), so tests can run a policy of their own.
  explicit PamAccountVerifier(std::string service = std::string(kDefaultPamService),
                              std::string confdir = "");

  absl::Status Verify(absl::string_view username, const crypto::SecretBytes& password) override;

  const std::string& service() const { return service_; }

 private:
  const std::string service_;
  const std::string confdir_;
  absl::Mutex mu_;
};

}  // namespace tether::agent::accounts

#endif  // TETHER_AGENT_ACCOUNTS_PAM_VERIFIER_H_
