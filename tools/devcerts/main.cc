// devcerts: writes a throw-away CA and a server certificate for the dev stack and tests.
//
//   bazel run //tools/devcerts -- --out_dir=/tmp/tether-certs --dns=localhost --ip=127.0.0.1
//
// Produces ca.pem (give it to clients as --tls_ca), server.pem and server.key (mode 0600) for
// --tls_cert and --tls_key. Exit status 2 with a one-line error for bad input.
#include <sys/stat.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "common/crypto/dev_certs.h"

ABSL_FLAG(std::string, out_dir, "", "directory to write ca.pem, server.pem, server.key into");
ABSL_FLAG(std::string, dns, "localhost", "comma-separated DNS names for the server certificate");
ABSL_FLAG(std::string, ip, "127.0.0.1", "comma-separated IP addresses for the server certificate");
ABSL_FLAG(int, days, 30, "validity in days");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Writes a dev CA and server certificate (not for production)");
  absl::ParseCommandLine(argc, argv);
  std::string dir = absl::GetFlag(FLAGS_out_dir);
  if (dir.empty()) {
    std::fprintf(stderr, "devcerts: --out_dir is required\n");
    return 2;
  }
  if (absl::GetFlag(FLAGS_days) < 1) {
    std::fprintf(stderr, "devcerts: --days must be at least 1\n");
    return 2;
  }
  mkdir(dir.c_str(), 0700);
  std::vector<std::string> dns = absl::StrSplit(absl::GetFlag(FLAGS_dns), ',', absl::SkipEmpty());
  std::vector<std::string> ips = absl::StrSplit(absl::GetFlag(FLAGS_ip), ',', absl::SkipEmpty());
  auto certs = tether::crypto::MakeDevCertificates(dns, ips,
                                                   absl::Hours(24) * absl::GetFlag(FLAGS_days));
  if (!certs.ok()) {
    std::fprintf(stderr, "devcerts: %s\n", std::string(certs.status().message()).c_str());
    return 2;
  }
  if (auto status = tether::crypto::WriteDevCertificates(*certs, dir); !status.ok()) {
    std::fprintf(stderr, "devcerts: %s\n", std::string(status.message()).c_str());
    return 2;
  }
  std::printf("%s/ca.pem %s/server.pem %s/server.key\n", dir.c_str(), dir.c_str(), dir.c_str());
  return 0;
}
