#include "common/crypto/digest.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "common/crypto/openssl_status.h"

namespace tether::crypto {

std::string Sha256(absl::string_view data) {
  std::string out(kSha256Size, '\0');
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(),
         reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

SecretBytes HmacSha256(absl::string_view key, absl::string_view data) {
  // HMAC pads the key with zeros to the block size, so an empty key and a key of zeros give the
  // same MAC; the zero key avoids OpenSSL's refusal of a null key pointer.
  static constexpr unsigned char kZeroKey[kSha256Size] = {};
  const void* key_ptr = key.empty() ? static_cast<const void*>(kZeroKey) : key.data();
  std::size_t key_len = key.empty() ? sizeof(kZeroKey) : key.size();
  SecretBytes out(kSha256Size);
  std::size_t out_len = 0;
  if (EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key_ptr, key_len,
                reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(),
                out.size(), &out_len) == nullptr ||
      out_len != kSha256Size) {
    // HMAC-SHA256 with valid buffers cannot fail unless the library itself is broken.
    abort();
  }
  return out;
}

std::string KeyId(absl::string_view public_key) {
  return Sha256(public_key).substr(0, kKeyIdSize);
}

absl::StatusOr<std::string> RandomBytes(std::size_t n) {
  std::string out(n, '\0');
  if (n > 0 && RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    return OpenSslError(absl::StatusCode::kInternal, "RAND_bytes");
  }
  return out;
}

absl::StatusOr<SecretBytes> RandomSecret(std::size_t n) {
  SecretBytes out(n);
  if (n > 0 && RAND_bytes(out.data(), static_cast<int>(n)) != 1) {
    return OpenSslError(absl::StatusCode::kInternal, "RAND_bytes");
  }
  return out;
}

std::string Base64Encode(absl::string_view data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(data.data()),
                          static_cast<int>(data.size()));
  out.resize(n);
  return out;
}

absl::StatusOr<std::string> Base64Decode(absl::string_view text) {
  if (text.size() % 4 != 0) {
    return absl::InvalidArgumentError("base64 length is not a multiple of 4");
  }
  std::size_t padding = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    bool alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (alnum || c == '+' || c == '/') {
      if (padding > 0) return absl::InvalidArgumentError("base64 data after padding");
      continue;
    }
    if (c == '=' && i + 2 >= text.size()) {
      ++padding;
      continue;
    }
    return absl::InvalidArgumentError("invalid base64 character");
  }
  std::string out(text.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(text.data()),
                          static_cast<int>(text.size()));
  if (n < 0) return absl::InvalidArgumentError("invalid base64");
  out.resize(static_cast<std::size_t>(n) - padding);
  return out;
}

}  // namespace tether::crypto
