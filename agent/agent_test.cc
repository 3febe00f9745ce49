// The agent binary end to end against a real cloud (in-process), a real relay and the real flow
// runner: register, join-group, run jobs as a local account, and every bad input of the agent
// issue. The test also plays a forged "cloud" sending crafted messages straight through the relay,
// and (gateway mode) a gateway member: its GatewayService in this process, forwarding jobs.
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/accounts/file_verifier.h"
#include "cloud/testing/cloud_harness.h"
#include "common/base/clock.h"
#include "common/base/hex.h"
#include "common/crypto/digest.h"
#include "common/crypto/ed25519.h"
#include "common/crypto/envelope.h"
#include "common/crypto/key_file.h"
#include "common/net/relay_process.h"
#include "common/net/relay_sender.h"
#include "common/proto/gateway.grpc.pb.h"
#include "common/proto/signing_input.h"
#include "gmock/gmock.h"
#include "common/testing/child_process.h"
#include "gtest/gtest.h"

namespace tether::agent {
namespace {

using Child = ::tether::testing::ChildProcess;
using ::tether::testing::ReadFileOrEmpty;
std::string ReadFile(const std::string& path) { return ReadFileOrEmpty(path); }

using ::testing::HasSubstr;
using cloud::testing::CloudHarness;

constexpr absl::Duration kWait = absl::Seconds(30);

std::string TempDir() { return std::getenv("TEST_TMPDIR"); }

void WriteFile(const std::string& path, const std::string& text, mode_t mode = 0600) {
  {
    std::ofstream out(path, std::ios::trunc);
    out << text;
  }
  chmod(path.c_str(), mode);
}

constexpr char kAgent[] = "agent/agent";
constexpr char kRunner[] = "agent/runner/flow_runner";

class AgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto harness = CloudHarness::Start();
    ASSERT_TRUE(harness.ok()) << harness.status();
    h_ = *std::move(harness);
    auto token = h_->CreateUser("alice");
    ASSERT_TRUE(token.ok());
    token_ = *token;
    static int counter = 0;
    dir_ = absl::StrCat(TempDir(), "/agent-", ++counter);
    mkdir(dir_.c_str(), 0700);
    data_dir_ = dir_ + "/data";
    token_file_ = dir_ + "/token";
    WriteFile(token_file_, token_ + "\n");
    // The account jobs run as: the user this test runs as, with a password in a file backend.
    account_ = getpwuid(geteuid())->pw_name;
    accounts_file_ = dir_ + "/accounts";
    auto line = accounts::MakeFileAccountLine(account_, crypto::SecretBytes("desk-pass"),
                                              {.n = 1 << 10, .r = 8, .p = 1});
    ASSERT_TRUE(line.ok()) << line.status();
    WriteFile(accounts_file_, *line + "\n");
    connections_ = proto::ConnectionService::NewStub(h_->channel());
    flows_ = proto::FlowService::NewStub(h_->channel());
    runs_ = proto::RunService::NewStub(h_->channel());
    machines_ = proto::MachineService::NewStub(h_->channel());
  }

  int AgentCommand(std::vector<std::string> args, std::string* err = nullptr) {
    std::vector<std::string> argv = {kAgent};
    argv.insert(argv.end(), args.begin(), args.end());
    Child child(argv);
    int code = child.Wait();
    if (err != nullptr) *err = child.err() + child.out();
    return code;
  }

  std::string CloudAddress() const { return absl::StrCat("127.0.0.1:", h_->cloud().port()); }

  void Register(std::vector<std::string> extra = {}) {
    std::string err;
    std::vector<std::string> args = {"register", "--cloud", CloudAddress(), "--insecure", "--token-file",
                                     token_file_, "--name", "desk-1", "--data_dir", data_dir_};
    args.insert(args.end(), extra.begin(), extra.end());
    ASSERT_EQ(AgentCommand(args, &err), 0) << err;
    proto::ListMachinesResponse list;
    ASSERT_TRUE(machines_->ListMachines(CloudHarness::Context(token_).get(), {}, &list).ok());
    ASSERT_EQ(list.machines_size(), 1);
    machine_ = list.machines(0);
  }

