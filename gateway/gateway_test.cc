// Gateway members end to end: enrollment with the recovery key, the local token service refusing
// unknown agents, and jobs through members to local agents (real cloud, relay, gateway and agent
// binaries), including a cluster of three with one member killed mid-queue.
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "agent/accounts/file_verifier.h"
#include "cloud/testing/cloud_harness.h"
#include "common/net/relay_presence.h"
#include "common/net/relay_process.h"
#include "common/auth/machine_auth.h"
#include "common/base/clock.h"
#include "common/crypto/envelope.h"
#include "common/crypto/hpke.h"
#include "common/crypto/password_kdf.h"
#include "common/proto/gateway.grpc.pb.h"
#include "gmock/gmock.h"
#include "common/testing/child_process.h"
#include "gtest/gtest.h"

namespace tether::gateway {
namespace {

using Child = ::tether::testing::ChildProcess;
using ::tether::testing::ReadFileOrEmpty;
std::string ReadFile(const std::string& path) { return ReadFileOrEmpty(path); }

using ::testing::HasSubstr;
using cloud::testing::CloudHarness;

constexpr absl::Duration kWait = absl::Seconds(60);
uint16_t WaitForPort(const std::string& file) { return ::tether::testing::WaitForPortFile(file, kWait); }
constexpr char kGateway[] = "gateway/gateway";
constexpr char kAgent[] = "agent/agent";
constexpr char kRunner[] = "agent/runner/flow_runner";

std::string TempDir() { return std::getenv("TEST_TMPDIR"); }

void WriteFile(const std::string& path, const std::string& text) {
  {
    std::ofstream out(path, std::ios::trunc);
    out << text;
  }
  chmod(path.c_str(), 0600);
}

class GatewayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto harness = CloudHarness::Start();
    ASSERT_TRUE(harness.ok()) << harness.status();
    h_ = *std::move(harness);
    auto token = h_->CreateUser("alice");
    ASSERT_TRUE(token.ok());
    token_ = *token;
    static int counter = 0;
    dir_ = absl::StrCat(TempDir(), "/gw-", ++counter);
    mkdir(dir_.c_str(), 0700);
    token_file_ = dir_ + "/token";
    WriteFile(token_file_, token_ + "\n");
    recovery_file_ = dir_ + "/recovery";
    WriteFile(recovery_file_, "correct horse battery staple recovery\n");
    clusters_ = proto::ClusterService::NewStub(h_->channel());
    connections_ = proto::ConnectionService::NewStub(h_->channel());
    flows_ = proto::FlowService::NewStub(h_->channel());
    runs_ = proto::RunService::NewStub(h_->channel());
  }

  std::string Cloud() const { return absl::StrCat("127.0.0.1:", h_->cloud().port()); }

  int Command(std::vector<std::string> args, std::string* output = nullptr) {
    Child child(args);
    int code = child.Wait();
    if (output != nullptr) *output = child.err() + child.out();
    return code;
  }

  int Enroll(const std::string& verb, const std::string& data_dir, const std::string& recovery_file,
             std::string* output = nullptr) {
    return Command({kGateway, verb, "--cloud", Cloud(), "--insecure", "--token-file", token_file_, "--cluster",
                    "site-a", "--recovery-key-file", recovery_file, "--data_dir", data_dir,
                    "--name", data_dir.substr(data_dir.rfind('/') + 1)},
                   output);
  }

  // Starts `gateway run` for a member data dir; returns the child, fills the service port.
  std::unique_ptr<Child> RunMember(const std::string& data_dir, uint16_t* service_port) {
    const std::string ports = data_dir + ".ports";
    auto child = std::make_unique<Child>(std::vector<std::string>{
        kGateway, "run", "--insecure", "--data_dir", data_dir, "--local_relay_listen", "127.0.0.1:0",
        "--service_listen", "127.0.0.1:0", "--relay_port_file", ports + ".relay", "--service_port_file",
        ports + ".service"});
    *service_port = WaitForPort(ports + ".service");
    return child;
  }

  std::unique_ptr<CloudHarness> h_;
  std::string token_, dir_, token_file_, recovery_file_;
  std::unique_ptr<proto::ClusterService::Stub> clusters_;
  std::unique_ptr<proto::ConnectionService::Stub> connections_;
  std::unique_ptr<proto::FlowService::Stub> flows_;
  std::unique_ptr<proto::RunService::Stub> runs_;
};

