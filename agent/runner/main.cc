// flow_runner: runs one desktop flow for the agent (agent/runner/README.md). Reads one
// length-delimited RunnerRequest from fd 0, writes length-delimited RunnerMessages to fd 1 (events,
// then one result), logs to fd 2. Exit 0 after writing the result, 2 if the request cannot be
// read, 1 if fd 1 cannot be written. SIGTERM (or SIGINT) cancels the run.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <map>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "agent/runner/child_process.h"
#include "agent/runner/flow_executor.h"
#include "agent/runner/runner.pb.h"
#include "common/base/clock.h"
#include "common/base/log.h"
#include "google/protobuf/io/zero_copy_stream_impl.h"
#include "google/protobuf/util/delimited_message_util.h"

namespace {

using tether::agent::FlowExecutor;
using tether::agent::RunnerMessage;
using tether::agent::RunnerRequest;

volatile sig_atomic_t g_terminate_requested = 0;
std::atomic<FlowExecutor*> g_executor{nullptr};

void OnTerminate(int) {
  g_terminate_requested = 1;
  if (FlowExecutor* executor = g_executor.load()) executor->Cancel();
}

// Writes RunnerMessages to the agent, flushing each; remembers the first failure.
class MessageWriter {
 public:
  explicit MessageWriter(int fd) : stream_(fd) { stream_.SetCloseOnDelete(true); }

  bool Write(const RunnerMessage& message) {
    if (failed_) return false;
    if (!google::protobuf::util::SerializeDelimitedToZeroCopyStream(message, &stream_) ||
        !stream_.Flush()) {
      failed_ = true;
      tether::LogError("runner_output_failed",
                       {{"error", tether::agent::ErrnoText(stream_.GetErrno())}});
    }
    return !failed_;
  }

 private:
  google::protobuf::io::FileOutputStream stream_;
  bool failed_ = false;
};

int Fail(const std::string& message) {
  tether::LogError("runner_request_unreadable", {{"error", message}});
  return 2;
}

}  // namespace

int main() {
  signal(SIGPIPE, SIG_IGN);  // a closed fd 1 shows up as a write error instead
  struct sigaction action = {};
  action.sa_handler = OnTerminate;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);

  // Move the protocol pipes off fd 0 and 1 (close-on-exec, so programs never inherit them) and put
  // /dev/null and stderr in their place: nothing but the MessageWriter can write to the agent.
  const int request_fd = fcntl(0, F_DUPFD_CLOEXEC, 3);
  const int message_fd = fcntl(1, F_DUPFD_CLOEXEC, 3);
  if (request_fd < 0 || message_fd < 0) {
    return Fail(absl::StrCat("fd 0 and 1 must be open: ", tether::agent::ErrnoText(errno)));
  }
  const int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd >= 0) {
    dup2(null_fd, 0);
    close(null_fd);
  }
  dup2(2, 1);

  RunnerRequest request;
  {
    google::protobuf::io::FileInputStream input(request_fd);
    input.SetCloseOnDelete(true);
    bool clean_eof = false;
    if (!google::protobuf::util::ParseDelimitedFromZeroCopyStream(&request, &input, &clean_eof)) {
      return Fail(clean_eof ? "no request before end of input" : "malformed RunnerRequest");
    }
  }
  tether::LogInfo("runner_started", {{"job_id", request.job_id()}});

  MessageWriter writer(message_fd);
  std::unique_ptr<FlowExecutor> executor;
  tether::agent::ExecutorOptions options;
  options.max_capture_bytes = request.max_capture_bytes();
  options.working_directory = request.working_directory();
  options.on_event = [&](tether::proto::JobEvent event) {
    RunnerMessage message;
    *message.mutable_event() = std::move(event);
    if (!writer.Write(message)) executor->Cancel();  // nobody is listening any more
  };
  executor = std::make_unique<FlowExecutor>(std::move(options));
  g_executor.store(executor.get());
  if (g_terminate_requested) executor->Cancel();

  const absl::Time deadline = request.timeout_ms() > 0
                                  ? tether::WallNow() + absl::Milliseconds(request.timeout_ms())
                                  : absl::InfiniteFuture();
  const std::map<std::string, std::string> inputs(request.inputs().begin(), request.inputs().end());
  RunnerMessage message;
  *message.mutable_result() = executor->RunJson(request.flow_definition_json(), inputs, deadline);

  // The handler must not reach the executor once it is gone.
  sigset_t terminate;
  sigemptyset(&terminate);
  sigaddset(&terminate, SIGTERM);
  sigaddset(&terminate, SIGINT);
  sigprocmask(SIG_BLOCK, &terminate, nullptr);
  g_executor.store(nullptr);

  tether::LogInfo("runner_finished",
                  {{"job_id", request.job_id()},
                   {"state", tether::proto::JobState_Name(message.result().state())}});
  return writer.Write(message) ? 0 : 1;
}
