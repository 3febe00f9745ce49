// group_commit_bench: durable single-Put commits per second, one thread doing synced
// Store::Put calls against 64 threads committing through one GroupCommitWriter, measured in one
// run (median of --reps runs each) and printed with their ratio.
//
//   bazel run -c opt //tools/bench:group_commit_bench [-- --seconds=2 --threads=64 --reps=3]
//
// Every run gets a fresh database under --dir (default $TMPDIR or /tmp), removed afterwards. The
// figures are only as meaningful as that directory's fsync: the file system type is printed.
// A tool, not a test: nothing is asserted and the exit code does not depend on the figures.
#include <stdlib.h>
#include <sys/vfs.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/store/group_commit.h"
#include "common/store/store.h"

ABSL_FLAG(double, seconds, 2.0, "measured time of each run");
ABSL_FLAG(int, threads, 64, "committing threads in the GroupCommitWriter runs");
ABSL_FLAG(int, reps, 3, "runs of each kind (the median is reported)");
ABSL_FLAG(int, value_bytes, 100, "bytes of each Put's value");
ABSL_FLAG(std::string, dir, "", "where the databases go (default: $TMPDIR or /tmp)");

namespace tether::bench {
namespace {

using Clock = std::chrono::steady_clock;
constexpr char kColumnFamily[] = "records";

struct Run {
  double ops_per_second = 0;
  uint64_t writes = 0;  // fsync'ed writes (rounds); equals ops for the single-thread runs
  uint64_t ops = 0;
};

std::string Key(int thread, uint64_t i) { return absl::StrCat(thread, "/", i); }

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

absl::StatusOr<Run> SingleThreadRun(store::Store& store, const std::string& value) {
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration<double>(absl::GetFlag(FLAGS_seconds));
  Run run;
  while (Clock::now() < deadline) {
    absl::Status s = store.Put(kColumnFamily, Key(0, run.ops), value, {.sync = true});
    if (!s.ok()) return s;
    ++run.ops;
  }
  run.ops_per_second = run.ops / Seconds(Clock::now() - start);
  run.writes = run.ops;
  return run;
}

absl::StatusOr<Run> GroupCommitRun(store::Store& store, const std::string& value) {
  const int threads = absl::GetFlag(FLAGS_threads);
  store::GroupCommitWriter writer(&store);
  std::atomic<bool> go{false};
  std::atomic<uint64_t> ops{0};
  std::atomic<int> failures{0};
  const auto duration = std::chrono::duration<double>(absl::GetFlag(FLAGS_seconds));
  std::vector<std::thread> workers;
  Clock::time_point start;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      const auto deadline = start + duration;
      uint64_t mine = 0;
      while (Clock::now() < deadline) {
        store::Batch batch;
        batch.Put(kColumnFamily, Key(t, mine), value);
        if (!writer.Commit(std::move(batch)).ok()) {
          failures.fetch_add(1);
          break;
        }
        ++mine;
      }
      ops.fetch_add(mine);
    });
  }
  start = Clock::now();
  go.store(true, std::memory_order_release);
  for (std::thread& worker : workers) worker.join();
  const double elapsed = Seconds(Clock::now() - start);
  if (failures.load() != 0) return absl::InternalError("a group commit failed");
  Run run;
  run.ops = ops.load();
  run.ops_per_second = run.ops / elapsed;
  run.writes = writer.stats().writes;
  return run;
}

std::string FileSystemType(const std::string& dir) {
  struct statfs fs;
  if (statfs(dir.c_str(), &fs) != 0) return "unknown";
  switch (static_cast<unsigned long>(fs.f_type)) {
    case 0xEF53:
      return "ext2/3/4";
    case 0x01021994:
      return "tmpfs (fsync is nearly free: figures do not reflect a disk)";
    case 0x58465342:
      return "xfs";
    case 0x9123683E:
      return "btrfs";
    case 0x794c7630:
      return "overlayfs";
    default:
      return absl::StrFormat("0x%x", static_cast<unsigned long>(fs.f_type));
  }
}

