#include "cloud/testing/cloud_harness.h"

#include <atomic>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "common/auth/machine_auth.h"
#include "common/base/clock.h"
#include "common/base/status_macros.h"

namespace tether::cloud::testing {
namespace {

std::string TempDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

absl::Status FromGrpc(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

}  // namespace

absl::StatusOr<std::unique_ptr<CloudHarness>> CloudHarness::Start(
    std::function<void(RunManagerOptions&)> tweak) {
  static std::atomic<int> counter{0};
  std::unique_ptr<CloudHarness> harness(new CloudHarness());
  harness->tweak_ = std::move(tweak);
  harness->data_dir_ = absl::StrCat(TempDir(), "/cloud-", ++counter);
  ASSIGN_OR_RETURN(harness->relay_, net::testing::RelayProcess::Start({"--insecure"}));
  RETURN_IF_ERROR(harness->StartCloud(0));
  return harness;
}

CloudHarness::~CloudHarness() {
  if (cloud_ != nullptr) cloud_->Shutdown(absl::Seconds(1));
}

absl::Status CloudHarness::StartCloud(uint16_t port) {
  CloudServerOptions options;
  options.listen = absl::StrCat("127.0.0.1:", port);
  options.data_dir = data_dir_;
  options.insecure = true;
  options.http_listen = "127.0.0.1:0";  // /metrics, the REST API and the portal
  options.relay_url = relay_->url();
  options.relay_keys_file = absl::StrCat(TempDir(), "/relay-keys");
  options.runs.retry_min = absl::Milliseconds(20);
  options.runs.retry_max = absl::Milliseconds(200);
  if (tweak_) tweak_(options.runs);
  ASSIGN_OR_RETURN(cloud_, CloudServer::Start(std::move(options)));
  channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", cloud_->port()),
                                 grpc::InsecureChannelCredentials());
  return absl::OkStatus();
}

absl::Status CloudHarness::RestartCloud() {
  const uint16_t port = cloud_->port();
  cloud_->Shutdown(absl::Seconds(1));
  cloud_.reset();
  return StartCloud(port);
}

absl::StatusOr<std::string> CloudHarness::CreateUser(const std::string& name, bool admin) {
  proto::CreateUserRequest request;
  request.set_name(name);
  request.set_admin(admin);
  ASSIGN_OR_RETURN(proto::NewApiToken token, cloud_->service()->CreateUser(nullptr, request));
  return token.secret();
}

std::unique_ptr<grpc::ClientContext> CloudHarness::Context(const std::string& token) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->AddMetadata("authorization", absl::StrCat("Bearer ", token));
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  return context;
}

absl::StatusOr<TestMachine> CloudHarness::RegisterMachine(const std::string& token,
                                                          const std::string& name) {
  TestMachine machine;
  ASSIGN_OR_RETURN(machine.x25519, crypto::GenerateX25519KeyPair());
  ASSIGN_OR_RETURN(machine.ed25519, crypto::GenerateEd25519KeyPair());
  proto::RegisterMachineRequest request;
  request.set_name(name);
  request.set_x25519_pub(machine.x25519.public_key);
  request.set_ed25519_pub(machine.ed25519.public_key);
  proto::RegisterMachineResponse response;
  auto stub = proto::MachineService::NewStub(channel_);
  RETURN_IF_ERROR(FromGrpc(stub->RegisterMachine(Context(token).get(), request, &response)));
  machine.machine_id = response.machine_id();
  machine.entity = response.entity();
  machine.cloud_signing_pub = response.cloud_signing_pub();
  return machine;
}

absl::StatusOr<std::string> CloudHarness::ListenToken(const TestMachine& machine) {
  proto::GetListenTokenRequest request;
  RETURN_IF_ERROR(auth::SignMachineAuth("/tether.proto.MachineService/GetListenToken",
                                        machine.machine_id, machine.ed25519.private_key, WallNow(),
                                        &request));
  proto::ListenToken token;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto stub = proto::MachineService::NewStub(channel_);
  RETURN_IF_ERROR(FromGrpc(stub->GetListenToken(&context, request, &token)));
  return token.token();
}

absl::StatusOr<std::unique_ptr<StubAgent>> CloudHarness::StartAgent(const TestMachine& machine,
                                                                     StubAgentOptions options) {
  options.relay_url = relay_->url();
  options.entity = machine.entity.substr(machine.entity.find('/') + 1);  // without "hc/"
  options.cloud_signing_pub = machine.cloud_signing_pub;
  // The token provider outlives nothing: it copies what it needs.
  auto copy = std::make_shared<TestMachine>();
  copy->machine_id = machine.machine_id;
  copy->ed25519.private_key = machine.ed25519.private_key.Clone();
  copy->ed25519.public_key = machine.ed25519.public_key;
  options.token_provider = [this, copy]() { return ListenToken(*copy); };
  return StubAgent::Start(std::move(options));
}

}  // namespace tether::cloud::testing
