#include "common/crypto/dev_certs.h"

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <string>

#include "gtest/gtest.h"

namespace tether::crypto {
namespace {

X509* Parse(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  return cert;
}

// Verifies `server` against `ca` for `host` (DNS) or `ip`.
bool Verifies(const DevCertificates& certs, const char* host, const char* ip) {
  X509* ca = Parse(certs.ca_cert_pem);
  X509* server = Parse(certs.server_cert_pem);
  X509_STORE* store = X509_STORE_new();
  X509_STORE_add_cert(store, ca);
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, store, server, nullptr);
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx);
  if (host) X509_VERIFY_PARAM_set1_host(param, host, 0);
  if (ip) X509_VERIFY_PARAM_set1_ip_asc(param, ip);
  bool ok = X509_verify_cert(ctx) == 1;
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  X509_free(server);
  X509_free(ca);
  return ok;
}

TEST(DevCertsTest, ServerCertificateVerifiesForItsNamesOnly) {
  auto certs = MakeDevCertificates({"localhost"}, {"127.0.0.1"});
  ASSERT_TRUE(certs.ok()) << certs.status();
  EXPECT_TRUE(Verifies(*certs, "localhost", nullptr));
  EXPECT_TRUE(Verifies(*certs, nullptr, "127.0.0.1"));
  EXPECT_FALSE(Verifies(*certs, "relay.example.com", nullptr));
  EXPECT_FALSE(Verifies(*certs, nullptr, "127.0.0.2"));
  EXPECT_NE(certs->server_key_pem.view().find("BEGIN PRIVATE KEY"), std::string::npos);
}

TEST(DevCertsTest, AnotherCaDoesNotVerify) {
  auto a = MakeDevCertificates({"localhost"}, {});
  auto b = MakeDevCertificates({"localhost"}, {});
  ASSERT_TRUE(a.ok() && b.ok());
  DevCertificates mixed{b->ca_cert_pem, a->server_cert_pem, a->server_key_pem.Clone()};
  EXPECT_FALSE(Verifies(mixed, "localhost", nullptr));
}

TEST(DevCertsTest, RefusesNoNamesAndBadAddresses) {
  EXPECT_EQ(MakeDevCertificates({}, {}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MakeDevCertificates({}, {"not-an-ip"}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tether::crypto