  std::unique_ptr<Child> StartAgent(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {kAgent, "run", "--data_dir", data_dir_, "--accounts",
                                     "file:" + accounts_file_, "--runner", kRunner};
    args.insert(args.end(), extra.begin(), extra.end());
    auto child = std::make_unique<Child>(args);
    // Online once the relay lists it (the cloud's presence view).
    const absl::Time deadline = absl::Now() + kWait;
    proto::GetMachineRequest get;
    get.set_machine_id(machine_.machine_id());
    while (absl::Now() < deadline) {
      proto::Machine machine;
      if (machines_->GetMachine(CloudHarness::Context(token_).get(), get, &machine).ok() &&
          machine.status() != proto::MACHINE_STATUS_OFFLINE) {
        break;
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
    return child;
  }

  std::string Connection(const std::string& username, const std::string& password,
                         bool tamper = false) {
    static int counter = 0;
    const std::string id = absl::StrCat("conn-agent-test-", 1000 + ++counter);
    proto::CreateConnectionRequest request;
    request.set_connection_id(id);
    request.set_name(id);
    request.mutable_target()->set_machine_id(machine_.machine_id());
    request.set_username(username);
    request.set_mode(proto::RUN_MODE_UNATTENDED);
    auto sealed = crypto::SealCredentials(machine_.x25519_pub(), id,
                                          {username, crypto::SecretBytes(password)});
    EXPECT_TRUE(sealed.ok());
    if (tamper) {
      std::string ciphertext = sealed->ciphertext();
      ciphertext[ciphertext.size() / 2] ^= 0x01;
      sealed->set_ciphertext(ciphertext);
    }
    *request.mutable_sealed_credentials() = *sealed;
    last_ciphertext_ = sealed->ciphertext();
    proto::Connection connection;
    grpc::Status status =
        connections_->CreateConnection(CloudHarness::Context(token_).get(), request, &connection);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return id;
  }

  std::string Flow(const std::string& json) {
    static int counter = 0;
    proto::CreateFlowRequest request;
    request.set_name(absl::StrCat("flow-", ++counter));
    request.set_definition_json(json);
    proto::Flow flow;
    grpc::Status status = flows_->CreateFlow(CloudHarness::Context(token_).get(), request, &flow);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return flow.flow_id();
  }

  proto::Run RunAndWait(const std::string& flow_id, const std::string& connection_id,
                        std::map<std::string, std::string> inputs = {}) {
    proto::RunFlowRequest request;
    request.set_flow_id(flow_id);
    request.set_connection_id(connection_id);
    for (const auto& [k, v] : inputs) (*request.mutable_inputs())[k] = v;
    proto::RunFlowResponse response;
    grpc::Status status = runs_->RunFlow(CloudHarness::Context(token_).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return WaitForEnd(response.run_id());
  }

  proto::Run WaitForEnd(const std::string& run_id) {
    const absl::Time deadline = absl::Now() + kWait;
    proto::GetRunRequest get;
    get.set_run_id(run_id);
    proto::Run run;
    while (absl::Now() < deadline) {
      runs_->GetRun(CloudHarness::Context(token_).get(), get, &run);
      if (run.state() >= proto::RUN_STATE_SUCCEEDED) break;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return run;
  }

  std::unique_ptr<CloudHarness> h_;
  std::string token_, dir_, data_dir_, token_file_, account_, accounts_file_;
  std::string last_ciphertext_;  // of the envelope Connection() sealed last
  proto::Machine machine_;
  std::unique_ptr<proto::ConnectionService::Stub> connections_;
  std::unique_ptr<proto::FlowService::Stub> flows_;
  std::unique_ptr<proto::RunService::Stub> runs_;
  std::unique_ptr<proto::MachineService::Stub> machines_;
};

TEST_F(AgentTest, RegistersOnceKeepsItsKeysPrivateAndRefusesASecondRegistration) {
  Register();
  for (const char* file : {"machine-x25519.key", "machine-ed25519.key", "agent.conf"}) {
    struct stat st;
    ASSERT_EQ(stat((data_dir_ + "/" + file).c_str(), &st), 0) << file;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << file;
  }
  // The cloud got the public key that matches the private key on disk.
  auto key = crypto::ReadSecretFile(data_dir_ + "/machine-x25519.key");
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(*crypto::X25519PublicKey(*key), machine_.x25519_pub());
  std::string err;
  EXPECT_EQ(AgentCommand({"register", "--cloud", CloudAddress(), "--insecure", "--token-file", token_file_,
                          "--name", "desk-1b", "--data_dir", data_dir_},
                         &err),
            1);
  EXPECT_THAT(err, HasSubstr("already registered as machine " + machine_.machine_id()));
  // A bad token registers nothing.
  WriteFile(dir_ + "/bad-token", "tt_bogus\n");
  EXPECT_EQ(AgentCommand({"register", "--cloud", CloudAddress(), "--insecure", "--token-file",
                          dir_ + "/bad-token", "--name", "x", "--data_dir", dir_ + "/other"},
                         &err),
            3);
  EXPECT_THAT(err, HasSubstr("unknown API token"));
  EXPECT_NE(access((dir_ + "/other/agent.conf").c_str(), F_OK), 0);
}

TEST_F(AgentTest, RunsAFlowAsTheAccountAndReportsEventsAndOutputs) {
  Register();
  auto agent = StartAgent();
  const std::string out = dir_ + "/out.txt";
  const std::string flow = Flow(absl::StrCat(R"({"name":"hello","inputs":[{"name":"Who","type":"text"}],
    "outputs":[{"name":"Greeting"},{"name":"Echoed"}],
    "actions":[{"action":"Variables.SetVariable","variable":"Greeting","value":"hello %Who%"},
               {"action":"File.WriteText","path":")", out, R"(","text":"%Greeting%"},
               {"action":"System.RunApplication","path":"/bin/echo","arguments":["from","echo"],
                "stdout_variable":"Echoed"}]})"));
  proto::Run run = RunAndWait(flow, Connection(account_, "desk-pass"), {{"Who", "tether"}});
  ASSERT_EQ(run.state(), proto::RUN_STATE_SUCCEEDED) << run.error().message() << "\n" << agent->err();
  EXPECT_EQ(run.outputs().at("Greeting"), "hello tether");
  EXPECT_THAT(run.outputs().at("Echoed"), HasSubstr("from echo"));
  EXPECT_EQ(ReadFile(out), "hello tether");
  // The decrypted password never reached the agent's log, and the envelope (which the machine key
  // beside it would open) is not kept in the agent's data directory: not in the ledger's WAL,
  // SSTs or anything else.
  EXPECT_THAT(agent->err(), ::testing::Not(HasSubstr("desk-pass")));
  ASSERT_FALSE(last_ciphertext_.empty());
  int files = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(data_dir_)) {
    if (!entry.is_regular_file()) continue;
    ++files;
    EXPECT_THAT(ReadFile(entry.path().string()), ::testing::Not(HasSubstr(last_ciphertext_)))
        << entry.path();
  }
  EXPECT_GT(files, 3);
  // `agent status` tells what happened.
  std::string status;
  EXPECT_EQ(AgentCommand({"status", "--data_dir", data_dir_}, &status), 0);
  EXPECT_THAT(status, HasSubstr(machine_.machine_id()));
  // The key id the portal shows before sealing, computed here from the machine's own key file.
  EXPECT_THAT(status, HasSubstr(absl::StrCat("key id       ", HexEncode(crypto::KeyId(machine_.x25519_pub())))));
  EXPECT_THAT(status, HasSubstr(run.job_id()));
  EXPECT_THAT(status, HasSubstr("JOB_STATE_SUCCEEDED"));
}

TEST_F(AgentTest, RefusesWrongPasswordsUnknownAccountsAndTamperedEnvelopes) {
  Register();
  auto agent = StartAgent();
  const std::string flow = Flow(R"({"name":"x","actions":[{"action":"Flow.Wait","duration_ms":0}]})");
  struct Case {
    std::string name;
    std::string connection;
    std::string message;
  };
  std::vector<Case> cases = {
      {"wrong password", Connection(account_, "not-the-password"),
       "JOB_REJECT_CODE_ACCOUNT_VERIFICATION_FAILED"},
      {"unknown local account", Connection("no-such-user-xyz", "pw"),
       "JOB_REJECT_CODE_ACCOUNT_VERIFICATION_FAILED"},
      {"tampered envelope", Connection(account_, "desk-pass", /*tamper=*/true),
       "JOB_REJECT_CODE_CREDENTIALS_UNREADABLE"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    proto::Run run = RunAndWait(flow, c.connection);
    EXPECT_EQ(run.state(), proto::RUN_STATE_FAILED);
    EXPECT_THAT(run.error().message(), HasSubstr(c.message));
  }
  EXPECT_THAT(agent->err(), HasSubstr("job_refused"));
}

TEST_F(AgentTest, AFailingFlowNamesTheActionAndStopsThere) {
  Register();
  auto agent = StartAgent();
  const std::string later = dir_ + "/never.txt";
  struct Case {
    std::string name;
    std::string actions;
    std::string message;
  };
  std::vector<Case> cases = {
      {"Flow.Fail midway", R"({"action":"Flow.Fail","message":"stop here"})", "stop here"},
      {"missing program", R"({"action":"System.RunApplication","path":"/no/such/program"})", "cannot run"},
      {"process outlives its timeout",
       R"({"action":"System.RunApplication","path":"/bin/sleep","arguments":["30"],"timeout_ms":300})",
       "timed out"},
      {"output over the capture limit",
       R"({"action":"System.RunApplication","path":"/bin/sh","arguments":["-c","head -c 3000000 /dev/zero | tr '\\0' a"],"stdout_variable":"Big"})",
       "capture limit"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string flow = Flow(absl::StrCat(
        R"({"name":"x","actions":[{"action":"Variables.SetVariable","variable":"A","value":"1"},)",
        c.actions, R"(,{"action":"File.WriteText","path":")", later, R"(","text":"no"}]})"));
    proto::Run run = RunAndWait(flow, Connection(account_, "desk-pass"));
    EXPECT_EQ(run.state(), proto::RUN_STATE_FAILED);
    EXPECT_THAT(run.error().message(), HasSubstr(c.message));
    EXPECT_EQ(run.error().action_index(), 1u);
    EXPECT_EQ(run.error().action_path(), "$.actions[1]");
    EXPECT_NE(access(later.c_str(), F_OK), 0) << "a later action ran";
  }
}

TEST_F(AgentTest, ARelayDropMidJobLosesNothing) {
  Register();
  auto agent = StartAgent();
  const std::string flow = Flow(R"({"name":"x","outputs":[{"name":"Done"}],"actions":[
      {"action":"Flow.Wait","duration_ms":1500},
      {"action":"Variables.SetVariable","variable":"Done","value":"yes"}]})");
  proto::RunFlowRequest request;
  request.set_flow_id(flow);
  request.set_connection_id(Connection(account_, "desk-pass"));
  proto::RunFlowResponse response;
  ASSERT_TRUE(runs_->RunFlow(CloudHarness::Context(token_).get(), request, &response).ok());
  // Wait until it runs, then take the relay away and bring it back.
  const absl::Time deadline = absl::Now() + kWait;
  proto::Run run;
  proto::GetRunRequest get;
  get.set_run_id(response.run_id());
  while (absl::Now() < deadline && run.state() != proto::RUN_STATE_RUNNING) {
    runs_->GetRun(CloudHarness::Context(token_).get(), get, &run);
  }
  ASSERT_EQ(run.state(), proto::RUN_STATE_RUNNING);
  ASSERT_TRUE(h_->relay().Restart().ok());
  run = WaitForEnd(response.run_id());
  EXPECT_EQ(run.state(), proto::RUN_STATE_SUCCEEDED) << run.error().message();
  EXPECT_EQ(run.outputs().at("Done"), "yes");
}

TEST_F(AgentTest, SigtermFinishesTheRunningJobFirst) {
  Register();
  auto agent = StartAgent();
  const std::string flow = Flow(R"({"name":"x","actions":[{"action":"Flow.Wait","duration_ms":800}]})");
  proto::RunFlowRequest request;
  request.set_flow_id(flow);
  request.set_connection_id(Connection(account_, "desk-pass"));
  proto::RunFlowResponse response;
  ASSERT_TRUE(runs_->RunFlow(CloudHarness::Context(token_).get(), request, &response).ok());
  proto::GetRunRequest get;
  get.set_run_id(response.run_id());
  proto::Run run;
  const absl::Time deadline = absl::Now() + kWait;
  while (absl::Now() < deadline && run.state() != proto::RUN_STATE_RUNNING) {
    runs_->GetRun(CloudHarness::Context(token_).get(), get, &run);
  }
  agent->Signal(SIGTERM);
  EXPECT_EQ(agent->Wait(), 0) << agent->err();
  run = WaitForEnd(response.run_id());
  EXPECT_EQ(run.state(), proto::RUN_STATE_SUCCEEDED);
}

// The test as a forged cloud: it opens a channel to the agent through the relay (a Send token is
// all the relay asks) and sends crafted jobs. Only the cloud's signature makes a job run.
TEST_F(AgentTest, UnsignedForgedReplayedAndMisaddressedJobsAreRefused) {
  Register();
  auto agent = StartAgent();
  auto cloud_key = crypto::ReadSecretFile(h_->data_dir() + "/cloud-signing.key");
  ASSERT_TRUE(cloud_key.ok());
  auto cloud_pub = crypto::Ed25519PublicKey(*cloud_key);
  const std::string key_id = HexEncode(crypto::KeyId(*cloud_pub));
  auto forger = crypto::GenerateEd25519KeyPair();
  const std::string marker = dir_ + "/injected.txt";

  auto make_job = [&](const std::string& job_id, const std::string& machine_id) {
    proto::JobRequest job;
    job.set_job_id(job_id);
    job.set_run_id("run-forged");
    job.mutable_target()->set_machine_id(machine_id);
    job.set_flow_definition_json(absl::StrCat(
        R"({"name":"x","actions":[{"action":"File.WriteText","path":")", marker, R"(","text":"pwned"}]})"));
    const std::string id = "conn-forged-000000001";
    *job.mutable_credentials() = *crypto::SealCredentials(machine_.x25519_pub(), id,
                                                          {account_, crypto::SecretBytes("desk-pass")});
    job.set_connection_id(id);
    job.set_username(account_);
    job.set_mode(proto::RUN_MODE_UNATTENDED);
    job.set_timeout_ms(10000);
    job.set_issued_at_unix_ms(absl::ToUnixMillis(WallNow()));
    job.set_expires_at_unix_ms(absl::ToUnixMillis(WallNow() + absl::Minutes(5)));
    return job;
  };
  auto sign = [&](const proto::JobRequest& job, const crypto::SecretBytes& key) {
    proto::ChannelMessage message;
    message.mutable_job_request()->set_job_request(job.SerializeAsString());
    message.mutable_job_request()->set_signature(
        *crypto::Ed25519Sign(key, proto::JobRequestSigningInput(message.job_request().job_request())));
    message.mutable_job_request()->set_key_id(key_id);
    return message.SerializeAsString();
  };
  net::SenderOptions sender;
  sender.relay_url = h_->relay().url();
  sender.entity = machine_.entity().substr(3);
  sender.token = net::testing::MakeToken(net::testing::kSendKey, sender.entity, absl::Minutes(5));
  auto channel = net::RelaySender::Connect(sender);
  ASSERT_TRUE(channel.ok()) << channel.status();
  // Sends one message and returns the answer to it (events of a running job are skipped).
  auto exchange = [&](const std::string& bytes) {
    EXPECT_TRUE((*channel)->Send(bytes).ok());
    proto::ChannelMessage message;
    for (int i = 0; i < 20; ++i) {
      auto reply = (*channel)->Receive(kWait);
      EXPECT_TRUE(reply.ok() && message.ParseFromString(*reply));
      if (!reply.ok() || !message.has_job_event()) break;
    }
    return message;
  };

  // Unsigned.
  proto::ChannelMessage unsigned_job;
  unsigned_job.mutable_job_request()->set_job_request(make_job("job-unsigned", machine_.machine_id()).SerializeAsString());
  unsigned_job.mutable_job_request()->set_key_id(key_id);
  proto::ChannelMessage reply = exchange(unsigned_job.SerializeAsString());
  EXPECT_EQ(reply.job_rejected().code(), proto::JOB_REJECT_CODE_BAD_SIGNATURE);
  // Signed by someone else.
  reply = exchange(sign(make_job("job-forged", machine_.machine_id()), forger->private_key));
  EXPECT_EQ(reply.job_rejected().code(), proto::JOB_REJECT_CODE_BAD_SIGNATURE);
  // Properly signed but for another machine.
  reply = exchange(sign(make_job("job-elsewhere", "m-somebody-else"), *cloud_key));
  EXPECT_EQ(reply.job_rejected().code(), proto::JOB_REJECT_CODE_WRONG_TARGET);
  // Expired.
  proto::JobRequest old = make_job("job-old", machine_.machine_id());
  old.set_expires_at_unix_ms(absl::ToUnixMillis(WallNow() - absl::Minutes(1)));
  reply = exchange(sign(old, *cloud_key));
  EXPECT_EQ(reply.job_rejected().code(), proto::JOB_REJECT_CODE_EXPIRED);
  EXPECT_NE(access(marker.c_str(), F_OK), 0) << "a refused job ran";

  // A genuine job runs once; replaying the same signed bytes is answered, not run again.
  const std::string genuine = sign(make_job("job-genuine", machine_.machine_id()), *cloud_key);
  reply = exchange(genuine);
  ASSERT_TRUE(reply.has_job_accepted()) << reply.DebugString();
  EXPECT_FALSE(reply.job_accepted().duplicate());
  bool finished = false;
  for (int i = 0; i < 10 && !finished; ++i) {
    auto next = (*channel)->Receive(kWait);
    proto::ChannelMessage message;
    if (next.ok() && message.ParseFromString(*next) && message.has_job_result()) {
      EXPECT_EQ(message.job_result().state(), proto::JOB_STATE_SUCCEEDED);
      finished = true;
    }
  }
  ASSERT_TRUE(finished);
  EXPECT_EQ(ReadFile(marker), "pwned");
  unlink(marker.c_str());
  reply = exchange(genuine);
  ASSERT_TRUE(reply.has_job_accepted());
  EXPECT_TRUE(reply.job_accepted().duplicate());
  EXPECT_NE(access(marker.c_str(), F_OK), 0) << "a replayed job ran again";

  // One job at a time: while a long one runs, another is answered Busy.
  proto::JobRequest long_job = make_job("job-long", machine_.machine_id());
  long_job.set_flow_definition_json(R"({"name":"x","actions":[{"action":"Flow.Wait","duration_ms":2000}]})");
  reply = exchange(sign(long_job, *cloud_key));
  ASSERT_TRUE(reply.has_job_accepted()) << reply.DebugString();
  reply = exchange(sign(make_job("job-second", machine_.machine_id()), *cloud_key));
  EXPECT_TRUE(reply.has_busy()) << reply.DebugString();
  EXPECT_THAT(reply.busy().reason(), HasSubstr("job-long"));
}

TEST_F(AgentTest, JoinGroupWithAWrongPasswordStoresNothing) {
  Register();
  WriteFile(dir_ + "/group-pw", "right horse battery\n");
  std::string err;
  ASSERT_EQ(AgentCommand({"join-group", "--group", "floor-3", "--create", "--password-file",
                          dir_ + "/group-pw", "--token-file", token_file_, "--data_dir", data_dir_},
                         &err),
            0)
      << err;
  EXPECT_EQ(access((data_dir_ + "/group-x25519.key").c_str(), F_OK), 0);

  // A second machine with the wrong password: refused, nothing stored, not a member.
  const std::string second = dir_ + "/data2";
  ASSERT_EQ(AgentCommand({"register", "--cloud", CloudAddress(), "--insecure", "--token-file", token_file_,
                          "--name", "desk-2", "--data_dir", second},
                         &err),
            0)
      << err;
  WriteFile(dir_ + "/wrong-pw", "wrong horse\n");
  EXPECT_EQ(AgentCommand({"join-group", "--group", "floor-3", "--password-file", dir_ + "/wrong-pw",
                          "--token-file", token_file_, "--data_dir", second},
                         &err),
            3);
  EXPECT_THAT(err, HasSubstr("wrong password"));
  EXPECT_NE(access((second + "/group-x25519.key").c_str(), F_OK), 0);
  EXPECT_THAT(ReadFile(second + "/agent.conf"), ::testing::Not(HasSubstr("group_id")));
  EXPECT_EQ(AgentCommand({"join-group", "--group", "floor-3", "--password-file", dir_ + "/group-pw",
                          "--token-file", token_file_, "--data_dir", second},
                         &err),
            0)
      << err;
  EXPECT_THAT(ReadFile(second + "/agent.conf"), HasSubstr("group_id"));
}

// Live progress: an action's start reaches watchers while the action runs, even when the runner
// wrote several events at once (they used to wait in the agent's read buffer for the next write).
TEST_F(AgentTest, ProgressReachesWatchersWhileTheActionRuns) {
  Register();
  auto agent = StartAgent();
  const std::string flow = Flow(R"({"name":"x","actions":[
      {"action":"Variables.SetVariable","variable":"A","value":"1"},
      {"action":"System.RunApplication","path":"/bin/sleep","arguments":["60"]}]})");
  proto::RunFlowRequest request;
  request.set_flow_id(flow);
  request.set_connection_id(Connection(account_, "desk-pass"));
  proto::RunFlowResponse response;
  ASSERT_TRUE(runs_->RunFlow(CloudHarness::Context(token_).get(), request, &response).ok());

  proto::WatchRunRequest watch;
  watch.set_run_id(response.run_id());
  auto context = CloudHarness::Context(token_);
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  auto reader = runs_->WatchRun(context.get(), watch);
  proto::RunEvent event;
  bool sleep_started = false;
  bool ended = false;
  while (!sleep_started && reader->Read(&event)) {
    if (event.has_job_event() && event.job_event().has_action_started() &&
        event.job_event().action_started().index() == 1) {
      sleep_started = true;
    }
    if (event.has_state_changed() && event.state_changed().state() >= proto::RUN_STATE_SUCCEEDED) {
      ended = true;
    }
  }
  context->TryCancel();
  EXPECT_TRUE(sleep_started) << "action 1's start did not arrive while it ran\n" << agent->err();
  EXPECT_FALSE(ended);

  proto::CancelRunRequest cancel;
  cancel.set_run_id(response.run_id());
  proto::Run run;
  ASSERT_TRUE(runs_->CancelRun(CloudHarness::Context(token_).get(), cancel, &run).ok());
  EXPECT_EQ(WaitForEnd(response.run_id()).state(), proto::RUN_STATE_CANCELLED);
}

TEST_F(AgentTest, CancelKillsTheRunAndAnAttendedRunNeedsALoginSession) {
  Register();
  auto agent = StartAgent();
  const std::string flow = Flow(R"({"name":"x","actions":[
      {"action":"System.RunApplication","path":"/bin/sleep","arguments":["60"]}]})");
  proto::RunFlowRequest request;
  request.set_flow_id(flow);
  request.set_connection_id(Connection(account_, "desk-pass"));
  proto::RunFlowResponse response;
  ASSERT_TRUE(runs_->RunFlow(CloudHarness::Context(token_).get(), request, &response).ok());
  proto::GetRunRequest get;
  get.set_run_id(response.run_id());
  proto::Run run;
  const absl::Time deadline = absl::Now() + kWait;
  while (absl::Now() < deadline && run.state() != proto::RUN_STATE_RUNNING) {
    runs_->GetRun(CloudHarness::Context(token_).get(), get, &run);
  }
  ASSERT_EQ(run.state(), proto::RUN_STATE_RUNNING);
  proto::CancelRunRequest cancel;
  cancel.set_run_id(response.run_id());
  cancel.set_reason("stop it");
  ASSERT_TRUE(runs_->CancelRun(CloudHarness::Context(token_).get(), cancel, &run).ok());
  run = WaitForEnd(response.run_id());
  EXPECT_EQ(run.state(), proto::RUN_STATE_CANCELLED);
  EXPECT_EQ(run.error().message(), "stop it");

  // Attended: the account must be logged in (utmp); this test's account is not.
  const std::string id = "conn-attended-000000001";
  proto::CreateConnectionRequest attended;
  attended.set_connection_id(id);
  attended.set_name(id);
  attended.mutable_target()->set_machine_id(machine_.machine_id());
  attended.set_username(account_);
  attended.set_mode(proto::RUN_MODE_ATTENDED);
  *attended.mutable_sealed_credentials() = *crypto::SealCredentials(
      machine_.x25519_pub(), id, {account_, crypto::SecretBytes("desk-pass")});
  proto::Connection connection;
  ASSERT_TRUE(connections_->CreateConnection(CloudHarness::Context(token_).get(), attended, &connection).ok());
  run = RunAndWait(Flow(R"({"name":"x","actions":[{"action":"Flow.Wait","duration_ms":0}]})"), id);
  EXPECT_EQ(run.state(), proto::RUN_STATE_FAILED);
  EXPECT_THAT(run.error().message(), HasSubstr("JOB_REJECT_CODE_NO_SESSION"));
}

