// Authenticated encryption with associated data: AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305,
// identified by their HPKE AEAD ids (RFC 9180 §7.3). All functions are thread-safe.
#ifndef TETHER_COMMON_CRYPTO_AEAD_H_
#define TETHER_COMMON_CRYPTO_AEAD_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "common/crypto/secret.h"

namespace tether::crypto {

enum class AeadId : uint16_t {
  kAes128Gcm = 0x0001,
  kAes256Gcm = 0x0002,
  kChaCha20Poly1305 = 0x0003,
};

inline constexpr std::size_t kAeadNonceSize = 12;
inline constexpr std::size_t kAeadTagSize = 16;

// Key length (Nk) of `aead`.
std::size_t AeadKeySize(AeadId aead);
// Parses an AEAD id from the wire; unknown ids (including HPKE's export-only 0xFFFF) are
// kInvalidArgument.
absl::StatusOr<AeadId> AeadFromId(uint16_t id);

// Returns ciphertext || tag. Fails with kInvalidArgument on a wrong key or nonce length.
absl::StatusOr<std::string> AeadSeal(AeadId aead, const SecretBytes& key, absl::string_view nonce,
                                     absl::string_view aad, absl::string_view plaintext);

// Opens ciphertext || tag. A wrong key, nonce, aad or any modified byte is kUnauthenticated
// ("authentication failed"); nothing of the plaintext is returned then.
absl::StatusOr<SecretBytes> AeadOpen(AeadId aead, const SecretBytes& key, absl::string_view nonce,
                                     absl::string_view aad, absl::string_view ciphertext);

}  // namespace tether::crypto

#endif  // TETHER_COMMON_CRYPTO_AEAD_H_