TEST_F(GatewayTest, MembersDeriveTheClusterKeyAndAWrongRecoveryKeyRegistersNothing) {
  std::string out;
  ASSERT_EQ(Enroll("create-cluster", dir_ + "/m1", recovery_file_, &out), 0) << out;
  // The cloud holds the key every member derives from the recovery key, and nothing else.
  auto derived = crypto::DeriveClusterKeyPair(crypto::SecretBytes("correct horse battery staple recovery"),
                                              "site-a");
  ASSERT_TRUE(derived.ok());
  proto::ListClustersResponse clusters;
  ASSERT_TRUE(clusters_->ListClusters(CloudHarness::Context(token_).get(), {}, &clusters).ok());
  ASSERT_EQ(clusters.clusters_size(), 1);
  EXPECT_EQ(clusters.clusters(0).cluster_pub(), derived->public_key);

  WriteFile(dir_ + "/wrong", "not the recovery key\n");
  EXPECT_EQ(Enroll("join-cluster", dir_ + "/m2", dir_ + "/wrong", &out), 3);
  EXPECT_THAT(out, HasSubstr("cluster key mismatch"));
  EXPECT_NE(access((dir_ + "/m2/gateway.conf").c_str(), F_OK), 0);
  EXPECT_NE(access((dir_ + "/m2/cluster-x25519.key").c_str(), F_OK), 0);
  ASSERT_TRUE(clusters_->ListClusters(CloudHarness::Context(token_).get(), {}, &clusters).ok());
  EXPECT_EQ(clusters.clusters(0).members_size(), 1);

  ASSERT_EQ(Enroll("join-cluster", dir_ + "/m2", recovery_file_, &out), 0) << out;
  ASSERT_TRUE(clusters_->ListClusters(CloudHarness::Context(token_).get(), {}, &clusters).ok());
  EXPECT_EQ(clusters.clusters(0).members_size(), 2);
  // The recovery key is stored nowhere.
  for (const std::string& member : {dir_ + "/m1", dir_ + "/m2"}) {
    for (const char* file : {"gateway.conf", "cluster-x25519.key", "member-ed25519.key", "member-x25519.key"}) {
      const std::string path = absl::StrCat(member, "/", file);
      EXPECT_THAT(ReadFile(path), ::testing::Not(HasSubstr("correct horse"))) << path;
      struct stat st;
      ASSERT_EQ(stat(path.c_str(), &st), 0) << path;
      EXPECT_EQ(st.st_mode & 0777, 0600u) << path;
    }
  }
  // A recovery key given as a flag value is not accepted.
  EXPECT_NE(Command({kGateway, "join-cluster", "--recovery_key=oops"}, &out), 0);
  // Plaintext is for loopback only, on the service port as on the local relay.
  EXPECT_EQ(Command({kGateway, "run", "--insecure", "--data_dir", dir_ + "/m1", "--local_relay_listen",
                     "127.0.0.1:0", "--service_listen", "0.0.0.0:0"},
                    &out),
            1);
  EXPECT_THAT(out, HasSubstr("only allowed on loopback"));
}

