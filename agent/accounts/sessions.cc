#include "agent/accounts/sessions.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utmpx.h>

#include "absl/base/const_init.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace tether::agent::accounts {
namespace {

ABSL_CONST_INIT absl::Mutex utmp_mu(absl::kConstInit);

bool ProcessIsAlive(pid_t pid) {
  if (pid <= 0) return false;
  // EPERM: the process exists but belongs to someone else.
  return kill(pid, 0) == 0 || errno == EPERM;
}

// ut_user is a fixed-size field, NUL-padded but not NUL-terminated when the name fills it.
absl::string_view RecordUser(const struct utmpx& record) {
  return absl::string_view(record.ut_user, strnlen(record.ut_user, sizeof(record.ut_user)));
}

}  // namespace

absl::StatusOr<bool> HasActiveSession(absl::string_view username, const std::string& utmp_path) {
  const std::string path = utmp_path.empty() ? std::string(_PATH_UTMPX) : utmp_path;
  // getutxent cannot tell a missing or unreadable file from an empty one: look first.
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) {
      return absl::FailedPreconditionError(
          absl::StrCat("no utmp file at ", path, ": this host does not record login sessions"));
    }
    return absl::UnavailableError(absl::StrCat("cannot read ", path, ": ", strerror(err)));
  }
  struct stat st;
  const bool regular = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  close(fd);
  if (!regular) return absl::UnavailableError(absl::StrCat(path, " is not a regular file"));
  if (username.empty()) return false;

  absl::MutexLock lock(&utmp_mu);
  if (utmpxname(path.c_str()) != 0) {
    return absl::UnavailableError(absl::StrCat("utmpxname ", path, ": ", strerror(errno)));
  }
  setutxent();
  bool active = false;
  while (const struct utmpx* record = getutxent()) {
    if (record->ut_type == USER_PROCESS && RecordUser(*record) == username &&
        ProcessIsAlive(record->ut_pid)) {
      active = true;
      break;
    }
  }
  endutxent();
  utmpxname(_PATH_UTMPX);
  return active;
}

}  // namespace tether::agent::accounts
