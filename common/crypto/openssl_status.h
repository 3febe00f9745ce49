// The one adapter from the OpenSSL error queue to absl::Status, and RAII owners for the OpenSSL
// objects the crypto facade uses. Internal to //common/crypto.
#ifndef TETHER_COMMON_CRYPTO_OPENSSL_STATUS_H_
#define TETHER_COMMON_CRYPTO_OPENSSL_STATUS_H_

#include <openssl/evp.h>

#include <memory>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"

namespace tether::crypto {

// Returns a status with `code` and message "<what>: <first OpenSSL error>", and clears the error
// queue so that later calls do not report stale errors.
absl::Status OpenSslError(absl::StatusCode code, absl::string_view what);

struct EvpPkeyDeleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct EvpPkeyCtxDeleter {
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};
struct EvpCipherCtxDeleter {
  void operator()(EVP_CIPHER_CTX* p) const { EVP_CIPHER_CTX_free(p); }
};
struct EvpMdCtxDeleter {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, EvpPkeyDeleter>;
using EvpPkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, EvpPkeyCtxDeleter>;
using EvpCipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, EvpCipherCtxDeleter>;
using EvpMdCtxPtr = std::unique_ptr<EVP_MD_CTX, EvpMdCtxDeleter>;

}  // namespace tether::crypto

#endif  // TETHER_COMMON_CRYPTO_OPENSSL_STATUS_H_
