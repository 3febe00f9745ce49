#include "agent/accounts/run_as.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <limits>
#include <optional>

#include "absl/strings/str_cat.h"

namespace tether::agent::accounts {
namespace {

constexpr std::size_t kMaxLookupBuffer = std::size_t{1} << 20;
constexpr int kMaxGroups = 65536;

std::size_t InitialPasswdBuffer() {
  long suggested = sysconf(_SC_GETPW_R_SIZE_MAX);
  return suggested > 0 ? static_cast<std::size_t>(suggested) : 16384;
}

// getpwnam_r's "no such entry" results; see getpwnam_r(3), NOTES.
bool MeansNotFound(int err) {
  return err == 0 || err == ENOENT || err == ESRCH || err == EBADF || err == EPERM;
}

// The name of `uid` in the password database, if it has one.
std::optional<std::string> NameOfUid(uid_t uid) {
  std::vector<char> buffer(InitialPasswdBuffer());
  while (true) {
    struct passwd entry;
    struct passwd* result = nullptr;
    int err = getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &result);
    if (err == ERANGE && buffer.size() < kMaxLookupBuffer) {
      buffer.resize(buffer.size() * 2);
      continue;
    }
    if (err != 0 || result == nullptr) return std::nullopt;
    return std::string(result->pw_name);
  }
}

absl::Status ErrnoError(absl::string_view what, int err) {
  return absl::PermissionDeniedError(absl::StrCat(what, ": ", strerror(err)));
}

}  // namespace

absl::StatusOr<RunAsAccount> LookupAccount(absl::string_view username) {
  auto not_found = [&] {
    return absl::NotFoundError(absl::StrCat("no local account \"", username, "\""));
  };
  if (username.empty() || username.find('\0') != absl::string_view::npos) return not_found();
  const std::string name(username);
  std::vector<char> buffer(InitialPasswdBuffer());
  while (true) {
    struct passwd entry;
    struct passwd* result = nullptr;
    int err = getpwnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &result);
    if (err == ERANGE && buffer.size() < kMaxLookupBuffer) {
      buffer.resize(buffer.size() * 2);
      continue;
    }
    if (result == nullptr) {
      if (MeansNotFound(err)) return not_found();
      return absl::UnavailableError(
          absl::StrCat("cannot look up account \"", username, "\": ", strerror(err)));
    }
    return RunAsAccount{result->pw_name, result->pw_uid, result->pw_gid,
                        result->pw_dir != nullptr ? result->pw_dir : "",
                        result->pw_shell != nullptr ? result->pw_shell : ""};
  }
}

absl::Status CheckMayRunAsUid(const RunAsAccount& account, uid_t agent_euid) {
  if (agent_euid == 0 || account.uid == agent_euid) return absl::OkStatus();
  const std::string agent_name = NameOfUid(agent_euid).value_or("an account without a name");
  return absl::PermissionDeniedError(absl::StrCat(
      "the agent runs as ", agent_name, " (uid ", agent_euid, ") and cannot run flows as \"",
      account.username, "\" (run it as root to switch accounts)"));
}

absl::Status CheckMayRunAs(const RunAsAccount& account) {
  return CheckMayRunAsUid(account, geteuid());
}

absl::StatusOr<std::vector<gid_t>> SupplementaryGroups(const RunAsAccount& account) {
  std::vector<gid_t> groups(64);
  while (true) {
    int count = static_cast<int>(groups.size());
    if (getgrouplist(account.username.c_str(), account.gid, groups.data(), &count) >= 0) {
      groups.resize(static_cast<std::size_t>(count));
      return groups;
    }
    // -1 with `count` set to the number needed when the buffer is too small.
    if (count <= static_cast<int>(groups.size()) || count > kMaxGroups) {
      return absl::UnavailableError(
          absl::StrCat("cannot list the groups of \"", account.username, "\""));
    }
    groups.resize(static_cast<std::size_t>(count));
  }
}

absl::Status SwitchToAccount(const RunAsAccount& account, const std::vector<gid_t>& groups) {
  if (geteuid() == 0) {
    if (setgroups(groups.size(), groups.data()) != 0) return ErrnoError("setgroups", errno);
    if (setgid(account.gid) != 0) return ErrnoError("setgid", errno);
    if (setuid(account.uid) != 0) return ErrnoError("setuid", errno);
    if (getuid() != account.uid || geteuid() != account.uid || getgid() != account.gid ||
        getegid() != account.gid) {
      return absl::InternalError(absl::StrCat("switching to \"", account.username,
                                              "\" left a different uid or gid in place"));
    }
    if (account.uid != 0 && setuid(0) == 0) {
      return absl::InternalError(
          absl::StrCat("after switching to \"", account.username, "\" root can still be regained"));
    }
  } else if (geteuid() != account.uid) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot switch to \"", account.username, "\" (uid ", account.uid,
                     ") without root: this process runs as uid ", geteuid()));
  }
  // Defaults as login(1) applies them: an empty shell field means /bin/sh.
  const char* home = account.home.empty() ? "/" : account.home.c_str();
  const char* shell = account.shell.empty() ? "/bin/sh" : account.shell.c_str();
  if (setenv("HOME", home, 1) != 0 || setenv("USER", account.username.c_str(), 1) != 0 ||
      setenv("LOGNAME", account.username.c_str(), 1) != 0 || setenv("SHELL", shell, 1) != 0) {
    return absl::InternalError(absl::StrCat("setenv: ", strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace tether::agent::accounts
