#include "agent/accounts/file_verifier.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/crypto/digest.h"
#include "common/crypto/key_file.h"
#include "common/crypto/password_kdf.h"
#include "gtest/gtest.h"

namespace tether::agent::accounts {
namespace {

using ::absl::StatusCode;
using crypto::SecretBytes;

// Cheap parameters so that the tests run quickly; the defaults are exercised separately.
constexpr crypto::ScryptParams kFastParams = {1 << 10, 8, 1};

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir ? dir : "/tmp") + "/" + name;
}

void WriteFile(const std::string& path, const std::string& content, mode_t mode = 0600) {
  ASSERT_TRUE(crypto::WriteSecretFile(path, SecretBytes(content), true).ok());
  ASSERT_EQ(chmod(path.c_str(), mode), 0);
}

std::string Line(const std::string& user, const std::string& password,
                 const crypto::ScryptParams& params = kFastParams) {
  absl::StatusOr<std::string> line = MakeFileAccountLine(user, SecretBytes(password), params);
  EXPECT_TRUE(line.ok()) << line.status();
  return line.value_or("");
}

std::unique_ptr<FileAccountVerifier> LoadOrDie(const std::string& path) {
  auto verifier = FileAccountVerifier::Load(path);
  EXPECT_TRUE(verifier.ok()) << verifier.status();
  return verifier.ok() ? *std::move(verifier) : nullptr;
}

TEST(FileAccountVerifierTest, AcceptsOnlyTheRightPasswordOfAKnownAccount) {
  const std::string path = TempPath("accounts");
  WriteFile(path, absl::StrCat("# dev stack accounts\n", Line("alice", "correct horse"), "\n\n",
                               Line("bob", "battery staple"), "\n"));
  auto verifier = LoadOrDie(path);
  ASSERT_NE(verifier, nullptr);
  EXPECT_EQ(verifier->size(), 2u);

  struct Case {
    std::string username;
    std::string password;
    StatusCode code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"alice", "correct horse", StatusCode::kOk, ""},
      {"bob", "battery staple", StatusCode::kOk, ""},
      {"alice", "battery staple", StatusCode::kPermissionDenied, "wrong password for \"alice\""},
      {"alice", "correct horse ", StatusCode::kPermissionDenied, "wrong password for \"alice\""},
      {"alice", "Correct horse", StatusCode::kPermissionDenied, "wrong password for \"alice\""},
      {"alice", "", StatusCode::kPermissionDenied, "wrong password for \"alice\""},
      {"carol", "correct horse", StatusCode::kNotFound, "unknown account \"carol\""},
      {"Alice", "correct horse", StatusCode::kNotFound, "unknown account \"Alice\""},
      {"", "correct horse", StatusCode::kNotFound, "unknown account \"\""},
      {"# dev stack accounts", "x", StatusCode::kNotFound,
       "unknown account \"# dev stack accounts\""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(absl::StrCat(c.username, " / ", c.password));
    absl::Status status = verifier->Verify(c.username, SecretBytes(c.password));
    EXPECT_EQ(status.code(), c.code) << status;
    EXPECT_EQ(status.message(), c.message);
  }
}

// The line format is the documented one: scrypt(password, salt, N, r, p, 32), base64.
TEST(FileAccountVerifierTest, AcceptsAnEntryWrittenByHandFromTheFormat) {
  const std::string salt = "0123456789abcdef";
  auto hash = crypto::Scrypt("s3cret", salt, {16, 1, 1}, 32);
  ASSERT_TRUE(hash.ok());
  const std::string path = TempPath("by_hand");
  WriteFile(path, absl::StrCat("dave:scrypt:16:1:1:", crypto::Base64Encode(salt), ":",
                               crypto::Base64Encode(hash->view()), "\r\n"));
  auto verifier = LoadOrDie(path);
  ASSERT_NE(verifier, nullptr);
  EXPECT_TRUE(verifier->Verify("dave", SecretBytes("s3cret")).ok());
  EXPECT_EQ(verifier->Verify("dave", SecretBytes("s3cre")).code(), StatusCode::kPermissionDenied);
}

