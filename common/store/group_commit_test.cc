#include "common/store/group_commit.h"

#include <stdlib.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/store/store.h"
#include "gtest/gtest.h"

namespace tether::store {
namespace {

constexpr char kRecords[] = "records";
constexpr char kIndex[] = "index";
constexpr absl::Duration kWait = absl::Seconds(60);

std::string NewDbPath() {
  const char* env = std::getenv("TEST_TMPDIR");
  std::string dir = absl::StrCat(env != nullptr ? env : ::testing::TempDir(), "/gc_XXXXXX");
  if (::mkdtemp(dir.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp(" << dir << "): " << std::strerror(errno);
  }
  return dir + "/db";
}

std::unique_ptr<Store> OpenStore() {
  auto store = Store::Open(NewDbPath(), {kRecords, kIndex});
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? *std::move(store) : nullptr;
}

Batch RecordBatch(const std::string& key) {
  Batch batch;
  batch.Put(kRecords, key, absl::StrCat("value-", key));
  batch.Put(kIndex, key, "1");
  return batch;
}

bool Present(const Store& store, const std::string& key) {
  auto value = store.Get(kRecords, key);
  return value.ok() && *value == absl::StrCat("value-", key) && store.Get(kIndex, key).ok();
}

bool Absent(const Store& store, const std::string& key) {
  return absl::IsNotFound(store.Get(kRecords, key).status()) &&
         absl::IsNotFound(store.Get(kIndex, key).status());
}

// Collects CommitAsync results and waits for a number of them.
class Results {
 public:
  std::function<void(absl::Status)> Callback(int index) {
    return [this, index](absl::Status status) {
      absl::MutexLock lock(&mu_);
      statuses_.emplace_back(index, std::move(status));
      threads_.push_back(std::this_thread::get_id());
    };
  }
  bool WaitFor(size_t count) {
    absl::MutexLock lock(&mu_);
    auto ready = [&] { return statuses_.size() >= count; };
    return mu_.AwaitWithTimeout(absl::Condition(&ready), kWait);
  }
  std::vector<std::pair<int, absl::Status>> statuses() {
    absl::MutexLock lock(&mu_);
    return statuses_;
  }
  std::vector<std::thread::id> threads() {
    absl::MutexLock lock(&mu_);
    return threads_;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::pair<int, absl::Status>> statuses_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread::id> threads_ ABSL_GUARDED_BY(mu_);
};

// Holds the writer thread inside a callback until Release(), so that batches queued meanwhile
// are all pending when the next round starts. (Callbacks must not block in real use: that is
// exactly what makes the next round's contents deterministic here.) Declare it after the writer:
// its destructor releases the writer, which the writer's destructor then joins.
class WriterGate {
 public:
  ~WriterGate() { Release(); }

  // Queues an empty batch whose callback blocks, and waits until the writer is inside it.
  void Close(GroupCommitWriter& writer) {
    writer.CommitAsync(Batch(), [state = state_](absl::Status) {
      state->entered.Notify();
      state->release.WaitForNotificationWithTimeout(kWait);
    });
    ASSERT_TRUE(state_->entered.WaitForNotificationWithTimeout(kWait));
  }
  void Release() {
    if (!state_->release.HasBeenNotified()) state_->release.Notify();
  }

 private:
  struct State {
    absl::Notification entered;
    absl::Notification release;
  };
  // Shared with the callback, which may still be returning from the wait after this is gone.
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

TEST(GroupCommitTest, ConcurrentCommitsAreAllDurableInFewerWritesThanBatches) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 500;
  std::unique_ptr<Store> store = OpenStore();
  ASSERT_NE(store, nullptr);
  {
    GroupCommitWriter writer(store.get());
    std::vector<std::thread> threads;
    std::vector<int> failures(kThreads, 0);
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i) {
          if (!writer.Commit(RecordBatch(absl::StrCat(t, "/", i))).ok()) ++failures[t];
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
    for (int t = 0; t < kThreads; ++t) EXPECT_EQ(failures[t], 0) << "thread " << t;

    const GroupCommitStats stats = writer.stats();
    EXPECT_EQ(stats.batches, uint64_t{kThreads * kPerThread});
    EXPECT_EQ(stats.failed_writes, 0u);
    EXPECT_LT(stats.writes, stats.batches) << "no round held more than one batch";
    EXPECT_GT(stats.largest_write, 1u);
  }
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      const std::string key = absl::StrCat(t, "/", i);
      ASSERT_TRUE(Present(*store, key)) << key;
    }
  }
}

TEST(GroupCommitTest, AllBatchesPendingAtARoundShareOneWrite) {
  std::unique_ptr<Store> store = OpenStore();
  ASSERT_NE(store, nullptr);
  Results results;  // outlives the writer, whose callbacks use it
  GroupCommitWriter writer(store.get());
  WriterGate gate;
  gate.Close(writer);
  for (int i = 0; i < 100; ++i)
    writer.CommitAsync(RecordBatch(absl::StrCat(i)), results.Callback(i));
  gate.Release();
  ASSERT_TRUE(results.WaitFor(100));

  const GroupCommitStats stats = writer.stats();
  EXPECT_EQ(stats.writes, 2u);  // the gate's round, then all 100
  EXPECT_EQ(stats.batches, 101u);
  EXPECT_EQ(stats.largest_write, 100u);
  for (const auto& [index, status] : results.statuses()) EXPECT_TRUE(status.ok()) << status;
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(Present(*store, absl::StrCat(i))) << i;
}

TEST(GroupCommitTest, RoundsRespectTheBatchAndByteLimits) {
  struct Case {
    const char* name;
    GroupCommitOptions options;
    uint64_t expected_rounds;  // for 30 pending batches, not counting the gate's round
  };
  // Each batch: "records"(7) + key (<= 2) + 100-byte value, "index"(5) + key + "1".
  const std::vector<Case> cases = {
      {"batch limit 7", {.max_batches_per_write = 7, .max_bytes_per_write = 16 << 20}, 5},
      {"byte limit ~3 batches", {.max_batches_per_write = 4096, .max_bytes_per_write = 400}, 10},
      {"byte limit below one batch", {.max_batches_per_write = 4096, .max_bytes_per_write = 1}, 30},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    std::unique_ptr<Store> store = OpenStore();
    ASSERT_NE(store, nullptr);
    Results results;
    GroupCommitWriter writer(store.get(), c.options);
    WriterGate gate;
    gate.Close(writer);
    for (int i = 0; i < 30; ++i) {
      Batch batch;
      batch.Put(kRecords, absl::StrCat(i), std::string(100, 'v'));
      batch.Put(kIndex, absl::StrCat(i), "1");
      writer.CommitAsync(std::move(batch), results.Callback(i));
    }
    gate.Release();
    ASSERT_TRUE(results.WaitFor(30));
    EXPECT_EQ(writer.stats().writes, 1 + c.expected_rounds);
    EXPECT_EQ(writer.stats().batches, 31u);
    // Callbacks run in queue order.
    const auto statuses = results.statuses();
    for (int i = 0; i < 30; ++i) {
      EXPECT_EQ(statuses[i].first, i);
      EXPECT_TRUE(statuses[i].second.ok()) << statuses[i].second;
    }
  }
}

TEST(GroupCommitTest, AsyncCallbacksRunOnceEachOnTheWriterThreadAfterTheWrite) {
  constexpr int kBatches = 300;
  std::unique_ptr<Store> store = OpenStore();
  ASSERT_NE(store, nullptr);
  Results results;
  absl::Mutex mu;
  int missing_in_callback = 0;
  GroupCommitWriter writer(store.get());
  for (int i = 0; i < kBatches; ++i) {
    const std::string key = absl::StrCat("async-", i);
    auto record = results.Callback(i);
    writer.CommitAsync(RecordBatch(key), [&, key, record](absl::Status status) {
      // The data is readable by the time the callback runs.
      if (!Present(*store, key)) {
        absl::MutexLock lock(&mu);
        ++missing_in_callback;
      }
      record(std::move(status));
    });
  }
  ASSERT_TRUE(results.WaitFor(kBatches));

  const auto statuses = results.statuses();
  ASSERT_EQ(statuses.size(), static_cast<size_t>(kBatches));
  for (int i = 0; i < kBatches; ++i) {
    EXPECT_EQ(statuses[i].first, i);
    EXPECT_TRUE(statuses[i].second.ok()) << statuses[i].second;
  }
  absl::MutexLock lock(&mu);
  EXPECT_EQ(missing_in_callback, 0);
  const std::vector<std::thread::id> threads = results.threads();
  for (const std::thread::id& id : threads) {
    EXPECT_EQ(id, threads.front());
    EXPECT_NE(id, std::this_thread::get_id());
  }
}

TEST(GroupCommitTest, AFailedWriteFailsEveryBatchOfItsRoundAndAppliesNone) {
  std::unique_ptr<Store> store = OpenStore();
  ASSERT_NE(store, nullptr);
  Results results;  // outlives the writer, whose callbacks use it
  GroupCommitWriter writer(store.get());
  WriterGate gate;
  gate.Close(writer);
  writer.CommitAsync(RecordBatch("good-before"), results.Callback(0));
  Batch bad = RecordBatch("bad");
  bad.Put("no-such-column-family", "k", "v");
  writer.CommitAsync(std::move(bad), results.Callback(1));
  writer.CommitAsync(RecordBatch("good-after"), results.Callback(2));
  gate.Release();
  ASSERT_TRUE(results.WaitFor(3));

  for (const auto& [index, status] : results.statuses()) {
    SCOPED_TRACE(index);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_NE(status.message().find("no-such-column-family"), absl::string_view::npos) << status;
  }
  EXPECT_TRUE(Absent(*store, "good-before"));
  EXPECT_TRUE(Absent(*store, "bad"));
  EXPECT_TRUE(Absent(*store, "good-after"));
  EXPECT_EQ(writer.stats().failed_writes, 1u);

  // The writer keeps going: the next round succeeds.
  EXPECT_TRUE(writer.Commit(RecordBatch("later")).ok());
  EXPECT_TRUE(Present(*store, "later"));
}

TEST(GroupCommitTest, StopWritesPendingBatchesThenRefusesNewOnes) {
  constexpr int kBatches = 1000;
  std::unique_ptr<Store> store = OpenStore();
  ASSERT_NE(store, nullptr);
  Results results;
  GroupCommitWriter writer(store.get());
  for (int i = 0; i < kBatches; ++i) {
    writer.CommitAsync(RecordBatch(absl::StrCat(i)), results.Callback(i));
  }
  // Most of the 1000 are still queued (each round fsyncs): Stop must write them, not drop them.
  writer.Stop();
  const auto statuses = results.statuses();
  ASSERT_EQ(statuses.size(), static_cast<size_t>(kBatches));
  for (const auto& [index, status] : statuses) EXPECT_TRUE(status.ok()) << index << ": " << status;
  for (int i = 0; i < kBatches; ++i) ASSERT_TRUE(Present(*store, absl::StrCat(i))) << i;

  const absl::Status refused = writer.Commit(RecordBatch("after-stop"));
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(refused.message(), "writer stopped");

  std::thread::id callback_thread;
  absl::Status async_refused;
  writer.CommitAsync(RecordBatch("after-stop-async"), [&](absl::Status status) {
    callback_thread = std::this_thread::get_id();
    async_refused = std::move(status);
  });
  EXPECT_EQ(async_refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(callback_thread, std::this_thread::get_id());
  EXPECT_TRUE(Absent(*store, "after-stop"));
  EXPECT_TRUE(Absent(*store, "after-stop-async"));

  writer.Stop();  // idempotent
  EXPECT_EQ(writer.stats().batches, static_cast<uint64_t>(kBatches));
}

TEST(GroupCommitTest, CommitFromACallbackIsRefusedInsteadOfDeadlocking) {
  std::unique_ptr<Store> store = OpenStore();
  ASSERT_NE(store, nullptr);
  absl::Notification done;
  absl::Status nested;
  GroupCommitWriter writer(store.get());
  writer.CommitAsync(Batch(), [&](absl::Status) {
    nested = writer.Commit(RecordBatch("nested"));
    done.Notify();
  });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(kWait));
  EXPECT_EQ(nested.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(Absent(*store, "nested"));
}

TEST(GroupCommitTest, BatchesFromOneThreadApplyInOrder) {
  std::unique_ptr<Store> store = OpenStore();
  ASSERT_NE(store, nullptr);
  Results results;  // outlives the writer, whose callbacks use it
  GroupCommitWriter writer(store.get());
  WriterGate gate;
  gate.Close(writer);
  // Same key, increasing values, all in one round: the last one queued must win.
  for (int i = 0; i < 50; ++i) {
    Batch batch;
    batch.Put(kRecords, "counter", absl::StrCat(i));
    if (i % 2 == 1) batch.Delete(kIndex, "counter");
    if (i % 2 == 0) batch.Put(kIndex, "counter", absl::StrCat(i));
    writer.CommitAsync(std::move(batch), results.Callback(i));
  }
  gate.Release();
  ASSERT_TRUE(results.WaitFor(50));
  auto value = store->Get(kRecords, "counter");
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ(*value, "49");
  EXPECT_TRUE(absl::IsNotFound(store->Get(kIndex, "counter").status()));
}

}  // namespace
}  // namespace tether::store
