#include "common/store/store.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/store/key.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#define ASSERT_OK(expr)                                       \
  do {                                                        \
    const ::absl::Status assert_ok_status_ = (expr);          \
    ASSERT_TRUE(assert_ok_status_.ok()) << assert_ok_status_; \
  } while (false)

#define EXPECT_OK(expr)                                       \
  do {                                                        \
    const ::absl::Status expect_ok_status_ = (expr);          \
    EXPECT_TRUE(expect_ok_status_.ok()) << expect_ok_status_; \
  } while (false)

namespace tether::store {
namespace {

// argv[1] that turns this binary into a child process for the crash and lock tests.
constexpr std::string_view kChildFlag = "--store_test_child";

constexpr uint64_t kCrashRecords = 2000;
constexpr int kKillAfterAcks = 500;
// How long a test waits for a child before failing (instead of hanging until the Bazel timeout).
constexpr int kChildDeadlineMs = 60'000;

// A fresh directory under TEST_TMPDIR; the database goes in "db" inside it (not yet created).
std::string NewDbPath() {
  const char* env = std::getenv("TEST_TMPDIR");
  std::string dir = absl::StrCat(env != nullptr ? env : ::testing::TempDir(), "/store_XXXXXX");
  if (::mkdtemp(dir.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp(" << dir << "): " << std::strerror(errno);
  }
  return dir + "/db";
}

std::string RecordKey(uint64_t i) { return KeyBuilder().AddUint64(i).Build(); }

std::string RecordValue(uint64_t i) {
  return absl::StrCat("record-", i, "-", std::string(64, static_cast<char>('a' + i % 26)));
}

std::string IndexValue(uint64_t i) { return absl::StrCat("index-", i); }

// Every key of `column_family` in order, with its value.
std::vector<std::pair<std::string, std::string>> ScanAll(const Store& store,
                                                         std::string_view column_family,
                                                         std::string_view prefix = "") {
  std::vector<std::pair<std::string, std::string>> out;
  const absl::Status s = store.Scan(column_family, "", prefix, [&](auto key, auto value) {
    out.emplace_back(std::string(key), std::string(value));
    return true;
  });
  EXPECT_TRUE(s.ok()) << s;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Child processes. The test binary re-executes itself (a fresh process: no threads or RocksDB
// state inherited from the parent), with kChildFlag and one of the modes below.

// Writes the 4-byte ack `i` to `fd`; false if the parent went away.
bool WriteAck(int fd, uint32_t i) {
  const char* p = reinterpret_cast<const char*>(&i);
  size_t left = sizeof(i);
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    left -= static_cast<size_t>(n);
  }
  return true;
}

// put   <db> <ack_fd> <count>: synced Put of record i, then ack i, for i in [0, count).
// batch <db> <ack_fd> <count>: synced Batch of record i in "records" and "index", then ack i.
// hold  <db> <ack_fd> <release_fd>: open the store, ack 0, keep it open until release_fd hits EOF.
int RunChild(const std::vector<std::string>& args) {
  int ack_fd = -1;
  uint64_t n = 0;
  if (args.size() != 4 || !absl::SimpleAtoi(args[2], &ack_fd) || !absl::SimpleAtoi(args[3], &n)) {
    std::fprintf(stderr, "child: bad arguments\n");
    return 2;
  }
  const std::string& mode = args[0];
  auto store = Store::Open(args[1], {"records", "index"});
  if (!store.ok()) {
    std::fprintf(stderr, "child: %s\n", store.status().ToString().c_str());
    return 1;
  }
  if (mode == "hold") {
    const int release_fd = static_cast<int>(n);
    if (!WriteAck(ack_fd, 0)) return 1;
    for (;;) {
      char byte;
      const ssize_t r = ::read(release_fd, &byte, 1);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return 0;  // EOF: the parent released us.
    }
  }
  for (uint64_t i = 0; i < n; ++i) {
    absl::Status s;
    if (mode == "put") {
      s = (*store)->Put("records", RecordKey(i), RecordValue(i), {.sync = true});
    } else if (mode == "batch") {
      Batch batch;
      batch.Put("records", RecordKey(i), RecordValue(i));
      batch.Put("index", RecordKey(i), IndexValue(i));
      s = (*store)->Write(batch, {.sync = true});
    } else {
      std::fprintf(stderr, "child: unknown mode %s\n", mode.c_str());
      return 2;
    }
    if (!s.ok()) {
      std::fprintf(stderr, "child: write %llu: %s\n", static_cast<unsigned long long>(i),
                   s.ToString().c_str());
      return 1;
    }
    if (!WriteAck(ack_fd, static_cast<uint32_t>(i))) return 1;
  }
  return 0;
}

// A child process started by Spawn. Kills and reaps the child if the test ends early.
class Child {
 public:
  // Runs this binary with kChildFlag `args`; `inherit_fds` stay open in the child.
  static std::optional<Child> Spawn(const std::vector<std::string>& args,
                                    const std::vector<int>& inherit_fds) {
    char self[4096];
    const ssize_t len = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (len <= 0) return std::nullopt;
    self[len] = '\0';
    std::vector<std::string> strings = {self, std::string(kChildFlag)};
    strings.insert(strings.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& s : strings) argv.push_back(s.data());
    argv.push_back(nullptr);

    const pid_t pid = ::fork();
    if (pid < 0) return std::nullopt;
    if (pid == 0) {  // Only async-signal-safe calls until exec.
      for (int fd : inherit_fds) ::fcntl(fd, F_SETFD, 0);
      ::execv(self, argv.data());
      ::_exit(127);
    }
    return Child(pid);
  }

  Child(Child&& other) noexcept : pid_(std::exchange(other.pid_, -1)) {}
  Child& operator=(Child&&) = delete;
  ~Child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      Wait();
    }
  }

  void Kill() const { ::kill(pid_, SIGKILL); }

  // Reaps the child; its wait status.
  int Wait() {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    return status;
  }

 private:
  explicit Child(pid_t pid) : pid_(pid) {}
  pid_t pid_;
};

enum class ReadResult { kAck, kEof, kError };

// Reads one 4-byte ack, waiting at most kChildDeadlineMs for each part of it.
ReadResult ReadAck(int fd, uint32_t* ack) {
  char* p = reinterpret_cast<char*>(ack);
  size_t got = 0;
  while (got < sizeof(*ack)) {
    pollfd pfd = {.fd = fd, .events = POLLIN, .revents = 0};
    const int ready = ::poll(&pfd, 1, kChildDeadlineMs);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) {
      ADD_FAILURE() << "no ack from the child within " << kChildDeadlineMs << " ms";
      return ReadResult::kError;
    }
    const ssize_t n = ::read(fd, p + got, sizeof(*ack) - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ReadResult::kError;
    if (n == 0) {
      if (got != 0) ADD_FAILURE() << "torn ack";
      return got == 0 ? ReadResult::kEof : ReadResult::kError;
    }
    got += static_cast<size_t>(n);
  }
  return ReadResult::kAck;
}

// ---------------------------------------------------------------------------------------------

TEST(StoreTest, PutGetDeleteRoundTripInEveryColumnFamily) {
  auto store = Store::Open(NewDbPath(), {"runs", "machines", "users"});
  ASSERT_TRUE(store.ok()) << store.status();
  for (const char* cf : {"runs", "machines", "users"}) {
    SCOPED_TRACE(cf);
    const std::string value = absl::StrCat("value in ", cf, std::string("\0\xff", 2));
    ASSERT_OK((*store)->Put(cf, "key", value));
    auto got = (*store)->Get(cf, "key");
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, value);
    ASSERT_OK((*store)->Delete(cf, "key"));
    EXPECT_EQ((*store)->Get(cf, "key").status().code(), absl::StatusCode::kNotFound);
  }
}

TEST(StoreTest, ColumnFamiliesAreIsolated) {
  auto store = Store::Open(NewDbPath(), {"runs", "machines"});
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_OK((*store)->Put("runs", "k", "run"));
  EXPECT_EQ((*store)->Get("machines", "k").status().code(), absl::StatusCode::kNotFound);
  ASSERT_OK((*store)->Put("machines", "k", "machine"));
  EXPECT_EQ((*store)->Get("runs", "k").value(), "run");
  ASSERT_OK((*store)->Delete("runs", "k"));
  EXPECT_EQ((*store)->Get("machines", "k").value(), "machine");
  EXPECT_EQ(ScanAll(**store, "runs").size(), 0u);
}

TEST(StoreTest, UnknownColumnFamilyIsInvalidArgumentAndWritesNothing) {
  const std::string path = NewDbPath();
  {
    auto store = Store::Open(path, {"runs", "machines"});
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_OK((*store)->Put("runs", "existing", "1"));
    // "default" always exists inside RocksDB but was not asked for.
    for (const char* cf : {"nope", "default", "", "Runs"}) {
      SCOPED_TRACE(cf);
      EXPECT_EQ((*store)->Put(cf, "k", "v").code(), absl::StatusCode::kInvalidArgument);
      EXPECT_EQ((*store)->Delete(cf, "existing").code(), absl::StatusCode::kInvalidArgument);
      EXPECT_EQ((*store)->Get(cf, "k").status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_EQ((*store)->Scan(cf, "", "", [](auto, auto) { return true; }).code(),
                absl::StatusCode::kInvalidArgument);
    }
    EXPECT_EQ((*store)->Get("runs", "existing").value(), "1");
    EXPECT_EQ((*store)->Get("runs", "k").status().code(), absl::StatusCode::kNotFound);
    EXPECT_EQ((*store)->Get("machines", "k").status().code(), absl::StatusCode::kNotFound);
  }
  // Nothing went to a hidden column family or got created under the unknown name either.
  auto store = Store::Open(path, {"runs", "machines", "nope", "default"});
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->Get("nope", "k").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*store)->Get("default", "k").status().code(), absl::StatusCode::kNotFound);
}

