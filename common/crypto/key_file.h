// Secret files on disk: private keys, recovery keys, SAS key lists (DESIGN §2, "keys on disk").
// A secret file is a regular file of mode 0600 owned by the reading user; anything readable or
// writable by group or others is refused, so a mis-deployed key is noticed at start rather than
// leaked quietly. Thread-safe (plain POSIX calls).
#ifndef TETHER_COMMON_CRYPTO_KEY_FILE_H_
#define TETHER_COMMON_CRYPTO_KEY_FILE_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/crypto/secret.h"

namespace tether::crypto {

inline constexpr std::size_t kMaxSecretFileSize = 1 << 20;

// Writes `data` to `path` with mode 0600: a temporary file in the same directory, fsync, then
// rename, so a crash leaves either the old file or the new one. With `overwrite` false an
// existing file is kAlreadyExists and is left untouched.
absl::Status WriteSecretFile(const std::string& path, const SecretBytes& data, bool overwrite);

// Reads a secret file. Errors: kNotFound; kPermissionDenied when the mode lets group or others
// in (the message says which mode and how to fix it) or another user owns the file;
// kInvalidArgument when it is not a regular file or is larger than kMaxSecretFileSize.
absl::StatusOr<SecretBytes> ReadSecretFile(const std::string& path);

// The same check as ReadSecretFile, without reading.
absl::Status CheckSecretFileMode(const std::string& path);

}  // namespace tether::crypto

#endif  // TETHER_COMMON_CRYPTO_KEY_FILE_H_
