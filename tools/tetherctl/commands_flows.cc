// flows, run, runs: desktop flow definitions, starting runs and following them.
#include <sys/stat.h>

#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "tools/tetherctl/commands.h"
#include "tools/tetherctl/output.h"
#include "tools/tetherctl/run_watch.h"

namespace tether::tetherctl {
namespace {

constexpr size_t kMaxFlowFileBytes = 1 << 20;  // the cloud's limit on a definition
constexpr int kDefaultRunsLimit = 20;
constexpr int kMaxRunsLimit = 10'000;

// A flow definition file, whole.
absl::StatusOr<std::string> ReadFlowFile(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read --file ", path));
  }
  if (static_cast<size_t>(st.st_size) > kMaxFlowFileBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is larger than a flow definition may be (1 MiB)"));
  }
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  if (!in) return absl::InvalidArgumentError(absl::StrCat("cannot read --file ", path));
  return text.str();
}

absl::StatusOr<proto::RunState> ParseRunState(absl::string_view text) {
  std::string upper = absl::AsciiStrToUpper(text);
  if (upper.rfind("RUN_STATE_", 0) != 0) upper = absl::StrCat("RUN_STATE_", upper);
  proto::RunState state;
  if (!proto::RunState_Parse(upper, &state) || state == proto::RUN_STATE_UNSPECIFIED) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--state \"", text,
        "\": expected queued, dispatching, running, succeeded, failed, cancelled or timed_out"));
  }
  return state;
}

// ---- flows

absl::Status FlowsCreate(Invocation& inv) {
  absl::StatusOr<std::string> definition = ReadFlowFile(inv.args().Value("file"));
  if (!definition.ok()) return definition.status();
  absl::StatusOr<const CloudClient*> client = inv.Client();
  if (!client.ok()) return client.status();
  proto::CreateFlowRequest request;
  request.set_name(inv.arg(0));
  request.set_definition_json(*std::move(definition));
  proto::Flow flow;
  absl::Status status = (*client)->Unary("", [&](grpc::ClientContext* c) {
    return (*client)->flows()->CreateFlow(c, request, &flow);
  });
  if (!status.ok()) return status;
  absl::StatusOr<bool> json = inv.MaybeJson(flow);
  if (!json.ok() || *json) return json.status();
  inv.out() << "created flow " << flow.flow_id() << " (" << flow.name() << ") version "
            << flow.version() << "\n";
  return absl::OkStatus();
}

absl::Status FlowsUpdate(Invocation& inv) {
  absl::StatusOr<std::string> definition = ReadFlowFile(inv.args().Value("file"));
  if (!definition.ok()) return definition.status();
  absl::StatusOr<const CloudClient*> client = inv.Client();
  if (!client.ok()) return client.status();
  absl::StatusOr<proto::Flow> existing = ResolveFlow(**client, inv.arg(0));
  if (!existing.ok()) return existing.status();
  proto::UpdateFlowRequest request;
  request.set_flow_id(existing->flow_id());
  request.set_definition_json(*std::move(definition));
  proto::Flow flow;
  absl::Status status = (*client)->Unary("", [&](grpc::ClientContext* c) {
    return (*client)->flows()->UpdateFlow(c, request, &flow);
  });
  if (!status.ok()) return status;
  absl::StatusOr<bool> json = inv.MaybeJson(flow);
  if (!json.ok() || *json) return json.status();
  inv.out() << "flow " << flow.flow_id() << " (" << flow.name() << ") is now at version "
            << flow.version() << "\n";
  return absl::OkStatus();
}

absl::Status FlowsList(Invocation& inv) {
  absl::StatusOr<const CloudClient*> client = inv.Client();
  if (!client.ok()) return client.status();
  absl::StatusOr<proto::ListFlowsResponse> all =
      ListAll(**client, (*client)->flows(), &proto::FlowService::Stub::ListFlows);
  if (!all.ok()) return all.status();
  absl::StatusOr<bool> json = inv.MaybeJson(*all);
  if (!json.ok() || *json) return json.status();
  Table table({"FLOW ID", "NAME", "VERSION", "UPDATED"});
  for (const proto::Flow& f : all->flows()) {
    table.AddRow({f.flow_id(), f.name(), absl::StrCat(f.version()), FormatTime(f.created_at_unix_ms())});
  }
  table.Print(inv.out());
  return absl::OkStatus();
}

