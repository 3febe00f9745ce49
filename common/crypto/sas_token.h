// Relay access tokens in the Azure Relay shared access signature format (DESIGN §2):
//
//   SharedAccessSignature sr=<url-encoded resource URI>&sig=<url-encoded base64 HMAC-SHA256(key,
//       url-encoded-sr + "\n" + expiry)>&se=<unix expiry>&skn=<key name>
//
// A token is valid until `se` for every entity whose path is the path of `sr` or lies below it
// (segment-wise: "/$hc/machine-4" does not cover "/$hc/machine-42"). Paths compare
// case-insensitively, ignoring scheme, host and port. Rights belong to the key, not the token:
// SasKeyRing holds the keys with their rights. All functions are thread-safe; a SasKeyRing is
// immutable after construction.
#ifndef TETHER_COMMON_CRYPTO_SAS_TOKEN_H_
#define TETHER_COMMON_CRYPTO_SAS_TOKEN_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/crypto/secret.h"

namespace tether::crypto {

enum SasRight : uint32_t {
  kSasListen = 1u << 0,
  kSasSend = 1u << 1,
  kSasManage = 1u << 2,
};

// Why a token was refused; also the label of the relay's auth-failure metric.
enum class SasFailure {
  kNone,          // not a SAS failure (OK, or another error)
  kMalformed,     // not parseable as a token
  kUnknownKey,    // skn names no key
  kBadSignature,  // sig does not match
  kExpired,       // now >= se
  kOutOfScope,    // sr does not cover the entity
  kMissingRight,  // the key lacks the right the action needs
};

// The failure carried by a status returned from this file's functions.
SasFailure SasFailureOf(const absl::Status& status);
absl::string_view SasFailureLabel(SasFailure failure);

// Percent-encodes everything but RFC 3986 unreserved characters, with upper-case hex.
std::string SasUrlEncode(absl::string_view text);
// Percent-decodes (and turns '+' into a space, as form encoding does). Bad escapes are
// kInvalidArgument.
absl::StatusOr<std::string> SasUrlDecode(absl::string_view text);

// The lower-cased path of a resource URI without trailing slash: "https://h:1/$hc/A/" →
// "/$hc/a". Accepts a bare path too. "." or ".." segments are kInvalidArgument.
absl::StatusOr<std::string> SasResourcePath(absl::string_view resource_uri);

// Creates a token for `resource_uri` signed with `key` (its bytes, as Azure uses the key string).
std::string CreateSasToken(absl::string_view resource_uri, absl::string_view key_name,
                           const SecretBytes& key, int64_t expiry_unix);

struct SasToken {
  std::string resource_encoded;  // sr exactly as sent (the signed form)
  std::string resource;          // sr decoded
  std::string signature;         // sig decoded (base64 text)
  std::string expiry_text;       // se exactly as sent (the signed form)
  int64_t expiry_unix = 0;
  std::string key_name;          // skn decoded
};

// Parses "SharedAccessSignature sr=...&sig=...&se=...&skn=..." (the prefix is optional, as in
// the sb-hc-token query parameter). Missing or repeated fields are kUnauthenticated/kMalformed.
absl::StatusOr<SasToken> ParseSasToken(absl::string_view token);

// Checks signature (constant time), expiry and scope of a parsed token against `entity` (a URI
// or path). Errors: kUnauthenticated (bad signature, expired) or kPermissionDenied (scope), with
// SasFailureOf() telling which.
absl::Status VerifySasToken(const SasToken& token, const SecretBytes& key,
                            absl::string_view entity, int64_t now_unix);

struct SasKey {
  std::string name;
  SecretBytes key;
  uint32_t rights = 0;  // SasRight bits
};

// Parses "Listen", "Send", "Manage" separated by commas (case-insensitive). Manage implies
// Listen and Send, as in Azure Relay.
absl::StatusOr<uint32_t> ParseSasRights(absl::string_view text);

class SasKeyRing {
 public:
  // Parses a keys file: one key per line, "NAME KEY RIGHTS", '#' starts a comment. Keys must be
  // at least 32 characters; duplicate names are refused. Errors name the line.
  static absl::StatusOr<SasKeyRing> Parse(absl::string_view text);
  explicit SasKeyRing(std::vector<SasKey> keys);

  // Full check of a token for an action on `entity` that needs `right`. Returns the key name.
  absl::StatusOr<std::string> Authorize(absl::string_view token, absl::string_view entity,
                                        SasRight right, int64_t now_unix) const;
  // The key with `name`, or nullptr.
  const SasKey* Find(absl::string_view name) const;
  std::size_t size() const { return keys_->size(); }
  // The keys in file order.
  const std::vector<SasKey>& keys() const { return *keys_; }

 private:
  std::shared_ptr<const std::vector<SasKey>> keys_;
};

}  // namespace tether::crypto

#endif  // TETHER_COMMON_CRYPTO_SAS_TOKEN_H_
