#include "common/crypto/envelope.h"

#include <string>

#include "common/crypto/digest.h"
#include "common/crypto/hpke.h"
#include "gtest/gtest.h"

namespace tether::crypto {
namespace {

class EnvelopeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto kp = GenerateX25519KeyPair();
    ASSERT_TRUE(kp.ok());
    machine_ = std::move(*kp);
    auto sealed = SealCredentials(machine_.public_key, "conn-1", Creds());
    ASSERT_TRUE(sealed.ok()) << sealed.status();
    envelope_ = *sealed;
  }
  static Credentials Creds() { return Credentials{"alice", SecretBytes("s3cret pass")}; }

  X25519KeyPair machine_;
  proto::SealedEnvelope envelope_;
};

TEST_F(EnvelopeTest, RoundTripsUsernameAndPassword) {
  auto opened = OpenCredentials(envelope_, machine_.private_key, "conn-1");
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(opened->username, "alice");
  EXPECT_EQ(opened->password.view(), "s3cret pass");
  EXPECT_EQ(envelope_.kem_id(), 0x20u);
  EXPECT_EQ(envelope_.kdf_id(), 1u);
  EXPECT_EQ(envelope_.aead_id(), 2u);
  EXPECT_EQ(envelope_.recipient_key_id(), KeyId(machine_.public_key));
}

TEST_F(EnvelopeTest, CiphertextDoesNotContainThePassword) {
  EXPECT_EQ(envelope_.SerializeAsString().find("s3cret"), std::string::npos);
}

TEST_F(EnvelopeTest, FlippingAnyByteOfEncFails) {
  for (std::size_t i = 0; i < envelope_.enc().size(); ++i) {
    proto::SealedEnvelope e = envelope_;
    (*e.mutable_enc())[i] ^= 0x01;
    EXPECT_FALSE(OpenCredentials(e, machine_.private_key, "conn-1").ok()) << "byte " << i;
  }
}

TEST_F(EnvelopeTest, FlippingAnyByteOfCiphertextFails) {
  for (std::size_t i = 0; i < envelope_.ciphertext().size(); ++i) {
    proto::SealedEnvelope e = envelope_;
    (*e.mutable_ciphertext())[i] ^= 0x80;
    EXPECT_EQ(OpenCredentials(e, machine_.private_key, "conn-1").status().code(),
              absl::StatusCode::kUnauthenticated)
        << "byte " << i;
  }
}

TEST_F(EnvelopeTest, FlippingAnyByteOfTheAadFails) {
  // The aad is connection_id || recipient_key_id: flip each byte of both parts.
  std::string connection = "conn-1";
  for (std::size_t i = 0; i < connection.size(); ++i) {
    std::string c = connection;
    c[i] ^= 0x01;
    EXPECT_EQ(OpenCredentials(envelope_, machine_.private_key, c).status().code(),
              absl::StatusCode::kUnauthenticated)
        << "connection byte " << i;
  }
  for (std::size_t i = 0; i < envelope_.recipient_key_id().size(); ++i) {
    proto::SealedEnvelope e = envelope_;
    (*e.mutable_recipient_key_id())[i] ^= 0x01;
    EXPECT_EQ(OpenCredentials(e, machine_.private_key, "conn-1").status().code(),
              absl::StatusCode::kPermissionDenied)
        << "key id byte " << i;
  }
}

TEST_F(EnvelopeTest, WrongRecipientKeyFails) {
  auto other = GenerateX25519KeyPair();
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(OpenCredentials(envelope_, other->private_key, "conn-1").status().code(),
            absl::StatusCode::kPermissionDenied);
  // Even with the key id rewritten to match, the HPKE open fails.
  proto::SealedEnvelope e = envelope_;
  e.set_recipient_key_id(KeyId(other->public_key));
  EXPECT_EQ(OpenCredentials(e, other->private_key, "conn-1").status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST_F(EnvelopeTest, EnvelopeMovedToAnotherConnectionFails) {
  EXPECT_EQ(OpenCredentials(envelope_, machine_.private_key, "conn-2").status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST_F(EnvelopeTest, UnsupportedSuiteIsInvalidArgument) {
  proto::SealedEnvelope e = envelope_;
  e.set_aead_id(9);
  EXPECT_EQ(OpenCredentials(e, machine_.private_key, "conn-1").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateEnvelope(e, machine_.public_key).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(EnvelopeTest, ValidateRefusesAnEnvelopeBoundToAnotherConnection) {
  EXPECT_EQ(envelope_.connection_id(), "conn-1");
  EXPECT_TRUE(ValidateEnvelope(envelope_, machine_.public_key, "conn-1").ok());
  absl::Status moved = ValidateEnvelope(envelope_, machine_.public_key, "conn-2");
  EXPECT_EQ(moved.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(moved.message(), "envelope is bound to connection \"conn-1\", not \"conn-2\"");
}

TEST_F(EnvelopeTest, ValidateAcceptsAGoodEnvelopeAndNamesEachBadField) {
  EXPECT_TRUE(ValidateEnvelope(envelope_, machine_.public_key).ok());
  auto other = GenerateX25519KeyPair();
  EXPECT_EQ(ValidateEnvelope(envelope_, other->public_key).code(),
            absl::StatusCode::kInvalidArgument);

  proto::SealedEnvelope truncated = envelope_;
  truncated.set_ciphertext(envelope_.ciphertext().substr(0, 16));
  EXPECT_EQ(ValidateEnvelope(truncated, machine_.public_key).message(), "ciphertext is truncated");

  proto::SealedEnvelope short_enc = envelope_;
  short_enc.set_enc("abc");
  EXPECT_EQ(ValidateEnvelope(short_enc, machine_.public_key).code(),
            absl::StatusCode::kInvalidArgument);

  proto::SealedEnvelope short_id = envelope_;
  short_id.set_recipient_key_id("abc");
  EXPECT_EQ(ValidateEnvelope(short_id, machine_.public_key).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SealCredentialsTest, RejectsBadInput) {
  auto kp = GenerateX25519KeyPair();
  ASSERT_TRUE(kp.ok());
  Credentials ok{"bob", SecretBytes("pw")};
  EXPECT_EQ(SealCredentials(kp->public_key, "", ok).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SealCredentials("short", "c", ok).status().code(), absl::StatusCode::kInvalidArgument);
  Credentials no_user{"", SecretBytes("pw")};
  EXPECT_EQ(SealCredentials(kp->public_key, "c", no_user).status().code(),
            absl::StatusCode::kInvalidArgument);
  Credentials huge{"bob", SecretBytes(std::string(5000, 'x'))};
  EXPECT_EQ(SealCredentials(kp->public_key, "c", huge).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tether::crypto