TEST_F(AgentTest, AGroupMemberOpensEnvelopesSealedToTheGroupKey) {
  Register();
  WriteFile(dir_ + "/group-pw", "right horse battery\n");
  std::string err;
  ASSERT_EQ(AgentCommand({"join-group", "--group", "floor-3", "--create", "--password-file",
                          dir_ + "/group-pw", "--token-file", token_file_, "--data_dir", data_dir_},
                         &err),
            0)
      << err;
  auto agent = StartAgent();
  auto groups = proto::GroupService::NewStub(h_->channel());
  proto::ListGroupsResponse list;
  ASSERT_TRUE(groups->ListGroups(CloudHarness::Context(token_).get(), {}, &list).ok());
  ASSERT_EQ(list.groups_size(), 1);
  const std::string id = "conn-group-agent-00001";
  proto::CreateConnectionRequest request;
  request.set_connection_id(id);
  request.set_name(id);
  request.mutable_target()->set_group_id(list.groups(0).group_id());
  request.set_username(account_);
  request.set_mode(proto::RUN_MODE_UNATTENDED);
  *request.mutable_sealed_credentials() = *crypto::SealCredentials(
      list.groups(0).group_pub(), id, {account_, crypto::SecretBytes("desk-pass")});
  proto::Connection connection;
  ASSERT_TRUE(connections_->CreateConnection(CloudHarness::Context(token_).get(), request, &connection).ok());
  proto::Run run = RunAndWait(
      Flow(R"({"name":"x","outputs":[{"name":"V"}],"actions":[{"action":"Variables.SetVariable","variable":"V","value":"group"}]})"),
      id);
  EXPECT_EQ(run.state(), proto::RUN_STATE_SUCCEEDED) << run.error().message();
  EXPECT_EQ(run.outputs().at("V"), "group");
  EXPECT_EQ(run.machine_id(), machine_.machine_id());
}

