#include "common/crypto/aead.h"

#include <openssl/err.h>
#include <openssl/evp.h>

#include "absl/strings/str_cat.h"
#include "common/crypto/openssl_status.h"

namespace tether::crypto {
namespace {

const EVP_CIPHER* CipherFor(AeadId aead) {
  switch (aead) {
    case AeadId::kAes128Gcm:
      return EVP_aes_128_gcm();
    case AeadId::kAes256Gcm:
      return EVP_aes_256_gcm();
    case AeadId::kChaCha20Poly1305:
      return EVP_chacha20_poly1305();
  }
  return nullptr;
}

absl::Status CheckSizes(AeadId aead, const SecretBytes& key, absl::string_view nonce) {
  if (key.size() != AeadKeySize(aead)) {
    return absl::InvalidArgumentError(
        absl::StrCat("AEAD key must be ", AeadKeySize(aead), " bytes, got ", key.size()));
  }
  if (nonce.size() != kAeadNonceSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("AEAD nonce must be ", kAeadNonceSize, " bytes, got ", nonce.size()));
  }
  return absl::OkStatus();
}

const unsigned char* Bytes(absl::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

}  // namespace

std::size_t AeadKeySize(AeadId aead) { return aead == AeadId::kAes128Gcm ? 16 : 32; }

absl::StatusOr<AeadId> AeadFromId(uint16_t id) {
  switch (id) {
    case 0x0001:
      return AeadId::kAes128Gcm;
    case 0x0002:
      return AeadId::kAes256Gcm;
    case 0x0003:
      return AeadId::kChaCha20Poly1305;
  }
  return absl::InvalidArgumentError(absl::StrCat("unsupported AEAD id ", id));
}

absl::StatusOr<std::string> AeadSeal(AeadId aead, const SecretBytes& key, absl::string_view nonce,
                                     absl::string_view aad, absl::string_view plaintext) {
  if (absl::Status s = CheckSizes(aead, key, nonce); !s.ok()) return s;
  EvpCipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return OpenSslError(absl::StatusCode::kResourceExhausted, "EVP_CIPHER_CTX_new");
  std::string out(plaintext.size() + kAeadTagSize, '\0');
  auto* out_bytes = reinterpret_cast<unsigned char*>(out.data());
  int len = 0;
  int total = 0;
  if (EVP_EncryptInit_ex(ctx.get(), CipherFor(aead), nullptr, key.data(), Bytes(nonce)) != 1 ||
      (!aad.empty() &&
       EVP_EncryptUpdate(ctx.get(), nullptr, &len, Bytes(aad), static_cast<int>(aad.size())) !=
           1) ||
      EVP_EncryptUpdate(ctx.get(), out_bytes, &len, Bytes(plaintext),
                        static_cast<int>(plaintext.size())) != 1) {
    return OpenSslError(absl::StatusCode::kInternal, "AEAD encrypt");
  }
  total = len;
  if (EVP_EncryptFinal_ex(ctx.get(), out_bytes + total, &len) != 1) {
    return OpenSslError(absl::StatusCode::kInternal, "AEAD encrypt final");
  }
  total += len;
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_GET_TAG, kAeadTagSize, out_bytes + total) !=
      1) {
    return OpenSslError(absl::StatusCode::kInternal, "AEAD get tag");
  }
  out.resize(total + kAeadTagSize);
  return out;
}

absl::StatusOr<SecretBytes> AeadOpen(AeadId aead, const SecretBytes& key, absl::string_view nonce,
                                     absl::string_view aad, absl::string_view ciphertext) {
  if (absl::Status s = CheckSizes(aead, key, nonce); !s.ok()) return s;
  if (ciphertext.size() < kAeadTagSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("ciphertext of ", ciphertext.size(), " bytes is shorter than the tag"));
  }
  absl::string_view body = ciphertext.substr(0, ciphertext.size() - kAeadTagSize);
  std::string tag(ciphertext.substr(body.size()));
  EvpCipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return OpenSslError(absl::StatusCode::kResourceExhausted, "EVP_CIPHER_CTX_new");
  SecretBytes out(body.size());
  int len = 0;
  if (EVP_DecryptInit_ex(ctx.get(), CipherFor(aead), nullptr, key.data(), Bytes(nonce)) != 1 ||
      (!aad.empty() &&
       EVP_DecryptUpdate(ctx.get(), nullptr, &len, Bytes(aad), static_cast<int>(aad.size())) !=
           1) ||
      EVP_DecryptUpdate(ctx.get(), out.data(), &len, Bytes(body), static_cast<int>(body.size())) !=
          1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_SET_TAG, kAeadTagSize, tag.data()) != 1) {
    return OpenSslError(absl::StatusCode::kInternal, "AEAD decrypt");
  }
  int final_len = 0;
  if (EVP_DecryptFinal_ex(ctx.get(), out.data() + len, &final_len) != 1) {
    out.Clear();
    ERR_clear_error();
    return absl::UnauthenticatedError("authentication failed");
  }
  return out;
}

}  // namespace tether::crypto
