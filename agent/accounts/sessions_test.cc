#include "agent/accounts/sessions.h"

#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <utmpx.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace tether::agent::accounts {
namespace {

using ::absl::StatusCode;

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir ? dir : "/tmp") + "/" + name;
}

struct Record {
  short type;
  std::string user;
  pid_t pid;
};

// Writes the records as glibc's utmp file format: the struct utmpx bytes, one after another.
void WriteUtmp(const std::string& path, const std::vector<Record>& records) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  for (const Record& r : records) {
    struct utmpx entry;
    memset(&entry, 0, sizeof(entry));
    entry.ut_type = r.type;
    entry.ut_pid = r.pid;
    // strncpy on purpose: ut_user is NUL-padded, and a 32-byte name fills it with no NUL.
    strncpy(entry.ut_user, r.user.c_str(), sizeof(entry.ut_user));
    strncpy(entry.ut_line, "pts/0", sizeof(entry.ut_line));
    out.write(reinterpret_cast<const char*>(&entry), sizeof(entry));
  }
  ASSERT_TRUE(out.good());
}

// The pid of a process that has exited and been reaped.
pid_t DeadPid() {
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  int status = 0;
  waitpid(pid, &status, 0);
  return pid;
}

TEST(SessionsTest, OnlyLiveUserProcessRecordsOfThatExactUserCount) {
  const std::string full_name(sizeof(utmpx::ut_user), 'f');  // fills ut_user, no NUL
  const pid_t alive = getpid();
  const pid_t dead = DeadPid();
  const std::string path = TempPath("utmp");
  WriteUtmp(path, {
                      {BOOT_TIME, "reboot", alive},
                      {USER_PROCESS, "alice", alive},
                      {USER_PROCESS, "bob", dead},
                      {DEAD_PROCESS, "carol", alive},
                      {LOGIN_PROCESS, "dave", alive},
                      {INIT_PROCESS, "erin", alive},
                      {USER_PROCESS, "frank2", alive},
                      {USER_PROCESS, full_name, alive},
                      {USER_PROCESS, "gina", 0},
                      {USER_PROCESS, "hank", dead},
                      {USER_PROCESS, "hank", alive},  // a later, live session counts
                  });
  struct Case {
    std::string username;
    bool active;
  };
  const std::vector<Case> cases = {
      {"alice", true},   {"bob", false},           {"carol", false},
      {"dave", false},   {"erin", false},          {"frank", false},
      {"frank2", true},  {"alic", false},          {"reboot", false},
      {full_name, true}, {full_name + "x", false}, {"gina", false},
      {"hank", true},    {"nobody", false},        {"", false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.username);
    absl::StatusOr<bool> active = HasActiveSession(c.username, path);
    ASSERT_TRUE(active.ok()) << active.status();
    EXPECT_EQ(*active, c.active);
  }
}

TEST(SessionsTest, AProcessOfAnotherUserCountsAsAlive) {
  // pid 1 always exists; as a non-root user kill(1, 0) is EPERM, which still means alive.
  const std::string path = TempPath("utmp_pid1");
  WriteUtmp(path, {{USER_PROCESS, "ivan", 1}});
  EXPECT_EQ(HasActiveSession("ivan", path).value_or(false), true);
}

// glibc keeps the utmp file name in process-wide state: each call must read its own file.
TEST(SessionsTest, EachCallReadsTheFileItNames) {
  const std::string with_alice = TempPath("utmp_a");
  const std::string without_alice = TempPath("utmp_b");
  WriteUtmp(with_alice, {{USER_PROCESS, "alice", getpid()}});
  WriteUtmp(without_alice, {{USER_PROCESS, "bob", getpid()}});
  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE(round);
    EXPECT_EQ(HasActiveSession("alice", with_alice).value_or(false), true);
    EXPECT_EQ(HasActiveSession("alice", without_alice).value_or(true), false);
    EXPECT_EQ(HasActiveSession("bob", without_alice).value_or(false), true);
  }
}

TEST(SessionsTest, AnEmptyFileHasNoSessions) {
  const std::string path = TempPath("utmp_empty");
  WriteUtmp(path, {});
  absl::StatusOr<bool> active = HasActiveSession("alice", path);
  ASSERT_TRUE(active.ok()) << active.status();
  EXPECT_FALSE(*active);
}

TEST(SessionsTest, AMissingOrUnreadableFileIsAnError) {
  absl::StatusOr<bool> active = HasActiveSession("alice", TempPath("no_utmp"));
  EXPECT_EQ(active.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(active.status().message().find("does not record login sessions"), std::string::npos);

  const std::string dir = TempPath("utmp_dir");
  ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
  EXPECT_EQ(HasActiveSession("alice", dir).status().code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace tether::agent::accounts
