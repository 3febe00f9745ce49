#include "common/crypto/hpke.h"

#include <openssl/evp.h>

#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/crypto/digest.h"
#include "common/crypto/openssl_status.h"

namespace tether::crypto {
namespace {

constexpr absl::string_view kVersionLabel = "HPKE-v1";
constexpr std::size_t kHashSize = kSha256Size;  // Nh of HKDF-SHA256
constexpr uint8_t kModeBase = 0x00;

std::string I2Osp(uint64_t value, std::size_t width) {
  std::string out(width, '\0');
  for (std::size_t i = 0; i < width && i < 8; ++i) {
    out[width - 1 - i] = static_cast<char>((value >> (8 * i)) & 0xff);
  }
  return out;
}

std::string KemSuiteId() { return absl::StrCat("KEM", I2Osp(kKemX25519HkdfSha256, 2)); }

std::string HpkeSuiteId(const HpkeSuite& suite) {
  return absl::StrCat("HPKE", I2Osp(suite.kem_id, 2), I2Osp(suite.kdf_id, 2),
                      I2Osp(static_cast<uint16_t>(suite.aead), 2));
}

// HKDF-Extract (RFC 5869): PRK = HMAC(salt, ikm).
SecretBytes Extract(absl::string_view salt, const SecretBytes& ikm) {
  return HmacSha256(salt, ikm.view());
}

// HKDF-Expand (RFC 5869): T(i) = HMAC(prk, T(i-1) || info || i).
absl::StatusOr<SecretBytes> Expand(const SecretBytes& prk, absl::string_view info,
                                   std::size_t length) {
  if (length > 255 * kHashSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("HKDF-Expand length ", length, " exceeds ", 255 * kHashSize));
  }
  SecretBytes okm;
  SecretBytes block;
  for (uint8_t counter = 1; okm.size() < length; ++counter) {
    SecretBytes input = block.Clone();
    input.Append(info);
    input.Append(absl::string_view(reinterpret_cast<const char*>(&counter), 1));
    block = HmacSha256(prk.view(), input.view());
    okm.Append(block.view());
  }
  okm.Resize(length);
  return okm;
}

SecretBytes LabeledExtract(absl::string_view suite_id, absl::string_view salt,
                           absl::string_view label, absl::string_view ikm) {
  SecretBytes labeled_ikm(kVersionLabel);
  labeled_ikm.Append(suite_id);
  labeled_ikm.Append(label);
  labeled_ikm.Append(ikm);
  return Extract(salt, labeled_ikm);
}

absl::StatusOr<SecretBytes> LabeledExpand(absl::string_view suite_id, const SecretBytes& prk,
                                          absl::string_view label, absl::string_view info,
                                          std::size_t length) {
  if (length > 0xffff) return absl::InvalidArgumentError("LabeledExpand length exceeds 65535");
  std::string labeled_info = absl::StrCat(I2Osp(length, 2), kVersionLabel, suite_id, label, info);
  return Expand(prk, labeled_info, length);
}

absl::Status CheckKeySize(absl::string_view key, absl::string_view what) {
  if (key.size() != kX25519KeySize) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " must be ", kX25519KeySize, " bytes, got ", key.size()));
  }
  return absl::OkStatus();
}

absl::StatusOr<EvpPkeyPtr> PrivateKey(const SecretBytes& sk) {
  RETURN_IF_ERROR(CheckKeySize(sk.view(), "X25519 private key"));
  EvpPkeyPtr key(EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr, sk.data(), sk.size()));
  if (!key) return OpenSslError(absl::StatusCode::kInvalidArgument, "X25519 private key");
  return key;
}

absl::StatusOr<EvpPkeyPtr> PublicKey(absl::string_view pk) {
  RETURN_IF_ERROR(CheckKeySize(pk, "X25519 public key"));
  EvpPkeyPtr key(EVP_PKEY_new_raw_public_key(
      EVP_PKEY_X25519, nullptr, reinterpret_cast<const unsigned char*>(pk.data()), pk.size()));
  if (!key) return OpenSslError(absl::StatusCode::kInvalidArgument, "X25519 public key");
  return key;
}

// DH(sk, pk). An all-zero result (a low-order peer key) is refused, as RFC 9180 §7.1.4 requires.
absl::StatusOr<SecretBytes> Dh(const SecretBytes& sk, absl::string_view pk) {
  ASSIGN_OR_RETURN(EvpPkeyPtr priv, PrivateKey(sk));
  ASSIGN_OR_RETURN(EvpPkeyPtr peer, PublicKey(pk));
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new(priv.get(), nullptr));
  SecretBytes out(kX25519KeySize);
  std::size_t out_len = out.size();
  if (!ctx || EVP_PKEY_derive_init(ctx.get()) != 1 ||
      EVP_PKEY_derive_set_peer(ctx.get(), peer.get()) != 1 ||
      EVP_PKEY_derive(ctx.get(), out.data(), &out_len) != 1 || out_len != kX25519KeySize) {
    return OpenSslError(absl::StatusCode::kInvalidArgument,
                        "X25519 key agreement failed (invalid public key?)");
  }
  if (ConstantTimeEquals(out.view(), std::string(kX25519KeySize, '\0'))) {
    return absl::InvalidArgumentError("X25519 key agreement gave zero (low-order public key)");
  }
  return out;
}

