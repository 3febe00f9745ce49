// The cloud_server binary as users run it: flag and file checks at start, the admin command, and
// a SIGKILL in the middle of dispatching after which every run still completes exactly once.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "cloud/testing/stub_agent.h"
#include "common/auth/machine_auth.h"
#include "common/base/clock.h"
#include "common/base/status_macros.h"
#include "common/crypto/ed25519.h"
#include "common/crypto/envelope.h"
#include "common/crypto/hpke.h"
#include "common/net/relay_process.h"
#include "common/proto/cloud.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "common/testing/child_process.h"
#include "gtest/gtest.h"

namespace tether::cloud {
namespace {

using Child = ::tether::testing::ChildProcess;
std::string ReadFile(const std::string& path) { return ::tether::testing::ReadFileOrEmpty(path); }

using ::testing::HasSubstr;

std::string TempDir() { return std::getenv("TEST_TMPDIR"); }

constexpr char kBinary[] = "cloud/cloud_server";

class CloudMainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int counter = 0;
    data_dir_ = absl::StrCat(TempDir(), "/cloud-main-", ++counter);
    auto relay = net::testing::RelayProcess::Start({"--insecure"});
    ASSERT_TRUE(relay.ok()) << relay.status();
    relay_ = *std::move(relay);
    keys_file_ = absl::StrCat(TempDir(), "/relay-keys");
  }

  std::vector<std::string> ServerArgs(const std::string& port_file, uint16_t port = 0,
                                      const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = ServerArgsBase(port_file, port);
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }
  std::vector<std::string> ServerArgsBase(const std::string& port_file, uint16_t port) {
    return {kBinary,
            absl::StrCat("--listen=127.0.0.1:", port),
            "--port_file=" + port_file,
            "--data_dir=" + data_dir_,
            "--insecure",
            "--relay_url=" + relay_->url(),
            "--relay_keys_file=" + keys_file_,
            "--http_listen=127.0.0.1:0",
            "--http_port_file=" + port_file + ".http"};
  }

  // Starts the server and waits for its port file.
  std::unique_ptr<Child> StartServer(uint16_t* port, uint16_t wanted = 0,
                                     const std::vector<std::string>& extra = {}) {
    static int counter = 0;
    const std::string port_file = absl::StrCat(TempDir(), "/cloud-port-", ++counter);
    auto child = std::make_unique<Child>(ServerArgs(port_file, wanted, extra));
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    std::string text;
    while (absl::Now() < deadline) {
      text = ReadFile(port_file);
      if (!text.empty() && text.back() == '\n') break;
      absl::SleepFor(absl::Milliseconds(10));
    }
    int value = 0;
    EXPECT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &value)) << child->err();
    *port = static_cast<uint16_t>(value);
    // The HTTP port file is written right after the gRPC one.
    while (absl::Now() < deadline) {
      text = ReadFile(port_file + ".http");
      if (!text.empty() && text.back() == '\n') break;
      absl::SleepFor(absl::Milliseconds(10));
    }
    EXPECT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &value));
    http_port_ = static_cast<uint16_t>(value);
    return child;
  }

  // GET http://127.0.0.1:<http_port_><path>; the whole response (headers and body).
  std::string HttpGet(const std::string& path) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(http_port_);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      close(fd);
      return "";
    }
    const std::string request =
        absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    if (write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
      close(fd);
      return "";
    }
    std::string response;
    char buffer[4096];
    ssize_t n;
    while ((n = read(fd, buffer, sizeof(buffer))) > 0) response.append(buffer, n);
    close(fd);
    return response;
  }

  uint16_t http_port_ = 0;

  std::string CreateUser(const std::string& name) {
    Child admin({kBinary, "admin", "create-user", name, "--data_dir=" + data_dir_});
    EXPECT_EQ(admin.Wait(), 0) << admin.err();
    return std::string(absl::StripAsciiWhitespace(admin.out()));
  }

  std::string data_dir_;
  std::string keys_file_;
  std::unique_ptr<net::testing::RelayProcess> relay_;
};

