#include "common/crypto/secret.h"

#include <openssl/crypto.h>

namespace tether::crypto {

void Cleanse(void* p, std::size_t size) {
  if (p != nullptr && size > 0) OPENSSL_cleanse(p, size);
}

bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace tether::crypto