TEST(StoreTest, BatchAcrossColumnFamiliesAppliesEveryOperation) {
  auto store = Store::Open(NewDbPath(), {"runs", "queue"});
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_OK((*store)->Put("queue", "old", "x"));
  Batch batch;
  batch.Put("runs", "run-1", "dispatched");
  batch.Delete("queue", "old");
  batch.Put("queue", "new", "run-1");
  EXPECT_EQ(batch.size(), 3u);
  ASSERT_OK((*store)->Write(batch, {.sync = true}));
  EXPECT_EQ((*store)->Get("runs", "run-1").value(), "dispatched");
  EXPECT_EQ((*store)->Get("queue", "old").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*store)->Get("queue", "new").value(), "run-1");
}

TEST(StoreTest, BatchNamingAnUnknownColumnFamilyWritesNoneOfItsEntries) {
  auto store = Store::Open(NewDbPath(), {"runs", "queue"});
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_OK((*store)->Put("queue", "old", "x"));
  Batch batch;
  batch.Put("runs", "run-1", "dispatched");
  batch.Delete("queue", "old");
  batch.Put("queue", "new", "run-1");
  batch.Put("no_such_cf", "k", "v");  // Last, so that the others were already staged.
  EXPECT_EQ((*store)->Write(batch, {.sync = true}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*store)->Get("runs", "run-1").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*store)->Get("queue", "old").value(), "x");
  EXPECT_EQ((*store)->Get("queue", "new").status().code(), absl::StatusCode::kNotFound);
}

