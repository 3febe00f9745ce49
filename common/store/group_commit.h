// GroupCommitWriter: durable writes for many threads at the cost of one fsync per round.
//
// A synced Store::Write costs an fsync of the write-ahead log, a few milliseconds on a disk, and
// one thread can do only a few hundred of them a second. GroupCommitWriter lets any number of
// threads commit batches durably while the disk sees far fewer fsyncs: one writer thread takes
// every batch pending at that moment (up to the limits in GroupCommitOptions), appends them into
// one Batch, does one Store::Write with WriteOptions{.sync = true}, and then reports that write's
// result to every batch in it. Batches that arrive during a write go into the next round.
//
//   GroupCommitWriter writer(store.get());
//   Batch batch;
//   batch.Put("runs", key, value);
//   RETURN_IF_ERROR(writer.Commit(std::move(batch)));   // durable once this returns OK
//
// Results: every batch of a round gets the same status. On success all of them are durable. On
// failure none of them was applied: the round is one RocksDB WriteBatch, which is atomic, so one
// bad batch (e.g. a Put to a column family the Store was not opened with, kInvalidArgument) fails
// the good batches that shared its round too. Callers that may build bad batches should check
// them before committing.
//
// Order: batches are applied in the order they were queued, so calls that are ordered (e.g. made
// one after another by one thread) apply in that order. Each batch is atomic. That the batches of
// one round are also applied together is a detail callers must not rely on.
//
// Thread safety: all methods are thread-safe. The Store must outlive the writer.
#ifndef TETHER_COMMON_STORE_GROUP_COMMIT_H_
#define TETHER_COMMON_STORE_GROUP_COMMIT_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "common/store/store.h"

namespace tether::store {

struct GroupCommitOptions {
  // Limits of one round (one Store::Write). The rest of the pending batches waits for the next
  // round. A round always takes at least one batch, even one over max_bytes_per_write.
  size_t max_batches_per_write = 4096;
  size_t max_bytes_per_write = 16 << 20;  // Batch::ByteSize() summed over the round
};

// Counters since construction, for metrics and tests.
struct GroupCommitStats {
  uint64_t writes = 0;         // Store::Write calls (rounds), successful or not
  uint64_t failed_writes = 0;  // of those, the ones that returned an error
  uint64_t batches = 0;        // batches that went through a write (committed or failed)
  uint64_t largest_write = 0;  // most batches in one round
};

class GroupCommitWriter {
 public:
  // Starts the writer thread. `store` must outlive the writer.
  explicit GroupCommitWriter(Store* store, GroupCommitOptions options = {});
  // Stop(): pending batches are written first.
  ~GroupCommitWriter();

  GroupCommitWriter(const GroupCommitWriter&) = delete;
  GroupCommitWriter& operator=(const GroupCommitWriter&) = delete;

  // Queues `batch` and blocks until the round holding it was written with sync. Returns that
  // write's status (see "Results" above): OK means durable. kFailedPrecondition "writer stopped"
  // after Stop() (nothing is written). Calling Commit on the writer thread (from a CommitAsync
  // callback) would wait for itself: it is kFailedPrecondition instead. An empty batch succeeds.
  absl::Status Commit(Batch batch);

  // Queues `batch` and returns at once. `done` runs exactly once with the write's status, on the
  // writer thread after the write, in queue order. It must not block and should be quick: the
  // next round starts only once every callback of the current one has returned. It may call
  // CommitAsync (not Commit or Stop). After Stop(), `done` runs at once on the calling thread with
  // kFailedPrecondition "writer stopped".
  void CommitAsync(Batch batch, std::function<void(absl::Status)> done);

  // Refuses new batches, writes every batch already queued (in as many rounds as the limits
  // need), runs their callbacks and joins the writer thread. Idempotent; concurrent calls all
  // return after the thread has ended. Must not be called from a CommitAsync callback.
  void Stop();

  GroupCommitStats stats() const;

 private:
  struct Pending {
    Batch batch;
    size_t bytes;
    std::function<void(absl::Status)> done;
  };

  void Run();

  Store* const store_;
  const GroupCommitOptions options_;

  mutable absl::Mutex mu_;
  std::deque<Pending> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  std::atomic<uint64_t> writes_{0};
  std::atomic<uint64_t> failed_writes_{0};
  std::atomic<uint64_t> batches_{0};
  std::atomic<uint64_t> largest_write_{0};

  std::mutex join_mu_;  // serialises Stop()'s join
  std::thread thread_;
  std::thread::id writer_id_;  // set once in the constructor
};

}  // namespace tether::store

#endif  // TETHER_COMMON_STORE_GROUP_COMMIT_H_