TEST_F(GatewayTest, TheLocalTokenServiceRefusesAgentsNotBehindTheCluster) {
  std::string out;
  ASSERT_EQ(Enroll("create-cluster", dir_ + "/m1", recovery_file_, &out), 0) << out;
  uint16_t service_port = 0;
  auto member = RunMember(dir_ + "/m1", &service_port);
  ASSERT_NE(service_port, 0) << member->err();
  auto gateway = proto::GatewayService::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", service_port), grpc::InsecureChannelCredentials()));

  proto::ListClustersResponse clusters;
  ASSERT_TRUE(clusters_->ListClusters(CloudHarness::Context(token_).get(), {}, &clusters).ok());
  auto machines = proto::MachineService::NewStub(h_->channel());
  auto register_machine = [&](const std::string& name, const std::string& cluster_id,
                              crypto::Ed25519KeyPair* ed) {
    auto x = crypto::GenerateX25519KeyPair();
    *ed = *crypto::GenerateEd25519KeyPair();
    proto::RegisterMachineRequest request;
    request.set_name(name);
    request.set_x25519_pub(x->public_key);
    request.set_ed25519_pub(ed->public_key);
    request.set_cluster_id(cluster_id);
    proto::RegisterMachineResponse response;
    EXPECT_TRUE(machines->RegisterMachine(CloudHarness::Context(token_).get(), request, &response).ok());
    return response.machine_id();
  };
  crypto::Ed25519KeyPair behind_key, direct_key;
  const std::string behind = register_machine("behind", clusters.clusters(0).cluster_id(), &behind_key);
  const std::string direct = register_machine("direct", "", &direct_key);
  auto ask = [&](const std::string& machine_id, const crypto::SecretBytes& key, proto::ListenToken* token) {
    proto::GetListenTokenRequest request;
    EXPECT_TRUE(auth::SignMachineAuth("/tether.proto.GatewayService/GetAgentListenToken", machine_id, key,
                                      WallNow(), &request)
                    .ok());
    grpc::ClientContext context;
    return gateway->GetAgentListenToken(&context, request, token);
  };
  proto::ListenToken token;
  grpc::Status status = ask(direct, direct_key.private_key, &token);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(status.error_message(), HasSubstr("not registered behind this cluster"));
  status = ask(behind, direct_key.private_key, &token);  // the right id, the wrong key
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(status.error_message(), "bad signature");
  status = ask(behind, behind_key.private_key, &token);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(token.relay_endpoint(), ::testing::StartsWith("http://127.0.0.1:"));
  EXPECT_EQ(token.entity(), "hc/machine-" + behind);
}

// Members, each with one local agent behind it, and runs through the cluster.
class ClusterRunTest : public GatewayTest {
 protected:
  struct Member {
    std::string dir;
    std::unique_ptr<Child> process;
    uint16_t service_port = 0;
    uint16_t relay_port = 0;
    std::string agent_dir;
    std::unique_ptr<Child> agent;
  };