TEST_F(AgentTest, QueryJobIsAnsweredFromTheLedgerAfterARestart) {
  Register();
  auto agent = StartAgent();
  proto::Run run = RunAndWait(
      Flow(R"({"name":"x","outputs":[{"name":"V"}],"actions":[{"action":"Variables.SetVariable","variable":"V","value":"kept"}]})"),
      Connection(account_, "desk-pass"));
  ASSERT_EQ(run.state(), proto::RUN_STATE_SUCCEEDED);
  agent->Signal(SIGKILL);
  agent->Wait();
  agent = StartAgent();

  auto cloud_key = crypto::ReadSecretFile(h_->data_dir() + "/cloud-signing.key");
  ASSERT_TRUE(cloud_key.ok());
  proto::ControlRequest control;
  control.mutable_query_job()->set_job_id(run.job_id());
  control.set_issued_at_unix_ms(absl::ToUnixMillis(WallNow()));
  control.set_expires_at_unix_ms(absl::ToUnixMillis(WallNow() + absl::Minutes(5)));
  control.set_nonce(*crypto::RandomBytes(16));
  proto::ChannelMessage message;
  message.mutable_control()->set_control_request(control.SerializeAsString());
  message.mutable_control()->set_signature(*crypto::Ed25519Sign(
      *cloud_key, proto::ControlRequestSigningInput(message.control().control_request())));
  message.mutable_control()->set_key_id(HexEncode(crypto::KeyId(*crypto::Ed25519PublicKey(*cloud_key))));
  net::SenderOptions sender;
  sender.relay_url = h_->relay().url();
  sender.entity = machine_.entity().substr(3);
  sender.token = net::testing::MakeToken(net::testing::kSendKey, sender.entity, absl::Minutes(5));
  // The restarted agent may not be listening yet (presence was cached from before the kill).
  auto channel = net::RelaySender::Connect(sender);
  for (const absl::Time deadline = absl::Now() + kWait; !channel.ok() && absl::Now() < deadline;) {
    absl::SleepFor(absl::Milliseconds(50));
    channel = net::RelaySender::Connect(sender);
  }
  ASSERT_TRUE(channel.ok()) << channel.status();
  ASSERT_TRUE((*channel)->Send(message.SerializeAsString()).ok());
  auto reply = (*channel)->Receive(kWait);
  ASSERT_TRUE(reply.ok());
  proto::ChannelMessage answer;
  ASSERT_TRUE(answer.ParseFromString(*reply));
  ASSERT_TRUE(answer.has_job_status()) << answer.DebugString();
  EXPECT_EQ(answer.job_status().state(), proto::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(answer.job_status().result().outputs().at("V"), "kept");
  EXPECT_GE(answer.job_status().events_size(), 2);  // action started and finished, at least
}

// Run as root, the agent switches to the job's account: a file the flow writes belongs to it.
TEST_F(AgentTest, AsRootTheFlowRunsAsTheJobsAccount) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to switch accounts";
  struct passwd* nobody = getpwnam("nobody");
  ASSERT_NE(nobody, nullptr);
  const uid_t nobody_uid = nobody->pw_uid;
  // The account must be able to execute the runner: a copy outside root's home.
  char dir_template[] = "/tmp/tether-runner-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string shared = dir_template;
  chmod(shared.c_str(), 0755);
  const std::string runner = shared + "/flow_runner";
  {
    std::ifstream in(kRunner, std::ios::binary);
    std::ofstream out(runner, std::ios::binary);
    out << in.rdbuf();
  }
  chmod(runner.c_str(), 0755);
  const std::string written = shared + "/written-by-flow";
  chmod(shared.c_str(), 0777);
  auto line = accounts::MakeFileAccountLine("nobody", crypto::SecretBytes("nobody-pass"),
                                            {.n = 1 << 10, .r = 8, .p = 1});
  ASSERT_TRUE(line.ok());
  WriteFile(accounts_file_, absl::StrCat(ReadFile(accounts_file_), *line, "\n"));
  Register();
  auto agent = StartAgent({"--runner", runner});
  proto::Run run = RunAndWait(
      Flow(absl::StrCat(R"({"name":"x","actions":[{"action":"File.WriteText","path":")", written,
                        R"(","text":"hi"}]})")),
      Connection("nobody", "nobody-pass"));
  EXPECT_EQ(run.state(), proto::RUN_STATE_SUCCEEDED) << run.error().message() << agent->err();
  struct stat st;
  ASSERT_EQ(stat(written.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, nobody_uid);
  // And as that account it cannot write where only root may.
  run = RunAndWait(
      Flow(absl::StrCat(R"({"name":"x","actions":[{"action":"File.WriteText","path":")", dir_ + "/root-only",
                        R"(","text":"no"}]})")),
      Connection("nobody", "nobody-pass"));
  EXPECT_EQ(run.state(), proto::RUN_STATE_FAILED);
  unlink(written.c_str());
  unlink(runner.c_str());
  rmdir(shared.c_str());
}