TEST(StoreTest, BatchAppliesOperationsInTheOrderTheyWereAdded) {
  auto store = Store::Open(NewDbPath(), {"runs"});
  ASSERT_TRUE(store.ok()) << store.status();
  Batch batch;
  batch.Put("runs", "deleted_last", "1");
  batch.Delete("runs", "deleted_last");
  batch.Delete("runs", "put_last");
  batch.Put("runs", "put_last", "1");
  batch.Put("runs", "put_last", "2");
  ASSERT_OK((*store)->Write(batch));
  EXPECT_EQ((*store)->Get("runs", "deleted_last").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*store)->Get("runs", "put_last").value(), "2");
}

TEST(StoreTest, ReopenAfterCloseFindsTheData) {
  for (bool flush : {false, true}) {
    SCOPED_TRACE(flush ? "flushed to SST" : "WAL only");
    const std::string path = NewDbPath();
    {
      auto store = Store::Open(path, {"runs", "machines"});
      ASSERT_TRUE(store.ok()) << store.status();
      ASSERT_OK((*store)->Put("runs", "r", "run"));
      ASSERT_OK((*store)->Put("machines", "m", "machine", {.sync = true}));
      ASSERT_OK((*store)->Put("machines", "gone", "x"));
      ASSERT_OK((*store)->Delete("machines", "gone"));
      if (flush) ASSERT_OK((*store)->Flush());
    }
    auto store = Store::Open(path, {"runs", "machines"});
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_EQ((*store)->Get("runs", "r").value(), "run");
    EXPECT_EQ((*store)->Get("machines", "m").value(), "machine");
    EXPECT_EQ((*store)->Get("machines", "gone").status().code(), absl::StatusCode::kNotFound);
  }
}

