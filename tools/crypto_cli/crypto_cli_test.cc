// Runs the crypto_cli binary as a subprocess and checks its output, exit code and stderr.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/crypto/test_vectors.h"
#include "gtest/gtest.h"

namespace tether::tools {
namespace {

struct Result {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::string ReadAll(int fd) {
  std::string data;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) data.append(buf, n);
  return data;
}

// Runs tools/crypto_cli/crypto_cli with `args` (no shell involved).
Result RunCli(const std::vector<std::string>& args) {
  int out_pipe[2], err_pipe[2];
  EXPECT_EQ(pipe(out_pipe), 0);
  EXPECT_EQ(pipe(err_pipe), 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    close(out_pipe[0]);
    close(err_pipe[0]);
    std::vector<char*> argv;
    std::string binary = "tools/crypto_cli/crypto_cli";
    argv.push_back(binary.data());
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(binary.c_str(), argv.data());
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  Result r;
  // stderr output is a single line; read stdout fully first, then stderr.
  r.out = ReadAll(out_pipe[0]);
  r.err = ReadAll(err_pipe[0]);
  close(out_pipe[0]);
  close(err_pipe[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

class CryptoCliHpkeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto vectors = crypto::ReadHpkeVectors("common/crypto/testdata/hpke-rfc9180-a1-base.txt");
    ASSERT_TRUE(vectors.ok()) << vectors.status();
    setup_ = vectors->setup;
    encryptions_ = vectors->encryptions;
    exports_ = vectors->exports;
    ASSERT_EQ(encryptions_.size(), 6u);
  }
  std::vector<std::string> SuiteFlags() {
    return {"--kem", setup_["kem_id"], "--kdf", setup_["kdf_id"], "--aead", setup_["aead_id"]};
  }
  crypto::VectorRecord setup_;
  std::vector<crypto::VectorRecord> encryptions_, exports_;
};

TEST_F(CryptoCliHpkeTest, DeriveKeypairPrintsSkAndPk) {
  Result r = RunCli({"hpke-derive-keypair", "--kem", "32", "--ikm", setup_["ikmR"]});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, absl::StrCat("sk=", setup_["skRm"], " pk=", setup_["pkRm"], "\n"));
}

TEST_F(CryptoCliHpkeTest, OpenReproducesEveryEncryption) {
  for (auto& e : encryptions_) {
    SCOPED_TRACE(e["sequence number"]);
    std::vector<std::string> args = {"hpke-open"};
    for (auto& f : SuiteFlags()) args.push_back(f);
    for (auto& f : std::vector<std::string>{"--sk", setup_["skRm"], "--enc", setup_["enc"],
                                            "--info", setup_["info"], "--aad", e["aad"], "--ct",
                                            e["ct"], "--seq", e["sequence number"]}) {
      args.push_back(f);
    }
    Result r = RunCli(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, e["pt"] + "\n");
  }
}

TEST_F(CryptoCliHpkeTest, SealWithFixedEphemeralReproducesEveryEncryption) {
  for (auto& e : encryptions_) {
    SCOPED_TRACE(e["sequence number"]);
    std::vector<std::string> args = {"hpke-seal"};
    for (auto& f : SuiteFlags()) args.push_back(f);
    for (auto& f : std::vector<std::string>{"--pk", setup_["pkRm"], "--ikm-e", setup_["ikmE"],
                                            "--info", setup_["info"], "--aad", e["aad"], "--pt",
                                            e["pt"], "--seq", e["sequence number"]}) {
      args.push_back(f);
    }
    Result r = RunCli(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, absl::StrCat("enc=", setup_["enc"], " ct=", e["ct"], "\n"));
  }
}

TEST_F(CryptoCliHpkeTest, ExportReproducesEveryValueFromBothSides) {
  for (auto& x : exports_) {
    SCOPED_TRACE(x["exporter_context"]);
    std::vector<std::string> receiver = {"hpke-export"};
    for (auto& f : SuiteFlags()) receiver.push_back(f);
    std::vector<std::string> sender = receiver;
    for (auto& f : std::vector<std::string>{"--sk", setup_["skRm"], "--enc", setup_["enc"]}) {
      receiver.push_back(f);
    }
    for (auto& f : std::vector<std::string>{"--pk", setup_["pkRm"], "--ikm-e", setup_["ikmE"]}) {
      sender.push_back(f);
    }
    for (auto* args : {&receiver, &sender}) {
      for (auto& f : std::vector<std::string>{"--info", setup_["info"], "--context",
                                              x["exporter_context"], "--length", x["L"]}) {
        args->push_back(f);
      }
      Result r = RunCli(*args);
      EXPECT_EQ(r.exit_code, 0) << r.err;
      EXPECT_EQ(r.out, x["exported_value"] + "\n");
    }
  }
}

TEST_F(CryptoCliHpkeTest, TamperedCiphertextExitsTwoWithOneLine) {
  auto& e = encryptions_[0];
  std::string ct = e["ct"];
  ct[0] = ct[0] == '0' ? '1' : '0';
  std::vector<std::string> args = {"hpke-open"};
  for (auto& f : SuiteFlags()) args.push_back(f);
  for (auto& f : std::vector<std::string>{"--sk", setup_["skRm"], "--enc", setup_["enc"], "--info",
                                          setup_["info"], "--aad", e["aad"], "--ct", ct}) {
    args.push_back(f);
  }
  Result r = RunCli(args);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find("authentication failed"), std::string::npos) << r.err;
}

TEST(CryptoCliScryptTest, ReproducesRfc7914Vectors) {
  std::ifstream in("common/crypto/testdata/scrypt-rfc7914.txt");
  std::string line;
  int count = 0;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::string password, salt, n, r, p, length, expected;
    fields >> std::quoted(password) >> std::quoted(salt) >> n >> r >> p >> length >> expected;
    Result res = RunCli({"scrypt", "--password", password, "--salt", salt, "--n", n, "--r", r,
                         "--p", p, "--length", length});
    EXPECT_EQ(res.exit_code, 0) << res.err;
    EXPECT_EQ(res.out, expected + "\n");
    ++count;
  }
  EXPECT_EQ(count, 2);
}

TEST(CryptoCliSasTest, SignThenVerify) {
  std::string key = "0123456789abcdef0123456789abcdef";
  Result sign = RunCli({"sas-sign", "--resource", "https://relay/$hc/m1", "--key-name", "agents",
                        "--key", key, "--expiry", "2000000000"});
  ASSERT_EQ(sign.exit_code, 0) << sign.err;
  std::string token = sign.out.substr(0, sign.out.size() - 1);
  EXPECT_EQ(token.rfind("SharedAccessSignature sr=https%3A%2F%2Frelay%2F%24hc%2Fm1&sig=", 0), 0u);

  Result ok = RunCli({"sas-verify", "--token", token, "--key-name", "agents", "--key", key,
                      "--resource", "https://relay/$hc/m1", "--now", "1999999999"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(ok.out, "ok\n");

  struct Case {
    std::vector<std::string> change;
    std::string reason;
  } cases[] = {
      {{"--now", "2000000000"}, "expired"},
      {{"--key", "another key another key another k"}, "bad_signature"},
      {{"--key-name", "cloud"}, "unknown_key"},
      {{"--resource", "https://relay/$hc/m2"}, "out_of_scope"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.reason);
    std::vector<std::string> args = {"sas-verify", "--token", token, "--key-name", "agents",
                                     "--key", key, "--resource", "https://relay/$hc/m1", "--now",
                                     "1999999999"};
    for (std::size_t i = 1; i < args.size(); i += 2) {
      if (args[i] == c.change[0]) args[i + 1] = c.change[1];
    }
    Result r = RunCli(args);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(r.out, "");
    EXPECT_NE(r.err.find(c.reason), std::string::npos) << r.err;
  }
}

TEST(CryptoCliBadInputTest, EachExitsTwoWithOneLineOnStderr) {
  const std::vector<std::vector<std::string>> cases = {
      {},
      {"no-such-command"},
      {"hpke-derive-keypair", "--kem", "32"},
      {"hpke-derive-keypair", "--kem", "32", "--ikm", "abc"},
      {"hpke-derive-keypair", "--kem", "32", "--ikm", "zz"},
      {"hpke-derive-keypair", "--kem", "16", "--ikm", "00"},
      {"hpke-derive-keypair", "--kem", "32", "--ikm", "00", "--bogus", "1"},
      {"hpke-derive-keypair", "--kem", "32", "--ikm", "00", "--ikm", "01"},
      {"hpke-derive-keypair", "--kem"},
      {"hpke-seal", "--kem", "32", "--kdf", "1", "--aead", "9", "--pk", "00", "--info", "",
       "--aad", "", "--pt", ""},
      {"hpke-open", "--kem", "32", "--kdf", "1", "--aead", "1", "--sk", "00", "--enc", "00",
       "--info", "", "--aad", "", "--ct", "00"},
      {"scrypt", "--password", "p", "--salt", "s", "--n", "1000", "--r", "8", "--p", "1",
       "--length", "32"},
      {"sas-sign", "--resource", "r", "--key-name", "k", "--key", "x", "--expiry", "soon"},
      {"sas-verify", "--token", "t"},
  };
  for (const auto& args : cases) {
    SCOPED_TRACE(absl::StrJoin(args, " "));
    Result r = RunCli(args);
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_EQ(r.out, "");
    if (!args.empty()) {
      EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    }
  }
}

}  // namespace
}  // namespace tether::tools
