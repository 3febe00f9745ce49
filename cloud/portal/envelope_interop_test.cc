// The portal's sealed credentials open on the desktop side: static/js/envelope.js, run by Node
// through testing/seal_cli.mjs, seals to a key pair made here with //common/crypto; the JSON it
// prints parses into proto::SealedEnvelope and opens with the C++ OpenCredentials, which is what
// agents and gateway members run. The password reaches the CLI on stdin, never in argv.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/crypto/digest.h"
#include "common/crypto/envelope.h"
#include "common/crypto/hpke.h"
#include "common/proto/crypto.pb.h"
#include "common/testing/child_process.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace tether::portal {
namespace {

using ::tether::crypto::Credentials;
using ::tether::crypto::SecretBytes;

constexpr char kNode[] = "/usr/bin/node";
constexpr char kSealCli[] = "cloud/portal/testing/seal_cli.mjs";

struct CliResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs Node on seal_cli.mjs with `args`, feeding `stdin_bytes` on stdin; stdout is read through a
// pipe, stderr goes to a file in TEST_TMPDIR. (ChildProcess gives its children /dev/null as stdin.)
CliResult RunSealCli(const std::vector<std::string>& args, absl::string_view stdin_bytes) {
  std::vector<std::string> argv = {kNode, "--preserve-symlinks", "--preserve-symlinks-main", kSealCli};
  argv.insert(argv.end(), args.begin(), args.end());
  const char* tmp = std::getenv("TEST_TMPDIR");
  static int counter = 0;
  const std::string err_path =
      absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/seal_cli-", getpid(), "-", ++counter, ".err");

  CliResult result;
  int in_pipe[2], out_pipe[2];
  if (pipe2(in_pipe, O_CLOEXEC) != 0 || pipe2(out_pipe, O_CLOEXEC) != 0) {
    result.err = "pipe failed";
    return result;
  }
  const pid_t pid = fork();
  if (pid == 0) {
    int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(in_pipe[0], 0);
    dup2(out_pipe[1], 1);
    dup2(err, 2);
    std::vector<char*> c_argv;
    for (const std::string& arg : argv) c_argv.push_back(const_cast<char*>(arg.c_str()));
    c_argv.push_back(nullptr);
    execv(c_argv[0], c_argv.data());
    _exit(127);
  }
  close(in_pipe[0]);
  close(out_pipe[1]);
  // The input is far smaller than a pipe buffer, so writing it all before reading cannot block on
  // a child that is itself blocked writing stdout. A child that exits early must not SIGPIPE us.
  signal(SIGPIPE, SIG_IGN);
  for (std::size_t done = 0; pid > 0 && done < stdin_bytes.size();) {
    ssize_t n = write(in_pipe[1], stdin_bytes.data() + done, stdin_bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
  close(in_pipe[1]);
  char buffer[4096];
  for (;;) {
    ssize_t n = read(out_pipe[0], buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    result.out.append(buffer, static_cast<std::size_t>(n));
  }
  close(out_pipe[0]);
  int status = 0;
  if (pid > 0) {
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  result.err = tether::testing::ReadFileOrEmpty(err_path);
  return result;
}

std::string Describe(const CliResult& r) {
  return absl::StrCat("exit ", r.exit_code, "\nstdout: ", r.out, "\nstderr: ", r.err);
}

class EnvelopeInteropTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pair = crypto::GenerateX25519KeyPair();
    ASSERT_TRUE(pair.ok()) << pair.status();
    key_pair_ = *std::move(pair);
  }

  // Seals with the portal's JavaScript and parses its JSON output.
  proto::SealedEnvelope SealInNode(absl::string_view connection_id, absl::string_view username,
                                   absl::string_view password) {
    CliResult r = RunSealCli({crypto::Base64Encode(key_pair_.public_key), std::string(connection_id),
                              std::string(username)},
                             password);
    proto::SealedEnvelope envelope;
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    if (r.exit_code != 0) return envelope;
    auto status = google::protobuf::util::JsonStringToMessage(r.out, &envelope);
    EXPECT_TRUE(status.ok()) << status.ToString() << "\n" << r.out;
    return envelope;
  }

  crypto::X25519KeyPair key_pair_;
};

TEST_F(EnvelopeInteropTest, CppOpensWhatTheBrowserCodeSeals) {
  proto::SealedEnvelope envelope = SealInNode("conn-7", "alice", "correct horse battery staple");

  EXPECT_EQ(envelope.kem_id(), crypto::kKemX25519HkdfSha256);
  EXPECT_EQ(envelope.kdf_id(), crypto::kKdfHkdfSha256);
  EXPECT_EQ(envelope.aead_id(), static_cast<uint32_t>(crypto::AeadId::kAes256Gcm));
  EXPECT_EQ(envelope.recipient_key_id(), crypto::KeyId(key_pair_.public_key));
  EXPECT_EQ(envelope.enc().size(), crypto::kX25519KeySize);
  EXPECT_EQ(envelope.connection_id(), "conn-7");
  EXPECT_TRUE(crypto::ValidateEnvelope(envelope, key_pair_.public_key, "conn-7").ok());

  absl::StatusOr<Credentials> opened =
      crypto::OpenCredentials(envelope, key_pair_.private_key, "conn-7");
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(opened->username, "alice");
  EXPECT_EQ(opened->password.view(), "correct horse battery staple");
}

// The plaintext inside is byte for byte what the C++ SealCredentials serializes: UTF-8 usernames,
// binary passwords of every byte value, lengths past one varint byte, and the empty password that
// proto3 leaves out.
TEST_F(EnvelopeInteropTest, PlaintextIsTheCppSerializationByteForByte) {
  std::string binary;
  for (int i = 0; i < 300; ++i) binary.push_back(static_cast<char>(i % 256));
  struct Case {
    const char* name;
    std::string username;
    std::string password;
  };
  const std::vector<Case> cases = {
      {"ascii", "alice", "hunter2"},
      {"utf8 username, 300 binary bytes", "Zo\xC3\xAB \xE7\xAE\xA1\xE7\x90\x86", binary},
      {"empty password", "bob", ""},
      {"longest username", std::string(256, 'u'), "p"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    proto::SealedEnvelope envelope = SealInNode("conn-bytes", c.username, c.password);
    absl::StatusOr<SecretBytes> plaintext = crypto::HpkeOpen(
        crypto::kTetherSuite, key_pair_.private_key, envelope.enc(), crypto::kCredentialInfo,
        absl::StrCat("conn-bytes", crypto::KeyId(key_pair_.public_key)), envelope.ciphertext());
    ASSERT_TRUE(plaintext.ok()) << plaintext.status();
    proto::SealedCredentialPlaintext expected;
    expected.set_username(c.username);
    expected.set_secret(c.password);
    EXPECT_EQ(plaintext->view(), expected.SerializeAsString());

    absl::StatusOr<Credentials> opened =
        crypto::OpenCredentials(envelope, key_pair_.private_key, "conn-bytes");
    ASSERT_TRUE(opened.ok()) << opened.status();
    EXPECT_EQ(opened->username, c.username);
    EXPECT_EQ(opened->password.view(), c.password);
  }
}

TEST_F(EnvelopeInteropTest, OpeningForAnotherConnectionIsUnauthenticated) {
  proto::SealedEnvelope envelope = SealInNode("conn-7", "alice", "pw");
  absl::StatusOr<Credentials> opened =
      crypto::OpenCredentials(envelope, key_pair_.private_key, "conn-8");
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kUnauthenticated) << opened.status();
  // The cloud, which cannot open it, refuses it for another connection by the clear field.
  EXPECT_EQ(crypto::ValidateEnvelope(envelope, key_pair_.public_key, "conn-8").code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(EnvelopeInteropTest, OpeningWithAnotherKeyIsPermissionDenied) {
  proto::SealedEnvelope envelope = SealInNode("conn-7", "alice", "pw");
  auto other = crypto::GenerateX25519KeyPair();
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(crypto::OpenCredentials(envelope, other->private_key, "conn-7").status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(crypto::ValidateEnvelope(envelope, other->public_key, "conn-7").code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(EnvelopeInteropTest, AnyTamperedByteFailsToOpen) {
  const proto::SealedEnvelope sealed = SealInNode("conn-7", "alice", "pw");
  ASSERT_TRUE(crypto::OpenCredentials(sealed, key_pair_.private_key, "conn-7").ok());
  struct Case {
    const char* name;
    std::string* (proto::SealedEnvelope::*field)();
    std::size_t index;
    absl::StatusCode code;
  };
  const std::size_t last = sealed.ciphertext().size() - 1;
  const std::vector<Case> cases = {
      {"ciphertext first byte", &proto::SealedEnvelope::mutable_ciphertext, 0,
       absl::StatusCode::kUnauthenticated},
      {"ciphertext tag byte", &proto::SealedEnvelope::mutable_ciphertext, last,
       absl::StatusCode::kUnauthenticated},
      {"enc", &proto::SealedEnvelope::mutable_enc, 3, absl::StatusCode::kUnauthenticated},
      {"recipient key id", &proto::SealedEnvelope::mutable_recipient_key_id, 0,
       absl::StatusCode::kPermissionDenied},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    proto::SealedEnvelope envelope = sealed;
    std::string* field = (envelope.*c.field)();
    ASSERT_LT(c.index, field->size());
    (*field)[c.index] = static_cast<char>((*field)[c.index] ^ 0x01);
    EXPECT_EQ(crypto::OpenCredentials(envelope, key_pair_.private_key, "conn-7").status().code(),
              c.code);
  }
}

TEST_F(EnvelopeInteropTest, CliRefusesWhatSealCredentialsRefuses) {
  struct Case {
    const char* name;
    std::string public_key;
    std::string connection_id;
    std::string username;
    const char* message;
  };
  const std::string key = crypto::Base64Encode(key_pair_.public_key);
  const std::vector<Case> cases = {
      {"31-byte key", crypto::Base64Encode(key_pair_.public_key.substr(1)), "conn", "alice",
       "32 bytes"},
      {"empty connection id", key, "", "alice", "connection id is empty"},
      {"empty username", key, "conn", "", "username must be 1 to 256 bytes"},
      {"257-byte username", key, "conn", std::string(257, 'u'), "username must be 1 to 256 bytes"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    CliResult r = RunSealCli({c.public_key, c.connection_id, c.username}, "pw");
    EXPECT_EQ(r.exit_code, 1) << Describe(r);
    EXPECT_EQ(r.out, "");
    EXPECT_NE(r.err.find(c.message), std::string::npos) << Describe(r);
  }
  CliResult r = RunSealCli({key, "conn", "alice"}, std::string(4097, 'p'));
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find("password must be at most 4096 bytes"), std::string::npos) << Describe(r);
}

}  // namespace
}  // namespace tether::portal
