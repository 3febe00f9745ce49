#include "common/net/test_certs.h"

#include <fstream>

#include "absl/strings/str_cat.h"
#include "common/crypto/dev_certs.h"
#include "common/crypto/key_file.h"

namespace tether::net::testing {
namespace {

bool LooksLikeIp(const std::string& name) {
  return name.find_first_not_of("0123456789.") == std::string::npos ||
         name.find(':') != std::string::npos;
}

absl::Status WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  if (!out) return absl::UnavailableError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TestCerts> CreateTestCerts(const std::string& dir, const std::string& prefix,
                                          const std::vector<std::string>& names) {
  std::vector<std::string> dns, ips;
  for (const std::string& name : names) (LooksLikeIp(name) ? ips : dns).push_back(name);
  absl::StatusOr<crypto::DevCertificates> certs =
      crypto::MakeDevCertificates(dns, ips, absl::Hours(24));
  if (!certs.ok()) return certs.status();
  TestCerts files{absl::StrCat(dir, "/", prefix, "-ca.pem"),
                  absl::StrCat(dir, "/", prefix, "-cert.pem"),
                  absl::StrCat(dir, "/", prefix, "-key.pem")};
  if (auto s = WriteText(files.ca_file, certs->ca_cert_pem); !s.ok()) return s;
  if (auto s = WriteText(files.cert_file, certs->server_cert_pem); !s.ok()) return s;
  if (auto s = crypto::WriteSecretFile(files.key_file, certs->server_key_pem, true); !s.ok()) {
    return s;
  }
  return files;
}

}  // namespace tether::net::testing
