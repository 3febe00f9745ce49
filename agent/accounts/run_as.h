// Running a flow as a local account (DESIGN §5): the agent looks the account up, checks that it
// may run flows as it, resolves its groups, forks, and switches the child to the account before
// exec'ing the flow runner. An agent running as root switches to any account; any other agent
// runs flows only as its own account.
//
// Typical use in the agent:
//   ASSIGN_OR_RETURN(RunAsAccount account, LookupAccount(username));
//   RETURN_IF_ERROR(CheckMayRunAs(account));
//   ASSIGN_OR_RETURN(std::vector<gid_t> groups, SupplementaryGroups(account));
//   pid_t pid = fork();
//   if (pid == 0) {
//     if (!SwitchToAccount(account, groups).ok()) _exit(...);  // report through a pipe
//     execve(...);
//   }
#ifndef TETHER_AGENT_ACCOUNTS_RUN_AS_H_
#define TETHER_AGENT_ACCOUNTS_RUN_AS_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tether::agent::accounts {

// A local account from the password database.
struct RunAsAccount {
  std::string username;
  uid_t uid = 0;
  gid_t gid = 0;  // primary group
  std::string home;
  std::string shell;
};

// The account named `username` (getpwnam_r; thread-safe). kNotFound "no local account \"x\"" when
// there is none (or the name is empty or contains a NUL byte); kUnavailable when the lookup
// itself fails (e.g. an unreachable directory service).
absl::StatusOr<RunAsAccount> LookupAccount(absl::string_view username);

// Whether an agent whose effective uid is `agent_euid` may run flows as `account`: OK when
// `agent_euid` is 0 (the agent will switch accounts) or equals account.uid; otherwise
// kPermissionDenied "the agent runs as <name> (uid N) and cannot run flows as \"x\" (run it as
// root to switch accounts)". Thread-safe.
absl::Status CheckMayRunAsUid(const RunAsAccount& account, uid_t agent_euid);

// CheckMayRunAsUid(account, geteuid()).
absl::Status CheckMayRunAs(const RunAsAccount& account);

// The account's groups for setgroups: its primary group and every group listing it as a member
// (getgrouplist). Call before fork: it reads /etc/group or NSS, which is not safe in a child of a
// multi-threaded process. kUnavailable if the lookup fails. Thread-safe.
absl::StatusOr<std::vector<gid_t>> SupplementaryGroups(const RunAsAccount& account);

// Makes the calling process run as `account`; meant for the child between fork and exec.
//
// As root (effective uid 0): setgroups(`groups`), setgid(account.gid), setuid(account.uid), in
// that order (each later call needs the privilege the earlier ones keep). Then checks that the
// real and effective uid and gid are the account's and, unless the account is root, that
// setuid(0) now fails, i.e. root cannot be regained. Any failure is kPermissionDenied (or
// kInternal for a check that fails after the calls succeeded); the caller must then _exit
// without exec'ing, because the process may hold a mix of identities.
// Not root: the process already runs as its own account; a different account.uid is
// kPermissionDenied (CheckMayRunAs should have refused it earlier) and nothing is changed.
// In both cases HOME, USER, LOGNAME and SHELL are then set from `account` (setenv), so the flow
// sees the same variables whether or not the agent switched.
//
// After fork in a multi-threaded parent only async-signal-safe functions are strictly allowed.
// setgroups/setgid/setuid/getuid/geteuid/getgid/getegid are plain system calls (glibc's setxid
// broadcast to other threads is a no-op in the single-threaded child). setenv, and building an
// error Status, allocate: not async-signal-safe by POSIX, but glibc's fork resets the allocator
// locks in the child, so malloc works there; this is the one glibc-specific assumption. Name
// lookups (getpwnam, initgroups), which may take NSS locks held by another thread at fork time,
// are not made here: LookupAccount and SupplementaryGroups run before fork.
absl::Status SwitchToAccount(const RunAsAccount& account, const std::vector<gid_t>& groups);

}  // namespace tether::agent::accounts

#endif  // TETHER_AGENT_ACCOUNTS_RUN_AS_H_