TEST_F(CloudMainTest, BadFlagsAndFilesAreRefusedAtStartWithTheReason) {
  const std::string port_file = TempDir() + "/unused-port";
  const std::string open_keys = TempDir() + "/keys-0644";
  {
    std::ofstream out(open_keys);
    out << "k 0123456789abcdef0123456789abcdef Manage\n";
  }
  chmod(open_keys.c_str(), 0644);
  struct Case {
    std::vector<std::string> change;
    std::string message;
  };
  std::vector<Case> cases = {
      {{"--listen=0.0.0.0:0"}, "only allowed on loopback"},
      {{"--relay_keys_file="}, "--relay_keys_file is required"},
      {{"--relay_keys_file=" + open_keys}, "group or other"},
      {{"--relay_url="}, "--relay_url is required"},
      {{"--data_dir="}, "--data_dir is required"},
      {{"--accept_timeout_ms=1"}, "--accept_timeout_ms >= 100"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.message);
    std::vector<std::string> args = ServerArgs(port_file);
    args.insert(args.end(), c.change.begin(), c.change.end());
    Child child(args);
    EXPECT_EQ(child.Wait(), 2);
    EXPECT_THAT(child.err(), HasSubstr(c.message));
  }
  Child unknown({kBinary, "serve-everything"});
  EXPECT_EQ(unknown.Wait(), 2);
  EXPECT_THAT(unknown.err(), HasSubstr("unknown command"));
}

