// Test-only: crypto::MakeDevCertificates written as PEM files into a directory (the key with mode
// 0600), for TLS tests of the relay client and relay.
#ifndef TETHER_COMMON_NET_TEST_CERTS_H_
#define TETHER_COMMON_NET_TEST_CERTS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace tether::net::testing {

struct TestCerts {
  std::string ca_file;    // the CA certificate (what clients trust)
  std::string cert_file;  // the server certificate, signed by the CA
  std::string key_file;   // the server's private key
};

// Creates a P-256 CA and a server certificate with the given subjectAltNames ("localhost",
// "127.0.0.1": entries that parse as IP addresses become IP SANs), valid from an hour ago for a
// day. Files are named <prefix>-ca.pem, <prefix>-cert.pem, <prefix>-key.pem in `dir`.
absl::StatusOr<TestCerts> CreateTestCerts(const std::string& dir, const std::string& prefix,
                                          const std::vector<std::string>& names);

}  // namespace tether::net::testing

#endif  // TETHER_COMMON_NET_TEST_CERTS_H_