absl::StatusOr<SecretBytes> ExtractAndExpand(const SecretBytes& dh, absl::string_view kem_context) {
  std::string suite_id = KemSuiteId();
  SecretBytes eae_prk = LabeledExtract(suite_id, "", "eae_prk", dh.view());
  return LabeledExpand(suite_id, eae_prk, "shared_secret", kem_context, kHashSize);
}

}  // namespace

absl::StatusOr<HpkeSuite> HpkeSuite::FromIds(uint32_t kem_id, uint32_t kdf_id, uint32_t aead_id) {
  if (kem_id != kKemX25519HkdfSha256) {
    return absl::InvalidArgumentError(absl::StrCat("unsupported HPKE KEM id ", kem_id));
  }
  if (kdf_id != kKdfHkdfSha256) {
    return absl::InvalidArgumentError(absl::StrCat("unsupported HPKE KDF id ", kdf_id));
  }
  if (aead_id > 0xffff) return absl::InvalidArgumentError("HPKE AEAD id out of range");
  ASSIGN_OR_RETURN(AeadId aead, AeadFromId(static_cast<uint16_t>(aead_id)));
  return HpkeSuite{static_cast<uint16_t>(kem_id), static_cast<uint16_t>(kdf_id), aead};
}

absl::StatusOr<std::string> X25519PublicKey(const SecretBytes& private_key) {
  ASSIGN_OR_RETURN(EvpPkeyPtr key, PrivateKey(private_key));
  std::string pk(kX25519KeySize, '\0');
  std::size_t len = pk.size();
  if (EVP_PKEY_get_raw_public_key(key.get(), reinterpret_cast<unsigned char*>(pk.data()), &len) !=
          1 ||
      len != kX25519KeySize) {
    return OpenSslError(absl::StatusCode::kInternal, "X25519 public key");
  }
  return pk;
}

absl::StatusOr<X25519KeyPair> GenerateX25519KeyPair() {
  ASSIGN_OR_RETURN(SecretBytes sk, RandomSecret(kX25519KeySize));
  ASSIGN_OR_RETURN(std::string pk, X25519PublicKey(sk));
  return X25519KeyPair{std::move(sk), std::move(pk)};
}

absl::StatusOr<X25519KeyPair> HpkeDeriveKeyPair(const SecretBytes& ikm) {
  std::string suite_id = KemSuiteId();
  SecretBytes dkp_prk = LabeledExtract(suite_id, "", "dkp_prk", ikm.view());
  ASSIGN_OR_RETURN(SecretBytes sk, LabeledExpand(suite_id, dkp_prk, "sk", "", kX25519KeySize));
  ASSIGN_OR_RETURN(std::string pk, X25519PublicKey(sk));
  return X25519KeyPair{std::move(sk), std::move(pk)};
}

absl::StatusOr<HpkeEncapsulation> HpkeEncap(absl::string_view recipient_public_key,
                                            const SecretBytes* ikm_e) {
  RETURN_IF_ERROR(CheckKeySize(recipient_public_key, "recipient public key"));
  X25519KeyPair ephemeral;
  if (ikm_e != nullptr) {
    ASSIGN_OR_RETURN(ephemeral, HpkeDeriveKeyPair(*ikm_e));
  } else {
    ASSIGN_OR_RETURN(ephemeral, GenerateX25519KeyPair());
  }
  ASSIGN_OR_RETURN(SecretBytes dh, Dh(ephemeral.private_key, recipient_public_key));
  std::string kem_context = absl::StrCat(ephemeral.public_key, recipient_public_key);
  ASSIGN_OR_RETURN(SecretBytes shared_secret, ExtractAndExpand(dh, kem_context));
  return HpkeEncapsulation{std::move(shared_secret), std::move(ephemeral.public_key)};
}

absl::StatusOr<SecretBytes> HpkeDecap(absl::string_view enc,
                                      const SecretBytes& recipient_private_key) {
  RETURN_IF_ERROR(CheckKeySize(enc, "HPKE enc"));
  ASSIGN_OR_RETURN(SecretBytes dh, Dh(recipient_private_key, enc));
  ASSIGN_OR_RETURN(std::string pk_r, X25519PublicKey(recipient_private_key));
  return ExtractAndExpand(dh, absl::StrCat(enc, pk_r));
}

