// The run queue and dispatcher against a real relay and stub agents: a run is running only after
// JobAccepted, events stream to watchers, priorities and FIFO hold, busy and offline machines keep
// runs queued, cancellation, a relay restart mid-run, and a cloud restart that resumes every run
// exactly once.
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "cloud/testing/cloud_harness.h"
#include "common/base/clock.h"
#include "common/auth/machine_auth.h"
#include "common/base/status_macros.h"
#include "common/crypto/envelope.h"
#include "common/crypto/password_kdf.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tether::cloud {
namespace {

using ::testing::HasSubstr;
using testing::CloudHarness;
using testing::StubAgent;
using testing::StubAgentOptions;
using testing::TestMachine;

constexpr char kFlow[] = R"({"name":"Hello","inputs":[{"name":"Who","type":"text","default":"world"}],
  "actions":[{"action":"Variables.SetVariable","variable":"Greeting","value":"hello %Who%"}]})";
constexpr absl::Duration kWait = absl::Seconds(30);

class RunDispatchTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(nullptr); }

  void Start(std::function<void(RunManagerOptions&)> tweak) {
    auto harness = CloudHarness::Start(std::move(tweak));
    ASSERT_TRUE(harness.ok()) << harness.status();
    h_ = *std::move(harness);
    auto token = h_->CreateUser("alice");
    ASSERT_TRUE(token.ok());
    token_ = *token;
    Stubs();
    auto machine = h_->RegisterMachine(token_, "desk-1");
    ASSERT_TRUE(machine.ok()) << machine.status();
    machine_ = *std::move(machine);
    connection_id_ = Connection(machine_, "conn-0123456789abcdef", "main");
    proto::CreateFlowRequest create;
    create.set_name("hello");
    create.set_definition_json(kFlow);
    proto::Flow flow;
    ASSERT_TRUE(flows_->CreateFlow(CloudHarness::Context(token_).get(), create, &flow).ok());
    flow_id_ = flow.flow_id();
  }

  void Stubs() {
    connections_ = proto::ConnectionService::NewStub(h_->channel());
    flows_ = proto::FlowService::NewStub(h_->channel());
    runs_ = proto::RunService::NewStub(h_->channel());
    machines_ = proto::MachineService::NewStub(h_->channel());
  }

  std::string Connection(const TestMachine& machine, const std::string& id, const std::string& name) {
    proto::CreateConnectionRequest request;
    request.set_connection_id(id);
    request.set_name(name);
    request.mutable_target()->set_machine_id(machine.machine_id);
    request.set_username("desk-user");
    request.set_mode(proto::RUN_MODE_UNATTENDED);
    *request.mutable_sealed_credentials() = *crypto::SealCredentials(
        machine.x25519.public_key, id, {"desk-user", crypto::SecretBytes("hunter2-secret")});
    proto::Connection connection;
    grpc::Status status =
        connections_->CreateConnection(CloudHarness::Context(token_).get(), request, &connection);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return id;
  }

  std::unique_ptr<StubAgent> Agent(StubAgentOptions options = {}) {
    auto agent = h_->StartAgent(machine_, std::move(options));
    EXPECT_TRUE(agent.ok()) << agent.status();
    return agent.ok() ? *std::move(agent) : nullptr;
  }

  proto::Run RunFlow(proto::RunPriority priority = proto::RUN_PRIORITY_NORMAL,
                     const std::string& who = "") {
    proto::RunFlowRequest request;
    request.set_flow_id(flow_id_);
    request.set_connection_id(connection_id_);
    request.set_priority(priority);
    if (!who.empty()) (*request.mutable_inputs())["Who"] = who;
    proto::RunFlowResponse response;
    grpc::Status status = runs_->RunFlow(CloudHarness::Context(token_).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.run();
  }

  proto::Run Get(const std::string& run_id) {
    proto::GetRunRequest request;
    request.set_run_id(run_id);
    proto::Run run;
    EXPECT_TRUE(runs_->GetRun(CloudHarness::Context(token_).get(), request, &run).ok());
    return run;
  }

  // Polls GetRun until `done` holds (the cloud's answer, not a sleep, decides).
  proto::Run WaitFor(const std::string& run_id, const std::function<bool(const proto::Run&)>& done) {
    const absl::Time deadline = absl::Now() + kWait;
    proto::Run run = Get(run_id);
    while (!done(run) && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(10));
      run = Get(run_id);
    }
    return run;
  }

  proto::Run WaitForState(const std::string& run_id, proto::RunState state) {
    return WaitFor(run_id, [&](const proto::Run& r) { return r.state() == state; });
  }

  std::unique_ptr<CloudHarness> h_;
  std::string token_;
  TestMachine machine_;
  std::string connection_id_;
  std::string flow_id_;
  std::unique_ptr<proto::ConnectionService::Stub> connections_;
  std::unique_ptr<proto::FlowService::Stub> flows_;
  std::unique_ptr<proto::RunService::Stub> runs_;
  std::unique_ptr<proto::MachineService::Stub> machines_;
};