// ---------------------------------------------------------------------------------------------
// Gateway mode (agent run --via-gateway). The test plays the gateway member: its GatewayService
// (here, in-process, plaintext on loopback) hands the agent Listen tokens for the CloudHarness
// relay, which stands in for the member's local relay, and the test forwards jobs through it.

constexpr char kGatewayMethod[] = "/tether.proto.GatewayService/GetAgentListenToken";

// The member's GatewayService: checks the machine's signature for the right method with the key
// the test registered, and mints Listen tokens for "machine-<id>" on the test relay; or refuses
// every call with `refusal`.
class FakeGateway final : public proto::GatewayService::Service {
 public:
  FakeGateway(std::string relay_url, std::map<std::string, std::string> machine_keys, std::string refusal = "")
      : relay_url_(std::move(relay_url)), machine_keys_(std::move(machine_keys)), refusal_(std::move(refusal)) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
  }
  ~FakeGateway() override { server_->Shutdown(); }

  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  int calls() const { return calls_; }

  grpc::Status GetAgentListenToken(grpc::ServerContext*, const proto::GetListenTokenRequest* request,
                                   proto::ListenToken* token) override {
    ++calls_;
    if (!refusal_.empty()) return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, refusal_);
    const std::string& machine_id = request->auth().machine_id();
    auto key = machine_keys_.find(machine_id);
    absl::StatusOr<std::string> input = proto::MachineAuthSigningInput(kGatewayMethod, *request);
    if (key == machine_keys_.end() || !input.ok() ||
        !crypto::Ed25519Verify(key->second, *input, request->auth().signature()).ok()) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "bad machine signature");
    }
    const std::string entity = "machine-" + machine_id;
    token->set_token(net::testing::MakeToken(net::testing::kListenKey, entity, absl::Minutes(10)));
    token->set_expires_at_unix_ms(absl::ToUnixMillis(WallNow() + absl::Minutes(10)));
    token->set_relay_endpoint(relay_url_);
    token->set_entity("hc/" + entity);
    return grpc::Status::OK;
  }

 private:
  const std::string relay_url_;
  const std::map<std::string, std::string> machine_keys_;
  const std::string refusal_;
  std::atomic<int> calls_{0};
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

