#include "common/crypto/envelope.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/crypto/digest.h"
#include "common/crypto/hpke.h"

namespace tether::crypto {
namespace {

// Plaintext bounds: generous for any real account, small enough to refuse junk early.
constexpr std::size_t kMaxUsernameSize = 256;
constexpr std::size_t kMaxPasswordSize = 4096;
constexpr std::size_t kMaxCiphertextSize = 16 * 1024;

std::string Aad(absl::string_view connection_id, absl::string_view key_id) {
  return absl::StrCat(connection_id, key_id);
}

// Wipes a protobuf string field before the message frees it.
void WipeString(std::string* s) {
  Cleanse(s->data(), s->size());
  s->clear();
}

}  // namespace

absl::Status ValidateEnvelope(const proto::SealedEnvelope& envelope,
                              absl::string_view recipient_public_key,
                              absl::string_view connection_id) {
  RETURN_IF_ERROR(
      HpkeSuite::FromIds(envelope.kem_id(), envelope.kdf_id(), envelope.aead_id()).status());
  if (envelope.recipient_key_id().size() != kKeyIdSize) {
    return absl::InvalidArgumentError(absl::StrCat("recipient_key_id must be ", kKeyIdSize,
                                                   " bytes, got ",
                                                   envelope.recipient_key_id().size()));
  }
  if (recipient_public_key.size() != kX25519KeySize ||
      !ConstantTimeEquals(envelope.recipient_key_id(), KeyId(recipient_public_key))) {
    return absl::InvalidArgumentError("envelope is sealed to a different public key");
  }
  if (envelope.enc().size() != kX25519KeySize) {
    return absl::InvalidArgumentError(
        absl::StrCat("enc must be ", kX25519KeySize, " bytes, got ", envelope.enc().size()));
  }
  if (envelope.ciphertext().size() <= kAeadTagSize) {
    return absl::InvalidArgumentError("ciphertext is truncated");
  }
  if (envelope.ciphertext().size() > kMaxCiphertextSize) {
    return absl::InvalidArgumentError("ciphertext is larger than any credential");
  }
  if (!connection_id.empty() && envelope.connection_id() != connection_id) {
    return absl::InvalidArgumentError(
        absl::StrCat("envelope is bound to connection \"", envelope.connection_id(),
                     "\", not \"", connection_id, "\""));
  }
  return absl::OkStatus();
}

absl::StatusOr<proto::SealedEnvelope> SealCredentials(absl::string_view recipient_public_key,
                                                      absl::string_view connection_id,
                                                      const Credentials& credentials) {
  if (connection_id.empty()) return absl::InvalidArgumentError("connection id is empty");
  if (credentials.username.empty() || credentials.username.size() > kMaxUsernameSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("username must be 1 to ", kMaxUsernameSize, " bytes"));
  }
  if (credentials.password.size() > kMaxPasswordSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("password must be at most ", kMaxPasswordSize, " bytes"));
  }
  if (recipient_public_key.size() != kX25519KeySize) {
    return absl::InvalidArgumentError("recipient public key must be 32 bytes");
  }

  proto::SealedCredentialPlaintext message;
  message.set_username(credentials.username);
  message.mutable_secret()->assign(credentials.password.view().data(),
                                   credentials.password.size());
  SecretBytes plaintext(message.ByteSizeLong());
  bool serialized = message.SerializeToArray(plaintext.data(), static_cast<int>(plaintext.size()));
  WipeString(message.mutable_secret());
  if (!serialized) return absl::InternalError("cannot serialize credentials");

  std::string key_id = KeyId(recipient_public_key);
  ASSIGN_OR_RETURN(HpkeSealed sealed,
                   HpkeSeal(kTetherSuite, recipient_public_key, kCredentialInfo,
                            Aad(connection_id, key_id), plaintext.view()));
  proto::SealedEnvelope envelope;
  envelope.set_kem_id(kTetherSuite.kem_id);
  envelope.set_kdf_id(kTetherSuite.kdf_id);
  envelope.set_aead_id(static_cast<uint32_t>(kTetherSuite.aead));
  envelope.set_recipient_key_id(key_id);
  envelope.set_enc(std::move(sealed.enc));
  envelope.set_ciphertext(std::move(sealed.ciphertext));
  envelope.set_connection_id(std::string(connection_id));
  return envelope;
}

absl::StatusOr<Credentials> OpenCredentials(const proto::SealedEnvelope& envelope,
                                            const SecretBytes& recipient_private_key,
                                            absl::string_view connection_id) {
  ASSIGN_OR_RETURN(HpkeSuite suite,
                   HpkeSuite::FromIds(envelope.kem_id(), envelope.kdf_id(), envelope.aead_id()));
  ASSIGN_OR_RETURN(std::string public_key, X25519PublicKey(recipient_private_key));
  std::string key_id = KeyId(public_key);
  if (!ConstantTimeEquals(envelope.recipient_key_id(), key_id)) {
    return absl::PermissionDeniedError("envelope is addressed to another key");
  }
  ASSIGN_OR_RETURN(SecretBytes plaintext,
                   HpkeOpen(suite, recipient_private_key, envelope.enc(), kCredentialInfo,
                            Aad(connection_id, key_id), envelope.ciphertext()));
  proto::SealedCredentialPlaintext message;
  bool parsed = message.ParseFromArray(plaintext.data(), static_cast<int>(plaintext.size()));
  Credentials credentials;
  credentials.password = SecretBytes(message.secret());
  credentials.username = message.username();
  WipeString(message.mutable_secret());
  if (!parsed || credentials.username.empty()) {
    return absl::InvalidArgumentError("envelope plaintext is not a credential record");
  }
  return credentials;
}

}  // namespace tether::crypto
