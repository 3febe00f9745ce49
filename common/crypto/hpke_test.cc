#include "common/crypto/hpke.h"

#include <string>
#include <vector>

#include "common/base/hex.h"
#include "common/crypto/test_vectors.h"
#include "gtest/gtest.h"

namespace tether::crypto {
namespace {

constexpr char kVectorFile[] = "common/crypto/testdata/hpke-rfc9180-a1-base.txt";

std::string Unhex(const std::string& hex) {
  auto bytes = HexDecode(hex);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return bytes.value_or("");
}

class HpkeVectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto vectors = ReadHpkeVectors(kVectorFile);
    ASSERT_TRUE(vectors.ok()) << vectors.status();
    setup_ = vectors->setup;
    encryptions_ = vectors->encryptions;
    exports_ = vectors->exports;
    ASSERT_EQ(encryptions_.size(), 6u);
    ASSERT_EQ(exports_.size(), 3u);
    auto suite = HpkeSuite::FromIds(std::stoi(setup_["kem_id"]), std::stoi(setup_["kdf_id"]),
                                    std::stoi(setup_["aead_id"]));
    ASSERT_TRUE(suite.ok()) << suite.status();
    suite_ = *suite;
  }

  SecretBytes Secret(const std::string& field) { return SecretBytes(Unhex(setup_[field])); }

  VectorRecord setup_;
  std::vector<VectorRecord> encryptions_;
  std::vector<VectorRecord> exports_;
  HpkeSuite suite_;
};

