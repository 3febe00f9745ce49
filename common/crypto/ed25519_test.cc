#include "common/crypto/ed25519.h"

#include <string>

#include "common/base/hex.h"
#include "gtest/gtest.h"

namespace tether::crypto {
namespace {

// RFC 8032 §7.1, TEST 1 (empty message).
constexpr char kSecret[] = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
constexpr char kPublic[] = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
constexpr char kSignature[] =
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b4"
    "6bd25bf5f0595bbe24655141438e7a100b";

TEST(Ed25519Test, ReproducesRfc8032Test1) {
  SecretBytes sk(*HexDecode(kSecret));
  EXPECT_EQ(HexEncode(*Ed25519PublicKey(sk)), kPublic);
  auto sig = Ed25519Sign(sk, "");
  ASSERT_TRUE(sig.ok()) << sig.status();
  EXPECT_EQ(HexEncode(*sig), kSignature);
  EXPECT_TRUE(Ed25519Verify(*HexDecode(kPublic), "", *HexDecode(kSignature)).ok());
}

TEST(Ed25519Test, SignVerifyAndEveryFlippedSignatureBitFails) {
  auto kp = GenerateEd25519KeyPair();
  ASSERT_TRUE(kp.ok());
  auto sig = Ed25519Sign(kp->private_key, "job 42");
  ASSERT_TRUE(sig.ok());
  EXPECT_TRUE(Ed25519Verify(kp->public_key, "job 42", *sig).ok());
  EXPECT_EQ(Ed25519Verify(kp->public_key, "job 43", *sig).code(),
            absl::StatusCode::kUnauthenticated);
  for (std::size_t i = 0; i < sig->size(); ++i) {
    std::string bad = *sig;
    bad[i] ^= 0x04;
    EXPECT_EQ(Ed25519Verify(kp->public_key, "job 42", bad).code(),
              absl::StatusCode::kUnauthenticated)
        << "byte " << i;
  }
  auto other = GenerateEd25519KeyPair();
  EXPECT_EQ(Ed25519Verify(other->public_key, "job 42", *sig).code(),
            absl::StatusCode::kUnauthenticated);
}

TEST(Ed25519Test, MalformedKeysAndSignaturesAreInvalidArgument) {
  EXPECT_EQ(Ed25519Verify("short", "m", std::string(64, 's')).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Ed25519Verify(std::string(32, 'p'), "m", "short").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Ed25519Sign(SecretBytes("short"), "m").status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tether::crypto