TEST_F(RunDispatchTest, ARunIsSignedDeliveredWatchedAndSucceeds) {
  auto agent = Agent();
  ASSERT_NE(agent, nullptr);
  proto::Run run = RunFlow(proto::RUN_PRIORITY_NORMAL, "tether");
  EXPECT_EQ(run.state(), proto::RUN_STATE_QUEUED);

  proto::WatchRunRequest watch;
  watch.set_run_id(run.run_id());
  auto context = CloudHarness::Context(token_);
  auto reader = runs_->WatchRun(context.get(), watch);
  std::vector<proto::RunEvent> events;
  proto::RunEvent event;
  while (reader->Read(&event)) events.push_back(event);
  ASSERT_TRUE(reader->Finish().ok());

  // Seqs are 1..n without gaps; states go queued -> dispatching -> running -> succeeded.
  std::vector<proto::RunState> states;
  int log_lines = 0;
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].seq(), i + 1);
    if (events[i].has_state_changed()) states.push_back(events[i].state_changed().state());
    if (events[i].has_job_event() && events[i].job_event().has_log_line()) ++log_lines;
  }
  EXPECT_THAT(states, ::testing::ElementsAre(proto::RUN_STATE_QUEUED, proto::RUN_STATE_DISPATCHING,
                                             proto::RUN_STATE_RUNNING, proto::RUN_STATE_SUCCEEDED));
  EXPECT_EQ(log_lines, 2);

  proto::Run done = Get(run.run_id());
  EXPECT_EQ(done.state(), proto::RUN_STATE_SUCCEEDED);
  EXPECT_EQ(done.outputs().at("result"), "ok:desk-user");
  EXPECT_EQ(done.machine_id(), machine_.machine_id);
  EXPECT_EQ(done.attempt_count(), 1u);
  EXPECT_NE(done.dispatched_at_unix_ms(), 0);
  EXPECT_NE(done.finished_at_unix_ms(), 0);

  // The agent verified the cloud's signature, and only it can open the envelope.
  EXPECT_EQ(agent->bad_signatures(), 0);
  auto request = agent->request(done.job_id());
  ASSERT_TRUE(request.ok());
  EXPECT_EQ(request->inputs().at("Who"), "tether");
  EXPECT_EQ(request->target().machine_id(), machine_.machine_id);
  auto credentials =
      crypto::OpenCredentials(request->credentials(), machine_.x25519.private_key, connection_id_);
  ASSERT_TRUE(credentials.ok()) << credentials.status();
  EXPECT_EQ(credentials->password.view(), "hunter2-secret");
  EXPECT_EQ(agent->executions(done.job_id()), 1);
}

TEST_F(RunDispatchTest, AnOfflineMachineKeepsRunsQueuedUntilItsAgentConnects) {
  proto::Run run = RunFlow();
  // The dispatcher tries and gets "no listener": the run stays queued, nothing is sent.
  proto::Run queued = WaitFor(run.run_id(), [&](const proto::Run&) {
    return h_->cloud().runs()->stats().channel_failures > 0;
  });
  EXPECT_EQ(queued.state(), proto::RUN_STATE_QUEUED);
  EXPECT_EQ(queued.attempt_count(), 0u);
  proto::GetMachineRequest get;
  get.set_machine_id(machine_.machine_id);
  proto::Machine machine;
  ASSERT_TRUE(machines_->GetMachine(CloudHarness::Context(token_).get(), get, &machine).ok());
  EXPECT_EQ(machine.status(), proto::MACHINE_STATUS_OFFLINE);

  auto agent = Agent();
  EXPECT_EQ(WaitForState(run.run_id(), proto::RUN_STATE_SUCCEEDED).state(), proto::RUN_STATE_SUCCEEDED);
  ASSERT_TRUE(machines_->GetMachine(CloudHarness::Context(token_).get(), get, &machine).ok());
  EXPECT_EQ(machine.status(), proto::MACHINE_STATUS_ONLINE);
}

