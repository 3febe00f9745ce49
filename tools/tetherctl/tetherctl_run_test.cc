// tetherctl run / runs against the real cloud_server and relay (child processes) and a stub agent
// that holds the machine's private key: the credentials tetherctl sealed reach the agent and open
// to exactly what was typed; --wait follows the run to its end; list, show, logs, cancel.
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "cloud/testing/stub_agent.h"
#include "common/auth/machine_auth.h"
#include "common/base/clock.h"
#include "common/crypto/envelope.h"
#include "common/net/relay_process.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tools/tetherctl/test_support.h"

namespace tether::tetherctl {
namespace {

using ::tether::tetherctl::testing::Cli;
using ::tether::tetherctl::testing::CliResult;
using ::tether::tetherctl::testing::CloudOptions;
using ::tether::tetherctl::testing::CloudProcess;
using ::tether::tetherctl::testing::NewTempDir;
using ::tether::tetherctl::testing::ScriptedPrompt;
using ::tether::tetherctl::testing::TestMachine;
using ::tether::tetherctl::testing::WriteFile;

std::string Describe(const CliResult& r) {
  return absl::StrCat("exit ", r.exit_code, "\nstdout: ", r.out, "\nstderr: ", r.err);
}

template <typename Message>
Message ParseJson(const std::string& text) {
  Message message;
  auto status = google::protobuf::util::JsonStringToMessage(text, &message);
  EXPECT_TRUE(status.ok()) << status.ToString() << "\n" << text;
  return message;
}

constexpr char kEchoFlow[] = R"({
  "name": "Echo",
  "inputs": [{"name": "Greeting", "type": "text"}],
  "outputs": [{"name": "Greeting"}],
  "actions": [{"action": "Variables.SetVariable", "variable": "Copy", "value": "%Greeting%"}]
})";

constexpr char kTypedPassword[] = "pa55 w0rd with spaces";

class TetherctlRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto relay = net::testing::RelayProcess::Start({"--insecure"});
    ASSERT_TRUE(relay.ok()) << relay.status();
    relay_ = *std::move(relay);
    CloudOptions options;
    options.relay_url = relay_->url();
    options.relay_keys_file = absl::StrCat(std::getenv("TEST_TMPDIR"), "/relay-keys");
    auto cloud = CloudProcess::Start(options);
    ASSERT_TRUE(cloud.ok()) << cloud.status();
    cloud_ = *std::move(cloud);

    cli_ = std::make_unique<Cli>(absl::StrCat(NewTempDir("cli"), "/tetherctl.conf"));
    CliResult login = cli_->Login(cloud_->address(), cloud_->token("alice"));
    ASSERT_EQ(login.exit_code, 0) << Describe(login);

    auto machine = testing::RegisterMachine(cloud_->address(), cloud_->token("alice"), "desk");
    ASSERT_TRUE(machine.ok()) << machine.status();
    machine_ = *std::move(machine);
    ASSERT_EQ(machine_->registration.relay_endpoint(), relay_->url());
    agent_ = StartAgent(machine_, /*hold=*/false);
    ASSERT_NE(agent_, nullptr);

    const std::string flow_file = absl::StrCat(NewTempDir("flow"), "/echo.json");
    ASSERT_TRUE(WriteFile(flow_file, kEchoFlow, 0644).ok());
    CliResult flow = cli_->Run({"flows", "create", "Echo", "--file", flow_file});
    ASSERT_EQ(flow.exit_code, 0) << Describe(flow);
    // The password is typed at a (scripted) terminal, as a user would.
    CliResult connection = cli_->Run(
        {"--json", "connections", "create", "desk-alice", "--machine", "desk", "--username", "alice"},
        ScriptedPrompt({kTypedPassword}));
    ASSERT_EQ(connection.exit_code, 0) << Describe(connection);
    connection_ = ParseJson<proto::Connection>(connection.out);
  }

  // A stub agent listening on the machine's relay entity with Listen tokens from GetListenToken,
  // signed with the machine's Ed25519 key.
  std::unique_ptr<cloud::testing::StubAgent> StartAgent(std::shared_ptr<TestMachine> machine, bool hold) {
    cloud::testing::StubAgentOptions options;
    options.relay_url = machine->registration.relay_endpoint();
    const std::string& entity = machine->registration.entity();
    options.entity = entity.substr(entity.find('/') + 1);  // the relay client adds "hc/"
    options.listener_id = absl::StrCat("agent-", machine->id());
    options.cloud_signing_pub = machine->registration.cloud_signing_pub();
    options.hold_jobs = hold;
    const std::string address = cloud_->address();
    options.token_provider = [machine, address]() -> absl::StatusOr<std::string> {
      proto::GetListenTokenRequest request;
      absl::Status signed_ok =
          auth::SignMachineAuth("/tether.proto.MachineService/GetListenToken", machine->id(),
                                machine->ed25519.private_key, WallNow(), &request);
      if (!signed_ok.ok()) return signed_ok;
      auto stub = proto::MachineService::NewStub(testing::CloudChannel(address));
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
      proto::ListenToken token;
      grpc::Status status = stub->GetListenToken(&context, request, &token);
      if (!status.ok()) {
        return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
      }
      return token.token();
    };
    auto agent = cloud::testing::StubAgent::Start(std::move(options));
    EXPECT_TRUE(agent.ok()) << agent.status();
    return agent.ok() ? *std::move(agent) : nullptr;
  }

  // Polls `runs show RUN --json` until the run is in `state`, with a deadline.
  proto::Run WaitForState(const std::string& run_id, proto::RunState state) {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    proto::Run run;
    while (absl::Now() < deadline) {
      CliResult shown = cli_->Run({"--json", "runs", "show", run_id});
      if (shown.exit_code == 0) {
        run = ParseJson<proto::Run>(shown.out);
        if (run.state() == state) return run;
      }
      absl::SleepFor(absl::Milliseconds(20));  // polling a condition with a deadline
    }
    ADD_FAILURE() << "run " << run_id << " is " << proto::RunState_Name(run.state()) << ", not "
                  << proto::RunState_Name(state);
    return run;
  }

  std::unique_ptr<net::testing::RelayProcess> relay_;
  std::unique_ptr<CloudProcess> cloud_;
  std::unique_ptr<Cli> cli_;
  std::shared_ptr<TestMachine> machine_;
  std::unique_ptr<cloud::testing::StubAgent> agent_;
  proto::Connection connection_;
};

