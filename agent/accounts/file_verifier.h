// The "file" account backend (DESIGN §5): scrypt-hashed passwords in a private file, for tests and
// the dev stack, where the agent cannot (or should not) check real host accounts.
//
// File format: a secret file (mode 0600, owned by the agent's user; crypto::ReadSecretFile), one
// account a line:
//
//   username:scrypt:N:r:p:<salt, base64>:<hash, base64>
//
// where hash = scrypt(password, salt, N, r, p, 32). Blank lines and lines starting with '#' are
// ignored. `account_file_tool add` (//agent/accounts:account_file_tool) writes entries.
#ifndef TETHER_AGENT_ACCOUNTS_FILE_VERIFIER_H_
#define TETHER_AGENT_ACCOUNTS_FILE_VERIFIER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/accounts/verifier.h"
#include "common/crypto/password_kdf.h"
#include "common/crypto/secret.h"

namespace tether::agent::accounts {

// Parameters of new entries: N = 2^15, r = 8, p = 1, the same as Tether's other password hashes
// (crypto::ScryptParams{}): 32 MiB and a few tens of milliseconds per check. Not OWASP's 2^17:
// a check runs for every job, the file is readable only by the agent's own account, and the
// backend exists for tests and the dev stack (real hosts use PAM and the system's hashes).
inline constexpr crypto::ScryptParams kDefaultAccountScryptParams = {uint64_t{1} << 15, 8, 1};

// Entries whose parameters exceed these are refused when the file is read (a line could
// otherwise make every check take gigabytes): N <= 2^20, r <= 32, p <= 16, 128 * r * N <= 1 GiB.
inline constexpr uint64_t kMaxAccountScryptN = uint64_t{1} << 20;
inline constexpr uint32_t kMaxAccountScryptR = 32;
inline constexpr uint32_t kMaxAccountScryptP = 16;

inline constexpr std::size_t kAccountHashSize = 32;
inline constexpr std::size_t kAccountSaltSize = 16;

// Verifies against an account file read once by Load; changes to the file take effect when it is
// loaded again (the agent reads it at start). Thread-safe: the loaded table is immutable.
//
// Verify runs scrypt for unknown accounts too (with the parameters of the file's first entry and
// a random salt, compared against a random hash), so a caller cannot tell from the time taken
// whether an account exists, as long as the file's entries share their parameters.
class FileAccountVerifier : public AccountVerifier {
 public:
  // Reads `path`. Errors: those of crypto::ReadSecretFile (kNotFound; kPermissionDenied when the
  // file is open to group or others or owned by someone else; kInvalidArgument when it is not a
  // regular file), and kInvalidArgument "PATH line N: ..." for a malformed line: wrong field
  // count, a method other than "scrypt", parameters out of range, bad base64, a hash that is not
  // 32 bytes, a salt shorter than 8 or longer than 64 bytes, an invalid or repeated username.
  static absl::StatusOr<std::unique_ptr<FileAccountVerifier>> Load(const std::string& path);

  absl::Status Verify(absl::string_view username, const crypto::SecretBytes& password) override;

  // The number of accounts in the file.
  std::size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    crypto::ScryptParams params;
    std::string salt;
    crypto::SecretBytes hash;
  };

  FileAccountVerifier(absl::flat_hash_map<std::string, Entry> entries, Entry dummy);

  const absl::flat_hash_map<std::string, Entry> entries_;
  // Checked against for unknown accounts so that they cost as much as known ones.
  const Entry dummy_;
};

// One account-file line (without a line terminator) for `username` and `password`: a fresh
// 16-byte salt and scrypt with `params`. kInvalidArgument for an invalid username (empty, longer
// than 256 bytes, containing ':', whitespace or control characters, or starting with '#'), an
// empty password, or parameters outside the limits above; kInternal if randomness fails.
absl::StatusOr<std::string> MakeFileAccountLine(
    absl::string_view username, const crypto::SecretBytes& password,
    const crypto::ScryptParams& params = kDefaultAccountScryptParams);

// The account file `content` with the line of `username` replaced by `line` (a line from
// MakeFileAccountLine for that user), or with `line` appended when the user has none. Comments,
// blank lines and other accounts are kept as they are; the result ends with a newline. Every
// entry of `content` must parse as Load would parse it (kInvalidArgument "line N: ..."
// otherwise), so the result is a file the agent can load; `line` must be an entry for `username`.
absl::StatusOr<crypto::SecretBytes> ReplaceFileAccountLine(absl::string_view content,
                                                           absl::string_view username,
                                                           absl::string_view line);

}  // namespace tether::agent::accounts

#endif  // TETHER_AGENT_ACCOUNTS_FILE_VERIFIER_H_