TEST_F(RunDispatchTest, HighPriorityGoesFirstAndEqualPrioritiesKeepTheirOrder) {
  StubAgentOptions options;
  options.hold_jobs = true;
  auto agent = Agent(options);
  proto::Run first = RunFlow();
  ASSERT_TRUE(agent->WaitForAccepted(1, kWait));  // the machine is now busy with `first`
  std::vector<proto::Run> normal;
  for (int i = 0; i < 3; ++i) normal.push_back(RunFlow());
  proto::Run high = RunFlow(proto::RUN_PRIORITY_HIGH);
  agent->SetHold(false);
  agent->Release(first.job_id());
  for (const proto::Run& run : normal) {
    EXPECT_EQ(WaitForState(run.run_id(), proto::RUN_STATE_SUCCEEDED).state(), proto::RUN_STATE_SUCCEEDED);
  }
  std::vector<std::string> order = agent->accepted_jobs();
  EXPECT_THAT(order, ::testing::ElementsAre(first.job_id(), high.job_id(), normal[0].job_id(),
                                            normal[1].job_id(), normal[2].job_id()));
}

TEST_F(RunDispatchTest, ABusyMachineKeepsTheRunQueuedAndItRunsOnceFree) {
  StubAgentOptions options;
  options.busy = true;
  auto agent = Agent(options);
  proto::Run run = RunFlow();
  proto::Run queued = WaitFor(run.run_id(), [](const proto::Run& r) {
    return absl::StrContains(r.state_detail(), "machine busy");
  });
  EXPECT_EQ(queued.state(), proto::RUN_STATE_QUEUED);
  EXPECT_THAT(queued.state_detail(), HasSubstr("stub agent told to be busy"));
  EXPECT_GE(h_->cloud().runs()->stats().busy_answers, 1u);
  agent->SetBusy(false);
  proto::Run done = WaitForState(run.run_id(), proto::RUN_STATE_SUCCEEDED);
  EXPECT_EQ(done.state(), proto::RUN_STATE_SUCCEEDED);
  EXPECT_GE(done.attempt_count(), 2u);
  EXPECT_EQ(agent->executions(run.job_id()), 1);
}

// recorded_only: the history so far, then the call ends although the run goes on.
TEST_F(RunDispatchTest, WatchRunRecordedOnlyEndsWithTheHistorySoFar) {
  StubAgentOptions options;
  options.hold_jobs = true;
  auto agent = Agent(options);
  proto::Run running = RunFlow();
  ASSERT_EQ(WaitForState(running.run_id(), proto::RUN_STATE_RUNNING).state(), proto::RUN_STATE_RUNNING);
  proto::WatchRunRequest watch;
  watch.set_run_id(running.run_id());
  watch.set_recorded_only(true);
  auto context = CloudHarness::Context(token_);
  auto reader = runs_->WatchRun(context.get(), watch);
  proto::RunEvent event;
  std::vector<proto::RunState> states;
  while (reader->Read(&event)) {
    if (event.has_state_changed()) states.push_back(event.state_changed().state());
  }
  grpc::Status status = reader->Finish();
  ASSERT_TRUE(status.ok()) << status.error_message();  // not the 30 s deadline
  ASSERT_FALSE(states.empty());
  EXPECT_EQ(states.back(), proto::RUN_STATE_RUNNING);
  proto::Run still = Get(running.run_id());
  EXPECT_EQ(still.state(), proto::RUN_STATE_RUNNING);  // it goes on
  agent->Release(still.job_id());
  EXPECT_EQ(WaitForState(running.run_id(), proto::RUN_STATE_SUCCEEDED).state(), proto::RUN_STATE_SUCCEEDED);
}

