// Runs the account_file_tool binary as an operator would, then loads what it wrote.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "agent/accounts/file_verifier.h"
#include "common/crypto/key_file.h"
#include "gtest/gtest.h"

namespace tether::agent::accounts {
namespace {

using ::absl::StatusCode;
using crypto::SecretBytes;

constexpr char kTool[] = "agent/accounts/account_file_tool";

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir ? dir : "/tmp") + "/" + name;
}

struct Result {
  int exit_code = -1;
  std::string err;
};

std::string ReadAll(int fd) {
  std::string data;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) data.append(buf, static_cast<std::size_t>(n));
  return data;
}

// Runs the tool with `args`, `input` on its standard input (a pipe, never a terminal).
Result RunTool(const std::vector<std::string>& args, const std::string& input = "") {
  int in_pipe[2], err_pipe[2];
  EXPECT_EQ(pipe(in_pipe), 0);
  EXPECT_EQ(pipe(err_pipe), 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(in_pipe[0], 0);
    dup2(err_pipe[1], 2);
    close(in_pipe[1]);
    close(err_pipe[0]);
    std::vector<char*> argv;
    std::string binary = kTool;
    argv.push_back(binary.data());
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(binary.c_str(), argv.data());
    _exit(127);
  }
  close(in_pipe[0]);
  close(err_pipe[1]);
  EXPECT_EQ(write(in_pipe[1], input.data(), input.size()), static_cast<ssize_t>(input.size()));
  close(in_pipe[1]);
  Result r;
  r.err = ReadAll(err_pipe[0]);
  close(err_pipe[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string PasswordFile(const std::string& name, const std::string& content) {
  const std::string path = TempPath(name);
  EXPECT_TRUE(crypto::WriteSecretFile(path, SecretBytes(content), true).ok());
  return path;
}

std::string Contents(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

int Mode(const std::string& path) {
  struct stat st;
  EXPECT_EQ(stat(path.c_str(), &st), 0);
  return st.st_mode & 07777;
}

absl::Status Verify(const std::string& path, const std::string& user, const std::string& pw) {
  auto verifier = FileAccountVerifier::Load(path);
  if (!verifier.ok()) return verifier.status();
  return (*verifier)->Verify(user, SecretBytes(pw));
}

TEST(AccountFileToolTest, AddsThenReplacesALineKeepingTheRest) {
  const std::string accounts = TempPath("accounts");
  umask(022);  // the file must still come out 0600
  Result r = RunTool(
      {"add", accounts, "alice", "--password-file", PasswordFile("alice_pw", "correct horse\n")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Mode(accounts), 0600);
  EXPECT_TRUE(Verify(accounts, "alice", "correct horse").ok());

  // A comment an operator added, then a second account from a pipe ("-").
  { std::ofstream(accounts, std::ios::app) << "# added by hand\n"; }
  r = RunTool({"add", accounts, "bob", "--password-file=-"}, "battery staple\r\nignored\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;

  // alice's password changes: her line is replaced in place, everything else stays.
  r = RunTool(
      {"add", accounts, "alice", "--password-file", PasswordFile("alice_pw2", "new horse")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Mode(accounts), 0600);
  std::vector<std::string> lines = absl::StrSplit(Contents(accounts), '\n');
  ASSERT_EQ(lines.size(), 4u) << Contents(accounts);
  EXPECT_EQ(lines[0].rfind("alice:scrypt:32768:8:1:", 0), 0u);
  EXPECT_EQ(lines[1], "# added by hand");
  EXPECT_EQ(lines[2].rfind("bob:scrypt:", 0), 0u);
  EXPECT_EQ(lines[3], "");
  EXPECT_EQ(Contents(accounts).find("horse"), std::string::npos);

  EXPECT_TRUE(Verify(accounts, "alice", "new horse").ok());
  EXPECT_EQ(Verify(accounts, "alice", "correct horse").code(), StatusCode::kPermissionDenied);
  EXPECT_TRUE(Verify(accounts, "bob", "battery staple").ok());
}

TEST(AccountFileToolTest, RefusesFilesOpenToOthersAndBrokenFiles) {
  const std::string password = PasswordFile("pw", "pw");
  struct Case {
    std::string name;
    std::string content;  // of the account file; empty = no file
    mode_t mode;
    std::string password_file;
    std::string reason;
  };
  const std::string open_password = TempPath("open_pw");
  std::ofstream(open_password) << "pw\n";
  chmod(open_password.c_str(), 0644);
  const std::vector<Case> cases = {
      {"account file 0644", "# x\n", 0644, password, "chmod 600"},
      {"password file 0644", "# x\n", 0600, open_password, "chmod 600"},
      {"bad line", "# x\nnot an entry\n", 0600, password, "line 2: expected 7"},
      {"missing password file", "# x\n", 0600, TempPath("no_pw"), "no_pw"},
      {"empty password", "# x\n", 0600, PasswordFile("empty_pw", "\n"), "empty password"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string accounts = TempPath("refused");
    std::ofstream(accounts, std::ios::trunc) << c.content;
    chmod(accounts.c_str(), c.mode);
    Result r = RunTool({"add", accounts, "alice", "--password-file", c.password_file});
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(r.err.find(c.reason), std::string::npos) << r.err;
    EXPECT_EQ(Contents(accounts), c.content);  // untouched
    EXPECT_EQ(Mode(accounts), static_cast<int>(c.mode));
  }
}

TEST(AccountFileToolTest, BadUsageIsExitCodeTwo) {
  const std::string accounts = TempPath("usage");
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {},
           {"add"},
           {"add", accounts},
           {"remove", accounts, "alice"},
           {"add", accounts, "alice", "extra"},
           {"add", accounts, "alice", "--password-file"},
           {"add", accounts, "alice", "--password", "pw"},
       }) {
    SCOPED_TRACE(absl::StrJoin(args, " "));
    Result r = RunTool(args);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find("usage:"), std::string::npos) << r.err;
  }
  EXPECT_NE(access(accounts.c_str(), F_OK), 0);
}

TEST(AccountFileToolTest, WithoutAPasswordFileItNeedsATerminal) {
  const std::string accounts = TempPath("no_tty");
  Result r = RunTool({"add", accounts, "alice"}, "pw\n");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("not a terminal"), std::string::npos) << r.err;
  EXPECT_NE(access(accounts.c_str(), F_OK), 0);
}

TEST(AccountFileToolTest, InvalidUsernameIsRefused) {
  const std::string accounts = TempPath("bad_name");
  Result r = RunTool({"add", accounts, "al:ice", "--password-file", PasswordFile("p", "pw")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("':'"), std::string::npos) << r.err;
  EXPECT_NE(access(accounts.c_str(), F_OK), 0);
}

}  // namespace
}  // namespace tether::agent::accounts
