#include "common/crypto/key_file.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/base/status_macros.h"
#include "common/crypto/digest.h"
#include "common/base/hex.h"

namespace tether::crypto {
namespace {

absl::Status ErrnoStatus(int err, absl::string_view what, const std::string& path) {
  absl::StatusCode code = err == ENOENT                  ? absl::StatusCode::kNotFound
                          : err == EACCES || err == EPERM ? absl::StatusCode::kPermissionDenied
                          : err == EEXIST                 ? absl::StatusCode::kAlreadyExists
                                                          : absl::StatusCode::kUnavailable;
  return absl::Status(code, absl::StrCat(what, " ", path, ": ", strerror(err)));
}

absl::Status CheckStat(const struct stat& st, const std::string& path) {
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(path, " is not a regular file"));
  }
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    return absl::PermissionDeniedError(
        absl::StrFormat("%s has mode %04o: a secret file must not be accessible to group or "
                        "others (chmod 600 %s)",
                        path, st.st_mode & 07777, path));
  }
  if (st.st_uid != geteuid()) {
    return absl::PermissionDeniedError(
        absl::StrCat(path, " is owned by uid ", st.st_uid, ", not by this user (uid ", geteuid(),
                     ")"));
  }
  if (static_cast<std::size_t>(st.st_size) > kMaxSecretFileSize) {
    return absl::InvalidArgumentError(absl::StrCat(path, " is larger than a secret file can be"));
  }
  return absl::OkStatus();
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

absl::Status CheckSecretFileMode(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return ErrnoStatus(errno, "cannot stat", path);
  return CheckStat(st, path);
}

absl::StatusOr<SecretBytes> ReadSecretFile(const std::string& path) {
  Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (fd.get() < 0) return ErrnoStatus(errno, "cannot open", path);
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return ErrnoStatus(errno, "cannot stat", path);
  RETURN_IF_ERROR(CheckStat(st, path));
  SecretBytes data(static_cast<std::size_t>(st.st_size));
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t n = read(fd.get(), data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, "cannot read", path);
    if (n == 0) break;
    done += static_cast<std::size_t>(n);
  }
  data.Resize(done);
  return data;
}

absl::Status WriteSecretFile(const std::string& path, const SecretBytes& data, bool overwrite) {
  if (!overwrite && access(path.c_str(), F_OK) == 0) {
    return absl::AlreadyExistsError(absl::StrCat(path, " already exists"));
  }
  ASSIGN_OR_RETURN(std::string suffix, RandomBytes(6));
  std::string tmp = absl::StrCat(path, ".tmp-", HexEncode(suffix));
  {
    Fd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (fd.get() < 0) return ErrnoStatus(errno, "cannot create", tmp);
    // The umask cannot widen 0600, but fchmod makes the mode explicit whatever it is.
    if (fchmod(fd.get(), 0600) != 0) {
      unlink(tmp.c_str());
      return ErrnoStatus(errno, "cannot chmod", tmp);
    }
    std::size_t done = 0;
    while (done < data.size()) {
      ssize_t n = write(fd.get(), data.data() + done, data.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        int err = errno;
        unlink(tmp.c_str());
        return ErrnoStatus(err, "cannot write", tmp);
      }
      done += static_cast<std::size_t>(n);
    }
    if (fsync(fd.get()) != 0) {
      int err = errno;
      unlink(tmp.c_str());
      return ErrnoStatus(err, "cannot sync", tmp);
    }
  }
  if (!overwrite) {
    // link() fails if the target appeared meanwhile, so a concurrent writer is never clobbered.
    if (link(tmp.c_str(), path.c_str()) != 0) {
      int err = errno;
      unlink(tmp.c_str());
      return ErrnoStatus(err, "cannot create", path);
    }
    unlink(tmp.c_str());
  } else if (rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    unlink(tmp.c_str());
    return ErrnoStatus(err, "cannot rename onto", path);
  }
  return absl::OkStatus();
}

}  // namespace tether::crypto