TEST_F(RunDispatchTest, CancelEndsAQueuedRunAtOnceAndARunningOneOnTheAgent) {
  proto::Run queued = RunFlow();
  proto::CancelRunRequest cancel;
  cancel.set_run_id(queued.run_id());
  cancel.set_reason("changed my mind");
  proto::Run cancelled;
  ASSERT_TRUE(runs_->CancelRun(CloudHarness::Context(token_).get(), cancel, &cancelled).ok());
  EXPECT_EQ(cancelled.state(), proto::RUN_STATE_CANCELLED);
  EXPECT_EQ(cancelled.error().message(), "changed my mind");
  grpc::Status again = runs_->CancelRun(CloudHarness::Context(token_).get(), cancel, &cancelled);
  EXPECT_EQ(again.error_code(), grpc::StatusCode::FAILED_PRECONDITION);

  StubAgentOptions options;
  options.hold_jobs = true;
  auto agent = Agent(options);
  proto::Run running = RunFlow();
  ASSERT_EQ(WaitForState(running.run_id(), proto::RUN_STATE_RUNNING).state(), proto::RUN_STATE_RUNNING);
  cancel.set_run_id(running.run_id());
  ASSERT_TRUE(runs_->CancelRun(CloudHarness::Context(token_).get(), cancel, &cancelled).ok());
  EXPECT_TRUE(cancelled.cancel_requested());
  proto::Run ended = WaitForState(running.run_id(), proto::RUN_STATE_CANCELLED);
  EXPECT_EQ(ended.state(), proto::RUN_STATE_CANCELLED);
  EXPECT_EQ(ended.error().message(), "changed my mind");
  EXPECT_EQ(ended.state_detail(), "cancelled");
  // The queued run never reached the agent.
  EXPECT_EQ(agent->executions(queued.job_id()), 0);
}

TEST_F(RunDispatchTest, ARelayRestartMidRunLosesNothing) {
  StubAgentOptions options;
  options.hold_jobs = true;
  auto agent = Agent(options);
  proto::Run run = RunFlow();
  ASSERT_EQ(WaitForState(run.run_id(), proto::RUN_STATE_RUNNING).state(), proto::RUN_STATE_RUNNING);
  ASSERT_TRUE(h_->relay().Restart().ok());
  // The agent finishes while the cloud's channel is gone; the cloud reconnects and asks.
  agent->Release(run.job_id());
  proto::Run done = WaitForState(run.run_id(), proto::RUN_STATE_SUCCEEDED);
  EXPECT_EQ(done.state(), proto::RUN_STATE_SUCCEEDED);
  EXPECT_EQ(done.outputs().at("result"), "ok:desk-user");
  EXPECT_EQ(agent->executions(run.job_id()), 1);
  // Every agent event reached the run's history exactly once, in order.
  proto::WatchRunRequest watch;
  watch.set_run_id(run.run_id());
  auto context = CloudHarness::Context(token_);
  auto reader = runs_->WatchRun(context.get(), watch);
  std::vector<uint64_t> job_seqs;
  proto::RunEvent event;
  while (reader->Read(&event)) {
    if (event.has_job_event()) job_seqs.push_back(event.job_event().seq());
  }
  EXPECT_THAT(job_seqs, ::testing::ElementsAre(1, 2, 3));
}

TEST_F(RunDispatchTest, ACloudRestartResumesEveryRunExactlyOnce) {
  StubAgentOptions options;
  options.hold_jobs = true;
  auto agent = Agent(options);
  std::vector<proto::Run> runs;
  for (int i = 0; i < 4; ++i) runs.push_back(RunFlow());
  ASSERT_TRUE(agent->WaitForAccepted(1, kWait));
  ASSERT_EQ(WaitForState(runs[0].run_id(), proto::RUN_STATE_RUNNING).state(), proto::RUN_STATE_RUNNING);

  ASSERT_TRUE(h_->RestartCloud().ok());
  Stubs();
  // After the restart the running run is queried, not re-run; release it and the rest follow.
  agent->SetHold(false);
  agent->Release(runs[0].job_id());
  for (const proto::Run& run : runs) {
    proto::Run done = WaitForState(run.run_id(), proto::RUN_STATE_SUCCEEDED);
    EXPECT_EQ(done.state(), proto::RUN_STATE_SUCCEEDED) << done.state_detail();
    EXPECT_EQ(agent->executions(run.job_id()), 1);
  }
  EXPECT_EQ(agent->accepted_jobs().size(), runs.size());
}

TEST_F(RunDispatchTest, ARunWhoseConnectionWasDeletedFailsAtDispatch) {
  proto::Run run = RunFlow();
  proto::DeleteConnectionRequest del;
  del.set_connection_id(connection_id_);
  proto::DeleteConnectionResponse deleted;
  ASSERT_TRUE(connections_->DeleteConnection(CloudHarness::Context(token_).get(), del, &deleted).ok());
  // It fails even though its machine never comes online.
  proto::Run failed = WaitForState(run.run_id(), proto::RUN_STATE_FAILED);
  EXPECT_EQ(failed.state(), proto::RUN_STATE_FAILED);
  EXPECT_THAT(failed.error().message(), HasSubstr("was deleted"));
  EXPECT_EQ(failed.attempt_count(), 0u);
}