// Runs `measure` --reps times, each on a fresh database; returns the runs sorted by ops/s.
template <typename Measure>
absl::StatusOr<std::vector<Run>> Repeat(const std::string& root, const std::string& label,
                                        Measure measure) {
  const std::string value(absl::GetFlag(FLAGS_value_bytes), 'v');
  std::vector<Run> runs;
  for (int rep = 0; rep < absl::GetFlag(FLAGS_reps); ++rep) {
    const std::string path = absl::StrCat(root, "/", label, "-", rep);
    absl::StatusOr<Run> run;
    {
      auto store = store::Store::Open(path, {kColumnFamily});
      if (!store.ok()) return store.status();
      run = measure(**store, value);
    }
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
    if (!run.ok()) return run.status();
    runs.push_back(*run);
  }
  std::sort(runs.begin(), runs.end(),
            [](const Run& a, const Run& b) { return a.ops_per_second < b.ops_per_second; });
  return runs;
}

std::string Figures(const std::vector<Run>& runs) {
  return absl::StrJoin(runs, ", ", [](std::string* out, const Run& run) {
    absl::StrAppend(out, absl::StrFormat("%.0f", run.ops_per_second));
  });
}

int Main() {
  if (absl::GetFlag(FLAGS_reps) < 1 || absl::GetFlag(FLAGS_threads) < 1 ||
      absl::GetFlag(FLAGS_seconds) <= 0 || absl::GetFlag(FLAGS_value_bytes) < 0) {
    std::fprintf(stderr, "group_commit_bench: --reps, --threads, --seconds must be positive\n");
    return 2;
  }
  std::string parent = absl::GetFlag(FLAGS_dir);
  if (parent.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    parent = tmp != nullptr ? tmp : "/tmp";
  }
  std::string root = parent + "/group_commit_bench.XXXXXX";
  if (mkdtemp(root.data()) == nullptr) {
    std::fprintf(stderr, "group_commit_bench: cannot create a directory in %s\n", parent.c_str());
    return 2;
  }
  const int threads = absl::GetFlag(FLAGS_threads);
  std::printf("group_commit_bench: %s (%s), %d x %.1f s runs, %d-byte values, %u cores\n",
              root.c_str(), FileSystemType(root).c_str(), absl::GetFlag(FLAGS_reps),
              absl::GetFlag(FLAGS_seconds), absl::GetFlag(FLAGS_value_bytes),
              std::thread::hardware_concurrency());
  std::fflush(stdout);

  auto single = Repeat(root, "single", SingleThreadRun);
  auto group = single.ok() ? Repeat(root, "group", GroupCommitRun) : single;
  std::error_code ignored;
  std::filesystem::remove_all(root, ignored);
  if (!single.ok() || !group.ok()) {
    const absl::Status& s = !single.ok() ? single.status() : group.status();
    std::fprintf(stderr, "group_commit_bench: %s\n", s.ToString().c_str());
    return 1;
  }

  const Run& single_median = (*single)[single->size() / 2];
  const Run& group_median = (*group)[group->size() / 2];
  std::printf("single thread, synced Store::Put:     %8.0f ops/s  (runs: %s)\n",
              single_median.ops_per_second, Figures(*single).c_str());
  std::printf(
      "GroupCommitWriter, %3d threads:        %8.0f ops/s  (runs: %s; %.1f batches/write)\n",
      threads, group_median.ops_per_second, Figures(*group).c_str(),
      group_median.writes > 0 ? static_cast<double>(group_median.ops) / group_median.writes : 0.0);
  std::printf("ratio (group / single):               %8.1fx\n",
              group_median.ops_per_second / single_median.ops_per_second);
  return 0;
}

}  // namespace
}  // namespace tether::bench

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Durable commits per second: one thread of synced Store::Put against GroupCommitWriter "
      "with --threads committing threads.");
  absl::ParseCommandLine(argc, argv);
  return tether::bench::Main();
}
