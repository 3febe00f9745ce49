#include "agent/accounts/verifier.h"

#include <cstdlib>
#include <string>
#include <vector>

#include "agent/accounts/file_verifier.h"
#include "agent/accounts/pam_verifier.h"
#include "common/crypto/key_file.h"
#include "gtest/gtest.h"

namespace tether::agent::accounts {
namespace {

using ::absl::StatusCode;
using crypto::SecretBytes;

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir ? dir : "/tmp") + "/" + name;
}

TEST(MakeVerifierTest, FileSpecLoadsThatFile) {
  const std::string path = TempPath("accounts");
  auto line = MakeFileAccountLine("alice", SecretBytes("pw"), {1024, 8, 1});
  ASSERT_TRUE(line.ok());
  ASSERT_TRUE(crypto::WriteSecretFile(path, SecretBytes(*line + "\n"), true).ok());
  auto verifier = MakeVerifier("file:" + path);
  ASSERT_TRUE(verifier.ok()) << verifier.status();
  ASSERT_NE(dynamic_cast<FileAccountVerifier*>(verifier->get()), nullptr);
  EXPECT_TRUE((*verifier)->Verify("alice", SecretBytes("pw")).ok());
  EXPECT_EQ((*verifier)->Verify("alice", SecretBytes("pW")).code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(MakeVerifier("file:" + TempPath("absent")).status().code(), StatusCode::kNotFound);
}

// Only construction: no PAM call is made.
TEST(MakeVerifierTest, PamSpecNamesTheService) {
  struct Case {
    std::string spec;
    std::string service;
  };
  const std::vector<Case> cases = {
      {"pam", "login"},
      {"pam:login", "login"},
      {"pam:tether-agent", "tether-agent"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.spec);
    auto verifier = MakeVerifier(c.spec);
    ASSERT_TRUE(verifier.ok()) << verifier.status();
    auto* pam = dynamic_cast<PamAccountVerifier*>(verifier->get());
    ASSERT_NE(pam, nullptr);
    EXPECT_EQ(pam->service(), c.service);
  }
}

TEST(MakeVerifierTest, OtherSpecsAreInvalid) {
  for (const char* spec : {"", "file", "file:", "pam:", "pam:../shadow", "pam:a/b", "pam:.",
                           "pam:..", "PAM", "ldap:x", " pam", "files:/x"}) {
    SCOPED_TRACE(spec);
    EXPECT_EQ(MakeVerifier(spec).status().code(), StatusCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace tether::agent::accounts