absl::Status FlowsShow(Invocation& inv) {
  uint32_t version = 0;
  if (inv.args().Has("version") &&
      (!absl::SimpleAtoi(inv.args().Value("version"), &version) || version == 0)) {
    return absl::InvalidArgumentError("--version must be a version number, from 1");
  }
  absl::StatusOr<const CloudClient*> client = inv.Client();
  if (!client.ok()) return client.status();
  absl::StatusOr<proto::Flow> flow = ResolveFlow(**client, inv.arg(0), version);
  if (!flow.ok()) return flow.status();
  absl::StatusOr<bool> json = inv.MaybeJson(*flow);
  if (!json.ok() || *json) return json.status();
  inv.err() << "flow " << flow->flow_id() << " (" << flow->name() << ") version " << flow->version()
            << ", created " << FormatTime(flow->created_at_unix_ms()) << "\n";
  inv.err().flush();
  inv.out() << flow->definition_json();
  if (flow->definition_json().empty() || flow->definition_json().back() != '\n') inv.out() << "\n";
  return absl::OkStatus();
}

// ---- run

absl::Status Run(Invocation& inv) {
  const ParsedArgs& args = inv.args();
  proto::RunFlowRequest request;
  for (const std::string& input : args.Values("input")) {
    const size_t eq = input.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(absl::StrCat("--input \"", input, "\" must be NAME=VALUE"));
    }
    if (!request.mutable_inputs()->insert({input.substr(0, eq), input.substr(eq + 1)}).second) {
      return absl::InvalidArgumentError(absl::StrCat("--input ", input.substr(0, eq), " given twice"));
    }
  }
  const std::string priority = absl::AsciiStrToLower(args.Value("priority", "normal"));
  if (priority == "high") {
    request.set_priority(proto::RUN_PRIORITY_HIGH);
  } else if (priority == "normal") {
    request.set_priority(proto::RUN_PRIORITY_NORMAL);
  } else {
    return absl::InvalidArgumentError("--priority must be high or normal");
  }
  if (args.Has("timeout")) {
    absl::Duration timeout;
    if (!absl::ParseDuration(args.Value("timeout"), &timeout) || timeout <= absl::ZeroDuration() ||
        timeout == absl::InfiniteDuration()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--timeout \"", args.Value("timeout"), "\": expected a positive duration such as 90s, 10m or 1h30m"));
    }
    request.set_timeout_ms(std::max<int64_t>(1, absl::ToInt64Milliseconds(timeout)));
  }
  request.set_request_id(args.Value("request-id"));

  absl::StatusOr<const CloudClient*> client = inv.Client();
  if (!client.ok()) return client.status();
  absl::StatusOr<proto::Flow> flow = ResolveFlow(**client, inv.arg(0));
  if (!flow.ok()) return flow.status();
  absl::StatusOr<proto::Connection> connection = ResolveConnection(**client, args.Value("connection"));
  if (!connection.ok()) return connection.status();
  request.set_flow_id(flow->flow_id());
  request.set_connection_id(connection->connection_id());
  proto::RunFlowResponse started;
  absl::Status status = (*client)->Unary("", [&](grpc::ClientContext* c) {
    return (*client)->runs()->RunFlow(c, request, &started);
  });
  if (!status.ok()) return status;

  if (!args.Has("wait")) {
    absl::StatusOr<bool> json = inv.MaybeJson(started);
    if (!json.ok() || *json) return json.status();
    inv.out() << started.run_id() << "\n";
    inv.err() << "run " << started.run_id() << " of flow " << flow->name() << " v"
              << started.run().flow_version() << " through connection " << connection->name()
              << " is " << RunStateLabel(started.run().state())
              << "; follow it with: tetherctl runs logs " << started.run_id() << " --follow\n";
    return absl::OkStatus();
  }
  if (!inv.json()) {
    inv.err() << "run " << started.run_id() << " of flow " << flow->name() << " v"
              << started.run().flow_version() << " through connection " << connection->name()
              << " (Ctrl-C stops watching; the run goes on)\n";
    inv.err().flush();
  }
  RunEventPrinter printer(inv.out(), inv.json());
  absl::StatusOr<proto::Run> final_run = FollowRun(**client, started.run_id(), FollowOptions(), printer);
  if (!final_run.ok()) return final_run.status();
  inv.exit_code = ExitCodeForRunState(final_run->state());
  return absl::OkStatus();
}

// ---- runs

