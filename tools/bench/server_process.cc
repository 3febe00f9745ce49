#include "tools/bench/server_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"

extern char** environ;

namespace tether::bench {
namespace {

std::vector<char*> ArgvPointers(std::vector<std::string>& args) {
  std::vector<char*> out;
  out.reserve(args.size() + 1);
  for (std::string& a : args) out.push_back(a.data());
  out.push_back(nullptr);
  return out;
}

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exit ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return absl::StrCat("signal ", WTERMSIG(status));
  return absl::StrCat("wait status ", status);
}

std::string LogTail(const std::string& path, std::size_t max_bytes) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  std::string s = text.str();
  if (s.size() > max_bytes) s = s.substr(s.size() - max_bytes);
  return s;
}

}  // namespace

absl::StatusOr<ProcessMemory> ReadProcessMemory(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  if (!in) return absl::NotFoundError(absl::StrCat("no /proc/", pid, "/status"));
  ProcessMemory memory;
  bool found = false;
  std::string line;
  while (std::getline(in, line)) {
    auto field = [&](absl::string_view name, int64_t* out) {
      absl::string_view rest(line);
      if (!absl::ConsumePrefix(&rest, name)) return;
      rest = absl::StripAsciiWhitespace(rest);
      absl::ConsumeSuffix(&rest, "kB");
      rest = absl::StripAsciiWhitespace(rest);
      if (absl::SimpleAtoi(rest, out) && name == "VmRSS:") found = true;
    };
    field("VmRSS:", &memory.vm_rss_kib);
    field("RssAnon:", &memory.rss_anon_kib);
    field("RssFile:", &memory.rss_file_kib);
  }
  if (!found) return absl::InternalError(absl::StrCat("no VmRSS in /proc/", pid, "/status"));
  return memory;
}

absl::StatusOr<double> ReadProcessCpuSeconds(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string text;
  if (!in || !std::getline(in, text)) {
    return absl::NotFoundError(absl::StrCat("no /proc/", pid, "/stat"));
  }
  // The command name (field 2) may hold spaces: fields are counted after its closing ')'.
  std::size_t close = text.rfind(')');
  if (close == std::string::npos) return absl::InternalError("unparsable /proc/pid/stat");
  std::vector<absl::string_view> fields =
      absl::StrSplit(absl::string_view(text).substr(close + 2), ' ');
  // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
  int64_t utime = 0;
  int64_t stime = 0;
  if (fields.size() < 13 || !absl::SimpleAtoi(fields[11], &utime) ||
      !absl::SimpleAtoi(fields[12], &stime)) {
    return absl::InternalError("unparsable /proc/pid/stat");
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double SelfCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& tv) { return tv.tv_sec + tv.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

double MachineBusyCpuSeconds() {
  std::ifstream in("/proc/stat");
  std::string label;
  in >> label;
  if (label != "cpu") return 0;
  // user nice system idle iowait irq softirq steal (guest time is already inside user).
  int64_t value = 0;
  int64_t busy = 0;
  for (int field = 0; field < 8 && in >> value; ++field) {
    if (field != 3 && field != 4) busy += value;
  }
  return static_cast<double>(busy) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

absl::Status RunCommand(const std::vector<std::string>& argv) {
  std::vector<std::string> args = argv;
  std::vector<char*> pointers = ArgvPointers(args);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, pointers[0], &actions, nullptr, pointers.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    return absl::UnavailableError(absl::StrCat("cannot run ", argv[0], ": ", std::strerror(rc)));
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(absl::StrCat(argv[0], " failed: ", DescribeWaitStatus(status)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ServerProcess>> ServerProcess::Start(
    const std::string& binary, const std::string& dir, const std::string& name,
    const std::vector<std::string>& flags, absl::Duration startup_timeout) {
  std::string port_file = absl::StrCat(dir, "/", name, ".port");
  std::string log_path = absl::StrCat(dir, "/", name, ".log");
  unlink(port_file.c_str());
  std::vector<std::string> args = {binary};
  args.insert(args.end(), flags.begin(), flags.end());
  args.push_back(absl::StrCat("--port_file=", port_file));
  std::vector<char*> pointers = ArgvPointers(args);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, binary.c_str(), &actions, nullptr, pointers.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    return absl::UnavailableError(absl::StrCat("cannot start ", binary, ": ", std::strerror(rc)));
  }
  auto process = std::unique_ptr<ServerProcess>(new ServerProcess(pid, log_path));

  absl::Time deadline = absl::Now() + startup_timeout;
  while (true) {
    std::ifstream in(port_file);
    int port = 0;
    if (in >> port && port > 0 && port < 65536) {
      process->port_ = static_cast<uint16_t>(port);
      return process;
    }
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      process->reaped_ = true;
      return absl::UnavailableError(absl::StrCat(name, " exited at start-up (",
                                                 DescribeWaitStatus(status),
                                                 "): ", LogTail(log_path, 2000)));
    }
    if (absl::Now() > deadline) {
      return absl::UnavailableError(absl::StrCat(name, " wrote no port file within ",
                                                 absl::FormatDuration(startup_timeout), ": ",
                                                 LogTail(log_path, 2000)));
    }
    // Waiting for another process's file: there is nothing to block on but time.
    absl::SleepFor(absl::Milliseconds(10));
  }
}

ServerProcess::~ServerProcess() {
  if (!reaped_) Stop(absl::Seconds(5));
}

std::string ServerProcess::Stop(absl::Duration grace) {
  if (reaped_) return "already stopped";
  kill(pid_, SIGTERM);
  absl::Time start = absl::Now();
  absl::Time deadline = start + grace;
  int status = 0;
  while (true) {
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      reaped_ = true;
      return absl::StrCat(
          DescribeWaitStatus(status), " after SIGTERM in ",
          absl::FormatDuration(absl::Trunc(absl::Now() - start, absl::Milliseconds(1))));
    }
    if (r < 0 && errno != EINTR) {
      reaped_ = true;
      return absl::StrCat("waitpid: ", std::strerror(errno));
    }
    if (absl::Now() > deadline) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  kill(pid_, SIGKILL);
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  reaped_ = true;
  return absl::StrCat("did not exit within ", absl::FormatDuration(grace),
                      " of SIGTERM; killed (SIGKILL)");
}

ServerProcess::LogSummary ServerProcess::SummarizeLog() const {
  LogSummary summary;
  std::ifstream in(log_path_);
  std::string line;
  while (std::getline(in, line)) {
    ++summary.lines;
    bool warning = absl::StrContains(line, "\"level\":\"warning\"");
    bool error = absl::StrContains(line, "\"level\":\"error\"") ||
                 !absl::StartsWith(line, "{");  // anything not a log line (e.g. a crash)
    if (warning) ++summary.warnings;
    if (error) ++summary.errors;
    if ((warning || error) && summary.samples.size() < 5) summary.samples.push_back(line);
  }
  return summary;
}

}  // namespace tether::bench
