#include <string>

#include "common/base/hex.h"
#include "common/crypto/aead.h"
#include "common/crypto/digest.h"
#include "common/crypto/secret.h"
#include "gtest/gtest.h"

namespace tether::crypto {
namespace {

TEST(DigestTest, Sha256MatchesFips180Vector) {
  EXPECT_EQ(HexEncode(Sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(DigestTest, HmacSha256MatchesRfc4231Case1And2) {
  EXPECT_EQ(HexEncode(HmacSha256(std::string(20, '\x0b'), "Hi There").view()),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  EXPECT_EQ(HexEncode(HmacSha256("Jefe", "what do ya want for nothing?").view()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(DigestTest, HmacWithEmptyKeyEqualsHmacWithZeroKey) {
  EXPECT_EQ(HmacSha256("", "data").view(), HmacSha256(std::string(32, '\0'), "data").view());
}

TEST(DigestTest, KeyIdIsFirst16BytesOfSha256) {
  EXPECT_EQ(KeyId("abc"), Sha256("abc").substr(0, 16));
  EXPECT_EQ(KeyId("abc").size(), 16u);
}

TEST(DigestTest, RandomBytesDiffer) {
  auto a = RandomBytes(32);
  auto b = RandomBytes(32);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
}

TEST(Base64Test, RoundTripsAllLengths) {
  std::string data;
  for (int i = 0; i < 40; ++i) {
    auto decoded = Base64Decode(Base64Encode(data));
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(*decoded, data);
    data.push_back(static_cast<char>(i * 37));
  }
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
}

TEST(Base64Test, RejectsMalformedText) {
  for (const char* bad : {"Zm9", "Zm9v!mFy", "Zg=v", "Z===", "Zm 9v"}) {
    SCOPED_TRACE(bad);
    EXPECT_EQ(Base64Decode(bad).status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(SecretBytesTest, ClearEmptiesAndMoveLeavesSourceEmpty) {
  SecretBytes s("password");
  SecretBytes moved = std::move(s);
  EXPECT_EQ(moved.view(), "password");
  EXPECT_TRUE(s.empty());  // NOLINT(bugprone-use-after-move): moved-from vector is empty
  SecretBytes copy = moved.Clone();
  moved.Clear();
  EXPECT_TRUE(moved.empty());
  EXPECT_EQ(copy.view(), "password");
}

TEST(SecretBytesTest, CleanseWipesMemory) {
  char buf[8] = {'s', 'e', 'c', 'r', 'e', 't', '!', '!'};
  Cleanse(buf, sizeof(buf));
  EXPECT_EQ(std::string(buf, sizeof(buf)), std::string(8, '\0'));
}

TEST(ConstantTimeEqualsTest, ComparesContentAndLength) {
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abcd"));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
}

TEST(AeadTest, WrongKeyOrAadIsUnauthenticated) {
  SecretBytes key(std::string(32, 'k'));
  std::string nonce(12, 'n');
  auto ct = AeadSeal(AeadId::kAes256Gcm, key, nonce, "aad", "plain");
  ASSERT_TRUE(ct.ok());
  EXPECT_EQ(AeadOpen(AeadId::kAes256Gcm, key, nonce, "aad", *ct)->view(), "plain");
  SecretBytes other(std::string(32, 'K'));
  EXPECT_EQ(AeadOpen(AeadId::kAes256Gcm, other, nonce, "aad", *ct).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(AeadOpen(AeadId::kAes256Gcm, key, nonce, "AAD", *ct).status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST(AeadTest, RejectsBadSizes) {
  SecretBytes short_key(std::string(16, 'k'));
  EXPECT_EQ(AeadSeal(AeadId::kAes256Gcm, short_key, std::string(12, 'n'), "", "x").status().code(),
            absl::StatusCode::kInvalidArgument);
  SecretBytes key(std::string(32, 'k'));
  EXPECT_EQ(AeadSeal(AeadId::kAes256Gcm, key, "short", "", "x").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(AeadOpen(AeadId::kAes256Gcm, key, std::string(12, 'n'), "", "tooshort").status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tether::crypto