TEST_F(RunDispatchTest, ListRunsIsNewestFirstAndPages) {
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(RunFlow().run_id());
  std::vector<std::string> listed;
  std::string token;
  do {
    proto::ListRunsRequest request;
    request.set_page_size(2);
    request.set_page_token(token);
    proto::ListRunsResponse page;
    ASSERT_TRUE(runs_->ListRuns(CloudHarness::Context(token_).get(), request, &page).ok());
    EXPECT_LE(page.runs_size(), 2);
    for (const proto::Run& run : page.runs()) listed.push_back(run.run_id());
    token = page.next_page_token();
  } while (!token.empty());
  std::vector<std::string> expected(ids.rbegin(), ids.rend());
  // Runs created in the same millisecond keep id order, not creation order: compare as sets
  // then check the newest-first property by creation time.
  EXPECT_THAT(listed, ::testing::UnorderedElementsAreArray(expected));
  proto::ListRunsRequest bad;
  bad.set_page_token("zz");
  proto::ListRunsResponse page;
  EXPECT_EQ(runs_->ListRuns(CloudHarness::Context(token_).get(), bad, &page).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}


// A group of two machines: `machines` joined to a group whose connection is `group_connection`.
class GroupDispatchTest : public RunDispatchTest {
 protected:
  void SetUp() override {
    RunDispatchTest::SetUp();
    auto second = h_->RegisterMachine(token_, "desk-2");
    ASSERT_TRUE(second.ok());
    second_ = *std::move(second);
    auto key = crypto::GenerateX25519KeyPair();
    auto wrapped = crypto::WrapWithPassword(key->private_key, crypto::SecretBytes("group pw"),
                                            {.n = 1 << 10, .r = 8, .p = 1});
    proto::CreateGroupRequest create;
    create.set_name("floor");
    create.set_group_pub(key->public_key);
    *create.mutable_wrapped_priv() = *wrapped;
    auto groups = proto::GroupService::NewStub(h_->channel());
    proto::MachineGroup group;
    ASSERT_TRUE(groups->CreateGroup(CloudHarness::Context(token_).get(), create, &group).ok());
    for (const TestMachine* m : {&machine_, &second_}) {
      proto::JoinGroupRequest join;
      join.set_group_id(group.group_id());
      join.set_derived_group_pub(key->public_key);
      ASSERT_TRUE(auth::SignMachineAuth("/tether.proto.GroupService/JoinGroup", m->machine_id,
                                        m->ed25519.private_key, WallNow(), &join)
                      .ok());
      proto::JoinGroupResponse joined;
      ASSERT_TRUE(groups->JoinGroup(CloudHarness::Context(token_).get(), join, &joined).ok());
      ASSERT_TRUE(joined.joined());
    }
    group_key_ = key->private_key.Clone();
    proto::CreateConnectionRequest request;
    const std::string id = "conn-group-0123456789";
    request.set_connection_id(id);
    request.set_name("group");
    request.mutable_target()->set_group_id(group.group_id());
    request.set_username("desk-user");
    request.set_mode(proto::RUN_MODE_UNATTENDED);
    *request.mutable_sealed_credentials() = *crypto::SealCredentials(
        key->public_key, id, {"desk-user", crypto::SecretBytes("group-secret")});
    proto::Connection connection;
    ASSERT_TRUE(connections_->CreateConnection(CloudHarness::Context(token_).get(), request, &connection)
                    .ok());
    connection_id_ = id;
    group_id_ = group.group_id();
  }

  TestMachine second_;
  crypto::SecretBytes group_key_;
  std::string group_id_;
};

TEST_F(GroupDispatchTest, GroupRunsSpreadOverIdleMembersAndEachRunsOnce) {
  StubAgentOptions options;
  options.hold_jobs = true;
  auto first = Agent(options);
  auto second_agent = h_->StartAgent(second_, options);
  ASSERT_TRUE(second_agent.ok());
  std::vector<proto::Run> runs;
  for (int i = 0; i < 6; ++i) runs.push_back(RunFlow());
  // Both members get one run at once (one run at a time per machine).
  ASSERT_TRUE(first->WaitForAccepted(1, kWait));
  ASSERT_TRUE((*second_agent)->WaitForAccepted(1, kWait));
  first->SetHold(false);
  (*second_agent)->SetHold(false);
  first->Release(first->accepted_jobs()[0]);
  (*second_agent)->Release((*second_agent)->accepted_jobs()[0]);
  for (const proto::Run& run : runs) {
    proto::Run done = WaitForState(run.run_id(), proto::RUN_STATE_SUCCEEDED);
    ASSERT_EQ(done.state(), proto::RUN_STATE_SUCCEEDED);
    EXPECT_EQ(first->executions(run.job_id()) + (*second_agent)->executions(run.job_id()), 1);
    EXPECT_TRUE(done.machine_id() == machine_.machine_id || done.machine_id() == second_.machine_id);
  }
  // The envelope the agents got is sealed to the group key, for this connection.
  auto request = first->request(first->accepted_jobs()[0]);
  ASSERT_TRUE(request.ok());
  EXPECT_EQ(request->target().group_id(), group_id_);
  auto opened = crypto::OpenCredentials(request->credentials(), group_key_, connection_id_);
  ASSERT_TRUE(opened.ok());
  EXPECT_EQ(opened->password.view(), "group-secret");
}

TEST_F(GroupDispatchTest, AMemberThatDiesMidQueueKeepsItsRunAndTheOtherTakesTheRest) {
  StubAgentOptions options;
  options.hold_jobs = true;
  auto first = Agent(options);
  auto second_agent = h_->StartAgent(second_, options);
  ASSERT_TRUE(second_agent.ok());
  std::vector<proto::Run> runs;
  for (int i = 0; i < 6; ++i) runs.push_back(RunFlow());
  ASSERT_TRUE(first->WaitForAccepted(1, kWait));
  ASSERT_TRUE((*second_agent)->WaitForAccepted(1, kWait));
  const std::string held = first->accepted_jobs()[0];
  // The first member dies with a job accepted; the job is pinned to it and never re-sent elsewhere.
  first->Disconnect();
  (*second_agent)->SetHold(false);
  (*second_agent)->Release((*second_agent)->accepted_jobs()[0]);
  EXPECT_TRUE((*second_agent)->WaitForAccepted(5, kWait));
  EXPECT_EQ((*second_agent)->executions(held), 0);
  // It comes back (its ledger intact), finishes, and the cloud learns the result by asking.
  first->Release(held);
  ASSERT_TRUE(first->Resume().ok());
  for (const proto::Run& run : runs) {
    proto::Run done = WaitForState(run.run_id(), proto::RUN_STATE_SUCCEEDED);
    EXPECT_EQ(done.state(), proto::RUN_STATE_SUCCEEDED) << done.state_detail();
    EXPECT_EQ(first->executions(run.job_id()) + (*second_agent)->executions(run.job_id()), 1);
  }
}

TEST_F(RunDispatchTest, ClusterRunsGoToTheClusterEntityWithoutAMachine) {
  auto cluster_key = crypto::GenerateX25519KeyPair();
  auto member_x = crypto::GenerateX25519KeyPair();
  auto member_ed = crypto::GenerateEd25519KeyPair();
  proto::CreateClusterRequest create;
  create.set_name("site");
  create.set_cluster_pub(cluster_key->public_key);
  create.mutable_member()->set_name("gw-1");
  create.mutable_member()->set_x25519_pub(member_x->public_key);
  create.mutable_member()->set_ed25519_pub(member_ed->public_key);
  proto::ClusterMembership membership;
  auto clusters = proto::ClusterService::NewStub(h_->channel());
  ASSERT_TRUE(clusters->CreateCluster(CloudHarness::Context(token_).get(), create, &membership).ok());
  const std::string id = "conn-cluster-01234567";
  proto::CreateConnectionRequest request;
  request.set_connection_id(id);
  request.set_name("cluster");
  request.mutable_target()->set_cluster_id(membership.cluster().cluster_id());
  request.set_username("desk-user");
  request.set_mode(proto::RUN_MODE_UNATTENDED);
  *request.mutable_sealed_credentials() =
      *crypto::SealCredentials(cluster_key->public_key, id, {"desk-user", crypto::SecretBytes("c")});
  proto::Connection connection;
  ASSERT_TRUE(connections_->CreateConnection(CloudHarness::Context(token_).get(), request, &connection).ok());
  connection_id_ = id;

  // A gateway member: listens on the cluster entity with a member-signed token.
  StubAgentOptions options;
  options.relay_url = h_->relay().url();
  options.entity = membership.entity().substr(3);
  options.cloud_signing_pub = membership.cloud_signing_pub();
  auto member_key = std::make_shared<crypto::SecretBytes>(member_ed->private_key.Clone());
  const std::string member_id = membership.member_id();
  auto channel = h_->channel();
  options.token_provider = [member_key, member_id, channel]() -> absl::StatusOr<std::string> {
    proto::GetMemberListenTokenRequest token_request;
    RETURN_IF_ERROR(auth::SignMachineAuth("/tether.proto.ClusterService/GetMemberListenToken", member_id,
                                          *member_key, WallNow(), &token_request));
    grpc::ClientContext context;
    proto::ListenToken token;
    grpc::Status status =
        proto::ClusterService::NewStub(channel)->GetMemberListenToken(&context, token_request, &token);
    if (!status.ok()) return absl::UnavailableError(status.error_message());
    return token.token();
  };
  auto member = StubAgent::Start(options);
  ASSERT_TRUE(member.ok()) << member.status();
  proto::Run run = RunFlow();
  proto::Run done = WaitForState(run.run_id(), proto::RUN_STATE_SUCCEEDED);
  EXPECT_EQ(done.state(), proto::RUN_STATE_SUCCEEDED);
  auto job = (*member)->request(run.job_id());
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->target().cluster_id(), membership.cluster().cluster_id());
  EXPECT_TRUE(job->target().machine_id().empty());
}

