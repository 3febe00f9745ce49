#include "common/crypto/password_kdf.h"

#include <openssl/evp.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/crypto/aead.h"
#include "common/crypto/digest.h"
#include "common/crypto/openssl_status.h"

namespace tether::crypto {
namespace {

constexpr absl::string_view kWrapLabel = "tether/keywrap/v1";
constexpr absl::string_view kClusterSaltPrefix = "tether/cluster/v1/";
constexpr std::size_t kWrapSaltSize = 16;
constexpr std::size_t kWrapKeySize = 32;
constexpr std::size_t kMaxScryptOutput = 1 << 20;

// Limits for blobs read from storage or the network.
constexpr uint64_t kMaxUnwrapN = uint64_t{1} << 20;
constexpr uint32_t kMaxUnwrapR = 32;
constexpr uint32_t kMaxUnwrapP = 16;
constexpr std::size_t kMaxWrappedKeySize = 4096;

std::string BigEndian(uint64_t v, int width) {
  std::string out(width, '\0');
  for (int i = 0; i < width; ++i) out[width - 1 - i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return out;
}

std::string WrapAad(const ScryptParams& params) {
  return absl::StrCat(kWrapLabel, BigEndian(params.n, 8), BigEndian(params.r, 4),
                      BigEndian(params.p, 4));
}

// Memory scrypt needs, as OpenSSL computes it (RFC 7914 §2: 128 * r * (N + p) plus a block).
uint64_t ScryptMemory(const ScryptParams& params) {
  return 128ull * params.r * (params.n + params.p + 2);
}

}  // namespace

absl::StatusOr<SecretBytes> Scrypt(absl::string_view password, absl::string_view salt,
                                   const ScryptParams& params, std::size_t length) {
  if (params.n < 2 || (params.n & (params.n - 1)) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("scrypt N must be a power of two greater than 1, got ", params.n));
  }
  if (params.r == 0 || params.p == 0 || uint64_t{params.r} * params.p >= (uint64_t{1} << 30)) {
    return absl::InvalidArgumentError("scrypt r and p must be positive with r * p < 2^30");
  }
  if (params.n >= (uint64_t{1} << (16 * params.r < 64 ? 16 * params.r : 63))) {
    return absl::InvalidArgumentError("scrypt N must be less than 2^(128 * r / 8)");
  }
  if (length == 0 || length > kMaxScryptOutput) {
    return absl::InvalidArgumentError(absl::StrCat("scrypt length must be 1 to ", kMaxScryptOutput));
  }
  uint64_t memory = ScryptMemory(params);
  if (params.n > kMaxScryptMemory || memory > kMaxScryptMemory) {
    return absl::InvalidArgumentError(absl::StrCat("scrypt parameters need more than ",
                                                   kMaxScryptMemory >> 20, " MiB of memory"));
  }
  SecretBytes out(length);
  if (EVP_PBE_scrypt(password.data(), password.size(),
                     reinterpret_cast<const unsigned char*>(salt.data()), salt.size(), params.n,
                     params.r, params.p, memory + (1 << 20), out.data(), out.size()) != 1) {
    return OpenSslError(absl::StatusCode::kResourceExhausted, "scrypt");
  }
  return out;
}

absl::StatusOr<proto::WrappedKey> WrapWithPassword(const SecretBytes& key,
                                                   const SecretBytes& password,
                                                   const ScryptParams& params) {
  if (key.empty() || key.size() > kMaxWrappedKeySize) {
    return absl::InvalidArgumentError("key to wrap must be 1 to 4096 bytes");
  }
  if (password.empty()) return absl::InvalidArgumentError("password is empty");
  ASSIGN_OR_RETURN(std::string salt, RandomBytes(kWrapSaltSize));
  ASSIGN_OR_RETURN(std::string nonce, RandomBytes(kAeadNonceSize));
  ASSIGN_OR_RETURN(SecretBytes wrap_key, Scrypt(password.view(), salt, params, kWrapKeySize));
  ASSIGN_OR_RETURN(std::string ciphertext,
                   AeadSeal(AeadId::kAes256Gcm, wrap_key, nonce, WrapAad(params), key.view()));
  proto::WrappedKey wrapped;
  wrapped.set_scrypt_n(params.n);
  wrapped.set_r(params.r);
  wrapped.set_p(params.p);
  wrapped.set_salt(salt);
  wrapped.set_nonce(nonce);
  wrapped.set_ciphertext(ciphertext);
  return wrapped;
}

absl::StatusOr<SecretBytes> UnwrapWithPassword(const proto::WrappedKey& wrapped,
                                               const SecretBytes& password) {
  ScryptParams params{wrapped.scrypt_n(), wrapped.r(), wrapped.p()};
  if (params.n > kMaxUnwrapN || params.r > kMaxUnwrapR || params.p > kMaxUnwrapP) {
    return absl::InvalidArgumentError(absl::StrCat(
        "wrapped key asks for scrypt N=", params.n, " r=", params.r, " p=", params.p,
        ", beyond the accepted N=2^20 r=32 p=16"));
  }
  if (wrapped.salt().size() < 8 || wrapped.salt().size() > 64) {
    return absl::InvalidArgumentError("wrapped key salt must be 8 to 64 bytes");
  }
  if (wrapped.nonce().size() != kAeadNonceSize) {
    return absl::InvalidArgumentError("wrapped key nonce must be 12 bytes");
  }
  if (wrapped.ciphertext().size() <= kAeadTagSize ||
      wrapped.ciphertext().size() > kMaxWrappedKeySize + kAeadTagSize) {
    return absl::InvalidArgumentError("wrapped key ciphertext has an invalid size");
  }
  ASSIGN_OR_RETURN(SecretBytes wrap_key,
                   Scrypt(password.view(), wrapped.salt(), params, kWrapKeySize));
  absl::StatusOr<SecretBytes> key = AeadOpen(AeadId::kAes256Gcm, wrap_key, wrapped.nonce(),
                                             WrapAad(params), wrapped.ciphertext());
  if (key.status().code() == absl::StatusCode::kUnauthenticated) {
    return absl::PermissionDeniedError("wrong password (or the wrapped key was altered)");
  }
  return key;
}

absl::StatusOr<X25519KeyPair> DeriveClusterKeyPair(const SecretBytes& recovery_key,
                                                   absl::string_view cluster_name) {
  if (recovery_key.empty()) return absl::InvalidArgumentError("recovery key is empty");
  if (cluster_name.empty()) return absl::InvalidArgumentError("cluster name is empty");
  ASSIGN_OR_RETURN(SecretBytes ikm, Scrypt(recovery_key.view(),
                                           absl::StrCat(kClusterSaltPrefix, cluster_name),
                                           ScryptParams{}, kX25519KeySize));
  return HpkeDeriveKeyPair(ikm);
}

}  // namespace tether::crypto
