#include "common/crypto/ed25519.h"

#include <openssl/err.h>
#include <openssl/evp.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/crypto/digest.h"
#include "common/crypto/openssl_status.h"

namespace tether::crypto {
namespace {

absl::StatusOr<EvpPkeyPtr> PrivateKey(const SecretBytes& seed) {
  if (seed.size() != kEd25519KeySize) {
    return absl::InvalidArgumentError(
        absl::StrCat("Ed25519 private key must be 32 bytes, got ", seed.size()));
  }
  EvpPkeyPtr key(EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, seed.data(), seed.size()));
  if (!key) return OpenSslError(absl::StatusCode::kInvalidArgument, "Ed25519 private key");
  return key;
}

}  // namespace

absl::StatusOr<std::string> Ed25519PublicKey(const SecretBytes& private_key) {
  ASSIGN_OR_RETURN(EvpPkeyPtr key, PrivateKey(private_key));
  std::string pk(kEd25519KeySize, '\0');
  std::size_t len = pk.size();
  if (EVP_PKEY_get_raw_public_key(key.get(), reinterpret_cast<unsigned char*>(pk.data()), &len) !=
          1 ||
      len != kEd25519KeySize) {
    return OpenSslError(absl::StatusCode::kInternal, "Ed25519 public key");
  }
  return pk;
}

absl::StatusOr<Ed25519KeyPair> GenerateEd25519KeyPair() {
  ASSIGN_OR_RETURN(SecretBytes seed, RandomSecret(kEd25519KeySize));
  ASSIGN_OR_RETURN(std::string pk, Ed25519PublicKey(seed));
  return Ed25519KeyPair{std::move(seed), std::move(pk)};
}

absl::StatusOr<std::string> Ed25519Sign(const SecretBytes& private_key,
                                        absl::string_view message) {
  ASSIGN_OR_RETURN(EvpPkeyPtr key, PrivateKey(private_key));
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  std::string sig(kEd25519SignatureSize, '\0');
  std::size_t len = sig.size();
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                     reinterpret_cast<const unsigned char*>(message.data()), message.size()) != 1 ||
      len != kEd25519SignatureSize) {
    return OpenSslError(absl::StatusCode::kInternal, "Ed25519 sign");
  }
  return sig;
}

absl::Status Ed25519Verify(absl::string_view public_key, absl::string_view message,
                           absl::string_view signature) {
  if (public_key.size() != kEd25519KeySize) {
    return absl::InvalidArgumentError(
        absl::StrCat("Ed25519 public key must be 32 bytes, got ", public_key.size()));
  }
  if (signature.size() != kEd25519SignatureSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("Ed25519 signature must be 64 bytes, got ", signature.size()));
  }
  EvpPkeyPtr key(EVP_PKEY_new_raw_public_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(public_key.data()),
      public_key.size()));
  if (!key) return OpenSslError(absl::StatusCode::kInvalidArgument, "Ed25519 public key");
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) != 1) {
    return OpenSslError(absl::StatusCode::kInternal, "Ed25519 verify init");
  }
  int ok = EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                            signature.size(), reinterpret_cast<const unsigned char*>(message.data()),
                            message.size());
  ERR_clear_error();
  if (ok != 1) return absl::UnauthenticatedError("signature does not verify");
  return absl::OkStatus();
}

}  // namespace tether::crypto
