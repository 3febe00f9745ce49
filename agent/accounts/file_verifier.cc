#include "agent/accounts/file_verifier.h"

#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/base/status_macros.h"
#include "common/crypto/digest.h"
#include "common/crypto/key_file.h"

namespace tether::agent::accounts {
namespace {

constexpr absl::string_view kMethod = "scrypt";
constexpr std::size_t kMaxUsernameSize = 256;
constexpr std::size_t kMinSaltSize = 8;
constexpr std::size_t kMaxSaltSize = 64;
constexpr uint64_t kMaxScryptBlockMemory = uint64_t{1} << 30;

// A std::string holding something derived from a secret (a decoded hash) is wiped when it dies.
class WipedString {
 public:
  explicit WipedString(std::string value) : value_(std::move(value)) {}
  ~WipedString() { crypto::Cleanse(value_.data(), value_.size()); }
  WipedString(const WipedString&) = delete;
  WipedString& operator=(const WipedString&) = delete;
  const std::string& get() const { return value_; }

 private:
  std::string value_;
};

absl::Status CheckUsername(absl::string_view username) {
  if (username.empty()) return absl::InvalidArgumentError("empty username");
  if (username.size() > kMaxUsernameSize) {
    return absl::InvalidArgumentError("username longer than 256 bytes");
  }
  if (username.front() == '#') {
    return absl::InvalidArgumentError("a username must not start with '#'");
  }
  for (char c : username) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (c == ':' || u <= 0x20 || u == 0x7f) {
      return absl::InvalidArgumentError(
          "a username must not contain ':', whitespace or control characters");
    }
  }
  return absl::OkStatus();
}

absl::Status CheckParams(const crypto::ScryptParams& params) {
  if (params.n < 2 || (params.n & (params.n - 1)) != 0 || params.n > kMaxAccountScryptN) {
    return absl::InvalidArgumentError(
        absl::StrCat("scrypt N must be a power of two between 2 and 2^20, not ", params.n));
  }
  if (params.r < 1 || params.r > kMaxAccountScryptR) {
    return absl::InvalidArgumentError(
        absl::StrCat("scrypt r must be between 1 and 32, not ", params.r));
  }
  if (params.p < 1 || params.p > kMaxAccountScryptP) {
    return absl::InvalidArgumentError(
        absl::StrCat("scrypt p must be between 1 and 16, not ", params.p));
  }
  if (uint64_t{128} * params.r * params.n > kMaxScryptBlockMemory) {
    return absl::InvalidArgumentError("scrypt parameters need more than 1 GiB (128 * r * N)");
  }
  return absl::OkStatus();
}

// Decimal digits only: no sign, no spaces, no overflow.
std::optional<uint64_t> ParseNumber(absl::string_view text) {
  if (text.empty() || text.size() > 19) return std::nullopt;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  return value;
}

struct ParsedLine {
  std::string username;
  crypto::ScryptParams params;
  std::string salt;
  crypto::SecretBytes hash;
};

// One entry line (not blank, not a comment). Errors are kInvalidArgument without the line number.
absl::StatusOr<ParsedLine> ParseEntry(absl::string_view line) {
  std::vector<absl::string_view> fields = absl::StrSplit(line, ':');
  if (fields.size() != 7) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected 7 ':'-separated fields (username:scrypt:N:r:p:salt:hash), found ",
                     fields.size()));
  }
  ParsedLine parsed;
  RETURN_IF_ERROR(CheckUsername(fields[0]));
  parsed.username = std::string(fields[0]);
  if (fields[1] != kMethod) {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported method \"", fields[1], "\" (only \"scrypt\")"));
  }
  std::optional<uint64_t> n = ParseNumber(fields[2]);
  std::optional<uint64_t> r = ParseNumber(fields[3]);
  std::optional<uint64_t> p = ParseNumber(fields[4]);
  if (!n || !r || !p) {
    return absl::InvalidArgumentError("scrypt N, r and p must be decimal numbers");
  }
  if (*r > kMaxAccountScryptR || *p > kMaxAccountScryptP) {
    return absl::InvalidArgumentError("scrypt r or p out of range (r <= 32, p <= 16)");
  }
  parsed.params = {*n, static_cast<uint32_t>(*r), static_cast<uint32_t>(*p)};
  RETURN_IF_ERROR(CheckParams(parsed.params));
  absl::StatusOr<std::string> salt = crypto::Base64Decode(fields[5]);
  if (!salt.ok()) return absl::InvalidArgumentError("the salt is not valid base64");
  if (salt->size() < kMinSaltSize || salt->size() > kMaxSaltSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("the salt must be 8 to 64 bytes, not ", salt->size()));
  }
  parsed.salt = *std::move(salt);
  absl::StatusOr<std::string> hash = crypto::Base64Decode(fields[6]);
  if (!hash.ok()) return absl::InvalidArgumentError("the hash is not valid base64");
  WipedString wiped_hash(*std::move(hash));
  if (wiped_hash.get().size() != kAccountHashSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("the hash must be 32 bytes, not ", wiped_hash.get().size()));
  }
  parsed.hash = crypto::SecretBytes(wiped_hash.get());
  return parsed;
}

// A line without its terminator ('\n' or "\r\n") and trailing spaces or tabs.
absl::string_view TrimLine(absl::string_view line) {
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) {
    line.remove_suffix(1);
  }
  return line;
}

bool IsEntry(absl::string_view trimmed) {
  std::size_t first = trimmed.find_first_not_of(" \t");
  return first != absl::string_view::npos && trimmed[first] != '#';
}

