#include "common/store/group_commit.h"

#include <algorithm>
#include <future>
#include <memory>
#include <utility>
#include <vector>

namespace tether::store {
namespace {

absl::Status StoppedError() { return absl::FailedPreconditionError("writer stopped"); }

GroupCommitOptions Sanitized(GroupCommitOptions options) {
  options.max_batches_per_write = std::max<size_t>(1, options.max_batches_per_write);
  return options;
}

}  // namespace

GroupCommitWriter::GroupCommitWriter(Store* store, GroupCommitOptions options)
    : store_(store), options_(Sanitized(options)) {
  thread_ = std::thread([this] { Run(); });
  writer_id_ = thread_.get_id();
}

GroupCommitWriter::~GroupCommitWriter() { Stop(); }

void GroupCommitWriter::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  std::lock_guard<std::mutex> join_lock(join_mu_);
  if (thread_.joinable()) thread_.join();
}

absl::Status GroupCommitWriter::Commit(Batch batch) {
  if (std::this_thread::get_id() == writer_id_) {
    return absl::FailedPreconditionError(
        "GroupCommitWriter::Commit called on the writer thread (from a CommitAsync callback); "
        "it would wait for itself");
  }
  // A promise (not a Notification on this stack frame): the writer may still be inside
  // set_value() when this thread wakes up and returns.
  auto result = std::make_shared<std::promise<absl::Status>>();
  std::future<absl::Status> future = result->get_future();
  CommitAsync(std::move(batch),
              [result](absl::Status status) { result->set_value(std::move(status)); });
  return future.get();
}

void GroupCommitWriter::CommitAsync(Batch batch, std::function<void(absl::Status)> done) {
  const size_t bytes = batch.ByteSize();
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      queue_.push_back(Pending{std::move(batch), bytes, std::move(done)});
      return;
    }
  }
  done(StoppedError());
}

GroupCommitStats GroupCommitWriter::stats() const {
  GroupCommitStats stats;
  stats.writes = writes_.load(std::memory_order_relaxed);
  stats.failed_writes = failed_writes_.load(std::memory_order_relaxed);
  stats.batches = batches_.load(std::memory_order_relaxed);
  stats.largest_write = largest_write_.load(std::memory_order_relaxed);
  return stats;
}

void GroupCommitWriter::Run() {
  std::vector<Pending> round;
  while (true) {
    round.clear();
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this] { return stopping_ || !queue_.empty(); };
      mu_.Await(absl::Condition(&ready));
      if (queue_.empty()) return;  // stopping, and everything queued has been written
      size_t bytes = 0;
      while (!queue_.empty() && round.size() < options_.max_batches_per_write) {
        const size_t next = queue_.front().bytes;
        if (!round.empty() && bytes + next > options_.max_bytes_per_write) break;
        bytes += next;
        round.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }

    Batch merged = std::move(round.front().batch);
    for (size_t i = 1; i < round.size(); ++i) merged.Append(std::move(round[i].batch));
    const absl::Status status = store_->Write(merged, WriteOptions{.sync = true});

    // Counted before the callbacks run, so a caller whose Commit returned sees its round.
    writes_.fetch_add(1, std::memory_order_relaxed);
    if (!status.ok()) failed_writes_.fetch_add(1, std::memory_order_relaxed);
    batches_.fetch_add(round.size(), std::memory_order_relaxed);
    if (round.size() > largest_write_.load(std::memory_order_relaxed)) {
      largest_write_.store(round.size(), std::memory_order_relaxed);
    }
    for (Pending& pending : round) pending.done(status);
  }
}

}  // namespace tether::store
