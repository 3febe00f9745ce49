#include "common/crypto/dev_certs.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <fstream>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/status_macros.h"
#include "common/crypto/digest.h"
#include "common/crypto/key_file.h"
#include "common/crypto/openssl_status.h"

namespace tether::crypto {
namespace {

struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};
struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
using X509Ptr = std::unique_ptr<X509, X509Deleter>;
using BioPtr = std::unique_ptr<BIO, BioDeleter>;

absl::StatusOr<EvpPkeyPtr> NewP256Key() {
  EvpPkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return OpenSslError(absl::StatusCode::kInternal, "P-256 key generation");
  return key;
}

absl::Status AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) {
    return OpenSslError(absl::StatusCode::kInvalidArgument, absl::StrCat("extension ", value));
  }
  int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  if (ok != 1) return OpenSslError(absl::StatusCode::kInternal, "X509_add_ext");
  return absl::OkStatus();
}

absl::StatusOr<X509Ptr> NewCertificate(EVP_PKEY* subject_key, const std::string& common_name,
                                       absl::Duration validity) {
  X509Ptr cert(X509_new());
  ASSIGN_OR_RETURN(std::string serial, RandomBytes(16));
  serial[0] &= 0x7f;  // positive
  BIGNUM* bn = BN_bin2bn(reinterpret_cast<const unsigned char*>(serial.data()), 16, nullptr);
  bool ok = cert && bn && X509_set_version(cert.get(), 2) == 1 &&
            BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get())) != nullptr &&
            X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) != nullptr &&
            X509_gmtime_adj(X509_getm_notAfter(cert.get()),
                            static_cast<long>(absl::ToInt64Seconds(validity))) != nullptr &&
            X509_set_pubkey(cert.get(), subject_key) == 1;
  BN_free(bn);
  if (!ok) return OpenSslError(absl::StatusCode::kInternal, "certificate fields");
  X509_NAME* name = X509_get_subject_name(cert.get());
  if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                 reinterpret_cast<const unsigned char*>("Tether dev"), -1, -1,
                                 0) != 1 ||
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                 reinterpret_cast<const unsigned char*>(common_name.c_str()), -1,
                                 -1, 0) != 1) {
    return OpenSslError(absl::StatusCode::kInternal, "certificate subject");
  }
  return cert;
}

absl::StatusOr<std::string> CertPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) {
    return OpenSslError(absl::StatusCode::kInternal, "PEM_write_bio_X509");
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(len));
}

absl::StatusOr<SecretBytes> KeyPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_secmem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return OpenSslError(absl::StatusCode::kInternal, "PEM_write_bio_PrivateKey");
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return SecretBytes(absl::string_view(data, static_cast<std::size_t>(len)));
}

}  // namespace

absl::StatusOr<DevCertificates> MakeDevCertificates(const std::vector<std::string>& dns_names,
                                                    const std::vector<std::string>& ip_addresses,
                                                    absl::Duration validity) {
  if (dns_names.empty() && ip_addresses.empty()) {
    return absl::InvalidArgumentError("a server certificate needs a DNS name or an IP address");
  }
  std::vector<std::string> alt_names;
  for (const auto& dns : dns_names) alt_names.push_back(absl::StrCat("DNS:", dns));
  for (const auto& ip : ip_addresses) alt_names.push_back(absl::StrCat("IP:", ip));

  ASSIGN_OR_RETURN(EvpPkeyPtr ca_key, NewP256Key());
  ASSIGN_OR_RETURN(X509Ptr ca, NewCertificate(ca_key.get(), "Tether dev CA", validity));
  X509_set_issuer_name(ca.get(), X509_get_subject_name(ca.get()));
  RETURN_IF_ERROR(AddExtension(ca.get(), ca.get(), NID_basic_constraints, "critical,CA:TRUE"));
  RETURN_IF_ERROR(AddExtension(ca.get(), ca.get(), NID_key_usage, "critical,keyCertSign,cRLSign"));
  RETURN_IF_ERROR(AddExtension(ca.get(), ca.get(), NID_subject_key_identifier, "hash"));
  if (X509_sign(ca.get(), ca_key.get(), EVP_sha256()) <= 0) {
    return OpenSslError(absl::StatusCode::kInternal, "signing the CA certificate");
  }

  ASSIGN_OR_RETURN(EvpPkeyPtr server_key, NewP256Key());
  std::string cn = dns_names.empty() ? ip_addresses.front() : dns_names.front();
  ASSIGN_OR_RETURN(X509Ptr server, NewCertificate(server_key.get(), cn, validity));
  X509_set_issuer_name(server.get(), X509_get_subject_name(ca.get()));
  RETURN_IF_ERROR(AddExtension(server.get(), ca.get(), NID_basic_constraints, "critical,CA:FALSE"));
  RETURN_IF_ERROR(
      AddExtension(server.get(), ca.get(), NID_key_usage, "critical,digitalSignature"));
  RETURN_IF_ERROR(AddExtension(server.get(), ca.get(), NID_ext_key_usage, "serverAuth"));
  RETURN_IF_ERROR(AddExtension(server.get(), ca.get(), NID_subject_alt_name,
                               absl::StrJoin(alt_names, ",")));
  RETURN_IF_ERROR(AddExtension(server.get(), ca.get(), NID_authority_key_identifier, "keyid"));
  if (X509_sign(server.get(), ca_key.get(), EVP_sha256()) <= 0) {
    return OpenSslError(absl::StatusCode::kInternal, "signing the server certificate");
  }

  DevCertificates certs;
  ASSIGN_OR_RETURN(certs.ca_cert_pem, CertPem(ca.get()));
  ASSIGN_OR_RETURN(certs.server_cert_pem, CertPem(server.get()));
  ASSIGN_OR_RETURN(certs.server_key_pem, KeyPem(server_key.get()));
  return certs;
}

absl::Status WriteDevCertificates(const DevCertificates& certs, const std::string& dir) {
  for (const auto& [name, pem] : {std::pair<std::string, const std::string*>{"ca.pem", &certs.ca_cert_pem},
                                  {"server.pem", &certs.server_cert_pem}}) {
    std::ofstream out(absl::StrCat(dir, "/", name), std::ios::trunc);
    out << *pem;
    if (!out) return absl::UnavailableError(absl::StrCat("cannot write ", dir, "/", name));
  }
  return WriteSecretFile(absl::StrCat(dir, "/server.key"), certs.server_key_pem, true);
}

}  // namespace tether::crypto