absl::Status LineError(absl::string_view where, std::size_t line_number,
                       const absl::Status& status) {
  return absl::InvalidArgumentError(
      absl::StrCat(where, where.empty() ? "" : " ", "line ", line_number, ": ", status.message()));
}

}  // namespace

FileAccountVerifier::FileAccountVerifier(absl::flat_hash_map<std::string, Entry> entries,
                                         Entry dummy)
    : entries_(std::move(entries)), dummy_(std::move(dummy)) {}

absl::StatusOr<std::unique_ptr<FileAccountVerifier>> FileAccountVerifier::Load(
    const std::string& path) {
  ASSIGN_OR_RETURN(crypto::SecretBytes content, crypto::ReadSecretFile(path));
  absl::flat_hash_map<std::string, Entry> entries;
  absl::flat_hash_map<std::string, std::size_t> first_line;
  std::optional<crypto::ScryptParams> first_params;
  std::size_t line_number = 0;
  for (absl::string_view raw : absl::StrSplit(content.view(), '\n')) {
    ++line_number;
    absl::string_view line = TrimLine(raw);
    if (!IsEntry(line)) continue;
    absl::StatusOr<ParsedLine> parsed = ParseEntry(line);
    if (!parsed.ok()) return LineError(path, line_number, parsed.status());
    auto [it, inserted] = first_line.emplace(parsed->username, line_number);
    if (!inserted) {
      return LineError(path, line_number,
                       absl::InvalidArgumentError(absl::StrCat(
                           "account \"", parsed->username, "\" is already on line ", it->second)));
    }
    if (!first_params) first_params = parsed->params;
    entries.emplace(parsed->username,
                    Entry{parsed->params, std::move(parsed->salt), std::move(parsed->hash)});
  }

  Entry dummy{first_params.value_or(kDefaultAccountScryptParams), "", crypto::SecretBytes()};
  ASSIGN_OR_RETURN(dummy.salt, crypto::RandomBytes(kAccountSaltSize));
  ASSIGN_OR_RETURN(dummy.hash, crypto::RandomSecret(kAccountHashSize));
  return std::unique_ptr<FileAccountVerifier>(
      new FileAccountVerifier(std::move(entries), std::move(dummy)));
}

absl::Status FileAccountVerifier::Verify(absl::string_view username,
                                         const crypto::SecretBytes& password) {
  auto it = entries_.find(username);
  const bool known = it != entries_.end();
  const Entry& entry = known ? it->second : dummy_;
  absl::StatusOr<crypto::SecretBytes> computed =
      crypto::Scrypt(password.view(), entry.salt, entry.params, kAccountHashSize);
  if (!computed.ok()) {
    // The parameters were checked at Load, so this is a resource failure (memory).
    return absl::UnavailableError(absl::StrCat("cannot check the password of \"", username,
                                               "\": ", computed.status().message()));
  }
  const bool match = crypto::ConstantTimeEquals(computed->view(), entry.hash.view());
  // An empty password never matches: MakeFileAccountLine refuses to write one.
  if (!known) return absl::NotFoundError(absl::StrCat("unknown account \"", username, "\""));
  if (!match || password.empty()) {
    return absl::PermissionDeniedError(absl::StrCat("wrong password for \"", username, "\""));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> MakeFileAccountLine(absl::string_view username,
                                                const crypto::SecretBytes& password,
                                                const crypto::ScryptParams& params) {
  RETURN_IF_ERROR(CheckUsername(username));
  RETURN_IF_ERROR(CheckParams(params));
  if (password.empty()) return absl::InvalidArgumentError("an empty password cannot be stored");
  ASSIGN_OR_RETURN(std::string salt, crypto::RandomBytes(kAccountSaltSize));
  ASSIGN_OR_RETURN(crypto::SecretBytes hash,
                   crypto::Scrypt(password.view(), salt, params, kAccountHashSize));
  return absl::StrCat(username, ":", kMethod, ":", params.n, ":", params.r, ":", params.p, ":",
                      crypto::Base64Encode(salt), ":", crypto::Base64Encode(hash.view()));
}

absl::StatusOr<crypto::SecretBytes> ReplaceFileAccountLine(absl::string_view content,
                                                           absl::string_view username,
                                                           absl::string_view line) {
  absl::StatusOr<ParsedLine> new_entry = ParseEntry(TrimLine(line));
  if (!new_entry.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the new line is not an account entry: ", new_entry.status().message()));
  }
  if (new_entry->username != username) {
    return absl::InvalidArgumentError(
        absl::StrCat("the new line is for \"", new_entry->username, "\", not \"", username, "\""));
  }
  crypto::SecretBytes out;
  bool replaced = false;
  std::size_t line_number = 0;
  std::vector<absl::string_view> lines = absl::StrSplit(content, '\n');
  // A final newline leaves an empty last piece, which is not a line of its own.
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  for (absl::string_view raw : lines) {
    ++line_number;
    absl::string_view trimmed = TrimLine(raw);
    if (IsEntry(trimmed)) {
      absl::StatusOr<ParsedLine> parsed = ParseEntry(trimmed);
      if (!parsed.ok()) return LineError("", line_number, parsed.status());
      if (parsed->username == username) {
        if (replaced) {
          return LineError("", line_number,
                           absl::InvalidArgumentError(
                               absl::StrCat("account \"", username, "\" appears more than once")));
        }
        out.Append(TrimLine(line));
        out.Append("\n");
        replaced = true;
        continue;
      }
    }
    out.Append(raw);
    out.Append("\n");
  }
  if (!replaced) {
    out.Append(TrimLine(line));
    out.Append("\n");
  }
  return out;
}

}  // namespace tether::agent::accounts
