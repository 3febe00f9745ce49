#include "tools/tetherctl/run_watch.h"

#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "tools/tetherctl/output.h"

namespace tether::tetherctl {
namespace {

std::string StreamLabel(proto::JobEvent::LogLine::Stream stream) {
  switch (stream) {
    case proto::JobEvent::LogLine::STREAM_STDOUT: return "stdout";
    case proto::JobEvent::LogLine::STREAM_STDERR: return "stderr";
    case proto::JobEvent::LogLine::STREAM_RUNNER: return "runner";
    default: return "log";
  }
}

}  // namespace

bool IsTerminal(proto::RunState state) {
  return state == proto::RUN_STATE_SUCCEEDED || state == proto::RUN_STATE_FAILED ||
         state == proto::RUN_STATE_CANCELLED || state == proto::RUN_STATE_TIMED_OUT;
}

int ExitCodeForRunState(proto::RunState state) {
  switch (state) {
    case proto::RUN_STATE_FAILED: return kExitRunFailed;
    case proto::RUN_STATE_CANCELLED:
    case proto::RUN_STATE_TIMED_OUT: return kExitRunCancelled;
    default: return kExitOk;
  }
}

std::string RunStateLabel(proto::RunState state) {
  return EnumLabel(proto::RunState_Name(state), "RUN_STATE_");
}

absl::Status RunEventPrinter::Print(const proto::RunEvent& event) {
  if (event.has_state_changed()) run_ = event.state_changed();
  if (json_) return PrintJson(event, out_);
  switch (event.kind_case()) {
    case proto::RunEvent::kStateChanged:
      if (IsTerminal(run_->state())) {
        PrintSummary(*run_);
      } else {
        PrintStateChange(*run_);
      }
      break;
    case proto::RunEvent::kJobEvent: {
      const proto::JobEvent& job = event.job_event();
      switch (job.kind_case()) {
        case proto::JobEvent::kActionStarted:
          out_ << "[" << job.action_started().index() << "] " << job.action_started().name()
               << " started\n";
          break;
        case proto::JobEvent::kActionFinished: {
          const proto::JobEvent::ActionFinished& f = job.action_finished();
          out_ << "[" << f.index() << "] " << f.name() << (f.ok() ? " ok" : " fail") << " ("
               << FormatDuration(f.duration_ms()) << ")";
          if (!f.message().empty()) out_ << ": " << f.message();
          out_ << "\n";
          break;
        }
        case proto::JobEvent::kLogLine:
          out_ << StreamLabel(job.log_line().stream()) << ": " << job.log_line().text() << "\n";
          break;
        case proto::JobEvent::kOutput:
          out_ << "output " << job.output().name() << " = " << job.output().value() << "\n";
          break;
        default:
          break;
      }
      break;
    }
    default:
      break;
  }
  out_.flush();
  return absl::OkStatus();
}

void RunEventPrinter::PrintStateChange(const proto::Run& run) {
  const std::string label = RunStateLabel(run.state());
  std::string line = absl::StrCat(run.run_id(), " ", label);
  if (!run.state_detail().empty() && run.state_detail() != label) {
    absl::StrAppend(&line, ": ", run.state_detail());
  }
  if (line == last_state_line_) return;  // a change that does not show (e.g. attempt count)
  last_state_line_ = line;
  out_ << line << "\n";
}

void RunEventPrinter::PrintSummary(const proto::Run& run) {
  const int64_t begin = run.started_at_unix_ms() != 0 ? run.started_at_unix_ms() : run.created_at_unix_ms();
  out_ << run.run_id() << " " << RunStateLabel(run.state());
  if (run.finished_at_unix_ms() != 0) out_ << " in " << FormatDuration(run.finished_at_unix_ms() - begin);
  if (run.has_error() && !run.error().message().empty()) {
    out_ << ": " << run.error().message();
    if (run.error().has_action_index()) {
      out_ << " (action [" << run.error().action_index() << "] " << run.error().action_name();
      if (!run.error().action_path().empty()) out_ << " at " << run.error().action_path();
      out_ << ")";
    }
  }
  out_ << "\n";
  if (!run.outputs().empty()) {
    out_ << "outputs:\n";
    std::map<std::string, std::string> sorted(run.outputs().begin(), run.outputs().end());
    for (const auto& [name, value] : sorted) out_ << "  " << name << " = " << value << "\n";
  }
}

absl::StatusOr<proto::Run> FollowRun(const CloudClient& client, const std::string& run_id,
                                     const FollowOptions& options, RunEventPrinter& printer) {
  uint64_t since_seq = 0;
  int failures = 0;
  while (true) {
    std::unique_ptr<grpc::ClientContext> context = client.NewContext(/*deadline=*/false);
    proto::WatchRunRequest request;
    request.set_run_id(run_id);
    request.set_since_seq(since_seq);
    request.set_recorded_only(!options.until_terminal);
    std::unique_ptr<grpc::ClientReader<proto::RunEvent>> reader =
        client.runs()->WatchRun(context.get(), request);
    proto::RunEvent event;
    absl::Status printed = absl::OkStatus();
    while (reader->Read(&event)) {
      failures = 0;
      since_seq = event.seq();
      printed = printer.Print(event);
      if (!printed.ok()) {
        context->TryCancel();
        break;
      }
    }
    const grpc::Status status = reader->Finish();
    if (!printed.ok()) return printed;
    if (status.ok()) break;
    if (status.error_code() == grpc::StatusCode::UNAVAILABLE && ++failures <= options.max_reconnects) {
      std::this_thread::sleep_for(std::chrono::milliseconds(250 << failures));  // retry backoff
      continue;
    }
    return FromGrpc(absl::StrCat("watch run ", run_id), status);
  }
  if (printer.run().has_value() && IsTerminal(printer.run()->state())) return *printer.run();
  proto::GetRunRequest get;
  get.set_run_id(run_id);
  proto::Run run;
  absl::Status got = client.Unary(absl::StrCat("get run ", run_id), [&](grpc::ClientContext* c) {
    return client.runs()->GetRun(c, get, &run);
  });
  if (!got.ok()) return got;
  return run;
}

}  // namespace tether::tetherctl
