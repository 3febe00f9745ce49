// Test support: a binary started as a child process (stdin from /dev/null, stdout and stderr
// captured to files in TEST_TMPDIR, no blocked signals), and small file helpers for the port files
// services write. Test-only.
#ifndef TETHER_COMMON_TESTING_CHILD_PROCESS_H_
#define TETHER_COMMON_TESTING_CHILD_PROCESS_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace tether::testing {

class ChildProcess {
 public:
  // Starts args[0] (a path, e.g. a runfiles-relative "cloud/cloud_server") with args.
  explicit ChildProcess(std::vector<std::string> args);
  // Kills (SIGKILL) and reaps the child if it still runs.
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  void Signal(int signal);
  // Waits for the exit: the exit code, or 128 + the signal that killed it. Idempotent.
  int Wait();
  std::string out() const;
  std::string err() const;

 private:
  pid_t pid_ = -1;
  int status_ = -1;
  std::string out_path_, err_path_;
};

// The whole file, or "" if it cannot be read.
std::string ReadFileOrEmpty(const std::string& path);

// Waits (polling) for a --port_file to hold "<port>\n"; 0 after `timeout`.
uint16_t WaitForPortFile(const std::string& path, absl::Duration timeout = absl::Seconds(60));

}  // namespace tether::testing

#endif  // TETHER_COMMON_TESTING_CHILD_PROCESS_H_