class GatewayModeTest : public AgentTest {
 protected:
  struct Member {
    std::string member_id;
    crypto::Ed25519KeyPair key;
  };

  void SetUp() override {
    AgentTest::SetUp();
    clusters_ = proto::ClusterService::NewStub(h_->channel());
    auto cluster_key = crypto::GenerateX25519KeyPair();
    ASSERT_TRUE(cluster_key.ok());
    cluster_key_ = *std::move(cluster_key);
    proto::CreateClusterRequest create;
    create.set_name("site-a");
    create.set_cluster_pub(cluster_key_.public_key);
    proto::ClusterMembership membership;
    member_ = NewMember(&create, [&](grpc::ClientContext* context) {
      return clusters_->CreateCluster(context, create, &membership);
    }, &membership);
    cluster_id_ = membership.cluster().cluster_id();
    ASSERT_FALSE(cluster_id_.empty());

    auto cloud_key = crypto::ReadSecretFile(h_->data_dir() + "/cloud-signing.key");
    ASSERT_TRUE(cloud_key.ok());
    cloud_key_ = *std::move(cloud_key);
    cloud_key_id_ = HexEncode(crypto::KeyId(*crypto::Ed25519PublicKey(cloud_key_)));
    marker_ = dir_ + "/forwarded.txt";
  }

  // A member key generated here, sent with CreateCluster or JoinCluster (`call`).
  template <typename Request, typename Call>
  Member NewMember(Request* request, Call call, proto::ClusterMembership* membership) {
    Member member;
    member.key = *crypto::GenerateEd25519KeyPair();
    request->mutable_member()->set_name(absl::StrCat("gw-", ++members_made_));
    request->mutable_member()->set_x25519_pub(crypto::GenerateX25519KeyPair()->public_key);
    request->mutable_member()->set_ed25519_pub(member.key.public_key);
    grpc::Status status = call(CloudHarness::Context(token_).get());
    EXPECT_TRUE(status.ok()) << status.error_message();
    member.member_id = membership->member_id();
    return member;
  }

  Member JoinMember() {
    proto::JoinClusterRequest join;
    join.set_cluster_id(cluster_id_);
    join.set_cluster_pub(cluster_key_.public_key);
    proto::ClusterMembership membership;
    return NewMember(&join, [&](grpc::ClientContext* context) {
      return clusters_->JoinCluster(context, join, &membership);
    }, &membership);
  }

  // Registers behind the cluster and runs the agent through `gateway_`.
  void RegisterAndRunViaGateway() {
    Register({"--cluster", "site-a"});
    // A member may announce its relay by the WebSocket scheme; the agent takes either.
    gateway_ = std::make_unique<FakeGateway>(absl::StrCat("ws://127.0.0.1:", h_->relay().port()),
                                             std::map<std::string, std::string>{
                                                 {machine_.machine_id(), machine_.ed25519_pub()}});
    agent_ = StartAgent({"--via-gateway", gateway_->address()});
    net::SenderOptions sender;
    sender.relay_url = h_->relay().url();
    sender.entity = machine_.entity().substr(3);
    sender.token = net::testing::MakeToken(net::testing::kSendKey, sender.entity, absl::Minutes(5));
    auto channel = net::RelaySender::Connect(sender);
    ASSERT_TRUE(channel.ok()) << channel.status() << "\n" << agent_->err();
    channel_ = *std::move(channel);
  }