absl::Status RunsList(Invocation& inv) {
  const ParsedArgs& args = inv.args();
  int limit = kDefaultRunsLimit;
  if (args.Has("limit") &&
      (!absl::SimpleAtoi(args.Value("limit"), &limit) || limit < 1 || limit > kMaxRunsLimit)) {
    return absl::InvalidArgumentError(absl::StrCat("--limit must be 1 to ", kMaxRunsLimit));
  }
  proto::ListRunsRequest request;
  for (const std::string& text : args.Values("state")) {
    absl::StatusOr<proto::RunState> state = ParseRunState(text);
    if (!state.ok()) return state.status();
    request.add_states(*state);
  }
  absl::StatusOr<const CloudClient*> client = inv.Client();
  if (!client.ok()) return client.status();
  const CloudClient& cloud = **client;
  if (args.Has("flow")) {
    absl::StatusOr<proto::Flow> flow = ResolveFlow(cloud, args.Value("flow"));
    if (!flow.ok()) return flow.status();
    request.set_flow_id(flow->flow_id());
  }
  if (args.Has("connection")) {
    absl::StatusOr<proto::Connection> connection = ResolveConnection(cloud, args.Value("connection"));
    if (!connection.ok()) return connection.status();
    request.set_connection_id(connection->connection_id());
  }
  // The cloud filters within each page, so a page may come back short: keep asking until the
  // limit is reached or the listing ends.
  proto::ListRunsResponse all;
  request.set_page_size(std::min(limit, 1000));
  while (all.runs_size() < limit) {
    proto::ListRunsResponse page;
    absl::Status status = cloud.Unary("", [&](grpc::ClientContext* c) {
      return cloud.runs()->ListRuns(c, request, &page);
    });
    if (!status.ok()) return status;
    for (proto::Run& run : *page.mutable_runs()) {
      if (all.runs_size() == limit) break;
      *all.add_runs() = std::move(run);
    }
    if (page.next_page_token().empty() || page.next_page_token() == request.page_token()) break;
    request.set_page_token(page.next_page_token());
  }
  absl::StatusOr<bool> json = inv.MaybeJson(all);
  if (!json.ok() || *json) return json.status();

  // Flow names for the table; ids stand in if the listing fails.
  std::map<std::string, std::string> flow_names;
  absl::StatusOr<proto::ListFlowsResponse> flows =
      ListAll(cloud, cloud.flows(), &proto::FlowService::Stub::ListFlows);
  if (flows.ok()) {
    for (const proto::Flow& flow : flows->flows()) flow_names[flow.flow_id()] = flow.name();
  }
  Table table({"RUN ID", "FLOW", "STATE", "CREATED", "DURATION", "MACHINE"});
  for (const proto::Run& run : all.runs()) {
    auto name = flow_names.find(run.flow_id());
    const int64_t begin = run.started_at_unix_ms() != 0 ? run.started_at_unix_ms() : run.created_at_unix_ms();
    table.AddRow({run.run_id(),
                  absl::StrCat(name != flow_names.end() ? name->second : run.flow_id(), " v",
                               run.flow_version()),
                  RunStateLabel(run.state()), FormatTime(run.created_at_unix_ms()),
                  run.finished_at_unix_ms() != 0 ? FormatDuration(run.finished_at_unix_ms() - begin) : "-",
                  OrDash(run.machine_id())});
  }
  table.Print(inv.out());
  return absl::OkStatus();
}

absl::Status RunsShow(Invocation& inv) {
  absl::StatusOr<const CloudClient*> client = inv.Client();
  if (!client.ok()) return client.status();
  proto::GetRunRequest request;
  request.set_run_id(inv.arg(0));
  proto::Run run;
  absl::Status status = (*client)->Unary("", [&](grpc::ClientContext* c) {
    return (*client)->runs()->GetRun(c, request, &run);
  });
  if (!status.ok()) return status;
  absl::StatusOr<bool> json = inv.MaybeJson(run);
  if (!json.ok() || *json) return json.status();
  Fields fields;
  fields.Add("run id", run.run_id());
  fields.Add("state", RunStateLabel(run.state()) + (run.cancel_requested() ? " (cancel requested)" : ""));
  fields.Add("detail", OrDash(run.state_detail()));
  fields.Add("flow", absl::StrCat(run.flow_id(), " v", run.flow_version()));
  fields.Add("connection", run.connection_id());
  fields.Add("target", TargetText(run.target()));
  fields.Add("machine", OrDash(run.machine_id()));
  fields.Add("priority", EnumLabel(proto::RunPriority_Name(run.priority()), "RUN_PRIORITY_"));
  fields.Add("timeout", FormatDuration(run.timeout_ms()));
  fields.Add("created", FormatTime(run.created_at_unix_ms()));
  fields.Add("dispatched", FormatTime(run.dispatched_at_unix_ms()));
  fields.Add("started", FormatTime(run.started_at_unix_ms()));
  fields.Add("finished", FormatTime(run.finished_at_unix_ms()));
  fields.Add("attempts", absl::StrCat(run.attempt_count()));
  fields.Add("job id", run.job_id());
  std::map<std::string, std::string> inputs(run.inputs().begin(), run.inputs().end());
  for (const auto& [name, value] : inputs) fields.Add(absl::StrCat("input ", name), value);
  std::map<std::string, std::string> outputs(run.outputs().begin(), run.outputs().end());
  for (const auto& [name, value] : outputs) fields.Add(absl::StrCat("output ", name), value);
  if (run.has_error() && !run.error().message().empty()) {
    std::string error = run.error().message();
    if (run.error().has_action_index()) {
      absl::StrAppend(&error, " (action [", run.error().action_index(), "] ", run.error().action_name(),
                      run.error().action_path().empty() ? "" : absl::StrCat(" at ", run.error().action_path()),
                      ")");
    }
    fields.Add("error", error);
  }
  fields.Print(inv.out());
  return absl::OkStatus();
}

