#include "common/crypto/sas_token.h"

#include <optional>
#include <string>

#include "gtest/gtest.h"

namespace tether::crypto {
namespace {

constexpr int64_t kNow = 1'800'000'000;
const SecretBytes& Key() {
  static const SecretBytes* key = new SecretBytes("0123456789abcdef0123456789abcdef");
  return *key;
}

absl::Status Verify(const std::string& token, const std::string& entity, int64_t now = kNow) {
  auto parsed = ParseSasToken(token);
  if (!parsed.ok()) return parsed.status();
  return VerifySasToken(*parsed, Key(), entity, now);
}

TEST(SasTokenTest, FormatMatchesAzureRelay) {
  std::string token = CreateSasToken("https://relay.example:9350/$hc/machine-42", "agents", Key(),
                                     kNow + 60);
  EXPECT_EQ(token.rfind("SharedAccessSignature sr=https%3A%2F%2Frelay.example%3A9350%2F%24hc%2F"
                        "machine-42&sig=",
                        0),
            0u);
  EXPECT_NE(token.find("&se=1800000060&skn=agents"), std::string::npos);
}

TEST(SasTokenTest, ValidTokenVerifiesForItsEntity) {
  std::string token =
      CreateSasToken("https://relay.example/$hc/machine-42", "agents", Key(), kNow + 60);
  EXPECT_TRUE(Verify(token, "/$hc/machine-42").ok());
  EXPECT_TRUE(Verify(token, "/$hc/machine-42/listeners").ok());
}

TEST(SasTokenTest, ScopeIgnoresSchemeHostPortAndCase) {
  std::string token = CreateSasToken("sb://relay.example/$HC/Machine-42/", "k", Key(), kNow + 60);
  EXPECT_TRUE(Verify(token, "https://localhost:9350/$hc/machine-42").ok());
  EXPECT_TRUE(Verify(token, "http://127.0.0.1/$hc/MACHINE-42").ok());
}

TEST(SasTokenTest, PrefixCoversEveryEntityBelowIt) {
  std::string token = CreateSasToken("https://relay/$hc/", "k", Key(), kNow + 60);
  EXPECT_TRUE(Verify(token, "/$hc/machine-1").ok());
  EXPECT_TRUE(Verify(token, "/$hc/cluster-9").ok());
}

TEST(SasTokenTest, ScopeIsSegmentWise) {
  std::string token = CreateSasToken("https://relay/$hc/machine-4", "k", Key(), kNow + 60);
  absl::Status s = Verify(token, "/$hc/machine-42");
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(SasFailureOf(s), SasFailure::kOutOfScope);
}

TEST(SasTokenTest, ExpiredTokenIsRefused) {
  std::string token = CreateSasToken("https://relay/$hc/m", "k", Key(), kNow);
  absl::Status s = Verify(token, "/$hc/m", kNow);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(SasFailureOf(s), SasFailure::kExpired);
  EXPECT_TRUE(Verify(token, "/$hc/m", kNow - 1).ok());
}

TEST(SasTokenTest, WrongKeyOrAlteredFieldsFailTheSignature) {
  std::string token = CreateSasToken("https://relay/$hc/m", "k", Key(), kNow + 60);
  auto parsed = ParseSasToken(token);
  ASSERT_TRUE(parsed.ok());
  absl::Status s = VerifySasToken(*parsed, SecretBytes("another key another key another k"),
                                  "/$hc/m", kNow);
  EXPECT_EQ(SasFailureOf(s), SasFailure::kBadSignature);

  // Extending the expiry or widening the scope without re-signing breaks the signature.
  std::string later = token;
  later.replace(later.find("se=") + 3, 10, "1900000000");
  EXPECT_EQ(SasFailureOf(Verify(later, "/$hc/m")), SasFailure::kBadSignature);
  std::string wider = token;
  wider.replace(wider.find("%2Fm&"), 4, "");
  EXPECT_EQ(SasFailureOf(Verify(wider, "/$hc/m")), SasFailure::kBadSignature);
}

TEST(SasTokenTest, MalformedTokensAreRefusedWithAReason) {
  std::string good = CreateSasToken("https://relay/$hc/m", "k", Key(), kNow + 60);
  for (const std::string& bad : {std::string(""), std::string("SharedAccessSignature "),
                                 std::string("SharedAccessSignature sr=a&sig=b&se=1"),
                                 std::string("sr=a&sig=b&se=notanumber&skn=k"),
                                 std::string("sr=a&sig=b&se=-5&skn=k"),
                                 std::string("sr=a&sr=b&sig=c&se=1&skn=k"),
                                 std::string("sr=%zz&sig=b&se=1&skn=k"),
                                 std::string("sr=a&sig=b&se=1&skn"),
                                 std::string(5000, 'x')}) {
    SCOPED_TRACE(bad);
    auto parsed = ParseSasToken(bad);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_EQ(SasFailureOf(parsed.status()), SasFailure::kMalformed);
  }
}

TEST(SasTokenTest, TokenWithoutPrefixParses) {
  std::string token = CreateSasToken("https://relay/$hc/m", "k", Key(), kNow + 60);
  std::string bare = token.substr(std::string("SharedAccessSignature ").size());
  EXPECT_TRUE(Verify(bare, "/$hc/m").ok());
}

TEST(SasTokenTest, DotSegmentsInScopeAreRefused) {
  std::string token = CreateSasToken("https://relay/$hc/m/../..", "k", Key(), kNow + 60);
  EXPECT_EQ(SasFailureOf(Verify(token, "/$hc/m")), SasFailure::kMalformed);
}

TEST(UrlCodingTest, EncodesReservedCharactersAndDecodesBack) {
  EXPECT_EQ(SasUrlEncode("a b/+=$~"), "a%20b%2F%2B%3D%24~");
  EXPECT_EQ(*SasUrlDecode("a%20b%2f%2B+c"), "a b/+ c");
  EXPECT_FALSE(SasUrlDecode("%2").ok());
  EXPECT_FALSE(SasUrlDecode("%").ok());
  EXPECT_FALSE(SasUrlDecode("%g0").ok());
}

TEST(SasRightsTest, ParsesRightsAndManageImpliesTheOthers) {
  EXPECT_EQ(*ParseSasRights("Listen"), kSasListen);
  EXPECT_EQ(*ParseSasRights("send, LISTEN"), kSasListen | kSasSend);
  EXPECT_EQ(*ParseSasRights("Manage"), kSasListen | kSasSend | kSasManage);
  EXPECT_EQ(ParseSasRights("Listen,Root").status().code(), absl::StatusCode::kInvalidArgument);
}

class SasKeyRingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ring = SasKeyRing::Parse(
        "# relay keys\n"
        "agents  aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa Listen\n"
        "cloud   bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb Send,Manage  # dispatcher\n");
    ASSERT_TRUE(ring.ok()) << ring.status();
    ring_.emplace(*std::move(ring));
  }
  std::string Token(const std::string& key_name, const std::string& resource) {
    return CreateSasToken(resource, key_name, ring_->Find(key_name)->key, kNow + 60);
  }
  std::optional<SasKeyRing> ring_;
};