  void StartCluster(int members) {
    account_ = getpwuid(geteuid())->pw_name;
    accounts_file_ = dir_ + "/accounts";
    auto line = agent::accounts::MakeFileAccountLine(account_, crypto::SecretBytes("desk-pass"),
                                                     {.n = 1 << 10, .r = 8, .p = 1});
    ASSERT_TRUE(line.ok());
    WriteFile(accounts_file_, *line + "\n");
    std::string out;
    for (int i = 0; i < members; ++i) {
      Member member;
      member.dir = absl::StrCat(dir_, "/member-", i);
      ASSERT_EQ(Enroll(i == 0 ? "create-cluster" : "join-cluster", member.dir, recovery_file_, &out), 0) << out;
      members_.push_back(std::move(member));
    }
    for (int i = 0; i < members; ++i) StartMember(members_[i], 0, 0);
    proto::ListClustersResponse clusters;
    ASSERT_TRUE(clusters_->ListClusters(CloudHarness::Context(token_).get(), {}, &clusters).ok());
    cluster_ = clusters.clusters(0);
    for (int i = 0; i < members; ++i) {
      Member& member = members_[i];
      member.agent_dir = absl::StrCat(dir_, "/agent-", i);
      ASSERT_EQ(Command({kAgent, "register", "--cloud", Cloud(), "--insecure", "--token-file", token_file_,
                         "--name", absl::StrCat("desk-", i), "--cluster", "site-a", "--data_dir",
                         member.agent_dir},
                        &out),
                0)
          << out;
      StartAgent(member);
    }
    // Every member listens on the cluster entity (the relay lists them).
    const absl::Time deadline = absl::Now() + kWait;
    while (absl::Now() < deadline && ListenerCount() < members) absl::SleepFor(absl::Milliseconds(50));
    ASSERT_EQ(ListenerCount(), members);
    connection_id_ = "conn-cluster-000000001";
    proto::CreateConnectionRequest request;
    request.set_connection_id(connection_id_);
    request.set_name("cluster");
    request.mutable_target()->set_cluster_id(cluster_.cluster_id());
    request.set_username(account_);
    request.set_mode(proto::RUN_MODE_UNATTENDED);
    *request.mutable_sealed_credentials() = *crypto::SealCredentials(
        cluster_.cluster_pub(), connection_id_, {account_, crypto::SecretBytes("desk-pass")});
    proto::Connection connection;
    ASSERT_TRUE(connections_->CreateConnection(CloudHarness::Context(token_).get(), request, &connection).ok());
    ledger_file_ = dir_ + "/ran";
    proto::CreateFlowRequest flow;
    flow.set_name("tagged");
    flow.set_definition_json(absl::StrCat(
        R"({"name":"tagged","inputs":[{"name":"Tag","type":"text"}],"actions":[
          {"action":"Flow.Wait","duration_ms":200},
          {"action":"File.WriteText","path":")", ledger_file_, R"(","text":"%Tag%\n","append":true}]})"));
    proto::Flow created;
    ASSERT_TRUE(flows_->CreateFlow(CloudHarness::Context(token_).get(), flow, &created).ok());
    flow_id_ = created.flow_id();
  }

  void StartMember(Member& member, uint16_t relay_port, uint16_t service_port) {
    const std::string ports = member.dir + ".ports";
    unlink((ports + ".relay").c_str());
    unlink((ports + ".service").c_str());
    member.process = std::make_unique<Child>(std::vector<std::string>{
        kGateway, "run", "--insecure", "--data_dir", member.dir, "--local_relay_listen",
        absl::StrCat("127.0.0.1:", relay_port), "--service_listen", absl::StrCat("127.0.0.1:", service_port),
        "--relay_port_file", ports + ".relay", "--service_port_file", ports + ".service"});
    member.service_port = WaitForPort(ports + ".service");
    member.relay_port = WaitForPort(ports + ".relay");
    ASSERT_NE(member.service_port, 0) << member.process->err();
  }

  void StartAgent(Member& member) {
    member.agent = std::make_unique<Child>(std::vector<std::string>{
        kAgent, "run", "--data_dir", member.agent_dir, "--accounts", "file:" + accounts_file_, "--runner",
        kRunner, "--via-gateway", absl::StrCat("127.0.0.1:", member.service_port)});
    const absl::Time deadline = absl::Now() + kWait;
    while (absl::Now() < deadline &&
           ReadFile(member.agent_dir + "/status.json").find("connected") == std::string::npos) {
      absl::SleepFor(absl::Milliseconds(50));
    }
  }

  int ListenerCount() {
    net::PresenceOptions presence;
    presence.relay_url = h_->relay().url();
    presence.token = net::testing::MakeToken(net::testing::kManageKey, cluster_entity(), absl::Minutes(5));
    auto answer = net::FetchRelayPresence(presence, cluster_entity());
    return answer.ok() ? static_cast<int>(answer->listener_count()) : 0;
  }
  std::string cluster_entity() {
    if (cluster_.entity().empty()) {
      proto::ListClustersResponse clusters;
      clusters_->ListClusters(CloudHarness::Context(token_).get(), {}, &clusters);
      if (clusters.clusters_size() > 0) cluster_ = clusters.clusters(0);
    }
    return cluster_.entity().substr(3);
  }

  std::string Submit(const std::string& tag) {
    proto::RunFlowRequest request;
    request.set_flow_id(flow_id_);
    request.set_connection_id(connection_id_);
    (*request.mutable_inputs())["Tag"] = tag;
    proto::RunFlowResponse response;
    grpc::Status status = runs_->RunFlow(CloudHarness::Context(token_).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.run_id();
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

  // How many times each tag was written by a run.
  std::map<std::string, int> Executions() {
    std::map<std::string, int> count;
    for (absl::string_view line : absl::StrSplit(ReadFile(ledger_file_), '\n', absl::SkipEmpty())) {
      ++count[std::string(line)];
    }
    return count;
  }

  std::vector<Member> members_;
  proto::GatewayCluster cluster_;
  std::string account_, accounts_file_, connection_id_, flow_id_, ledger_file_;
};

TEST_F(ClusterRunTest, ARunGoesThroughAMemberToItsAgentWithTheEnvelopeResealed) {
  StartCluster(1);
  const std::string run_id = Submit("one");
  proto::Run run = WaitForEnd(run_id);
  ASSERT_EQ(run.state(), proto::RUN_STATE_SUCCEEDED)
      << run.error().message() << "\n" << members_[0].process->err() << members_[0].agent->err();
  EXPECT_EQ(Executions()["one"], 1);
  // The plaintext never reached a log.
  EXPECT_THAT(members_[0].process->err(), ::testing::Not(HasSubstr("desk-pass")));
  EXPECT_THAT(members_[0].agent->err(), ::testing::Not(HasSubstr("desk-pass")));

  // A tampered cluster envelope is refused by the member, before any agent sees it.
  const std::string id = "conn-cluster-tampered01";
  proto::CreateConnectionRequest request;
  request.set_connection_id(id);
  request.set_name("tampered");
  request.mutable_target()->set_cluster_id(cluster_.cluster_id());
  request.set_username(account_);
  request.set_mode(proto::RUN_MODE_UNATTENDED);
  auto sealed = crypto::SealCredentials(cluster_.cluster_pub(), id, {account_, crypto::SecretBytes("desk-pass")});
  std::string ciphertext = sealed->ciphertext();
  ciphertext[3] ^= 0x40;
  sealed->set_ciphertext(ciphertext);
  *request.mutable_sealed_credentials() = *sealed;
  proto::Connection connection;
  ASSERT_TRUE(connections_->CreateConnection(CloudHarness::Context(token_).get(), request, &connection).ok());
  connection_id_ = id;
  run = WaitForEnd(Submit("tampered"));
  EXPECT_EQ(run.state(), proto::RUN_STATE_FAILED);
  EXPECT_THAT(run.error().message(), HasSubstr("JOB_REJECT_CODE_CREDENTIALS_UNREADABLE"));
  EXPECT_EQ(Executions().count("tampered"), 0u);
}

// The cloud cannot see a member's local relay: members report which agents listen there, and the
// machine behind the gateway shows online while its agent runs, offline once it stops.
TEST_F(ClusterRunTest, AMachineBehindTheGatewayShowsOnlineWhileItsAgentListens) {
  StartCluster(1);
  auto machines = proto::MachineService::NewStub(h_->channel());
  auto status = [&]() {
    proto::ListMachinesResponse list;
    machines->ListMachines(CloudHarness::Context(token_).get(), {}, &list);
    for (const proto::Machine& machine : list.machines()) {
      if (machine.cluster_id() == cluster_.cluster_id()) return machine.status();
    }
    return proto::MACHINE_STATUS_UNSPECIFIED;
  };
  auto wait_for = [&](proto::MachineStatus wanted) {
    const absl::Time deadline = absl::Now() + kWait;
    proto::MachineStatus seen = status();
    while (seen != wanted && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(100));
      seen = status();
    }
    return seen;
  };
  EXPECT_EQ(wait_for(proto::MACHINE_STATUS_ONLINE), proto::MACHINE_STATUS_ONLINE)
      << members_[0].process->err();
  members_[0].agent->Signal(SIGTERM);
  members_[0].agent->Wait();
  EXPECT_EQ(wait_for(proto::MACHINE_STATUS_OFFLINE), proto::MACHINE_STATUS_OFFLINE);
}