absl::Status RunsLogs(Invocation& inv) {
  absl::StatusOr<const CloudClient*> client = inv.Client();
  if (!client.ok()) return client.status();
  FollowOptions options;
  options.until_terminal = inv.args().Has("follow");
  RunEventPrinter printer(inv.out(), inv.json());
  absl::StatusOr<proto::Run> run = FollowRun(**client, inv.arg(0), options, printer);
  if (!run.ok()) return run.status();
  if (options.until_terminal) inv.exit_code = ExitCodeForRunState(run->state());
  return absl::OkStatus();
}

absl::Status RunsCancel(Invocation& inv) {
  absl::StatusOr<const CloudClient*> client = inv.Client();
  if (!client.ok()) return client.status();
  proto::CancelRunRequest request;
  request.set_run_id(inv.arg(0));
  request.set_reason(inv.args().Value("reason"));
  proto::Run run;
  absl::Status status = (*client)->Unary("", [&](grpc::ClientContext* c) {
    return (*client)->runs()->CancelRun(c, request, &run);
  });
  if (!status.ok()) return status;
  absl::StatusOr<bool> json = inv.MaybeJson(run);
  if (!json.ok() || *json) return json.status();
  if (IsTerminal(run.state())) {
    inv.out() << run.run_id() << " " << RunStateLabel(run.state()) << "\n";
  } else {
    inv.out() << run.run_id() << " is being cancelled on " << OrDash(run.machine_id())
              << " (tetherctl runs logs " << run.run_id() << " --follow shows the end)\n";
  }
  return absl::OkStatus();
}

}  // namespace

std::vector<Command> FlowCommands() {
  const std::string kIdOrName = "ID may also be the flow's name.\n";
  return {
      {"flows create", "NAME", "create a desktop flow from its JSON definition (docs/FLOWS.md)",
       "The cloud validates the definition: an unknown action, a bad variable reference or\n"
       "malformed JSON is refused with the JSON path of the error.\n",
       {{"file", "FILE.json", "the flow definition", false, true}}, 1, 1, FlowsCreate},
      {"flows update", "ID", "add a version to a flow", kIdOrName,
       {{"file", "FILE.json", "the new flow definition", false, true}}, 1, 1, FlowsUpdate},
      {"flows list", "", "your flows, latest version of each", "", {}, 0, 0, FlowsList},
      {"flows show", "ID", "print a flow's definition JSON", kIdOrName,
       {{"version", "N", "this version instead of the latest"}}, 1, 1, FlowsShow},
      {"run", "FLOW", "run a flow through a connection",
       "FLOW and the connection may be names or ids. Without --wait, prints the run id. With\n"
       "--wait, follows the run live: state changes, one line per action started and finished,\n"
       "log lines prefixed by their stream, outputs, and the final state; the exit code is then\n"
       "0 if it succeeded, 5 if it failed, 6 if it was cancelled or timed out.\n",
       {{"connection", "C", "the connection (account and target) to run through", false, true},
        {"input", "NAME=VALUE", "a flow input", true},
        {"priority", "high|normal", "queue priority (default normal)"},
        {"timeout", "DURATION", "maximum run time on the desktop, e.g. 90s, 10m, 1h30m"},
        {"request-id", "ID", "idempotency key: repeating it returns the first run instead of a new one"},
        {"wait", "", "follow the run until it ends"}},
       1, 1, Run},
      {"runs list", "", "your runs, newest first", "",
       {{"state", "STATE", "only runs in this state (queued, dispatching, running, succeeded, failed, "
                           "cancelled, timed_out)", true},
        {"flow", "F", "only runs of this flow (name or id)"},
        {"connection", "C", "only runs through this connection (name or id)"},
        {"limit", "N", "at most N runs (default 20)"}},
       0, 0, RunsList},
      {"runs show", "RUN_ID", "one run: state, times, inputs, outputs, error", "", {}, 1, 1, RunsShow},
      {"runs logs", "RUN_ID", "a run's history: state changes, actions, log lines, outputs",
       "Without --follow, prints what the cloud has recorded so far. With --follow, keeps printing\n"
       "until the run ends and exits like run --wait (0, 5 or 6).\n",
       {{"follow", "", "keep following until the run ends"}}, 1, 1, RunsLogs},
      {"runs cancel", "RUN_ID", "cancel a run (queued: at once; running: on the desktop)", "",
       {{"reason", "TEXT", "why, shown in the run's history"}}, 1, 1, RunsCancel},
  };
}

}  // namespace tether::tetherctl