class TimeoutDispatchTest : public RunDispatchTest {
 protected:
  void SetUp() override {
    Start([](RunManagerOptions& options) { options.timeout_grace = absl::Milliseconds(200); });
  }
};

TEST_F(TimeoutDispatchTest, ARunWithoutAResultInItsTimeoutIsCancelledAndMarkedTimedOut) {
  StubAgentOptions options;
  options.hold_jobs = true;
  auto agent = Agent(options);
  proto::RunFlowRequest request;
  request.set_flow_id(flow_id_);
  request.set_connection_id(connection_id_);
  request.set_timeout_ms(300);
  proto::RunFlowResponse response;
  ASSERT_TRUE(runs_->RunFlow(CloudHarness::Context(token_).get(), request, &response).ok());
  proto::Run done = WaitForState(response.run_id(), proto::RUN_STATE_TIMED_OUT);
  EXPECT_EQ(done.state(), proto::RUN_STATE_TIMED_OUT);
  EXPECT_EQ(done.error().message(), "timed out after 300 ms");
  EXPECT_EQ(agent->executions(response.run().job_id()), 1);
}


class SilentAgentDispatchTest : public RunDispatchTest {
 protected:
  void SetUp() override {
    Start([](RunManagerOptions& options) { options.accept_timeout = absl::Milliseconds(300); });
  }
};

