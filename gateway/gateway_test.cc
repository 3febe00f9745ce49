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
#include "cloud/testing/cloud_harness.h"
#include "common/auth/machine_auth.h"
#include "common/base/clock.h"
#include "common/crypto/envelope.h"
#include "common/crypto/hpke.h"
#include "common/crypto/password_kdf.h"
#include "common/proto/gateway.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tether::gateway {
namespace {

using ::testing::HasSubstr;
using cloud::testing::CloudHarness;

constexpr absl::Duration kWait = absl::Seconds(60);
constexpr char kGateway[] = "gateway/gateway";
constexpr char kAgent[] = "agent/agent";
constexpr char kRunner[] = "agent/runner/flow_runner";

std::string TempDir() { return std::getenv("TEST_TMPDIR"); }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void WriteFile(const std::string& path, const std::string& text) {
  {
    std::ofstream out(path, std::ios::trunc);
    out << text;
  }
  chmod(path.c_str(), 0600);
}

class Child {
 public:
  explicit Child(std::vector<std::string> args) {
    static int counter = 0;
    out_ = absl::StrCat(TempDir(), "/gw-child-", ++counter, ".out");
    err_ = absl::StrCat(TempDir(), "/gw-child-", counter, ".err");
    pid_ = fork();
    if (pid_ == 0) {
      int out = open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      int err = open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      int null = open("/dev/null", O_RDONLY);
      dup2(null, 0);
      dup2(out, 1);
      dup2(err, 2);
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      std::vector<char*> argv;
      for (std::string& arg : args) argv.push_back(arg.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
  }
  ~Child() {
    Signal(SIGKILL);
    Wait();
  }
  void Signal(int signal) {
    if (pid_ > 0) kill(pid_, signal);
  }
  int Wait() {
    if (pid_ <= 0) return status_;
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return status_;
  }
  std::string err() const { return ReadFile(err_) + ReadFile(out_); }

 private:
  pid_t pid_ = -1;
  int status_ = -1;
  std::string out_, err_;
};

uint16_t WaitForPort(const std::string& file) {
  const absl::Time deadline = absl::Now() + kWait;
  while (absl::Now() < deadline) {
    std::string text = ReadFile(file);
    int port = 0;
    if (!text.empty() && text.back() == '\n' && absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &port)) {
      return static_cast<uint16_t>(port);
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return 0;
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
    if (output != nullptr) *output = child.err();
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
  EXPECT_THAT(token.relay_endpoint(), ::testing::StartsWith("ws://127.0.0.1:"));
  EXPECT_EQ(token.entity(), "hc/machine-" + behind);
}

}  // namespace
}  // namespace tether::gateway