  // A cluster job as the cloud makes it: credentials sealed to the cluster key, target the cluster.
  proto::JobRequest ClusterJob(const std::string& job_id, const std::string& text = "forwarded") {
    proto::JobRequest job;
    job.set_job_id(job_id);
    job.set_run_id("run-" + job_id);
    job.mutable_target()->set_cluster_id(cluster_id_);
    job.set_flow_definition_json(absl::StrCat(R"({"name":"x","outputs":[{"name":"V"}],"actions":[
        {"action":"File.WriteText","path":")", marker_, R"(","text":")", text, R"("},
        {"action":"Variables.SetVariable","variable":"V","value":")", text, R"("}]})"));
    job.set_connection_id(kConnection);
    *job.mutable_credentials() =
        *crypto::SealCredentials(cluster_key_.public_key, kConnection, {account_, crypto::SecretBytes("desk-pass")});
    job.set_username(account_);
    job.set_mode(proto::RUN_MODE_UNATTENDED);
    job.set_timeout_ms(10000);
    job.set_issued_at_unix_ms(absl::ToUnixMillis(WallNow()));
    job.set_expires_at_unix_ms(absl::ToUnixMillis(WallNow() + absl::Minutes(5)));
    job.set_nonce(*crypto::RandomBytes(16));
    return job;
  }

  proto::SignedJobRequest CloudSigned(const proto::JobRequest& job) {
    proto::SignedJobRequest signed_job;
    signed_job.set_job_request(job.SerializeAsString());
    signed_job.set_signature(*crypto::Ed25519Sign(cloud_key_, proto::JobRequestSigningInput(signed_job.job_request())));
    signed_job.set_key_id(cloud_key_id_);
    return signed_job;
  }

  // What the member sends: the cloud-signed job unchanged, the credentials re-sealed to
  // `reseal_to` (the agent's X25519 key unless given), signed by `signer` as `member_id`.
  std::string Forward(const proto::JobRequest& job, const Member& member, const std::string& reseal_to = "",
                      const crypto::SecretBytes* signer = nullptr) {
    proto::ChannelMessage message;
    proto::ForwardedJobRequest& forwarded = *message.mutable_forwarded_job_request();
    *forwarded.mutable_job() = CloudSigned(job);
    forwarded.set_credentials(crypto::SealCredentials(reseal_to.empty() ? machine_.x25519_pub() : reseal_to,
                                                      job.connection_id(),
                                                      {account_, crypto::SecretBytes("desk-pass")})
                                  ->SerializeAsString());
    forwarded.set_member_id(member.member_id);
    forwarded.set_signature(*crypto::Ed25519Sign(signer != nullptr ? *signer : member.key.private_key,
                                                 proto::ForwardedJobSigningInput(forwarded)));
    return message.SerializeAsString();
  }

  // Sends one message and returns the answer to it (events of a running job are skipped).
  proto::ChannelMessage Exchange(const std::string& bytes) {
    EXPECT_TRUE(channel_->Send(bytes).ok());
    proto::ChannelMessage message;
    for (int i = 0; i < 20; ++i) {
      auto reply = channel_->Receive(kWait);
      EXPECT_TRUE(reply.ok() && message.ParseFromString(*reply));
      if (!reply.ok() || !message.has_job_event()) break;
    }
    return message;
  }

  // The JobResult that ends the job just accepted on the channel.
  proto::JobResult WaitForResult() {
    for (int i = 0; i < 20; ++i) {
      auto next = channel_->Receive(kWait);
      proto::ChannelMessage message;
      if (!next.ok()) break;
      if (message.ParseFromString(*next) && message.has_job_result()) return message.job_result();
    }
    ADD_FAILURE() << "no JobResult";
    return proto::JobResult();
  }

  static constexpr char kConnection[] = "conn-gateway-00000001";
  std::unique_ptr<proto::ClusterService::Stub> clusters_;
  crypto::X25519KeyPair cluster_key_;
  std::string cluster_id_;
  Member member_;
  int members_made_ = 0;
  crypto::SecretBytes cloud_key_;
  std::string cloud_key_id_;
  std::string marker_;
  std::unique_ptr<FakeGateway> gateway_;
  std::unique_ptr<Child> agent_;
  std::unique_ptr<net::SenderChannel> channel_;
};