absl::StatusOr<HpkeKeySchedule> HpkeKeyScheduleBase(const HpkeSuite& suite,
                                                    const SecretBytes& shared_secret,
                                                    absl::string_view info) {
  std::string suite_id = HpkeSuiteId(suite);
  SecretBytes psk_id_hash = LabeledExtract(suite_id, "", "psk_id_hash", "");
  SecretBytes info_hash = LabeledExtract(suite_id, "", "info_hash", info);
  HpkeKeySchedule ks;
  ks.key_schedule_context = absl::StrCat(std::string(1, static_cast<char>(kModeBase)),
                                         psk_id_hash.view(), info_hash.view());
  ks.secret = LabeledExtract(suite_id, shared_secret.view(), "secret", "");
  ASSIGN_OR_RETURN(ks.key, LabeledExpand(suite_id, ks.secret, "key", ks.key_schedule_context,
                                         AeadKeySize(suite.aead)));
  ASSIGN_OR_RETURN(SecretBytes nonce, LabeledExpand(suite_id, ks.secret, "base_nonce",
                                                    ks.key_schedule_context, kAeadNonceSize));
  ks.base_nonce = std::string(nonce.view());
  ASSIGN_OR_RETURN(ks.exporter_secret,
                   LabeledExpand(suite_id, ks.secret, "exp", ks.key_schedule_context, kHashSize));
  return ks;
}

absl::StatusOr<HpkeContext> MakeHpkeContext(HpkeRole role, const HpkeSuite& suite,
                                            HpkeKeySchedule schedule) {
  return HpkeContext(role, suite, std::move(schedule));
}

absl::StatusOr<std::string> HpkeContext::NextNonce() const {
  if (seq_ == std::numeric_limits<uint64_t>::max()) {
    return absl::ResourceExhaustedError("HPKE message limit reached");
  }
  std::string nonce = schedule_.base_nonce;
  std::string seq = I2Osp(seq_, kAeadNonceSize);
  for (std::size_t i = 0; i < kAeadNonceSize; ++i) nonce[i] ^= seq[i];
  return nonce;
}

absl::StatusOr<std::string> HpkeContext::Seal(absl::string_view aad, absl::string_view plaintext) {
  if (role_ != HpkeRole::kSender) {
    return absl::FailedPreconditionError("Seal on a receiver context");
  }
  ASSIGN_OR_RETURN(std::string nonce, NextNonce());
  ASSIGN_OR_RETURN(std::string ct, AeadSeal(suite_.aead, schedule_.key, nonce, aad, plaintext));
  ++seq_;
  return ct;
}

absl::StatusOr<SecretBytes> HpkeContext::Open(absl::string_view aad, absl::string_view ciphertext) {
  if (role_ != HpkeRole::kReceiver) {
    return absl::FailedPreconditionError("Open on a sender context");
  }
  ASSIGN_OR_RETURN(std::string nonce, NextNonce());
  ASSIGN_OR_RETURN(SecretBytes pt, AeadOpen(suite_.aead, schedule_.key, nonce, aad, ciphertext));
  ++seq_;
  return pt;
}

absl::StatusOr<SecretBytes> HpkeContext::Export(absl::string_view exporter_context,
                                                std::size_t length) const {
  return LabeledExpand(HpkeSuiteId(suite_), schedule_.exporter_secret, "sec", exporter_context,
                       length);
}

absl::StatusOr<HpkeSender> HpkeSetupBaseSender(const HpkeSuite& suite,
                                               absl::string_view recipient_public_key,
                                               absl::string_view info, const SecretBytes* ikm_e) {
  ASSIGN_OR_RETURN(HpkeEncapsulation encap, HpkeEncap(recipient_public_key, ikm_e));
  ASSIGN_OR_RETURN(HpkeKeySchedule ks, HpkeKeyScheduleBase(suite, encap.shared_secret, info));
  ASSIGN_OR_RETURN(HpkeContext ctx, MakeHpkeContext(HpkeRole::kSender, suite, std::move(ks)));
  return HpkeSender{std::move(encap.enc), std::move(ctx)};
}

absl::StatusOr<HpkeContext> HpkeSetupBaseReceiver(const HpkeSuite& suite, absl::string_view enc,
                                                  const SecretBytes& recipient_private_key,
                                                  absl::string_view info) {
  ASSIGN_OR_RETURN(SecretBytes shared_secret, HpkeDecap(enc, recipient_private_key));
  ASSIGN_OR_RETURN(HpkeKeySchedule ks, HpkeKeyScheduleBase(suite, shared_secret, info));
  return MakeHpkeContext(HpkeRole::kReceiver, suite, std::move(ks));
}

absl::StatusOr<HpkeSealed> HpkeSeal(const HpkeSuite& suite, absl::string_view recipient_public_key,
                                    absl::string_view info, absl::string_view aad,
                                    absl::string_view plaintext, const SecretBytes* ikm_e) {
  ASSIGN_OR_RETURN(HpkeSender sender,
                   HpkeSetupBaseSender(suite, recipient_public_key, info, ikm_e));
  ASSIGN_OR_RETURN(std::string ct, sender.context.Seal(aad, plaintext));
  return HpkeSealed{std::move(sender.enc), std::move(ct)};
}

absl::StatusOr<SecretBytes> HpkeOpen(const HpkeSuite& suite,
                                     const SecretBytes& recipient_private_key,
                                     absl::string_view enc, absl::string_view info,
                                     absl::string_view aad, absl::string_view ciphertext) {
  ASSIGN_OR_RETURN(HpkeContext ctx,
                   HpkeSetupBaseReceiver(suite, enc, recipient_private_key, info));
  return ctx.Open(aad, ciphertext);
}

}  // namespace tether::crypto