TEST_F(HpkeVectorTest, DeriveKeyPairReproducesEphemeralAndRecipientKeys) {
  auto e = HpkeDeriveKeyPair(Secret("ikmE"));
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(HexEncode(e->private_key.view()), setup_["skEm"]);
  EXPECT_EQ(HexEncode(e->public_key), setup_["pkEm"]);
  auto r = HpkeDeriveKeyPair(Secret("ikmR"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(HexEncode(r->private_key.view()), setup_["skRm"]);
  EXPECT_EQ(HexEncode(r->public_key), setup_["pkRm"]);
}

TEST_F(HpkeVectorTest, EncapAndDecapReproduceSharedSecret) {
  SecretBytes ikm_e = Secret("ikmE");
  auto encap = HpkeEncap(Unhex(setup_["pkRm"]), &ikm_e);
  ASSERT_TRUE(encap.ok()) << encap.status();
  EXPECT_EQ(HexEncode(encap->enc), setup_["enc"]);
  EXPECT_EQ(HexEncode(encap->shared_secret.view()), setup_["shared_secret"]);
  auto decap = HpkeDecap(Unhex(setup_["enc"]), Secret("skRm"));
  ASSERT_TRUE(decap.ok()) << decap.status();
  EXPECT_EQ(HexEncode(decap->view()), setup_["shared_secret"]);
}

TEST_F(HpkeVectorTest, KeyScheduleReproducesEveryValue) {
  auto ks = HpkeKeyScheduleBase(suite_, Secret("shared_secret"), Unhex(setup_["info"]));
  ASSERT_TRUE(ks.ok()) << ks.status();
  EXPECT_EQ(HexEncode(ks->key_schedule_context), setup_["key_schedule_context"]);
  EXPECT_EQ(HexEncode(ks->secret.view()), setup_["secret"]);
  EXPECT_EQ(HexEncode(ks->key.view()), setup_["key"]);
  EXPECT_EQ(HexEncode(ks->base_nonce), setup_["base_nonce"]);
  EXPECT_EQ(HexEncode(ks->exporter_secret.view()), setup_["exporter_secret"]);
}

TEST_F(HpkeVectorTest, SenderContextReproducesAllEncryptions) {
  SecretBytes ikm_e = Secret("ikmE");
  auto sender = HpkeSetupBaseSender(suite_, Unhex(setup_["pkRm"]), Unhex(setup_["info"]), &ikm_e);
  ASSERT_TRUE(sender.ok()) << sender.status();
  EXPECT_EQ(HexEncode(sender->enc), setup_["enc"]);
  for (auto& e : encryptions_) {
    SCOPED_TRACE("sequence number " + e["sequence number"]);
    sender->context.set_sequence(std::stoull(e["sequence number"]));
    auto ct = sender->context.Seal(Unhex(e["aad"]), Unhex(e["pt"]));
    ASSERT_TRUE(ct.ok()) << ct.status();
    EXPECT_EQ(HexEncode(*ct), e["ct"]);
  }
}

TEST_F(HpkeVectorTest, ReceiverContextOpensAllEncryptions) {
  auto receiver =
      HpkeSetupBaseReceiver(suite_, Unhex(setup_["enc"]), Secret("skRm"), Unhex(setup_["info"]));
  ASSERT_TRUE(receiver.ok()) << receiver.status();
  for (auto& e : encryptions_) {
    SCOPED_TRACE("sequence number " + e["sequence number"]);
    receiver->set_sequence(std::stoull(e["sequence number"]));
    auto pt = receiver->Open(Unhex(e["aad"]), Unhex(e["ct"]));
    ASSERT_TRUE(pt.ok()) << pt.status();
    EXPECT_EQ(HexEncode(pt->view()), e["pt"]);
  }
}

TEST_F(HpkeVectorTest, ExportReproducesAllExportedValues) {
  auto receiver =
      HpkeSetupBaseReceiver(suite_, Unhex(setup_["enc"]), Secret("skRm"), Unhex(setup_["info"]));
  ASSERT_TRUE(receiver.ok()) << receiver.status();
  for (auto& x : exports_) {
    SCOPED_TRACE("exporter_context " + x["exporter_context"]);
    auto value = receiver->Export(Unhex(x["exporter_context"]), std::stoul(x["L"]));
    ASSERT_TRUE(value.ok()) << value.status();
    EXPECT_EQ(HexEncode(value->view()), x["exported_value"]);
  }
}

// RFC 9180 A.2.1 (ChaCha20-Poly1305), sequence number 0: a second suite checked against the RFC.
TEST(HpkeChaChaVectorTest, ReproducesRfcAppendixA21FirstEncryption) {
  HpkeSuite suite{kKemX25519HkdfSha256, kKdfHkdfSha256, AeadId::kChaCha20Poly1305};
  SecretBytes ikm_e(Unhex("909a9b35d3dc4713a5e72a4da274b55d3d3821a37e5d099e74a647db583a904b"));
  auto r = HpkeDeriveKeyPair(
      SecretBytes(Unhex("1ac01f181fdf9f352797655161c58b75c656a6cc2716dcb66372da835542e1df")));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(HexEncode(r->private_key.view()),
            "8057991eef8f1f1af18f4a9491d16a1ce333f695d4db8e38da75975c4478e0fb");
  std::string info = Unhex("4f6465206f6e2061204772656369616e2055726e");
  auto sender = HpkeSetupBaseSender(suite, r->public_key, info, &ikm_e);
  ASSERT_TRUE(sender.ok()) << sender.status();
  EXPECT_EQ(HexEncode(sender->enc),
            "1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a");
  const HpkeKeySchedule& ks = sender->context.key_schedule();
  EXPECT_EQ(HexEncode(ks.key.view()),
            "ad2744de8e17f4ebba575b3f5f5a8fa1f69c2a07f6e7500bc60ca6e3e3ec1c91");
  EXPECT_EQ(HexEncode(ks.base_nonce), "5c4d98150661b848853b547f");
  auto ct = sender->context.Seal(Unhex("436f756e742d30"),
                                 Unhex("4265617574792069732074727574682c20747275746820626561757479"));
  ASSERT_TRUE(ct.ok());
  EXPECT_EQ(HexEncode(*ct),
            "1c5250d8034ec2b784ba2cfd69dbdb8af406cfe3ff938e131f0def8c8b60b4db21993c62ce81883d2dd1b51a28");
}

class HpkeRoundTripTest : public ::testing::TestWithParam<AeadId> {};

TEST_P(HpkeRoundTripTest, SingleShotSealOpens) {
  HpkeSuite suite{kKemX25519HkdfSha256, kKdfHkdfSha256, GetParam()};
  auto kp = GenerateX25519KeyPair();
  ASSERT_TRUE(kp.ok());
  auto sealed = HpkeSeal(suite, kp->public_key, "info", "aad", "hello");
  ASSERT_TRUE(sealed.ok()) << sealed.status();
  auto pt = HpkeOpen(suite, kp->private_key, sealed->enc, "info", "aad", sealed->ciphertext);
  ASSERT_TRUE(pt.ok()) << pt.status();
  EXPECT_EQ(pt->view(), "hello");
}

TEST_P(HpkeRoundTripTest, MultiMessageContextsStayInStepAndExportAgrees) {
  HpkeSuite suite{kKemX25519HkdfSha256, kKdfHkdfSha256, GetParam()};
  auto kp = GenerateX25519KeyPair();
  ASSERT_TRUE(kp.ok());
  auto sender = HpkeSetupBaseSender(suite, kp->public_key, "ctx");
  ASSERT_TRUE(sender.ok());
  auto receiver = HpkeSetupBaseReceiver(suite, sender->enc, kp->private_key, "ctx");
  ASSERT_TRUE(receiver.ok());
  for (int i = 0; i < 5; ++i) {
    std::string msg = "message " + std::to_string(i);
    auto ct = sender->context.Seal("", msg);
    ASSERT_TRUE(ct.ok());
    auto pt = receiver->Open("", *ct);
    ASSERT_TRUE(pt.ok()) << pt.status();
    EXPECT_EQ(pt->view(), msg);
  }
  EXPECT_EQ(receiver->sequence(), 5u);
  EXPECT_EQ(sender->context.Export("x", 48)->view(), receiver->Export("x", 48)->view());
}

TEST_P(HpkeRoundTripTest, OpenFailsWhenAnyCiphertextOrEncByteFlips) {
  HpkeSuite suite{kKemX25519HkdfSha256, kKdfHkdfSha256, GetParam()};
  auto kp = GenerateX25519KeyPair();
  ASSERT_TRUE(kp.ok());
  auto sealed = HpkeSeal(suite, kp->public_key, "info", "aad", "secret payload");
  ASSERT_TRUE(sealed.ok());
  for (std::size_t i = 0; i < sealed->ciphertext.size(); ++i) {
    std::string ct = sealed->ciphertext;
    ct[i] ^= 0x01;
    EXPECT_EQ(HpkeOpen(suite, kp->private_key, sealed->enc, "info", "aad", ct).status().code(),
              absl::StatusCode::kUnauthenticated)
        << "byte " << i;
  }
  for (std::size_t i = 0; i < sealed->enc.size(); ++i) {
    std::string enc = sealed->enc;
    enc[i] ^= 0x01;
    EXPECT_FALSE(HpkeOpen(suite, kp->private_key, enc, "info", "aad", sealed->ciphertext).ok())
        << "enc byte " << i;
  }
  EXPECT_EQ(HpkeOpen(suite, kp->private_key, sealed->enc, "other", "aad", sealed->ciphertext)
                .status()
                .code(),
            absl::StatusCode::kUnauthenticated);
}

INSTANTIATE_TEST_SUITE_P(AllAeads, HpkeRoundTripTest,
                         ::testing::Values(AeadId::kAes128Gcm, AeadId::kAes256Gcm,
                                           AeadId::kChaCha20Poly1305));

TEST(HpkeTest, FailedOpenDoesNotAdvanceTheSequence) {
  auto kp = GenerateX25519KeyPair();
  ASSERT_TRUE(kp.ok());
  auto sender = HpkeSetupBaseSender(kTetherSuite, kp->public_key, "");
  auto receiver = HpkeSetupBaseReceiver(kTetherSuite, sender->enc, kp->private_key, "");
  ASSERT_TRUE(receiver.ok());
  auto ct = sender->context.Seal("", "one");
  ASSERT_TRUE(ct.ok());
  std::string bad = *ct;
  bad[0] ^= 1;
  EXPECT_FALSE(receiver->Open("", bad).ok());
  EXPECT_EQ(receiver->sequence(), 0u);
  EXPECT_TRUE(receiver->Open("", *ct).ok());
}

TEST(HpkeTest, RolesAreEnforced) {
  auto kp = GenerateX25519KeyPair();
  auto sender = HpkeSetupBaseSender(kTetherSuite, kp->public_key, "");
  ASSERT_TRUE(sender.ok());
  EXPECT_EQ(sender->context.Open("", std::string(32, 'x')).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(HpkeTest, SequenceNumberLimitIsEnforced) {
  auto kp = GenerateX25519KeyPair();
  auto sender = HpkeSetupBaseSender(kTetherSuite, kp->public_key, "");
  ASSERT_TRUE(sender.ok());
  sender->context.set_sequence(~uint64_t{0});
  EXPECT_EQ(sender->context.Seal("", "x").status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(HpkeTest, RejectsUnsupportedSuiteIds) {
  EXPECT_EQ(HpkeSuite::FromIds(0x0010, 1, 1).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(HpkeSuite::FromIds(0x0020, 2, 1).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(HpkeSuite::FromIds(0x0020, 1, 0xffff).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(HpkeSuite::FromIds(0x0020, 1, 3).ok());
}

TEST(HpkeTest, RejectsMalformedAndLowOrderKeys) {
  EXPECT_EQ(HpkeSeal(kTetherSuite, "short", "", "", "x").status().code(),
            absl::StatusCode::kInvalidArgument);
  // The all-zero point has small order: X25519 with it gives zero, which HPKE must refuse.
  EXPECT_EQ(HpkeSeal(kTetherSuite, std::string(32, '\0'), "", "", "x").status().code(),
            absl::StatusCode::kInvalidArgument);
  auto kp = GenerateX25519KeyPair();
  EXPECT_EQ(HpkeOpen(kTetherSuite, kp->private_key, "short", "", "", std::string(16, 'x'))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(HpkeTest, ExportRejectsOverlongLength) {
  auto kp = GenerateX25519KeyPair();
  auto sender = HpkeSetupBaseSender(kTetherSuite, kp->public_key, "");
  ASSERT_TRUE(sender.ok());
  EXPECT_TRUE(sender->context.Export("", 255 * 32).ok());
  EXPECT_EQ(sender->context.Export("", 255 * 32 + 1).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tether::crypto