// A machine that took a job in without answering, then went offline: the run stays pinned to it
// (it may hold the job) and says it waits for that machine.
TEST_F(SilentAgentDispatchTest, APinnedRunWhoseMachineWentAwaySaysItWaitsForIt) {
  StubAgentOptions options;
  options.silent = true;
  auto agent = Agent(options);
  proto::Run run = RunFlow();
  proto::Run sent = WaitFor(run.run_id(), [](const proto::Run& r) {
    return r.state() == proto::RUN_STATE_DISPATCHING && r.attempt_count() >= 2;  // sent, unanswered, sent again
  });
  ASSERT_EQ(sent.state(), proto::RUN_STATE_DISPATCHING);
  EXPECT_THAT(sent.state_detail(), HasSubstr("sent to "));
  agent.reset();
  proto::Run waiting = WaitFor(run.run_id(), [](const proto::Run& r) {
    return absl::StartsWith(r.state_detail(), "waiting for ");
  });
  EXPECT_EQ(waiting.state(), proto::RUN_STATE_DISPATCHING);
  EXPECT_EQ(waiting.machine_id(), machine_.machine_id);
  EXPECT_EQ(waiting.state_detail(),
            absl::StrCat("waiting for ", machine_.entity, " to come back (it may hold the job)"));
}

}  // namespace
}  // namespace tether::cloud
