// Development certificates: a throw-away CA and a server certificate it signs (ECDSA P-256,
// SHA-256), for tests, the dev stack and first deployments. Not for production PKI: there is no
// revocation, and the CA key lives only as long as the caller keeps it. Thread-safe.
#ifndef TETHER_COMMON_CRYPTO_DEV_CERTS_H_
#define TETHER_COMMON_CRYPTO_DEV_CERTS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/crypto/secret.h"

namespace tether::crypto {

struct DevCertificates {
  std::string ca_cert_pem;
  std::string server_cert_pem;
  SecretBytes server_key_pem;
};

// A CA ("Tether dev CA") and a server certificate valid for `dns_names` and `ip_addresses`
// (subjectAltName), valid from one hour ago for `validity`. Empty names and addresses, or an
// address that does not parse, are kInvalidArgument.
absl::StatusOr<DevCertificates> MakeDevCertificates(const std::vector<std::string>& dns_names,
                                                    const std::vector<std::string>& ip_addresses,
                                                    absl::Duration validity = absl::Hours(24 * 30));

// Writes ca.pem, server.pem (0644) and server.key (0600, via WriteSecretFile) into `dir`.
absl::Status WriteDevCertificates(const DevCertificates& certs, const std::string& dir);

}  // namespace tether::crypto

#endif  // TETHER_COMMON_CRYPTO_DEV_CERTS_H_