TEST(FileAccountVerifierTest, BadLinesAreRefusedWithTheirLineNumber) {
  const std::string good = Line("alice", "pw");
  const std::vector<std::string> f = absl::StrSplit(good, ':');
  ASSERT_EQ(f.size(), 7u);
  auto with = [&](std::size_t index, const std::string& value) {
    std::vector<std::string> fields = f;
    fields[index] = value;
    return absl::StrJoin(fields, ":");
  };
  const std::string salt8 = crypto::Base64Encode("12345678");
  const std::string salt7 = crypto::Base64Encode("1234567");
  const std::string hash31 = crypto::Base64Encode(std::string(31, 'h'));
  struct Case {
    std::string bad_line;
    std::string reason;  // part of the message
  };
  const std::vector<Case> cases = {
      {"alice:scrypt:1024:8:1:c2FsdA==", "expected 7"},
      {good + ":extra", "expected 7"},
      {with(1, "bcrypt"), "unsupported method \"bcrypt\""},
      {with(2, "1000"), "power of two"},
      {with(2, "1"), "power of two"},
      {with(2, "2097152"), "power of two between 2 and 2^20"},
      {with(2, "+1024"), "decimal"},
      {with(2, " 1024"), "decimal"},
      {with(3, "0"), "r must be between"},
      {with(3, "33"), "r or p out of range"},
      {with(4, "0"), "p must be between"},
      {with(4, "17"), "r or p out of range"},
      {with(4, "99999999999999999999"), "decimal"},
      {with(5, "not base64!"), "salt is not valid base64"},
      {with(5, salt7), "salt must be 8 to 64 bytes"},
      {with(6, hash31), "hash must be 32 bytes"},
      {with(6, f[6].substr(0, f[6].size() - 1)), "hash is not valid base64"},
      {with(0, "al ice"), "whitespace"},
      {with(0, ""), "empty username"},
      {"  " + good, "whitespace"},
  };
  const std::string path = TempPath("bad");
  for (const Case& c : cases) {
    SCOPED_TRACE(c.bad_line);
    // Line 3 is the bad one: after a comment and a good entry.
    WriteFile(path, absl::StrCat("# accounts\n", Line("bob", "pw"), "\n", c.bad_line, "\n",
                                 Line("carol", "pw"), "\n"));
    auto verifier = FileAccountVerifier::Load(path);
    EXPECT_EQ(verifier.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(verifier.status().message().find(absl::StrCat(path, " line 3: ")), std::string::npos)
        << verifier.status();
    EXPECT_NE(verifier.status().message().find(c.reason), std::string::npos) << verifier.status();
  }
  // A short but valid salt is accepted, so the bound above is the one that refused salt7.
  WriteFile(path, with(5, salt8) + "\n");
  EXPECT_TRUE(FileAccountVerifier::Load(path).ok());
}

TEST(FileAccountVerifierTest, ARepeatedAccountNamesBothLines) {
  const std::string path = TempPath("repeated");
  WriteFile(path, absl::StrCat(Line("alice", "one"), "\n#\n", Line("bob", "x"), "\n",
                               Line("alice", "two"), "\n"));
  auto verifier = FileAccountVerifier::Load(path);
  EXPECT_EQ(verifier.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(verifier.status().message().find("line 4: account \"alice\" is already on line 1"),
            std::string::npos)
      << verifier.status();
}

TEST(FileAccountVerifierTest, RefusesAFileOthersCanRead) {
  const std::string path = TempPath("open_accounts");
  for (mode_t mode : {0644, 0640, 0604, 0660}) {
    SCOPED_TRACE(mode);
    WriteFile(path, Line("alice", "pw") + "\n", mode);
    auto verifier = FileAccountVerifier::Load(path);
    EXPECT_EQ(verifier.status().code(), StatusCode::kPermissionDenied);
    EXPECT_NE(verifier.status().message().find("chmod 600"), std::string::npos);
  }
  WriteFile(path, Line("alice", "pw") + "\n", 0400);
  EXPECT_TRUE(FileAccountVerifier::Load(path).ok());
}

TEST(FileAccountVerifierTest, MissingFileIsNotFoundAndAnEmptyFileKnowsNobody) {
  EXPECT_EQ(FileAccountVerifier::Load(TempPath("absent")).status().code(), StatusCode::kNotFound);
  const std::string path = TempPath("empty");
  WriteFile(path, "# nobody yet\n\n");
  auto verifier = LoadOrDie(path);
  ASSERT_NE(verifier, nullptr);
  EXPECT_EQ(verifier->size(), 0u);
  EXPECT_EQ(verifier->Verify("alice", SecretBytes("pw")).code(), StatusCode::kNotFound);
}

TEST(FileAccountVerifierTest, NewLinesUseTheDefaultParametersAndAFreshSalt) {
  const std::string first = Line("alice", "correct horse", kDefaultAccountScryptParams);
  const std::string second = Line("alice", "correct horse", kDefaultAccountScryptParams);
  std::vector<std::string> fields = absl::StrSplit(first, ':');
  ASSERT_EQ(fields.size(), 7u);
  EXPECT_EQ(fields[0], "alice");
  EXPECT_EQ(fields[1], "scrypt");
  EXPECT_EQ(fields[2], "32768");
  EXPECT_EQ(fields[3], "8");
  EXPECT_EQ(fields[4], "1");
  EXPECT_EQ(crypto::Base64Decode(fields[5])->size(), kAccountSaltSize);
  EXPECT_EQ(crypto::Base64Decode(fields[6])->size(), kAccountHashSize);
  EXPECT_EQ(first.find("correct"), std::string::npos);
  EXPECT_NE(first, second);  // a fresh salt each time

  const std::string path = TempPath("defaults");
  WriteFile(path, first + "\n");
  auto verifier = LoadOrDie(path);
  ASSERT_NE(verifier, nullptr);
  EXPECT_TRUE(verifier->Verify("alice", SecretBytes("correct horse")).ok());
  EXPECT_EQ(verifier->Verify("alice", SecretBytes("correct horsE")).code(),
            StatusCode::kPermissionDenied);
}

TEST(FileAccountVerifierTest, MakeFileAccountLineRefusesWhatCouldNotBeLoaded) {
  struct Case {
    std::string username;
    std::string password;
    crypto::ScryptParams params;
  };
  const std::vector<Case> cases = {
      {"", "pw", kFastParams},
      {"a:b", "pw", kFastParams},
      {"a b", "pw", kFastParams},
      {"a\tb", "pw", kFastParams},
      {"a\nb", "pw", kFastParams},
      {"#root", "pw", kFastParams},
      {std::string(257, 'a'), "pw", kFastParams},
      {"alice", "", kFastParams},
      {"alice", "pw", {1000, 8, 1}},
      {"alice", "pw", {uint64_t{1} << 21, 8, 1}},
      {"alice", "pw", {1024, 0, 1}},
      {"alice", "pw", {1024, 8, 17}},
      {"alice", "pw", {uint64_t{1} << 20, 16, 1}},  // 2 GiB
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(absl::StrCat(c.username, " N=", c.params.n, " r=", c.params.r, " p=", c.params.p));
    EXPECT_EQ(MakeFileAccountLine(c.username, SecretBytes(c.password), c.params).status().code(),
              StatusCode::kInvalidArgument);
  }
  EXPECT_TRUE(MakeFileAccountLine(std::string(256, 'a'), SecretBytes("pw"), kFastParams).ok());
  EXPECT_TRUE(MakeFileAccountLine("svc-build.01$", SecretBytes("pw"), kFastParams).ok());
}

TEST(FileAccountVerifierTest, ReplaceFileAccountLineKeepsEverythingElse) {
  const std::string alice_old = Line("alice", "old");
  const std::string alice_new = Line("alice", "new");
  const std::string bob = Line("bob", "pw");
  struct Case {
    std::string name;
    std::string content;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"empty file", "", alice_new + "\n"},
      {"appended after others", "# accounts\n" + bob + "\n",
       "# accounts\n" + bob + "\n" + alice_new + "\n"},
      {"no final newline", bob, bob + "\n" + alice_new + "\n"},
      {"replaced in place", "# a\n" + alice_old + "\n\n" + bob + "\n# z\n",
       "# a\n" + alice_new + "\n\n" + bob + "\n# z\n"},
      {"replaced with CRLF", alice_old + "\r\n" + bob + "\r\n", alice_new + "\n" + bob + "\r\n"},
      {"a comment naming alice stays", "# alice:old\n" + bob + "\n",
       "# alice:old\n" + bob + "\n" + alice_new + "\n"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto out = ReplaceFileAccountLine(c.content, "alice", alice_new);
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ(std::string(out->view()), c.expected);
  }
}

TEST(FileAccountVerifierTest, ReplaceFileAccountLineRefusesBrokenInput) {
  const std::string alice = Line("alice", "pw");
  const std::string bob = Line("bob", "pw");
  struct Case {
    std::string name;
    std::string content;
    std::string line;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {"bad existing line", bob + "\ngarbage\n", alice, "line 2: expected 7"},
      {"alice twice", alice + "\n" + bob + "\n" + alice + "\n", alice,
       "line 3: account \"alice\" appears more than once"},
      {"line for someone else", bob + "\n", bob, "the new line is for \"bob\", not \"alice\""},
      {"not a line", "", "alice", "the new line is not an account entry"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto out = ReplaceFileAccountLine(c.content, "alice", c.line);
    EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(out.status().message().find(c.reason), std::string::npos) << out.status();
  }
}

}  // namespace
}  // namespace tether::agent::accounts
