// Results of relay_bench and their report: a table for people, then one JSON line for tools.
#ifndef TETHER_TOOLS_BENCH_RELAY_REPORT_H_
#define TETHER_TOOLS_BENCH_RELAY_REPORT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "tools/bench/server_process.h"

namespace tether::bench {

// What a run measures and how (from the flags, --quick applied).
struct Settings {
  bool quick = false;
  int idle_listeners = 0;
  bool tls = true;
  int server_threads = 1;
  int client_threads = 1;
  int reps = 1;
  int latency_samples = 0;
  int latency_warmup = 0;
  double throughput_seconds = 0;
  double warmup_seconds = 0;
  std::vector<int> channels;
  int window = 0;
  int message_bytes = 0;
  int relay_listeners = 1;
  int connect_concurrency = 1;
  int source_addresses = 0;
  int idle_rounds = 1;
};

struct Machine {
  long cores = 0;
  std::string cpu;
  std::string kernel;
  std::string memory;
  std::string load_start;  // /proc/loadavg when the run began
};

// Cores, CPU model, kernel, memory and load average of this machine, from /proc and uname.
Machine DescribeMachine();

struct LatencyResult {
  bool ok = false;
  std::string error;
  std::vector<double> samples;
  double p50 = 0;
  double p99 = 0;
};

struct LoadResult {
  bool ok = false;
  std::string error;
  double echoes_per_second = 0;
  double server_cores = 0;  // CPU of the server process during the measurement
  double client_cores = 0;  // CPU of this process (the clients)
  double other_cores = 0;   // the rest of the machine's busy CPU: other people's work
};

struct ThroughputRow {
  int channels = 0;
  std::vector<LoadResult> direct;
  std::vector<LoadResult> relay;
};

// N idle connections to a fresh server process.
struct IdleResult {
  bool ran = false;
  std::string error;
  int requested = 0;
  int64_t connected = 0;
  int64_t failed = 0;
  int64_t disconnected = 0;
  std::string first_error;
  double connect_seconds = 0;
  ProcessMemory before;
  ProcessMemory after;
  ProcessMemory after_close;
  // Later rounds: N connected again after the previous N closed, the RSS with them up.
  // Allocator retention reuses the first round's memory; a per-connection leak grows the RSS by
  // the same amount round after round.
  std::vector<ProcessMemory> later_rounds;
  std::string stop;
  ServerProcess::LogSummary log;

  double PerConnectionKiB() const {
    return connected > 0 ? static_cast<double>(after.vm_rss_kib - before.vm_rss_kib) / connected
                         : 0;
  }
  // RSS growth per connection from the next-to-last to the last round (0 with one round).
  double LastRoundGrowthKiB() const {
    if (later_rounds.empty() || connected == 0) return 0;
    int64_t previous = later_rounds.size() == 1 ? after.vm_rss_kib
                                                : later_rounds[later_rounds.size() - 2].vm_rss_kib;
    return static_cast<double>(later_rounds.back().vm_rss_kib - previous) / connected;
  }
  double PerConnectionAnonKiB() const {
    return connected > 0 ? static_cast<double>(after.rss_anon_kib - before.rss_anon_kib) / connected
                         : 0;
  }
};

struct IdlePair {
  IdleResult direct;
  IdleResult relay;
};

struct RelayBenchResults {
  LatencyResult latency_direct;
  LatencyResult latency_relay;
  double latency_other_cores = 0;  // other people's CPU use during the latency runs
  std::vector<ThroughputRow> throughput;
  IdlePair idle_plain;
  IdlePair idle_tls;
  std::string tls_skipped;  // why TLS was not measured, if it was not
  std::vector<std::string> notes;
  std::vector<std::string> problems;
};

// Nearest-rank percentile (p in 0..100) of `values`; 0 when empty.
double Percentile(std::vector<double> values, double p);

// "; rounds 2..k: a, b MiB" for an IdleResult with later rounds, else "".
std::string RoundsText(const IdleResult& r);

// Prints the results table, the targets with met/missed, notes and problems, then the JSON line.
void PrintReport(const Machine& machine, const std::string& command, const Settings& settings,
                 const RelayBenchResults& results, absl::Duration elapsed);

}  // namespace tether::bench

#endif  // TETHER_TOOLS_BENCH_RELAY_REPORT_H_
