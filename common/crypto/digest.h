// Hashes, MACs, randomness and encodings that the rest of the crypto facade builds on.
// All functions are thread-safe.
#ifndef TETHER_COMMON_CRYPTO_DIGEST_H_
#define TETHER_COMMON_CRYPTO_DIGEST_H_

#include <cstddef>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "common/crypto/secret.h"

namespace tether::crypto {

inline constexpr std::size_t kSha256Size = 32;
inline constexpr std::size_t kKeyIdSize = 16;

// SHA-256 of `data` (32 bytes).
std::string Sha256(absl::string_view data);

// HMAC-SHA256(key, data) (32 bytes). An empty key is allowed.
SecretBytes HmacSha256(absl::string_view key, absl::string_view data);

// DESIGN §2: the id of a public key is the first 16 bytes of its SHA-256.
std::string KeyId(absl::string_view public_key);

// `n` bytes from RAND_bytes. Fails only if the OpenSSL DRBG fails (kInternal).
absl::StatusOr<std::string> RandomBytes(std::size_t n);
absl::StatusOr<SecretBytes> RandomSecret(std::size_t n);

// Standard base64 with padding (RFC 4648 §4).
std::string Base64Encode(absl::string_view data);
// Strict decoding: padding required, no whitespace; anything else is kInvalidArgument.
absl::StatusOr<std::string> Base64Decode(absl::string_view text);

}  // namespace tether::crypto

#endif  // TETHER_COMMON_CRYPTO_DIGEST_H_