TEST_F(TetherctlRunTest, RunWaitFollowsToTheEndAndTheAgentOpensWhatWasTyped) {
  // The stub agent listens: the machine shows online (relay presence), the other one offline.
  auto offline = testing::RegisterMachine(cloud_->address(), cloud_->token("alice"), "laptop");
  ASSERT_TRUE(offline.ok()) << offline.status();
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  CliResult machines_list;
  while (absl::Now() < deadline) {
    machines_list = cli_->Run({"--json", "machines", "list"});
    ASSERT_EQ(machines_list.exit_code, 0) << Describe(machines_list);
    auto machines = ParseJson<proto::ListMachinesResponse>(machines_list.out);
    bool desk_online = false;
    for (const proto::Machine& m : machines.machines()) {
      desk_online |= m.machine_id() == machine_->id() && m.status() == proto::MACHINE_STATUS_ONLINE;
    }
    if (desk_online) break;
    absl::SleepFor(absl::Milliseconds(20));  // polling a condition with a deadline
  }
  machines_list = cli_->Run({"machines", "list"});
  EXPECT_NE(machines_list.out.find("online"), std::string::npos) << machines_list.out;
  EXPECT_NE(machines_list.out.find("offline"), std::string::npos) << machines_list.out;

  CliResult run = cli_->Run({"run", "Echo", "--connection", "desk-alice", "--input", "Greeting=hello",
                             "--timeout", "90s", "--wait"});
  ASSERT_EQ(run.exit_code, 0) << Describe(run);
  EXPECT_NE(run.out.find("runner: line 1"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("output result = ok:alice"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find(" succeeded in "), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("  result = ok:alice"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("  Greeting = hello"), std::string::npos) << run.out;

  // The agent received exactly one job, and the envelope in it opens with the machine's private
  // key, for this connection id, to the username and password typed into tetherctl.
  std::vector<std::string> jobs = agent_->accepted_jobs();
  ASSERT_EQ(jobs.size(), 1u);
  absl::StatusOr<proto::JobRequest> job = agent_->request(jobs[0]);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->connection_id(), connection_.connection_id());
  EXPECT_EQ(job->inputs().at("Greeting"), "hello");
  EXPECT_EQ(job->timeout_ms(), 90'000);
  EXPECT_EQ(job->credentials().recipient_key_id(), connection_.recipient_key_id());
  absl::StatusOr<crypto::Credentials> opened =
      crypto::OpenCredentials(job->credentials(), machine_->x25519.private_key, job->connection_id());
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(opened->username, "alice");
  EXPECT_EQ(opened->password.view(), kTypedPassword);
  EXPECT_EQ(agent_->bad_signatures(), 0);

  // runs list / show / logs.
  const std::string run_id = job->run_id();
  CliResult list = cli_->Run({"runs", "list", "--state", "succeeded", "--flow", "Echo"});
  ASSERT_EQ(list.exit_code, 0) << Describe(list);
  EXPECT_NE(list.out.find(run_id), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("Echo v1"), std::string::npos) << list.out;
  CliResult none = cli_->Run({"runs", "list", "--state", "failed"});
  EXPECT_EQ(none.out.find(run_id), std::string::npos) << none.out;
  EXPECT_EQ(cli_->Run({"runs", "list", "--state", "exploded"}).exit_code, 1);

  CliResult show = cli_->Run({"runs", "show", run_id});
  ASSERT_EQ(show.exit_code, 0) << Describe(show);
  EXPECT_NE(show.out.find("succeeded"), std::string::npos) << show.out;
  EXPECT_NE(show.out.find(machine_->id()), std::string::npos) << show.out;
  CliResult logs = cli_->Run({"runs", "logs", run_id});
  ASSERT_EQ(logs.exit_code, 0) << Describe(logs);
  EXPECT_NE(logs.out.find("runner: line 2"), std::string::npos) << logs.out;

  // --json: the run's answer and each streamed event parse.
  CliResult json_show = cli_->Run({"--json", "runs", "show", run_id});
  EXPECT_EQ(ParseJson<proto::Run>(json_show.out).state(), proto::RUN_STATE_SUCCEEDED);
  CliResult json_list = cli_->Run({"--json", "runs", "list", "--limit", "1"});
  EXPECT_EQ(ParseJson<proto::ListRunsResponse>(json_list.out).runs_size(), 1);
  CliResult json_run = cli_->Run({"--json", "run", "Echo", "--connection", connection_.connection_id(),
                                  "--input", "Greeting=again", "--wait"});
  ASSERT_EQ(json_run.exit_code, 0) << Describe(json_run);
  std::vector<std::string> lines = absl::StrSplit(absl::StripTrailingAsciiWhitespace(json_run.out), '\n');
  ASSERT_GE(lines.size(), 3u) << json_run.out;
  for (const std::string& line : lines) ParseJson<proto::RunEvent>(line);
  auto last = ParseJson<proto::RunEvent>(lines.back());
  EXPECT_EQ(last.state_changed().state(), proto::RUN_STATE_SUCCEEDED) << lines.back();
  EXPECT_EQ(last.state_changed().outputs().at("Greeting"), "again");
}

TEST_F(TetherctlRunTest, CancellingAHeldRunEndsRunWaitWithExit6) {
  agent_->SetHold(true);
  CliResult waited;
  std::thread watcher([&] {
    waited = cli_->Run({"run", "Echo", "--connection", "desk-alice", "--input", "Greeting=x",
                        "--request-id", "req-1", "--wait"});
  });
  ASSERT_TRUE(agent_->WaitForAccepted(1, absl::Seconds(30)));
  const std::string job_id = agent_->accepted_jobs()[0];
  const std::string run_id = agent_->request(job_id)->run_id();
  WaitForState(run_id, proto::RUN_STATE_RUNNING);
  CliResult running = cli_->Run({"runs", "list", "--state", "running"});
  EXPECT_NE(running.out.find(run_id), std::string::npos) << Describe(running);

  // The same request id returns the same run rather than a second one.
  CliResult repeated = cli_->Run({"run", "Echo", "--connection", "desk-alice", "--input", "Greeting=x",
                                  "--request-id", "req-1"});
  ASSERT_EQ(repeated.exit_code, 0) << Describe(repeated);
  EXPECT_EQ(absl::StripAsciiWhitespace(repeated.out), run_id);

  CliResult cancel = cli_->Run({"runs", "cancel", run_id, "--reason", "changed my mind"});
  EXPECT_EQ(cancel.exit_code, 0) << Describe(cancel);
  watcher.join();
  EXPECT_EQ(waited.exit_code, 6) << Describe(waited);
  EXPECT_NE(waited.out.find(" cancelled"), std::string::npos) << waited.out;

  proto::Run run = WaitForState(run_id, proto::RUN_STATE_CANCELLED);
  EXPECT_EQ(agent_->executions(job_id), 1);
  CliResult again = cli_->Run({"runs", "cancel", run_id});
  EXPECT_EQ(again.exit_code, 1) << Describe(again);  // FAILED_PRECONDITION: already finished
  CliResult follow = cli_->Run({"runs", "logs", run_id, "--follow"});
  EXPECT_EQ(follow.exit_code, 6) << Describe(follow);
}

TEST_F(TetherctlRunTest, QueuedRunOnAnOfflineMachineCancelsAtOnce) {
  auto offline = testing::RegisterMachine(cloud_->address(), cloud_->token("alice"), "laptop");
  ASSERT_TRUE(offline.ok()) << offline.status();
  const std::string password_file = absl::StrCat(NewTempDir("pw"), "/pw");
  ASSERT_TRUE(WriteFile(password_file, "pw\n", 0600).ok());
  CliResult connection = cli_->Run({"connections", "create", "laptop-alice", "--machine", "laptop",
                                    "--username", "alice", "--password-file", password_file});
  ASSERT_EQ(connection.exit_code, 0) << Describe(connection);

  CliResult started = cli_->Run({"run", "Echo", "--connection", "laptop-alice", "--input", "Greeting=x",
                                 "--priority", "high"});
  ASSERT_EQ(started.exit_code, 0) << Describe(started);
  const std::string run_id(absl::StripAsciiWhitespace(started.out));
  EXPECT_TRUE(absl::StartsWith(run_id, "run-")) << started.out;
  // Without --follow, logs shows what is recorded and returns although the run has not ended.
  CliResult logs = cli_->Run({"runs", "logs", run_id});
  EXPECT_EQ(logs.exit_code, 0) << Describe(logs);
  EXPECT_NE(logs.out.find(absl::StrCat(run_id, " queued")), std::string::npos) << logs.out;

  CliResult cancel = cli_->Run({"runs", "cancel", run_id});
  ASSERT_EQ(cancel.exit_code, 0) << Describe(cancel);
  EXPECT_NE(cancel.out.find("cancelled"), std::string::npos) << cancel.out;
  EXPECT_EQ(WaitForState(run_id, proto::RUN_STATE_CANCELLED).priority(), proto::RUN_PRIORITY_HIGH);
}

TEST_F(TetherctlRunTest, RunRefusesUnknownFlowsConnectionsAndInputs) {
  CliResult flow = cli_->Run({"run", "Nope", "--connection", "desk-alice"});
  EXPECT_EQ(flow.exit_code, 2) << Describe(flow);
  CliResult connection = cli_->Run({"run", "Echo", "--connection", "nope", "--input", "Greeting=x"});
  EXPECT_EQ(connection.exit_code, 2) << Describe(connection);
  CliResult input = cli_->Run({"run", "Echo", "--connection", "desk-alice", "--input", "Colour=red"});
  EXPECT_EQ(input.exit_code, 1) << Describe(input);
  EXPECT_NE(input.err.find("Colour"), std::string::npos) << input.err;
  CliResult missing = cli_->Run({"run", "Echo", "--connection", "desk-alice"});
  EXPECT_EQ(missing.exit_code, 1) << Describe(missing);  // Greeting has no default
  CliResult timeout = cli_->Run({"run", "Echo", "--connection", "desk-alice", "--timeout", "soon"});
  EXPECT_EQ(timeout.exit_code, 1) << Describe(timeout);
  EXPECT_EQ(cli_->Run({"runs", "show", "run-nope"}).exit_code, 2);
  EXPECT_EQ(cli_->Run({"runs", "logs", "run-nope", "--follow"}).exit_code, 2);
  EXPECT_EQ(cli_->Run({"runs", "cancel", "run-nope"}).exit_code, 2);
  EXPECT_TRUE(agent_->accepted_jobs().empty());
}

}  // namespace
}  // namespace tether::tetherctl