TEST_F(SasKeyRingTest, AuthorizesTheRightKeyForTheRightAction) {
  auto name = ring_->Authorize(Token("agents", "https://r/$hc/m1"), "/$hc/m1", kSasListen, kNow);
  ASSERT_TRUE(name.ok()) << name.status();
  EXPECT_EQ(*name, "agents");
  EXPECT_TRUE(ring_->Authorize(Token("cloud", "https://r/$hc/"), "/$hc/m1", kSasSend, kNow).ok());
  EXPECT_TRUE(ring_->Authorize(Token("cloud", "https://r/$hc/"), "/$hc/m1", kSasManage, kNow).ok());
}

TEST_F(SasKeyRingTest, MissingRightIsForbidden) {
  auto r = ring_->Authorize(Token("agents", "https://r/$hc/m1"), "/$hc/m1", kSasSend, kNow);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(SasFailureOf(r.status()), SasFailure::kMissingRight);
}

TEST_F(SasKeyRingTest, UnknownKeyNameIsRefused) {
  std::string token = CreateSasToken("https://r/$hc/m1", "ghost", Key(), kNow + 60);
  auto r = ring_->Authorize(token, "/$hc/m1", kSasListen, kNow);
  EXPECT_EQ(SasFailureOf(r.status()), SasFailure::kUnknownKey);
}

TEST(SasKeyRingParseTest, RejectsBadFilesNamingTheLine) {
  struct Case {
    const char* text;
    const char* message;
  } cases[] = {
      {"", "no keys defined"},
      {"a short Listen\n", "line 1: key must be at least 32 characters"},
      {"\na aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n", "line 2: expected NAME KEY RIGHTS"},
      {"a aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa Fly\n", "line 1: unknown right 'Fly'"},
      {"a aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa Listen\na bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb Send\n",
       "line 2: duplicate key name a"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    auto ring = SasKeyRing::Parse(c.text);
    EXPECT_EQ(ring.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(ring.status().message(), c.message);
  }
}

}  // namespace
}  // namespace tether::crypto