TEST_F(ClusterRunTest, ThreeMembersShareTheRunsAndAKilledMemberLosesNone) {
  StartCluster(3);
  std::vector<std::string> runs;
  for (int i = 0; i < 12; ++i) runs.push_back(Submit(absl::StrCat("tag-", i)));
  // Kill one member once runs are flowing, then bring it back on the same ports (its agent
  // reconnects to it, holding whatever it accepted).
  const absl::Time deadline = absl::Now() + kWait;
  while (absl::Now() < deadline && Executions().size() < 2) absl::SleepFor(absl::Milliseconds(20));
  Member& victim = members_[1];
  victim.process->Signal(SIGKILL);
  victim.process->Wait();
  StartMember(victim, victim.relay_port, victim.service_port);
  for (const std::string& run_id : runs) {
    proto::Run run = WaitForEnd(run_id);
    EXPECT_EQ(run.state(), proto::RUN_STATE_SUCCEEDED) << run_id << ": " << run.state_detail() << " "
                                                       << run.error().message();
  }
  std::map<std::string, int> executions = Executions();
  for (int i = 0; i < 12; ++i) {
// Each run exactly once: a run whose answer died with the killed member was pinned to it and
    // is re-sent there, and the member sends it to the agent it recorded, whose ledger dedupes.
    EXPECT_EQ(executions[absl::StrCat("tag-", i)], 1) << "tag-" << i;
  }
  // The runs were spread: more than one agent ran some.
  int agents_used = 0;
  for (Member& member : members_) {
    if (ReadFile(member.agent_dir + "/status.json").find("JOB_STATE_SUCCEEDED") != std::string::npos) {
      ++agents_used;
    }
  }
  EXPECT_GE(agents_used, 2);
}

}  // namespace
}  // namespace tether::gateway
