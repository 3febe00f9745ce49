// Login sessions (DESIGN §5): an attended run needs its user to be logged in on the machine.
#ifndef TETHER_AGENT_ACCOUNTS_SESSIONS_H_
#define TETHER_AGENT_ACCOUNTS_SESSIONS_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tether::agent::accounts {

// Whether `username` has an active login session: a USER_PROCESS record in the utmp file
// (getutxent) whose ut_user is exactly `username` and whose ut_pid is a live process (records
// left behind by a crashed login process do not count).
//
// `utmp_path` is the utmp file to read; empty means the system's (_PATH_UTMPX, /var/run/utmp).
// Errors: kFailedPrecondition when the file does not exist (the host records no login sessions,
// as in most containers), kUnavailable when it cannot be read or is not a regular file.
//
// Thread-safe with respect to itself: the getutxent family keeps process-wide state (utmpxname),
// so calls are serialised by a process-wide lock and the default file is restored afterwards.
// Other code in the process must not use the getutxent family concurrently.
absl::StatusOr<bool> HasActiveSession(absl::string_view username,
                                      const std::string& utmp_path = "");

}  // namespace tether::agent::accounts

#endif  // TETHER_AGENT_ACCOUNTS_SESSIONS_H_