TEST(StoreTest, OpeningWithFewerColumnFamiliesKeepsTheOthersIntact) {
  const std::string path = NewDbPath();
  {
    auto store = Store::Open(path, {"runs", "machines"});
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_OK((*store)->Put("machines", "m", "machine"));
  }
  {
    auto store = Store::Open(path, {"runs"});
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_EQ((*store)->Get("machines", "m").status().code(), absl::StatusCode::kInvalidArgument);
  }
  auto store = Store::Open(path, {"machines"});
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->Get("machines", "m").value(), "machine");
}

TEST(StoreTest, OpenCreatesTheDirectoryWithMode0700) {
  const std::string path = NewDbPath();
  auto store = Store::Open(path, {"runs"});
  ASSERT_TRUE(store.ok()) << store.status();
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
}

TEST(StoreTest, OpenTightensAnExistingDirectoryTo0700) {
  const std::string path = NewDbPath();
  ASSERT_EQ(::mkdir(path.c_str(), 0755), 0);
  ASSERT_EQ(::chmod(path.c_str(), 0755), 0);  // Regardless of the umask.
  auto store = Store::Open(path, {"runs"});
  ASSERT_TRUE(store.ok()) << store.status();
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
}

TEST(StoreTest, OpenRejectsBadColumnFamilyLists) {
  struct Case {
    const char* name;
    std::vector<std::string> column_families;
  };
  const std::vector<Case> cases = {
      {"empty list", {}},
      {"empty name", {"runs", ""}},
      {"duplicate", {"runs", "machines", "runs"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(Store::Open(NewDbPath(), c.column_families).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
}

TEST(StoreTest, OpenWithoutCreateIfMissingCreatesNothing) {
  const std::string path = NewDbPath();
  EXPECT_EQ(Store::Open(path, {"runs"}, {.create_if_missing = false}).status().code(),
            absl::StatusCode::kNotFound);
  struct stat st;
  EXPECT_NE(::stat(path.c_str(), &st), 0);
  // An existing directory without a database is not a database either.
  ASSERT_EQ(::mkdir(path.c_str(), 0700), 0);
  EXPECT_EQ(Store::Open(path, {"runs"}, {.create_if_missing = false}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(StoreTest, SecondOpenOfTheSameDirectoryInThisProcessIsFailedPrecondition) {
  const std::string path = NewDbPath();
  auto first = Store::Open(path, {"runs"});
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = Store::Open(path, {"runs"});
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition) << second.status();
  EXPECT_NE(second.status().message().find("already open"), std::string::npos) << second.status();
  // The failed attempt must not have disturbed the first Store...
  ASSERT_OK((*first)->Put("runs", "k", "v"));
  first->reset();
  // ...and closing the first releases the directory.
  auto third = Store::Open(path, {"runs"});
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_EQ((*third)->Get("runs", "k").value(), "v");
}

TEST(StoreTest, OpenWhileAnotherProcessHoldsTheDatabaseIsFailedPrecondition) {
  const std::string path = NewDbPath();
  int ack[2];
  int release[2];
  ASSERT_EQ(::pipe2(ack, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(release, O_CLOEXEC), 0);
  std::optional<Child> child = Child::Spawn(
      {"hold", path, std::to_string(ack[1]), std::to_string(release[0])}, {ack[1], release[0]});
  ::close(ack[1]);
  ::close(release[0]);
  ASSERT_TRUE(child.has_value());

  uint32_t opened = 0;
  ASSERT_EQ(ReadAck(ack[0], &opened), ReadResult::kAck) << "child could not open the store";
  auto second = Store::Open(path, {"records", "index"});
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition) << second.status();
  EXPECT_NE(second.status().message().find("already open"), std::string::npos) << second.status();

  ::close(release[1]);  // The child closes its store and exits.
  const int status = child->Wait();
  ::close(ack[0]);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  auto after = Store::Open(path, {"records", "index"});
  EXPECT_TRUE(after.ok()) << after.status();
}

TEST(StoreTest, ScanByPrefixReturnsExactlyTheKeysWithThePrefixInOrder) {
  auto store = Store::Open(NewDbPath(), {"queue", "other"});
  ASSERT_TRUE(store.ok()) << store.status();
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  // Run-queue keys: priority | enqueue_seq | run_id. Written out of order on purpose.
  const std::vector<std::tuple<uint64_t, uint64_t, std::string>> rows = {
      {2, 7, "b"}, {1, kMax, "z"}, {2, 0, "a"},    {3, 0, ""},    {2, kMax, "\xff"},
      {2, 7, "a"}, {kMax, 5, "m"}, {kMax, 0, "l"}, {2, 256, "c"}, {0, 0, "first"},
  };
  for (const auto& [priority, seq, run] : rows) {
    const std::string key = KeyBuilder().AddUint64(priority).AddUint64(seq).AddString(run).Build();
    ASSERT_OK((*store)->Put("queue", key, run));
    ASSERT_OK((*store)->Put("other", key, "other"));
  }
  struct Case {
    const char* name;
    std::string prefix;
    std::vector<std::string> want_runs;  // The values, which are the run ids.
  };
  const std::vector<Case> cases = {
      {"priority 2", KeyBuilder().AddUint64(2).Build(), {"a", "a", "b", "c", "\xff"}},
      {"priority 2 seq 7", KeyBuilder().AddUint64(2).AddUint64(7).Build(), {"a", "b"}},
      {"priority max (prefix all 0xff)", KeyBuilder().AddUint64(kMax).Build(), {"l", "m"}},
      {"absent priority", KeyBuilder().AddUint64(4).Build(), {}},
      {"whole column family", "", {"first", "z", "a", "a", "b", "c", "\xff", "", "l", "m"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    std::vector<std::string> got;
    std::string previous_key;
    ASSERT_OK((*store)->Scan("queue", "", c.prefix, [&](std::string_view key, auto value) {
      EXPECT_TRUE(key.starts_with(c.prefix));
      EXPECT_LT(previous_key, key);
      previous_key = std::string(key);
      got.emplace_back(value);
      return true;
    }));
    EXPECT_EQ(got, c.want_runs);
  }
}

TEST(StoreTest, ScanStartsAtStartKeyAndStopsWhenTheCallbackReturnsFalse) {
  auto store = Store::Open(NewDbPath(), {"queue"});
  ASSERT_TRUE(store.ok()) << store.status();
  for (uint64_t seq = 0; seq < 10; ++seq) {
    ASSERT_OK((*store)->Put("queue", KeyBuilder().AddUint64(1).AddUint64(seq).Build(), ""));
  }
  ASSERT_OK((*store)->Put("queue", KeyBuilder().AddUint64(2).AddUint64(0).Build(), ""));
  const std::string prefix = KeyBuilder().AddUint64(1).Build();
  auto seqs_from = [&](std::string_view start, size_t limit) {
    std::vector<uint64_t> seqs;
    EXPECT_OK((*store)->Scan("queue", start, prefix, [&](std::string_view key, auto) {
      KeyReader r(key);
      EXPECT_EQ(r.ReadUint64().value(), 1u);
      seqs.push_back(r.ReadUint64().value());
      return seqs.size() < limit;
    }));
    return seqs;
  };
  EXPECT_EQ(seqs_from(KeyBuilder().AddUint64(1).AddUint64(7).Build(), 100),
            (std::vector<uint64_t>{7, 8, 9}));
  EXPECT_EQ(seqs_from("", 2), (std::vector<uint64_t>{0, 1}));
  // A start key before the prefix starts at the prefix; one after it finds nothing.
  EXPECT_EQ(seqs_from(KeyBuilder().AddUint64(0).Build(), 1), (std::vector<uint64_t>{0}));
  EXPECT_EQ(seqs_from(KeyBuilder().AddUint64(2).Build(), 100), (std::vector<uint64_t>{}));
}

TEST(StoreTest, ConcurrentWritersFromManyThreadsAllLand) {
  auto opened = Store::Open(NewDbPath(), {"runs", "queue"});
  ASSERT_TRUE(opened.ok()) << opened.status();
  Store& store = **opened;
  constexpr int kThreads = 8;
  constexpr uint64_t kPerThread = 200;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&store, t] {
      for (uint64_t i = 0; i < kPerThread; ++i) {
        const std::string key = KeyBuilder().AddUint64(t).AddUint64(i).Build();
        Batch batch;
        batch.Put("runs", key, RecordValue(i));
        batch.Put("queue", key, IndexValue(i));
        EXPECT_OK(store.Write(batch));
        EXPECT_OK(store.Get("runs", key).status());
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  const auto runs = ScanAll(store, "runs");
  const auto queue = ScanAll(store, "queue");
  ASSERT_EQ(runs.size(), kThreads * kPerThread);
  ASSERT_EQ(queue.size(), kThreads * kPerThread);
  for (size_t n = 0; n < runs.size(); ++n) {
    EXPECT_EQ(runs[n].first,
              KeyBuilder().AddUint64(n / kPerThread).AddUint64(n % kPerThread).Build());
    EXPECT_EQ(runs[n].second, RecordValue(n % kPerThread));
    EXPECT_EQ(queue[n].second, IndexValue(n % kPerThread));
  }
}

// A child writes kCrashRecords synced records one at a time ("put": one Put each; "batch": one
// Batch of two column families each) and acks each index on a pipe once the write returned. The
// parent SIGKILLs it after kKillAfterAcks acks, reopens, and checks that every acked record is
// there, and that what is there is exactly records 0..m-1 with the right values.
void CheckAckedWritesSurviveSigkill(const std::string& mode) {
  const std::string path = NewDbPath();
  int ack[2];
  ASSERT_EQ(::pipe2(ack, O_CLOEXEC), 0);
  // One page holds at most 1024 acks: the child blocks when that far ahead of the parent, so it
  // is still mid-stream (well short of kCrashRecords) when the kill lands, however fast fsync is.
  ASSERT_GE(::fcntl(ack[0], F_SETPIPE_SZ, 4096), 0) << std::strerror(errno);
  const int pipe_bytes = ::fcntl(ack[0], F_GETPIPE_SZ);
  ASSERT_LT(kKillAfterAcks + pipe_bytes / 4 + 2, static_cast<int>(kCrashRecords));

  std::optional<Child> child =
      Child::Spawn({mode, path, std::to_string(ack[1]), std::to_string(kCrashRecords)}, {ack[1]});
  ::close(ack[1]);
  ASSERT_TRUE(child.has_value());

  int64_t last_acked = -1;
  bool killed = false;
  for (;;) {
    uint32_t i = 0;
    const ReadResult r = ReadAck(ack[0], &i);
    if (r == ReadResult::kEof) break;
    ASSERT_EQ(r, ReadResult::kAck);
    ASSERT_EQ(static_cast<int64_t>(i), last_acked + 1) << "acks out of sequence";
    last_acked = i;
    if (!killed && last_acked + 1 == kKillAfterAcks) {
      child->Kill();
      killed = true;
    }
    // After the kill, keep draining: acks already in the pipe were acknowledged writes too.
  }
  ::close(ack[0]);
  const int status = child->Wait();
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
      << "the child was not killed mid-stream; wait status " << status;
  ASSERT_GE(last_acked + 1, kKillAfterAcks);

  auto store = Store::Open(path, {"records", "index"});
  ASSERT_TRUE(store.ok()) << store.status();
  const auto records = ScanAll(**store, "records");
  for (size_t n = 0; n < records.size(); ++n) {
    ASSERT_EQ(records[n].first, RecordKey(n)) << "hole before record " << n;
    ASSERT_EQ(records[n].second, RecordValue(n)) << "record " << n;
  }
  // Acked records are all there; at most the one write in flight at the kill is there unacked.
  EXPECT_GE(static_cast<int64_t>(records.size()), last_acked + 1);
  EXPECT_LE(static_cast<int64_t>(records.size()), last_acked + 2);
  if (mode == "batch") {
    const auto index = ScanAll(**store, "index");
    ASSERT_EQ(index.size(), records.size()) << "a batch survived the crash only in part";
    for (size_t n = 0; n < index.size(); ++n) {
      ASSERT_EQ(index[n].first, RecordKey(n));
      ASSERT_EQ(index[n].second, IndexValue(n));
    }
  }
}

// The names of the files in `dir` (recursively) whose bytes contain `needle`.
std::vector<std::string> FilesContaining(const std::string& dir, std::string_view needle) {
  std::vector<std::string> found;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (bytes.find(needle) != std::string::npos) found.push_back(entry.path().filename());
  }
  return found;
}

TEST(StoreTest, CompactFullyErasesDeletedAndOverwrittenValuesFromEveryFile) {
  const std::string path = NewDbPath();
  // Random bytes, like the envelopes the cloud erases: SST compression keeps them as they are,
  // and no other bytes of the database contain them by chance.
  absl::BitGen random;
  auto random_value = [&] {
    std::string value(48, '\0');
    for (char& c : value) c = static_cast<char>(absl::Uniform<int>(random, 0, 256));
    return value;
  };
  const std::string overwritten = random_value();
  const std::string current = random_value();
  const std::string deleted_in_sst = random_value();
  const std::string deleted_in_wal = random_value();
  const std::string other_cf_value = random_value();
  {
    auto store = Store::Open(path, {"secrets", "other"});
    ASSERT_TRUE(store.ok()) << store.status();
    Store& db = **store;
    // Some values reach an SST file, others stay in the WAL (and memtable) only.
    ASSERT_OK(db.Put("secrets", "k1", overwritten));
    ASSERT_OK(db.Put("secrets", "k2", deleted_in_sst));
    ASSERT_OK(db.Put("secrets", "kept", "kept-value"));
    ASSERT_OK(db.Flush());
    ASSERT_OK(db.Put("secrets", "k1", current, {.sync = true}));
    ASSERT_OK(db.Put("secrets", "k3", deleted_in_wal));
    // Another column family's unflushed data shares the WAL.
    ASSERT_OK(db.Put("other", "o", other_cf_value));
    ASSERT_OK(db.Delete("secrets", "k2"));
    ASSERT_OK(db.Delete("secrets", "k3", {.sync = true}));
    // The search works: every value is on disk before the compaction.
    for (const std::string* value : {&overwritten, &current, &deleted_in_sst, &deleted_in_wal}) {
      EXPECT_FALSE(FilesContaining(path, *value).empty()) << "a value is not on disk at all";
    }

    ASSERT_OK(db.CompactFully("secrets"));

    for (const std::string* value : {&overwritten, &deleted_in_sst, &deleted_in_wal}) {
      EXPECT_THAT(FilesContaining(path, *value), ::testing::IsEmpty())
          << "a deleted or overwritten value is still on disk";
    }
    // What is still stored is still there, in this column family and the other.
    EXPECT_EQ(db.Get("secrets", "k1").value_or("(missing)"), current);
    EXPECT_EQ(db.Get("secrets", "kept").value_or("(missing)"), std::string("kept-value"));
    EXPECT_TRUE(absl::IsNotFound(db.Get("secrets", "k2").status()));
    EXPECT_TRUE(absl::IsNotFound(db.Get("secrets", "k3").status()));
    EXPECT_EQ(db.Get("other", "o").value_or("(missing)"), other_cf_value);
  }
  // And after a reopen (the WAL that held the deletes is gone too, so this checks the SSTs).
  auto store = Store::Open(path, {"secrets", "other"});
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->Get("secrets", "k1").value_or("(missing)"), current);
  EXPECT_TRUE(absl::IsNotFound((*store)->Get("secrets", "k2").status()));
  EXPECT_TRUE(absl::IsNotFound((*store)->Get("secrets", "k3").status()));
  EXPECT_EQ((*store)->Get("other", "o").value_or("(missing)"), other_cf_value);
}

TEST(StoreTest, CompactFullyOfAnUnknownColumnFamilyIsInvalidArgument) {
  auto store = Store::Open(NewDbPath(), {"secrets"});
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->CompactFully("nope").code(), absl::StatusCode::kInvalidArgument);
}

TEST(StoreCrashTest, SyncedPutsAckedBeforeSigkillAreAllPresentAfterReopen) {
  CheckAckedWritesSurviveSigkill("put");
}

TEST(StoreCrashTest, SyncedBatchesAckedBeforeSigkillArePresentWholeAfterReopen) {
  CheckAckedWritesSurviveSigkill("batch");
}

}  // namespace
}  // namespace tether::store

int main(int argc, char** argv) {
  if (argc >= 2 && std::string_view(argv[1]) == tether::store::kChildFlag) {
    return tether::store::RunChild(std::vector<std::string>(argv + 2, argv + argc));
  }
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
