// Ed25519 signatures (RFC 8032). Machines and gateway members sign their calls to the cloud; the
// cloud signs every job so that a relay cannot inject or alter one. Thread-safe.
#ifndef TETHER_COMMON_CRYPTO_ED25519_H_
#define TETHER_COMMON_CRYPTO_ED25519_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/crypto/secret.h"

namespace tether::crypto {

inline constexpr std::size_t kEd25519KeySize = 32;
inline constexpr std::size_t kEd25519SignatureSize = 64;

struct Ed25519KeyPair {
  SecretBytes private_key;  // the 32-byte seed
  std::string public_key;   // 32 bytes
};

absl::StatusOr<Ed25519KeyPair> GenerateEd25519KeyPair();
absl::StatusOr<std::string> Ed25519PublicKey(const SecretBytes& private_key);

// A 64-byte signature of `message`.
absl::StatusOr<std::string> Ed25519Sign(const SecretBytes& private_key, absl::string_view message);

// OK when `signature` is a valid signature of `message` by `public_key`. A malformed key or
// signature length is kInvalidArgument; a signature that does not verify is kUnauthenticated.
absl::Status Ed25519Verify(absl::string_view public_key, absl::string_view message,
                           absl::string_view signature);

}  // namespace tether::crypto

#endif  // TETHER_COMMON_CRYPTO_ED25519_H_