TEST_F(GatewayModeTest, AForwardedJobRunsWithTheResealedCredentialsOnceAndControlsPassThrough) {
  RegisterAndRunViaGateway();
  EXPECT_THAT(ReadFile(data_dir_ + "/agent.conf"), HasSubstr(cluster_id_));
  EXPECT_EQ(machine_.cluster_id(), cluster_id_);
  // Once to learn the local relay, once more for the listener's connection.
  EXPECT_GE(gateway_->calls(), 2);

  const std::string forwarded = Forward(ClusterJob("job-fwd-1", "first"), member_);
  proto::ChannelMessage reply = Exchange(forwarded);
  ASSERT_TRUE(reply.has_job_accepted()) << reply.DebugString() << agent_->err();
  EXPECT_FALSE(reply.job_accepted().duplicate());
  proto::JobResult result = WaitForResult();
  EXPECT_EQ(result.state(), proto::JOB_STATE_SUCCEEDED) << result.error().message();
  EXPECT_EQ(result.outputs().at("V"), "first");
  EXPECT_EQ(ReadFile(marker_), "first");

  // Replayed by the member (or anyone who saw it): answered, never run again.
  unlink(marker_.c_str());
  reply = Exchange(forwarded);
  ASSERT_TRUE(reply.has_job_accepted()) << reply.DebugString();
  EXPECT_TRUE(reply.job_accepted().duplicate());
  EXPECT_NE(access(marker_.c_str(), F_OK), 0) << "a replayed forwarded job ran again";

  // The job's own envelope is sealed to the cluster key, which the agent does not hold: it is not
  // used at all. Even a tampered one does not matter; the member's re-sealed envelope does.
  proto::JobRequest tampered = ClusterJob("job-fwd-2", "second");
  std::string ciphertext = tampered.credentials().ciphertext();
  ciphertext[ciphertext.size() / 2] ^= 0x01;
  tampered.mutable_credentials()->set_ciphertext(ciphertext);
  reply = Exchange(Forward(tampered, member_));
  ASSERT_TRUE(reply.has_job_accepted()) << reply.DebugString();
  EXPECT_EQ(WaitForResult().state(), proto::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(ReadFile(marker_), "second");

  // A cluster job naming this machine is for it too.
  proto::JobRequest named = ClusterJob("job-fwd-3", "third");
  named.mutable_target()->set_machine_id(machine_.machine_id());
  reply = Exchange(Forward(named, member_));
  ASSERT_TRUE(reply.has_job_accepted()) << reply.DebugString();
  EXPECT_EQ(WaitForResult().state(), proto::JOB_STATE_SUCCEEDED);

  // The cloud's QueryJob, passed on unchanged by the member, is answered from the ledger.
  proto::ControlRequest control;
  control.mutable_query_job()->set_job_id("job-fwd-1");
  control.set_issued_at_unix_ms(absl::ToUnixMillis(WallNow()));
  control.set_expires_at_unix_ms(absl::ToUnixMillis(WallNow() + absl::Minutes(5)));
  control.set_nonce(*crypto::RandomBytes(16));
  proto::ChannelMessage query;
  query.mutable_control()->set_control_request(control.SerializeAsString());
  query.mutable_control()->set_signature(
      *crypto::Ed25519Sign(cloud_key_, proto::ControlRequestSigningInput(query.control().control_request())));
  query.mutable_control()->set_key_id(cloud_key_id_);
  reply = Exchange(query.SerializeAsString());
  ASSERT_TRUE(reply.has_job_status()) << reply.DebugString();
  EXPECT_EQ(reply.job_status().state(), proto::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(reply.job_status().result().outputs().at("V"), "first");

  // `agent status` tells how the agent is connected.
  std::string status;
  EXPECT_EQ(AgentCommand({"status", "--data_dir", data_dir_}, &status), 0);
  EXPECT_THAT(status, HasSubstr("site-a (" + cluster_id_ + ")"));
  EXPECT_THAT(status, HasSubstr("via gateway " + gateway_->address()));
  EXPECT_THAT(agent_->err(), HasSubstr(member_.member_id));  // the log names the forwarding member
}

TEST_F(GatewayModeTest, StrangersOtherClustersAndForeignCredentialsAreRefused) {
  RegisterAndRunViaGateway();
  struct Case {
    std::string name;
    std::string message;
    proto::JobRejectCode code;
    std::string reason;
  };
  auto stranger = crypto::GenerateEd25519KeyPair();
  auto other_key = crypto::GenerateX25519KeyPair();
  const Member impostor{"gm-not-a-member", *crypto::GenerateEd25519KeyPair()};
  proto::JobRequest other_cluster = ClusterJob("job-other-cluster");
  other_cluster.mutable_target()->set_cluster_id("c-somebody-else");
  proto::JobRequest other_machine = ClusterJob("job-other-machine");
  other_machine.mutable_target()->set_machine_id("m-somebody-else");
  std::vector<Case> cases = {
      {"a member's id, another key", Forward(ClusterJob("job-stranger"), member_, "", &stranger->private_key),
       proto::JOB_REJECT_CODE_BAD_SIGNATURE, "not forwarded by a member of this machine's cluster"},
      {"a job for another cluster", Forward(other_cluster, member_), proto::JOB_REJECT_CODE_WRONG_TARGET,
       "c-somebody-else"},
      {"a cluster job for another machine", Forward(other_machine, member_),
       proto::JOB_REJECT_CODE_WRONG_TARGET, "m-somebody-else"},
      {"credentials re-sealed to another key", Forward(ClusterJob("job-foreign-key"), member_, other_key->public_key),
       proto::JOB_REJECT_CODE_CREDENTIALS_UNREADABLE, ""},
  };
  // The cluster job itself, not forwarded: the agent cannot open the cluster envelope and it is
  // not addressed to this machine.
  proto::ChannelMessage direct;
  *direct.mutable_job_request() = CloudSigned(ClusterJob("job-direct"));
  cases.push_back({"a cluster job not forwarded by a member", direct.SerializeAsString(),
                   proto::JOB_REJECT_CODE_WRONG_TARGET, ""});
  // A forwarded job whose cloud signature is forged: the member's signature does not make it valid.
  proto::ChannelMessage forged;
  forged.ParseFromString(Forward(ClusterJob("job-forged"), member_));
  forged.mutable_forwarded_job_request()->mutable_job()->set_signature(
      *crypto::Ed25519Sign(stranger->private_key, proto::JobRequestSigningInput(
                                                      forged.forwarded_job_request().job().job_request())));
  forged.mutable_forwarded_job_request()->set_signature(*crypto::Ed25519Sign(
      member_.key.private_key, proto::ForwardedJobSigningInput(forged.forwarded_job_request())));
  cases.push_back({"a forged cloud signature", forged.SerializeAsString(), proto::JOB_REJECT_CODE_BAD_SIGNATURE,
                   "pinned cloud key"});
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    proto::ChannelMessage reply = Exchange(c.message);
    ASSERT_TRUE(reply.has_job_rejected()) << reply.DebugString();
    EXPECT_EQ(reply.job_rejected().code(), c.code) << reply.job_rejected().reason();
    EXPECT_THAT(reply.job_rejected().reason(), HasSubstr(c.reason));
  }
  EXPECT_NE(access(marker_.c_str(), F_OK), 0) << "a refused job ran";

  // A member that joined after the agent started: the agent learns its key from the cloud.
  const Member newcomer = JoinMember();
  proto::ChannelMessage reply = Exchange(Forward(ClusterJob("job-newcomer", "new member"), newcomer));
  ASSERT_TRUE(reply.has_job_accepted()) << reply.DebugString() << agent_->err();
  EXPECT_EQ(WaitForResult().state(), proto::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(ReadFile(marker_), "new member");
  unlink(marker_.c_str());
  // Someone who is no member at all (the cloud was just asked; it is not asked again at once).
  reply = Exchange(Forward(ClusterJob("job-impostor"), impostor));
  ASSERT_TRUE(reply.has_job_rejected()) << reply.DebugString();
  EXPECT_EQ(reply.job_rejected().code(), proto::JOB_REJECT_CODE_BAD_SIGNATURE);
  EXPECT_THAT(reply.job_rejected().reason(), HasSubstr("not forwarded by a member of this machine's cluster"));
  EXPECT_NE(access(marker_.c_str(), F_OK), 0) << "the impostor's job ran";
}

TEST_F(GatewayModeTest, ViaGatewayNeedsAClusterAndAGatewayThatTakesTheMachine) {
  std::string err;
  // An unknown cluster: not found, nothing registered.
  EXPECT_EQ(AgentCommand({"register", "--cloud", CloudAddress(), "--insecure", "--token-file", token_file_,
                          "--name", "desk-x", "--cluster", "no-such-site", "--data_dir", dir_ + "/unknown"},
                         &err),
            2)
      << err;
  EXPECT_THAT(err, HasSubstr("no gateway cluster \"no-such-site\""));
  EXPECT_NE(access((dir_ + "/unknown/agent.conf").c_str(), F_OK), 0);

  const std::vector<std::string> run = {"run", "--accounts", "file:" + accounts_file_, "--runner", kRunner};
  auto run_with = [&](const std::string& data_dir, std::vector<std::string> extra) {
    std::vector<std::string> args = run;
    args.push_back("--data_dir");
    args.push_back(data_dir);
    args.insert(args.end(), extra.begin(), extra.end());
    return AgentCommand(args, &err);
  };

  // Registered without a cluster: --via-gateway makes no sense.
  const std::string plain = dir_ + "/plain";
  ASSERT_EQ(AgentCommand({"register", "--cloud", CloudAddress(), "--insecure", "--token-file", token_file_,
                          "--name", "desk-plain", "--data_dir", plain},
                         &err),
            0)
      << err;
  FakeGateway unused(h_->relay().url(), {});
  EXPECT_EQ(run_with(plain, {"--via-gateway", unused.address()}), 1);
  EXPECT_THAT(err, HasSubstr("registered without a gateway cluster"));
  EXPECT_EQ(unused.calls(), 0);

  // Behind the cluster (by id this time), but the gateway does not take this machine.
  ASSERT_EQ(AgentCommand({"register", "--cloud", CloudAddress(), "--insecure", "--token-file", token_file_,
                          "--name", "desk-gw", "--cluster", cluster_id_, "--data_dir", data_dir_},
                         &err),
            0)
      << err;
  EXPECT_THAT(ReadFile(data_dir_ + "/agent.conf"), HasSubstr(cluster_id_));
  FakeGateway refusing(h_->relay().url(), {}, "machine not registered behind this cluster");
  EXPECT_EQ(run_with(data_dir_, {"--via-gateway", refusing.address()}), 3);
  EXPECT_THAT(err, HasSubstr("gateway refused this agent: machine not registered behind this cluster"));
  EXPECT_EQ(refusing.calls(), 1);
  // Plaintext only to a loopback gateway; nobody listening is "unreachable".
  EXPECT_EQ(run_with(data_dir_, {"--via-gateway", "192.0.2.1:7443"}), 1);
  EXPECT_THAT(err, HasSubstr("--gateway_ca"));
  EXPECT_EQ(run_with(data_dir_, {"--via-gateway", "127.0.0.1:1"}), 4);
  EXPECT_THAT(err, HasSubstr("unreachable"));
}

}  // namespace
}  // namespace tether::agent