TEST_F(CloudMainTest, AdminCreatesUsersOnceAndRefusesWhileTheServerRuns) {
  const std::string token = CreateUser("alice");
  EXPECT_THAT(token, ::testing::StartsWith("tt_"));
  Child duplicate({kBinary, "admin", "create-user", "alice", "--data_dir=" + data_dir_});
  EXPECT_EQ(duplicate.Wait(), 1);
  EXPECT_THAT(duplicate.err(), HasSubstr("already exists"));

  uint16_t port = 0;
  auto server = StartServer(&port);
  ASSERT_NE(port, 0);
  Child locked({kBinary, "admin", "create-user", "bob", "--data_dir=" + data_dir_});
  EXPECT_EQ(locked.Wait(), 2);
  EXPECT_THAT(locked.err(), HasSubstr("is cloud_server running?"));

  // The token works against the running server; SIGTERM stops it cleanly.
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials());
  auto users = proto::UserService::NewStub(channel);
  grpc::ClientContext context;
  context.AddMetadata("authorization", "Bearer " + token);
  proto::WhoAmIResponse me;
  ASSERT_TRUE(users->WhoAmI(&context, {}, &me).ok());
  EXPECT_EQ(me.user().name(), "alice");
  EXPECT_THAT(HttpGet("/healthz"), HasSubstr("200 OK"));
  EXPECT_THAT(HttpGet("/metrics"), HasSubstr("tether_cloud_runs_active 0"));
  EXPECT_THAT(HttpGet("/nope"), HasSubstr("404"));
  server->Signal(SIGTERM);
  EXPECT_EQ(server->Wait(), 0) << server->err();
  // The signing key is private to the service account.
  struct stat st;
  ASSERT_EQ(stat((data_dir_ + "/cloud-signing.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

// --metrics_listen moves /metrics off the port browsers use.
TEST_F(CloudMainTest, MetricsCanHaveAPortOfTheirOwn) {
  const std::string metrics_port_file = absl::StrCat(TempDir(), "/metrics-port");
  uint16_t port = 0;
  auto server = StartServer(&port, 0,
                            {"--metrics_listen=127.0.0.1:0", "--metrics_port_file=" + metrics_port_file});
  ASSERT_NE(port, 0) << server->err();
  const uint16_t portal_port = http_port_;
  std::string text;  // written right after the HTTP port file
  for (const absl::Time deadline = absl::Now() + absl::Seconds(30);
       absl::Now() < deadline && (text.empty() || text.back() != '\n');) {
    text = ReadFile(metrics_port_file);
    if (text.empty() || text.back() != '\n') absl::SleepFor(absl::Milliseconds(10));
  }
  int value = 0;
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &value)) << server->err();
  EXPECT_THAT(HttpGet("/metrics"), HasSubstr("404"));  // the portal port
  EXPECT_THAT(HttpGet("/healthz"), HasSubstr("200 OK"));
  EXPECT_THAT(HttpGet("/"), HasSubstr("200 OK"));
  http_port_ = static_cast<uint16_t>(value);
  ASSERT_NE(http_port_, portal_port);
  EXPECT_THAT(HttpGet("/metrics"), HasSubstr("tether_cloud_runs_active 0"));
  EXPECT_THAT(HttpGet("/healthz"), HasSubstr("200 OK"));
  EXPECT_THAT(HttpGet("/"), HasSubstr("404"));  // no portal here
  server->Signal(SIGTERM);
  EXPECT_EQ(server->Wait(), 0) << server->err();
}

TEST_F(CloudMainTest, SigkillMidDispatchLosesNoRunAndRunsNoneTwice) {
  const std::string token = CreateUser("alice");
  uint16_t port = 0;
  auto server = StartServer(&port);
  ASSERT_NE(port, 0);
  auto channel = [&] {
    return grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials());
  };
  auto context = [&] {
    auto c = std::make_unique<grpc::ClientContext>();
    c->AddMetadata("authorization", "Bearer " + token);
    c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    return c;
  };

  auto x25519 = crypto::GenerateX25519KeyPair();
  auto ed25519 = crypto::GenerateEd25519KeyPair();
  proto::RegisterMachineRequest reg;
  reg.set_name("desk-1");
  reg.set_x25519_pub(x25519->public_key);
  reg.set_ed25519_pub(ed25519->public_key);
  proto::RegisterMachineResponse machine;
  ASSERT_TRUE(proto::MachineService::NewStub(channel())->RegisterMachine(context().get(), reg, &machine).ok());
  const std::string connection_id = "conn-0123456789abcdef";
  proto::CreateConnectionRequest conn;
  conn.set_connection_id(connection_id);
  conn.set_name("main");
  conn.mutable_target()->set_machine_id(machine.machine_id());
  conn.set_username("desk-user");
  conn.set_mode(proto::RUN_MODE_UNATTENDED);
  *conn.mutable_sealed_credentials() =
      *crypto::SealCredentials(x25519->public_key, connection_id, {"desk-user", crypto::SecretBytes("pw")});
  proto::Connection created;
  ASSERT_TRUE(proto::ConnectionService::NewStub(channel())->CreateConnection(context().get(), conn, &created).ok());
  proto::CreateFlowRequest flow_request;
  flow_request.set_name("f");
  flow_request.set_definition_json(R"({"name":"f","actions":[{"action":"Flow.Wait","duration_ms":0}]})");
  proto::Flow flow;
  ASSERT_TRUE(proto::FlowService::NewStub(channel())->CreateFlow(context().get(), flow_request, &flow).ok());

  // The stub agent asks whichever cloud process is current for its listen tokens.
  std::atomic<uint16_t> current_port{port};
  testing::StubAgentOptions options;
  options.relay_url = relay_->url();
  options.entity = machine.entity().substr(3);
  options.cloud_signing_pub = machine.cloud_signing_pub();
  options.token_provider = [&]() -> absl::StatusOr<std::string> {
    proto::GetListenTokenRequest request;
    RETURN_IF_ERROR(auth::SignMachineAuth("/tether.proto.MachineService/GetListenToken",
                                          machine.machine_id(), ed25519->private_key, WallNow(),
                                          &request));
    auto stub = proto::MachineService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", current_port.load()), grpc::InsecureChannelCredentials()));
    grpc::ClientContext c;
    c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    proto::ListenToken listen;
    grpc::Status status = stub->GetListenToken(&c, request, &listen);
    if (!status.ok()) return absl::UnavailableError(status.error_message());
    return listen.token();
  };
  auto agent = testing::StubAgent::Start(options);
  ASSERT_TRUE(agent.ok()) << agent.status();

  constexpr int kRuns = 40;
  std::vector<proto::Run> runs;
  auto run_stub = proto::RunService::NewStub(channel());
  for (int i = 0; i < kRuns; ++i) {
    proto::RunFlowRequest request;
    request.set_flow_id(flow.flow_id());
    request.set_connection_id(connection_id);
    proto::RunFlowResponse response;
    ASSERT_TRUE(run_stub->RunFlow(context().get(), request, &response).ok());
    runs.push_back(response.run());
  }
  // Kill it while it dispatches: some runs done, some in flight, some queued.
  ASSERT_TRUE((*agent)->WaitForAccepted(5, absl::Seconds(30)));
  server->Signal(SIGKILL);
  server->Wait();
  const size_t accepted_at_kill = (*agent)->accepted_jobs().size();
  EXPECT_LT(accepted_at_kill, static_cast<size_t>(kRuns)) << "the kill came too late to test anything";

  server = StartServer(&port, 0);
  ASSERT_NE(port, 0);
  current_port = port;
  run_stub = proto::RunService::NewStub(channel());
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  for (const proto::Run& run : runs) {
    proto::GetRunRequest get;
    get.set_run_id(run.run_id());
    proto::Run now;
    while (absl::Now() < deadline) {
      grpc::Status status = run_stub->GetRun(context().get(), get, &now);
      if (status.ok() && now.state() == proto::RUN_STATE_SUCCEEDED) break;
      absl::SleepFor(absl::Milliseconds(20));
    }
    EXPECT_EQ(now.state(), proto::RUN_STATE_SUCCEEDED) << run.run_id() << " " << now.state_detail();
    EXPECT_EQ((*agent)->executions(run.job_id()), 1) << run.run_id();
  }
  EXPECT_EQ((*agent)->accepted_jobs().size(), static_cast<size_t>(kRuns));
}

}  // namespace
}  // namespace tether::cloud
