// A server child process for benchmarks (the relay, or the direct echo server), and what /proc
// says about a process.
//
// The benchmark runs each server as its own process so its memory (VmRSS) and CPU time are
// measured apart from the load-generating clients.
#ifndef TETHER_TOOLS_BENCH_SERVER_PROCESS_H_
#define TETHER_TOOLS_BENCH_SERVER_PROCESS_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace tether::bench {

// Resident memory of a process from /proc/<pid>/status, in KiB.
struct ProcessMemory {
  int64_t vm_rss_kib = 0;
  int64_t rss_anon_kib = 0;
  int64_t rss_file_kib = 0;
};

// Errors: kNotFound when the process is gone, kInternal when the file does not parse.
absl::StatusOr<ProcessMemory> ReadProcessMemory(pid_t pid);
// User plus system CPU time of a process (all its threads), from /proc/<pid>/stat.
absl::StatusOr<double> ReadProcessCpuSeconds(pid_t pid);
// CPU time of the calling process (getrusage), for the client side.
double SelfCpuSeconds();
// CPU time all cores of the machine spent busy (not idle or iowait), from /proc/stat; the
// difference over an interval, minus the benchmark's own processes, is everyone else's load.
double MachineBusyCpuSeconds();

// Runs a command to completion (posix_spawnp; stdout and stderr to /dev/null). Returns its exit
// status as kInternal when non-zero.
absl::Status RunCommand(const std::vector<std::string>& argv);

class ServerProcess {
 public:
  // Spawns `binary` with `flags` and --port_file=<dir>/<name>.port, stdout and stderr going to
  // <dir>/<name>.log, and waits up to `startup_timeout` for the port file. The child inherits
  // this process's resource limits. Errors: kUnavailable when the process exits early or the port
  // file does not appear in time (the log tail is in the message).
  static absl::StatusOr<std::unique_ptr<ServerProcess>> Start(const std::string& binary,
                                                              const std::string& dir,
                                                              const std::string& name,
                                                              const std::vector<std::string>& flags,
                                                              absl::Duration startup_timeout);
  // Stops the process (see Stop) if still running.
  ~ServerProcess();

  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  pid_t pid() const { return pid_; }
  uint16_t port() const { return port_; }
  const std::string& log_path() const { return log_path_; }

  // SIGTERM (the relay drains), SIGKILL after `grace`. Returns a description of how it ended,
  // e.g. "exit 0" or "killed after 10s (SIGKILL)".
  std::string Stop(absl::Duration grace);

  // Lines of the server's log: JSON lines whose level is warning or error, and lines that are not
  // JSON log lines at all (e.g. a crash message), with the first few of them.
  struct LogSummary {
    int64_t lines = 0;
    int64_t warnings = 0;
    int64_t errors = 0;
    std::vector<std::string> samples;  // up to 5 warning/error lines
  };
  LogSummary SummarizeLog() const;

 private:
  ServerProcess(pid_t pid, std::string log_path) : pid_(pid), log_path_(std::move(log_path)) {}

  pid_t pid_;
  uint16_t port_ = 0;
  std::string log_path_;
  bool reaped_ = false;
};

}  // namespace tether::bench

#endif  // TETHER_TOOLS_BENCH_SERVER_PROCESS_H_
