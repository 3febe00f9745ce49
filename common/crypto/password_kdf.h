// Password-based keys (DESIGN §2): scrypt (RFC 7914), the password key wrap that protects a
// machine group's private key, and the recovery-key derivation of a gateway cluster's key pair.
// All functions are thread-safe. scrypt is deliberately slow and memory-hard: with the default
// parameters each call takes about 32 MiB and tens of milliseconds.
#ifndef TETHER_COMMON_CRYPTO_PASSWORD_KDF_H_
#define TETHER_COMMON_CRYPTO_PASSWORD_KDF_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/crypto/hpke.h"
#include "common/crypto/secret.h"
#include "common/proto/crypto.pb.h"

namespace tether::crypto {

struct ScryptParams {
  uint64_t n = uint64_t{1} << 15;
  uint32_t r = 8;
  uint32_t p = 1;
};

// The most memory one scrypt call may use (128 * r * N plus small terms). RFC 7914's largest
// vector (N = 2^20, r = 8) needs 1 GiB.
inline constexpr uint64_t kMaxScryptMemory = uint64_t{2} << 30;

// scrypt(password, salt, N, r, p, length). N must be a power of two greater than 1, r and p
// positive with r * p < 2^30, 1 <= length <= 1 MiB, memory within kMaxScryptMemory; otherwise
// kInvalidArgument.
absl::StatusOr<SecretBytes> Scrypt(absl::string_view password, absl::string_view salt,
                                   const ScryptParams& params, std::size_t length);

// Wraps `key` under `password`: a fresh 16-byte salt and 12-byte nonce, scrypt → 32-byte key,
// AES-256-GCM with aad "tether/keywrap/v1" || N || r || p (so the stored parameters are
// authenticated too).
absl::StatusOr<proto::WrappedKey> WrapWithPassword(const SecretBytes& key,
                                                   const SecretBytes& password,
                                                   const ScryptParams& params = {});

// Unwraps a blob from WrapWithPassword. The blob is untrusted: parameters beyond N = 2^20, r = 32,
// p = 16, or malformed sizes are kInvalidArgument before any work is done. A wrong password (or
// an altered blob) is kPermissionDenied "wrong password".
absl::StatusOr<SecretBytes> UnwrapWithPassword(const proto::WrappedKey& wrapped,
                                               const SecretBytes& password);

// A gateway cluster's key pair from its recovery key:
//   ikm = scrypt(recovery_key, salt = "tether/cluster/v1/" + cluster_name, N=2^15, r=8, p=1, 32)
//   (sk, pk) = HPKE DeriveKeyPair(ikm)
// Every member given the same recovery key and cluster name derives the same pair. An empty
// recovery key or cluster name is kInvalidArgument.
absl::StatusOr<X25519KeyPair> DeriveClusterKeyPair(const SecretBytes& recovery_key,
                                                   absl::string_view cluster_name);

}  // namespace tether::crypto

#endif  // TETHER_COMMON_CRYPTO_PASSWORD_KDF_H_
