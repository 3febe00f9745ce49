#include "agent/accounts/run_as.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace tether::agent::accounts {
namespace {

using ::absl::StatusCode;

RunAsAccount LookupOrDie(const std::string& name) {
  absl::StatusOr<RunAsAccount> account = LookupAccount(name);
  EXPECT_TRUE(account.ok()) << account.status();
  return account.value_or(RunAsAccount{});
}

std::string NameOf(uid_t uid) {
  struct passwd* entry = getpwuid(uid);
  return entry != nullptr ? entry->pw_name : "";
}

// Runs `child` in a forked process and returns its exit code (0 = all checks passed; a
// different number for each failed check, so a failure says which). The child must not use
// gtest assertions.
int RunInChild(const std::function<int()>& child) {
  pid_t pid = fork();
  if (pid == 0) _exit(child());
  int status = 0;
  EXPECT_EQ(waitpid(pid, &status, 0), pid);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
}

// For the child: says why a switch failed (stderr reaches the test log) and returns `code`.
int Failed(const absl::Status& status, int code) {
  const std::string line = absl::StrCat("child: ", status.ToString(), "\n");
  if (write(2, line.data(), line.size()) < 0) return code;
  return code;
}

// Whether this process is a root that can really switch accounts. Root inside a user namespace
// that maps only uid 0 (as Bazel's linux-sandbox makes one) cannot: setgroups is denied there and
// other uids do not exist. Probed in a child, so this process keeps its identity.
bool RootCanSwitch(const RunAsAccount& to) {
  if (geteuid() != 0) return false;
  return RunInChild([&] {
           return setgroups(0, nullptr) == 0 && setgid(to.gid) == 0 && setuid(to.uid) == 0 ? 0 : 1;
         }) == 0;
}

TEST(LookupAccountTest, FindsRoot) {
  RunAsAccount root = LookupOrDie("root");
  EXPECT_EQ(root.username, "root");
  EXPECT_EQ(root.uid, 0u);
  EXPECT_EQ(root.gid, 0u);
  EXPECT_EQ(root.home, "/root");
  EXPECT_FALSE(root.shell.empty());
}

TEST(LookupAccountTest, MissingNamesAreNotFound) {
  for (const std::string& name : {std::string("tether-no-such-account"), std::string(""),
                                  std::string("root\0x", 6), std::string(5000, 'a')}) {
    SCOPED_TRACE(name);
    absl::StatusOr<RunAsAccount> account = LookupAccount(name);
    EXPECT_EQ(account.status().code(), StatusCode::kNotFound);
    EXPECT_EQ(account.status().message(), absl::StrCat("no local account \"", name, "\""));
  }
}

TEST(CheckMayRunAsTest, RootMayRunAsAnyoneOthersOnlyAsThemselves) {
  const RunAsAccount root = LookupOrDie("root");
  const RunAsAccount nobody = LookupOrDie("nobody");
  ASSERT_NE(nobody.uid, 0u);
  // A uid without a name, for the message's fallback.
  uid_t unnamed = 54321;
  while (getpwuid(unnamed) != nullptr) ++unnamed;

  struct Case {
    const RunAsAccount* account;
    uid_t agent_euid;
    StatusCode code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {&nobody, 0, StatusCode::kOk, ""},
      {&root, 0, StatusCode::kOk, ""},
      {&nobody, nobody.uid, StatusCode::kOk, ""},
      {&root, nobody.uid, StatusCode::kPermissionDenied,
       absl::StrCat("the agent runs as nobody (uid ", nobody.uid,
                    ") and cannot run flows as \"root\" (run it as root to switch accounts)")},
      {&nobody, unnamed, StatusCode::kPermissionDenied,
       absl::StrCat("the agent runs as an account without a name (uid ", unnamed,
                    ") and cannot run flows as \"nobody\" (run it as root to switch accounts)")},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(absl::StrCat(c.account->username, " by uid ", c.agent_euid));
    absl::Status status = CheckMayRunAsUid(*c.account, c.agent_euid);
    EXPECT_EQ(status.code(), c.code) << status;
    EXPECT_EQ(status.message(), c.message);
  }
}

TEST(CheckMayRunAsTest, UsesThisProcessEffectiveUid) {
  const std::string me = NameOf(geteuid());
  ASSERT_FALSE(me.empty());
  EXPECT_TRUE(CheckMayRunAs(LookupOrDie(me)).ok());
  const RunAsAccount other = LookupOrDie(geteuid() == 0 ? "nobody" : "root");
  EXPECT_EQ(CheckMayRunAs(other).code(),
            geteuid() == 0 ? StatusCode::kOk : StatusCode::kPermissionDenied);
}

TEST(SupplementaryGroupsTest, IncludesThePrimaryGroup) {
  for (const char* name : {"root", "nobody"}) {
    SCOPED_TRACE(name);
    const RunAsAccount account = LookupOrDie(name);
    absl::StatusOr<std::vector<gid_t>> groups = SupplementaryGroups(account);
    ASSERT_TRUE(groups.ok()) << groups.status();
    EXPECT_NE(std::find(groups->begin(), groups->end(), account.gid), groups->end());
  }
}

TEST(SwitchToAccountTest, OwnAccountSetsTheLoginEnvironment) {
  const RunAsAccount me = LookupOrDie(NameOf(geteuid()));
  if (geteuid() == 0 && !RootCanSwitch(me)) GTEST_SKIP() << "root here cannot call setgroups";
  auto groups = SupplementaryGroups(me);
  ASSERT_TRUE(groups.ok());
  setenv("HOME", "/wrong", 1);
  setenv("USER", "wrong", 1);
  unsetenv("LOGNAME");
  const int result = RunInChild([&] {
    if (absl::Status s = SwitchToAccount(me, *groups); !s.ok()) return Failed(s, 1);
    if (getuid() != me.uid || geteuid() != me.uid) return 2;
    const char* home = getenv("HOME");
    const char* user = getenv("USER");
    const char* logname = getenv("LOGNAME");
    const char* shell = getenv("SHELL");
    if (home == nullptr || me.home != home) return 3;
    if (user == nullptr || me.username != user) return 4;
    if (logname == nullptr || me.username != logname) return 5;
    if (shell == nullptr || (me.shell.empty() ? "/bin/sh" : me.shell) != shell) return 6;
    return 0;
  });
  EXPECT_EQ(result, 0);
}

// A directory every account can enter, holding a file only root may write and one anyone may:
// so a refused write in the child is the file's mode at work, not an unreachable path. Uses
// TEST_TMPDIR when every directory above it is searchable by others, else a fresh /tmp dir.
class RootOnlyFiles {
 public:
  RootOnlyFiles() {
    const char* test_tmpdir = std::getenv("TEST_TMPDIR");
    std::string base = test_tmpdir != nullptr ? test_tmpdir : "/tmp";
    if (!SearchableByOthers(base)) base = "/tmp";
    std::string pattern = base + "/run_as_XXXXXX";
    dir_ = mkdtemp(pattern.data()) != nullptr ? pattern : "";
    chmod(dir_.c_str(), 0755);
    root_only_ = dir_ + "/root_only";
    open_to_all_ = dir_ + "/open_to_all";
    close(open(root_only_.c_str(), O_WRONLY | O_CREAT, 0600));
    close(open(open_to_all_.c_str(), O_WRONLY | O_CREAT, 0666));
    chmod(open_to_all_.c_str(), 0666);
  }
  ~RootOnlyFiles() {
    unlink(root_only_.c_str());
    unlink(open_to_all_.c_str());
    rmdir(dir_.c_str());
  }
  bool ok() const { return !dir_.empty(); }
  const std::string& root_only() const { return root_only_; }
  const std::string& open_to_all() const { return open_to_all_; }

