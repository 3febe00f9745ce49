// HPKE, RFC 9180, mode_base: KEM DHKEM(X25519, HKDF-SHA256), KDF HKDF-SHA256, and the AEADs
// AES-128-GCM, AES-256-GCM and ChaCha20-Poly1305.
//
// Single-shot use:
//   ASSIGN_OR_RETURN(HpkeSealed sealed, HpkeSeal(suite, recipient_pub, info, aad, plaintext));
//   ASSIGN_OR_RETURN(SecretBytes pt, HpkeOpen(suite, recipient_priv, sealed.enc, info, aad, ct));
// Multi-message use: HpkeSetupBaseSender / HpkeSetupBaseReceiver return an HpkeContext whose
// Seal/Open advance a sequence number (nonce = base_nonce XOR seq) and whose Export derives
// secrets (RFC 9180 §5.3).
//
// Errors: malformed keys or ids are kInvalidArgument; a ciphertext that does not authenticate is
// kUnauthenticated; an exhausted sequence number is kResourceExhausted.
// Free functions are thread-safe; an HpkeContext is not (it carries a sequence number).
#ifndef TETHER_COMMON_CRYPTO_HPKE_H_
#define TETHER_COMMON_CRYPTO_HPKE_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "common/crypto/aead.h"
#include "common/crypto/secret.h"

namespace tether::crypto {

inline constexpr uint16_t kKemX25519HkdfSha256 = 0x0020;
inline constexpr uint16_t kKdfHkdfSha256 = 0x0001;
inline constexpr std::size_t kX25519KeySize = 32;

struct HpkeSuite {
  uint16_t kem_id = kKemX25519HkdfSha256;
  uint16_t kdf_id = kKdfHkdfSha256;
  AeadId aead = AeadId::kAes256Gcm;

  // Validates wire ids: only KEM 0x0020 and KDF 0x0001 are implemented.
  static absl::StatusOr<HpkeSuite> FromIds(uint32_t kem_id, uint32_t kdf_id, uint32_t aead_id);
};

// Tether's own envelopes: X25519 / HKDF-SHA256 / AES-256-GCM (DESIGN §2).
inline constexpr HpkeSuite kTetherSuite{};

struct X25519KeyPair {
  SecretBytes private_key;  // 32 bytes
  std::string public_key;   // 32 bytes
};

// A fresh key pair from RAND_bytes.
absl::StatusOr<X25519KeyPair> GenerateX25519KeyPair();
// RFC 9180 §7.1.3 DeriveKeyPair for DHKEM(X25519): deterministic in `ikm` (at least 32 bytes
// recommended; any length is accepted, as in the RFC).
absl::StatusOr<X25519KeyPair> HpkeDeriveKeyPair(const SecretBytes& ikm);
// The public key of an X25519 private key.
absl::StatusOr<std::string> X25519PublicKey(const SecretBytes& private_key);

// The key schedule's outputs (RFC 9180 §5.1), exposed so tests can check them against vectors.
struct HpkeKeySchedule {
  std::string key_schedule_context;
  SecretBytes secret;
  SecretBytes key;
  std::string base_nonce;
  SecretBytes exporter_secret;
};

// Encap with an ephemeral key pair; `ikm_e`, when given, derives it deterministically (test
// vectors only: a fixed ephemeral key breaks confidentiality across messages).
struct HpkeEncapsulation {
  SecretBytes shared_secret;
  std::string enc;
};
absl::StatusOr<HpkeEncapsulation> HpkeEncap(absl::string_view recipient_public_key,
                                            const SecretBytes* ikm_e = nullptr);
absl::StatusOr<SecretBytes> HpkeDecap(absl::string_view enc, const SecretBytes& recipient_private_key);
absl::StatusOr<HpkeKeySchedule> HpkeKeyScheduleBase(const HpkeSuite& suite,
                                                    const SecretBytes& shared_secret,
                                                    absl::string_view info);

enum class HpkeRole { kSender, kReceiver };

class HpkeContext {
 public:
  HpkeContext(HpkeContext&&) = default;
  HpkeContext& operator=(HpkeContext&&) = default;

  // Sender only (kFailedPrecondition otherwise). Returns ciphertext || tag.
  absl::StatusOr<std::string> Seal(absl::string_view aad, absl::string_view plaintext);
  // Receiver only. A failed Open does not advance the sequence number (RFC 9180 §5.2).
  absl::StatusOr<SecretBytes> Open(absl::string_view aad, absl::string_view ciphertext);
  // Secret export; `length` at most 255 * 32 bytes.
  absl::StatusOr<SecretBytes> Export(absl::string_view exporter_context, std::size_t length) const;

  // Sets the next sequence number (for reproducing vectors and resuming a stream).
  void set_sequence(uint64_t seq) { seq_ = seq; }
  uint64_t sequence() const { return seq_; }
  const HpkeKeySchedule& key_schedule() const { return schedule_; }

 private:
  friend absl::StatusOr<HpkeContext> MakeHpkeContext(HpkeRole, const HpkeSuite&, HpkeKeySchedule);
  HpkeContext(HpkeRole role, const HpkeSuite& suite, HpkeKeySchedule schedule)
      : role_(role), suite_(suite), schedule_(std::move(schedule)) {}
  absl::StatusOr<std::string> NextNonce() const;

  HpkeRole role_;
  HpkeSuite suite_;
  HpkeKeySchedule schedule_;
  uint64_t seq_ = 0;
};

struct HpkeSender {
  std::string enc;
  HpkeContext context;
};

absl::StatusOr<HpkeSender> HpkeSetupBaseSender(const HpkeSuite& suite,
                                               absl::string_view recipient_public_key,
                                               absl::string_view info,
                                               const SecretBytes* ikm_e = nullptr);
absl::StatusOr<HpkeContext> HpkeSetupBaseReceiver(const HpkeSuite& suite, absl::string_view enc,
                                                  const SecretBytes& recipient_private_key,
                                                  absl::string_view info);

struct HpkeSealed {
  std::string enc;
  std::string ciphertext;
};

absl::StatusOr<HpkeSealed> HpkeSeal(const HpkeSuite& suite, absl::string_view recipient_public_key,
                                    absl::string_view info, absl::string_view aad,
                                    absl::string_view plaintext, const SecretBytes* ikm_e = nullptr);
absl::StatusOr<SecretBytes> HpkeOpen(const HpkeSuite& suite,
                                     const SecretBytes& recipient_private_key,
                                     absl::string_view enc, absl::string_view info,
                                     absl::string_view aad, absl::string_view ciphertext);

}  // namespace tether::crypto

#endif  // TETHER_COMMON_CRYPTO_HPKE_H_
