#include "common/crypto/password_kdf.h"

#include <fstream>
#include <iomanip>
#include <sstream>
#include <string>
#include <vector>

#include "common/base/hex.h"
#include "gtest/gtest.h"

namespace tether::crypto {
namespace {

struct ScryptVector {
  std::string password, salt;
  ScryptParams params;
  std::size_t length = 0;
  std::string expected_hex;
};

// testdata/scrypt-rfc7914.txt: "password" "salt" N r p dkLen hex, one vector a line.
std::vector<ScryptVector> ReadScryptVectors() {
  std::ifstream in("common/crypto/testdata/scrypt-rfc7914.txt");
  EXPECT_TRUE(in.good());
  std::vector<ScryptVector> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    ScryptVector v;
    fields >> std::quoted(v.password) >> std::quoted(v.salt) >> v.params.n >> v.params.r >>
        v.params.p >> v.length >> v.expected_hex;
    EXPECT_FALSE(fields.fail()) << line;
    out.push_back(v);
  }
  return out;
}

TEST(ScryptTest, ReproducesRfc7914Vectors) {
  auto vectors = ReadScryptVectors();
  ASSERT_EQ(vectors.size(), 2u);
  for (const auto& v : vectors) {
    SCOPED_TRACE(v.password);
    auto key = Scrypt(v.password, v.salt, v.params, v.length);
    ASSERT_TRUE(key.ok()) << key.status();
    EXPECT_EQ(HexEncode(key->view()), v.expected_hex);
  }
}

TEST(ScryptTest, RejectsInvalidParameters) {
  EXPECT_EQ(Scrypt("p", "s", {1000, 8, 1}, 32).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Scrypt("p", "s", {1, 8, 1}, 32).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Scrypt("p", "s", {1024, 0, 1}, 32).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Scrypt("p", "s", {1024, 8, 1}, 0).status().code(), absl::StatusCode::kInvalidArgument);
  // 128 * r * N = 4 GiB: over the memory limit, refused before allocating.
  EXPECT_EQ(Scrypt("p", "s", {uint64_t{1} << 22, 8, 1}, 32).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Small scrypt parameters keep the wrap tests fast; the defaults are exercised once below.
constexpr ScryptParams kFast{1024, 8, 1};

TEST(PasswordWrapTest, RoundTripsWithTheRightPassword) {
  SecretBytes key(std::string(32, '\x42'));
  auto wrapped = WrapWithPassword(key, SecretBytes("group password"), kFast);
  ASSERT_TRUE(wrapped.ok()) << wrapped.status();
  EXPECT_EQ(wrapped->scrypt_n(), 1024u);
  EXPECT_EQ(wrapped->salt().size(), 16u);
  EXPECT_EQ(wrapped->nonce().size(), 12u);
  auto unwrapped = UnwrapWithPassword(*wrapped, SecretBytes("group password"));
  ASSERT_TRUE(unwrapped.ok()) << unwrapped.status();
  EXPECT_EQ(unwrapped->view(), key.view());
}

TEST(PasswordWrapTest, DefaultParametersAreTheDesignDefaults) {
  SecretBytes key(std::string(32, 'k'));
  auto wrapped = WrapWithPassword(key, SecretBytes("pw"));
  ASSERT_TRUE(wrapped.ok()) << wrapped.status();
  EXPECT_EQ(wrapped->scrypt_n(), uint64_t{1} << 15);
  EXPECT_EQ(wrapped->r(), 8u);
  EXPECT_EQ(wrapped->p(), 1u);
  EXPECT_EQ(UnwrapWithPassword(*wrapped, SecretBytes("pw"))->view(), key.view());
}

TEST(PasswordWrapTest, WrongPasswordIsAClearError) {
  auto wrapped = WrapWithPassword(SecretBytes(std::string(32, 'k')), SecretBytes("right"), kFast);
  ASSERT_TRUE(wrapped.ok());
  auto result = UnwrapWithPassword(*wrapped, SecretBytes("wrong"));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(result.status().message().find("wrong password"), std::string::npos);
}

TEST(PasswordWrapTest, AlteredParametersOrBytesFail) {
  auto wrapped = WrapWithPassword(SecretBytes(std::string(32, 'k')), SecretBytes("pw"), kFast);
  ASSERT_TRUE(wrapped.ok());
  proto::WrappedKey weaker = *wrapped;
  weaker.set_scrypt_n(2);
  EXPECT_EQ(UnwrapWithPassword(weaker, SecretBytes("pw")).status().code(),
            absl::StatusCode::kPermissionDenied);
  proto::WrappedKey flipped = *wrapped;
  (*flipped.mutable_ciphertext())[0] ^= 1;
  EXPECT_EQ(UnwrapWithPassword(flipped, SecretBytes("pw")).status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST(PasswordWrapTest, UntrustedBlobsAreBoundedBeforeAnyWork) {
  auto wrapped = WrapWithPassword(SecretBytes(std::string(32, 'k')), SecretBytes("pw"), kFast);
  ASSERT_TRUE(wrapped.ok());
  proto::WrappedKey huge = *wrapped;
  huge.set_scrypt_n(uint64_t{1} << 30);
  EXPECT_EQ(UnwrapWithPassword(huge, SecretBytes("pw")).status().code(),
            absl::StatusCode::kInvalidArgument);
  proto::WrappedKey bad_nonce = *wrapped;
  bad_nonce.set_nonce("123");
  EXPECT_EQ(UnwrapWithPassword(bad_nonce, SecretBytes("pw")).status().code(),
            absl::StatusCode::kInvalidArgument);
  proto::WrappedKey no_salt = *wrapped;
  no_salt.clear_salt();
  EXPECT_EQ(UnwrapWithPassword(no_salt, SecretBytes("pw")).status().code(),
            absl::StatusCode::kInvalidArgument);
  proto::WrappedKey truncated = *wrapped;
  truncated.set_ciphertext("short");
  EXPECT_EQ(UnwrapWithPassword(truncated, SecretBytes("pw")).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(PasswordWrapTest, RefusesEmptyPasswordOrKey) {
  EXPECT_EQ(WrapWithPassword(SecretBytes("k"), SecretBytes(""), kFast).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(WrapWithPassword(SecretBytes(""), SecretBytes("pw"), kFast).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ClusterKeyTest, SameRecoveryKeyAndNameGiveTheSamePair) {
  auto a = DeriveClusterKeyPair(SecretBytes("correct horse battery staple"), "hq");
  auto b = DeriveClusterKeyPair(SecretBytes("correct horse battery staple"), "hq");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->public_key, b->public_key);
  EXPECT_EQ(a->private_key.view(), b->private_key.view());
  EXPECT_EQ(*X25519PublicKey(a->private_key), a->public_key);
}

TEST(ClusterKeyTest, DifferentNameOrKeyGivesADifferentPair) {
  auto base = DeriveClusterKeyPair(SecretBytes("recovery"), "hq");
  auto other_name = DeriveClusterKeyPair(SecretBytes("recovery"), "branch");
  auto other_key = DeriveClusterKeyPair(SecretBytes("recovery!"), "hq");
  ASSERT_TRUE(base.ok() && other_name.ok() && other_key.ok());
  EXPECT_NE(base->public_key, other_name->public_key);
  EXPECT_NE(base->public_key, other_key->public_key);
}

TEST(ClusterKeyTest, MatchesTheDocumentedConstruction) {
  // ikm = scrypt(recovery, "tether/cluster/v1/" + name, 2^15, 8, 1, 32); pair = DeriveKeyPair(ikm).
  auto ikm = Scrypt("recovery", "tether/cluster/v1/hq", ScryptParams{}, 32);
  ASSERT_TRUE(ikm.ok());
  auto expected = HpkeDeriveKeyPair(*ikm);
  auto derived = DeriveClusterKeyPair(SecretBytes("recovery"), "hq");
  ASSERT_TRUE(expected.ok() && derived.ok());
  EXPECT_EQ(derived->public_key, expected->public_key);
}

TEST(ClusterKeyTest, RefusesEmptyInputs) {
  EXPECT_EQ(DeriveClusterKeyPair(SecretBytes(""), "hq").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DeriveClusterKeyPair(SecretBytes("r"), "").status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tether::crypto