 private:
  static bool SearchableByOthers(std::string path) {
    while (!path.empty() && path != "/") {
      struct stat st;
      if (stat(path.c_str(), &st) != 0 || (st.st_mode & S_IXOTH) == 0) return false;
      path = path.substr(0, path.find_last_of('/'));
    }
    return true;
  }

  std::string dir_;
  std::string root_only_;
  std::string open_to_all_;
};

bool CanWrite(const std::string& path) {
  int fd = open(path.c_str(), O_WRONLY);
  if (fd < 0) return false;
  close(fd);
  return true;
}

TEST(SwitchToAccountTest, RootBecomesNobodyForGood) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root: the agent switches accounts only as root";
  const RunAsAccount nobody = LookupOrDie("nobody");
  if (!RootCanSwitch(nobody)) {
    GTEST_SKIP() << "root in a user namespace that cannot switch accounts (sandboxed?)";
  }
  auto groups = SupplementaryGroups(nobody);
  ASSERT_TRUE(groups.ok()) << groups.status();
  RootOnlyFiles files;
  ASSERT_TRUE(files.ok());
  ASSERT_TRUE(CanWrite(files.root_only()));  // as root, before the switch

  const int result = RunInChild([&] {
    if (absl::Status s = SwitchToAccount(nobody, *groups); !s.ok()) return Failed(s, 1);
    if (getuid() != nobody.uid || geteuid() != nobody.uid) return 2;
    if (getgid() != nobody.gid || getegid() != nobody.gid) return 3;
    gid_t now[256];
    const int count = getgroups(256, now);
    if (count < 0 || std::vector<gid_t>(now, now + count) != *groups) return 4;
    if (CanWrite(files.root_only()) || errno != EACCES) return 5;
    if (!CanWrite(files.open_to_all())) return 6;
    if (setuid(0) == 0 || seteuid(0) == 0) return 7;
    const char* user = getenv("USER");
    if (user == nullptr || std::string(user) != "nobody") return 8;
    return 0;
  });
  EXPECT_EQ(result, 0);
  EXPECT_EQ(geteuid(), 0u);  // the parent is untouched
}

// Without root the process may only "switch" to itself. As root, the child first drops to
// nobody, so the branch is covered either way.
TEST(SwitchToAccountTest, WithoutRootAnotherAccountIsRefusedAndNothingChanges) {
  const RunAsAccount root = LookupOrDie("root");
  const RunAsAccount nobody = LookupOrDie("nobody");
  auto nobody_groups = SupplementaryGroups(nobody);
  ASSERT_TRUE(nobody_groups.ok());
  const bool as_root = geteuid() == 0;
  if (as_root && !RootCanSwitch(nobody)) {
    GTEST_SKIP() << "root in a user namespace that cannot switch accounts (sandboxed?)";
  }
  const RunAsAccount target = as_root ? root : (geteuid() == nobody.uid ? root : nobody);
  const int result = RunInChild([&] {
    if (as_root) {
      if (absl::Status s = SwitchToAccount(nobody, *nobody_groups); !s.ok()) return Failed(s, 1);
    }
    const uid_t before = geteuid();
    const absl::Status status = SwitchToAccount(target, {});
    if (status.code() != StatusCode::kPermissionDenied) return Failed(status, 2);
    if (status.message().find("without root") == absl::string_view::npos) return 3;
    if (geteuid() != before || getuid() != before) return 4;
    return 0;
  });
  EXPECT_EQ(result, 0);
}

}  // namespace
}  // namespace tether::agent::accounts
