// Sealed credential envelopes (DESIGN §2): a username and password sealed with HPKE to the
// public key of a machine, machine group or gateway cluster.
//
//   info = "tether/credential/v1"
//   aad  = connection_id || recipient_key_id
//
// so an envelope opens only for the connection and key it was sealed for. The plaintext is a
// serialized proto::SealedCredentialPlaintext; the password crosses this API only as SecretBytes.
// All functions are thread-safe.
#ifndef TETHER_COMMON_CRYPTO_ENVELOPE_H_
#define TETHER_COMMON_CRYPTO_ENVELOPE_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/crypto/secret.h"
#include "common/proto/crypto.pb.h"

namespace tether::crypto {

inline constexpr absl::string_view kCredentialInfo = "tether/credential/v1";

struct Credentials {
  std::string username;
  SecretBytes password;
};

// Seals `credentials` for `connection_id` to `recipient_public_key` (32-byte X25519) with
// Tether's suite (X25519 / HKDF-SHA256 / AES-256-GCM). An empty connection id or username, or a
// malformed key, is kInvalidArgument.
absl::StatusOr<proto::SealedEnvelope> SealCredentials(absl::string_view recipient_public_key,
                                                      absl::string_view connection_id,
                                                      const Credentials& credentials);

// Opens an envelope with the recipient's private key. Errors:
//   kInvalidArgument   unsupported suite or malformed fields;
//   kPermissionDenied  the envelope is addressed to another key (recipient key id mismatch);
//   kUnauthenticated   it does not authenticate: tampered, or bound to another connection id.
absl::StatusOr<Credentials> OpenCredentials(const proto::SealedEnvelope& envelope,
                                            const SecretBytes& recipient_private_key,
                                            absl::string_view connection_id);

// What a party without the private key (the cloud) can check: a supported suite, a recipient key
// id matching `recipient_public_key`, a 32-byte enc, a ciphertext no shorter than a tag and, when
// `connection_id` is given, that the envelope's clear connection_id names it (an honest sealer's
// envelope for another connection is refused here; a lying one still fails at the opener, whose
// aad is built from the job's connection id). Errors are kInvalidArgument with the field named.
absl::Status ValidateEnvelope(const proto::SealedEnvelope& envelope,
                              absl::string_view recipient_public_key,
                              absl::string_view connection_id = {});

}  // namespace tether::crypto

#endif  // TETHER_COMMON_CRYPTO_ENVELOPE_H_
