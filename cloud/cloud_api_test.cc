// The cloud's gRPC API over a real RocksDB and a real gRPC server on loopback: authentication,
// ownership, and every bad input of the cloud issue — each gets a clear status and message and
// leaves the stored data unchanged.
#include <dirent.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "cloud/cloud_store.h"
#include "cloud/testing/cloud_harness.h"
#include "common/auth/machine_auth.h"
#include "common/base/clock.h"
#include "common/crypto/envelope.h"
#include "common/crypto/password_kdf.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tether::cloud {
namespace {

using ::testing::HasSubstr;
using testing::CloudHarness;
using testing::TestMachine;

constexpr char kFlow[] = R"({"name":"Hello","inputs":[{"name":"Who","type":"text","default":"world"}],
  "outputs":[{"name":"Greeting"}],
  "actions":[{"action":"Variables.SetVariable","variable":"Greeting","value":"hello %Who%"}]})";

class CloudApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto harness = CloudHarness::Start();
    ASSERT_TRUE(harness.ok()) << harness.status();
    h_ = *std::move(harness);
    auto alice = h_->CreateUser("alice", /*admin=*/true);
    ASSERT_TRUE(alice.ok()) << alice.status();
    alice_ = *alice;
    auto bob = h_->CreateUser("bob");
    ASSERT_TRUE(bob.ok()) << bob.status();
    bob_ = *bob;
    users_ = proto::UserService::NewStub(h_->channel());
    machines_ = proto::MachineService::NewStub(h_->channel());
    groups_ = proto::GroupService::NewStub(h_->channel());
    clusters_ = proto::ClusterService::NewStub(h_->channel());
    connections_ = proto::ConnectionService::NewStub(h_->channel());
    flows_ = proto::FlowService::NewStub(h_->channel());
    runs_ = proto::RunService::NewStub(h_->channel());
  }

  TestMachine Machine(const std::string& token, const std::string& name) {
    auto machine = h_->RegisterMachine(token, name);
    EXPECT_TRUE(machine.ok()) << machine.status();
    return machine.ok() ? *std::move(machine) : TestMachine();
  }

  proto::CreateConnectionRequest ConnectionRequest(const TestMachine& machine, const std::string& id,
                                                   const std::string& name,
                                                   const std::string& password) {
    proto::CreateConnectionRequest request;
    request.set_connection_id(id);
    request.set_name(name);
    request.mutable_target()->set_machine_id(machine.machine_id);
    request.set_username("desk-user");
    request.set_mode(proto::RUN_MODE_UNATTENDED);
    auto sealed = crypto::SealCredentials(machine.x25519.public_key, id,
                                          {"desk-user", crypto::SecretBytes(password)});
    EXPECT_TRUE(sealed.ok());
    *request.mutable_sealed_credentials() = *sealed;
    return request;
  }

  int ConnectionCount(const std::string& token) {
    proto::ListConnectionsResponse list;
    EXPECT_TRUE(connections_->ListConnections(CloudHarness::Context(token).get(), {}, &list).ok());
    return list.connections_size();
  }

  int FlowCount(const std::string& token) {
    proto::ListFlowsResponse list;
    EXPECT_TRUE(flows_->ListFlows(CloudHarness::Context(token).get(), {}, &list).ok());
    return list.flows_size();
  }

  std::unique_ptr<CloudHarness> h_;
  std::string alice_, bob_;
  std::unique_ptr<proto::UserService::Stub> users_;
  std::unique_ptr<proto::MachineService::Stub> machines_;
  std::unique_ptr<proto::GroupService::Stub> groups_;
  std::unique_ptr<proto::ClusterService::Stub> clusters_;
  std::unique_ptr<proto::ConnectionService::Stub> connections_;
  std::unique_ptr<proto::FlowService::Stub> flows_;
  std::unique_ptr<proto::RunService::Stub> runs_;
};

TEST_F(CloudApiTest, MissingUnknownMalformedAndRevokedTokensAreUnauthenticated) {
  proto::WhoAmIResponse me;
  ASSERT_TRUE(users_->WhoAmI(CloudHarness::Context(alice_).get(), {}, &me).ok());
  EXPECT_EQ(me.user().name(), "alice");

  grpc::ClientContext none;
  grpc::Status status = users_->WhoAmI(&none, {}, &me);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(status.error_message(), HasSubstr("missing bearer token"));

  status = users_->WhoAmI(CloudHarness::Context("tt_not-a-real-token").get(), {}, &me);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(status.error_message(), "unknown API token");

  status = users_->WhoAmI(CloudHarness::Context("password123").get(), {}, &me);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(status.error_message(), "malformed API token");

  proto::CreateTokenRequest create;
  create.set_label("laptop");
  proto::NewApiToken second;
  ASSERT_TRUE(users_->CreateToken(CloudHarness::Context(alice_).get(), create, &second).ok());
  ASSERT_TRUE(users_->WhoAmI(CloudHarness::Context(second.secret()).get(), {}, &me).ok());
  proto::RevokeTokenRequest revoke;
  revoke.set_token_id(second.token().token_id());
  proto::ApiToken revoked;
  ASSERT_TRUE(users_->RevokeToken(CloudHarness::Context(alice_).get(), revoke, &revoked).ok());
  EXPECT_NE(revoked.revoked_at_unix_ms(), 0);
  status = users_->WhoAmI(CloudHarness::Context(second.secret()).get(), {}, &me);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(status.error_message(), "API token revoked");
  // The other token still works; bob cannot revoke alice's token (it does not exist for him).
  EXPECT_TRUE(users_->WhoAmI(CloudHarness::Context(alice_).get(), {}, &me).ok());
  proto::ListTokensResponse tokens;
  ASSERT_TRUE(users_->ListTokens(CloudHarness::Context(alice_).get(), {}, &tokens).ok());
  revoke.set_token_id(tokens.tokens(0).token_id());
  status = users_->RevokeToken(CloudHarness::Context(bob_).get(), revoke, &revoked);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(CloudApiTest, OnlyAdminsCreateUsersAndNamesAreUnique) {
  proto::CreateUserRequest request;
  request.set_name("carol");
  proto::NewApiToken token;
  grpc::Status status = users_->CreateUser(CloudHarness::Context(bob_).get(), request, &token);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  ASSERT_TRUE(users_->CreateUser(CloudHarness::Context(alice_).get(), request, &token).ok());
  EXPECT_THAT(token.secret(), ::testing::StartsWith("tt_"));
  status = users_->CreateUser(CloudHarness::Context(alice_).get(), request, &token);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  request.set_name("bad name!");
  status = users_->CreateUser(CloudHarness::Context(alice_).get(), request, &token);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(CloudApiTest, AnotherUsersMachineConnectionAndRunAreNotFound) {
  TestMachine machine = Machine(alice_, "desk-1");
  proto::Connection connection;
  ASSERT_TRUE(connections_
                  ->CreateConnection(CloudHarness::Context(alice_).get(),
                                     ConnectionRequest(machine, "conn-0123456789abcdef", "c1", "pw"),
                                     &connection)
                  .ok());
  proto::CreateFlowRequest flow_request;
  flow_request.set_name("hello");
  flow_request.set_definition_json(kFlow);
  proto::Flow flow;
  ASSERT_TRUE(flows_->CreateFlow(CloudHarness::Context(alice_).get(), flow_request, &flow).ok());
  proto::RunFlowRequest run_request;
  run_request.set_flow_id(flow.flow_id());
  run_request.set_connection_id(connection.connection_id());
  proto::RunFlowResponse run;
  ASSERT_TRUE(runs_->RunFlow(CloudHarness::Context(alice_).get(), run_request, &run).ok());

  proto::GetMachineRequest get_machine;
  get_machine.set_machine_id(machine.machine_id);
  proto::Machine shown;
  EXPECT_EQ(machines_->GetMachine(CloudHarness::Context(bob_).get(), get_machine, &shown).error_code(),
            grpc::StatusCode::NOT_FOUND);
  proto::ListMachinesResponse bobs;
  ASSERT_TRUE(machines_->ListMachines(CloudHarness::Context(bob_).get(), {}, &bobs).ok());
  EXPECT_EQ(bobs.machines_size(), 0);
  proto::GetConnectionRequest get_connection;
  get_connection.set_connection_id(connection.connection_id());
  EXPECT_EQ(connections_->GetConnection(CloudHarness::Context(bob_).get(), get_connection, &connection)
                .error_code(),
            grpc::StatusCode::NOT_FOUND);
  proto::GetRunRequest get_run;
  get_run.set_run_id(run.run_id());
  proto::Run shown_run;
  EXPECT_EQ(runs_->GetRun(CloudHarness::Context(bob_).get(), get_run, &shown_run).error_code(),
            grpc::StatusCode::NOT_FOUND);
  proto::CancelRunRequest cancel;
  cancel.set_run_id(run.run_id());
  EXPECT_EQ(runs_->CancelRun(CloudHarness::Context(bob_).get(), cancel, &shown_run).error_code(),
            grpc::StatusCode::NOT_FOUND);
  // Bob cannot run alice's flow through alice's connection either.
  EXPECT_EQ(runs_->RunFlow(CloudHarness::Context(bob_).get(), run_request, &run).error_code(),
            grpc::StatusCode::NOT_FOUND);
  // Nor seal a connection to her machine.
  EXPECT_EQ(connections_
                ->CreateConnection(CloudHarness::Context(bob_).get(),
                                   ConnectionRequest(machine, "conn-bob-0123456789", "c", "pw"),
                                   &connection)
                .error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(CloudApiTest, SharingGivesUseButOnlyTheOwnerRoleMayDelete) {
  TestMachine machine = Machine(alice_, "desk-1");
  proto::ShareMachineRequest share;
  share.set_machine_id(machine.machine_id);
  share.set_user_name("bob");
  share.set_role(proto::SHARE_ROLE_USER);
  proto::Machine shared;
  ASSERT_TRUE(machines_->ShareMachine(CloudHarness::Context(alice_).get(), share, &shared).ok());
  ASSERT_EQ(shared.shared_with_size(), 1);
  proto::ListMachinesResponse bobs;
  ASSERT_TRUE(machines_->ListMachines(CloudHarness::Context(bob_).get(), {}, &bobs).ok());
  ASSERT_EQ(bobs.machines_size(), 1);
  proto::Connection connection;
  EXPECT_TRUE(connections_
                  ->CreateConnection(CloudHarness::Context(bob_).get(),
                                     ConnectionRequest(machine, "conn-bob-0123456789", "c", "pw"),
                                     &connection)
                  .ok());
  proto::DeleteMachineRequest del;
  del.set_machine_id(machine.machine_id);
  proto::DeleteMachineResponse deleted;
  grpc::Status status = machines_->DeleteMachine(CloudHarness::Context(bob_).get(), del, &deleted);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(machines_->GetMachine(CloudHarness::Context(alice_).get(), {}, &shared).error_code() ==
              grpc::StatusCode::NOT_FOUND);  // empty id: not found, not a crash
  proto::UnshareMachineRequest unshare;
  unshare.set_machine_id(machine.machine_id);
  unshare.set_user_name("bob");
  ASSERT_TRUE(machines_->UnshareMachine(CloudHarness::Context(alice_).get(), unshare, &shared).ok());
  ASSERT_TRUE(machines_->ListMachines(CloudHarness::Context(bob_).get(), {}, &bobs).ok());
  EXPECT_EQ(bobs.machines_size(), 0);
  // Deleting the machine takes the connections sealed to its key with it.
  ASSERT_TRUE(machines_->DeleteMachine(CloudHarness::Context(alice_).get(), del, &deleted).ok());
  EXPECT_EQ(ConnectionCount(bob_), 0);
}

TEST_F(CloudApiTest, BadEnvelopesAreRefusedAndNothingIsStored) {
  TestMachine machine = Machine(alice_, "desk-1");
  TestMachine other = Machine(alice_, "desk-2");
  const std::string id = "conn-0123456789abcdef";
  struct Case {
    std::string name;
    std::function<void(proto::CreateConnectionRequest&)> spoil;
    std::string message;
  };
  std::vector<Case> cases = {
      {"sealed to another machine's key",
       [&](proto::CreateConnectionRequest& r) {
         *r.mutable_sealed_credentials() =
             *crypto::SealCredentials(other.x25519.public_key, id, {"u", crypto::SecretBytes("pw")});
       },
       "sealed_credentials: envelope is sealed to a different public key"},
      {"unknown suite",
       [](proto::CreateConnectionRequest& r) { r.mutable_sealed_credentials()->set_aead_id(0x7777); },
       "sealed_credentials:"},
      {"truncated ciphertext",
       [](proto::CreateConnectionRequest& r) {
         r.mutable_sealed_credentials()->set_ciphertext(r.sealed_credentials().ciphertext().substr(0, 10));
       },
       "sealed_credentials: ciphertext is truncated"},
      {"bound to another connection id",
       [&](proto::CreateConnectionRequest& r) {
         *r.mutable_sealed_credentials() = *crypto::SealCredentials(
             machine.x25519.public_key, "conn-somewhere-else-0000", {"u", crypto::SecretBytes("pw")});
       },
       "sealed_credentials: envelope is bound to connection \"conn-somewhere-else-0000\""},
      {"no envelope", [](proto::CreateConnectionRequest& r) { r.clear_sealed_credentials(); },
       "sealed_credentials is missing"},
      {"bad connection id", [](proto::CreateConnectionRequest& r) { r.set_connection_id("UPPER"); },
       "connection_id must be"},
      {"no mode", [](proto::CreateConnectionRequest& r) { r.set_mode(proto::RUN_MODE_UNSPECIFIED); },
       "mode must be"},
      {"no target", [](proto::CreateConnectionRequest& r) { r.clear_target(); }, "target must name"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    proto::CreateConnectionRequest request = ConnectionRequest(machine, id, "c1", "pw");
    c.spoil(request);
    proto::Connection connection;
    grpc::Status status =
        connections_->CreateConnection(CloudHarness::Context(alice_).get(), request, &connection);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(status.error_message(), HasSubstr(c.message));
    EXPECT_EQ(ConnectionCount(alice_), 0);
  }
}

TEST_F(CloudApiTest, DuplicateNamesAndIdsAreAlreadyExists) {
  TestMachine machine = Machine(alice_, "desk-1");
  proto::RegisterMachineRequest again;
  again.set_name("desk-1");
  again.set_x25519_pub(std::string(32, 'x'));
  again.set_ed25519_pub(std::string(32, 'e'));
  proto::RegisterMachineResponse registered;
  EXPECT_EQ(machines_->RegisterMachine(CloudHarness::Context(alice_).get(), again, &registered)
                .error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
  // Bob may use the same machine name: names are per owner.
  EXPECT_TRUE(machines_->RegisterMachine(CloudHarness::Context(bob_).get(), again, &registered).ok());

  proto::Connection connection;
  ASSERT_TRUE(connections_
                  ->CreateConnection(CloudHarness::Context(alice_).get(),
                                     ConnectionRequest(machine, "conn-0123456789abcdef", "c1", "pw"),
                                     &connection)
                  .ok());
  grpc::Status status = connections_->CreateConnection(
      CloudHarness::Context(alice_).get(), ConnectionRequest(machine, "conn-0123456789abcdef", "c2", "pw"),
      &connection);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_THAT(status.error_message(), HasSubstr("already in use"));
  status = connections_->CreateConnection(
      CloudHarness::Context(alice_).get(), ConnectionRequest(machine, "conn-fedcba9876543210", "c1", "pw"),
      &connection);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(ConnectionCount(alice_), 1);

  proto::CreateFlowRequest flow;
  flow.set_name("hello");
  flow.set_definition_json(kFlow);
  proto::Flow created;
  ASSERT_TRUE(flows_->CreateFlow(CloudHarness::Context(alice_).get(), flow, &created).ok());
  EXPECT_EQ(flows_->CreateFlow(CloudHarness::Context(alice_).get(), flow, &created).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(FlowCount(alice_), 1);
}

TEST_F(CloudApiTest, BadFlowsAreRefusedWithTheJsonPathAndNothingIsStored) {
  std::string nested = R"({"action":"Flow.Fail","message":"x"})";
  for (int i = 0; i < 20; ++i) {
    nested = absl::StrCat(R"({"action":"Flow.Loop","times":1,"body":[)", nested, "]}");
  }
  struct Case {
    std::string name;
    std::string json;
    std::string message;
  };
  std::vector<Case> cases = {
      {"unknown action", R"({"name":"x","actions":[{"action":"File.Delete","path":"/"}]})",
       "definition_json: $.actions[0]: unknown action"},
      {"undefined variable",
       R"({"name":"x","actions":[{"action":"Flow.Fail","message":"%Nope%"}]})",
       "definition_json: $.actions[0].message:"},
      {"deep nesting", absl::StrCat(R"({"name":"x","actions":[)", nested, "]}"), "definition_json: $"},
      {"10 MiB of text",
       absl::StrCat(R"({"name":"x","actions":[{"action":"Flow.Fail","message":")",
                    std::string(10 << 20, 'a'), R"("}]})"),
       "definition_json:"},
      {"malformed JSON", R"({"name":"x",)", "definition_json: line 1"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    proto::CreateFlowRequest request;
    request.set_name("bad");
    request.set_definition_json(c.json);
    proto::Flow flow;
    grpc::Status status = flows_->CreateFlow(CloudHarness::Context(alice_).get(), request, &flow);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(status.error_message(), HasSubstr(c.message));
    EXPECT_EQ(FlowCount(alice_), 0);
  }
}

TEST_F(CloudApiTest, FlowsVersionAndRunInputsAreChecked) {
  proto::CreateFlowRequest create;
  create.set_name("hello");
  create.set_definition_json(kFlow);
  proto::Flow v1;
  ASSERT_TRUE(flows_->CreateFlow(CloudHarness::Context(alice_).get(), create, &v1).ok());
  EXPECT_EQ(v1.version(), 1u);
  proto::UpdateFlowRequest update;
  update.set_flow_id(v1.flow_id());
  update.set_definition_json(absl::StrReplaceAll(kFlow, {{"hello %Who%", "hi %Who%"}}));
  proto::Flow v2;
  ASSERT_TRUE(flows_->UpdateFlow(CloudHarness::Context(alice_).get(), update, &v2).ok());
  EXPECT_EQ(v2.version(), 2u);
  proto::GetFlowRequest get;
  get.set_flow_id(v1.flow_id());
  get.set_version(1);
  proto::Flow shown;
  ASSERT_TRUE(flows_->GetFlow(CloudHarness::Context(alice_).get(), get, &shown).ok());
  EXPECT_THAT(shown.definition_json(), HasSubstr("hello %Who%"));
  get.set_version(0);
  ASSERT_TRUE(flows_->GetFlow(CloudHarness::Context(alice_).get(), get, &shown).ok());
  EXPECT_EQ(shown.version(), 2u);
  get.set_version(9);
  EXPECT_EQ(flows_->GetFlow(CloudHarness::Context(alice_).get(), get, &shown).error_code(),
            grpc::StatusCode::NOT_FOUND);

  TestMachine machine = Machine(alice_, "desk-1");
  proto::Connection connection;
  ASSERT_TRUE(connections_
                  ->CreateConnection(CloudHarness::Context(alice_).get(),
                                     ConnectionRequest(machine, "conn-0123456789abcdef", "c1", "pw"),
                                     &connection)
                  .ok());
  proto::RunFlowRequest run;
  run.set_flow_id(v1.flow_id());
  run.set_connection_id(connection.connection_id());
  (*run.mutable_inputs())["Nobody"] = "x";
  proto::RunFlowResponse started;
  grpc::Status status = runs_->RunFlow(CloudHarness::Context(alice_).get(), run, &started);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("inputs: input \"Nobody\": not declared"));
  run.clear_inputs();
  run.set_timeout_ms(-5);
  EXPECT_EQ(runs_->RunFlow(CloudHarness::Context(alice_).get(), run, &started).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  run.set_timeout_ms(0);
  run.set_request_id("once");
  ASSERT_TRUE(runs_->RunFlow(CloudHarness::Context(alice_).get(), run, &started).ok());
  EXPECT_EQ(started.run().inputs().at("Who"), "world");  // the default, filled in
  EXPECT_EQ(started.run().flow_version(), 2u);
  proto::RunFlowResponse repeated;
  ASSERT_TRUE(runs_->RunFlow(CloudHarness::Context(alice_).get(), run, &repeated).ok());
  EXPECT_EQ(repeated.run_id(), started.run_id());
  proto::ListRunsResponse list;
  ASSERT_TRUE(runs_->ListRuns(CloudHarness::Context(alice_).get(), {}, &list).ok());
  EXPECT_EQ(list.runs_size(), 1);
}

TEST_F(CloudApiTest, RunForADeletedConnectionIsNotFound) {
  TestMachine machine = Machine(alice_, "desk-1");
  proto::Connection connection;
  ASSERT_TRUE(connections_
                  ->CreateConnection(CloudHarness::Context(alice_).get(),
                                     ConnectionRequest(machine, "conn-0123456789abcdef", "c1", "pw"),
                                     &connection)
                  .ok());
  proto::CreateFlowRequest create;
  create.set_name("hello");
  create.set_definition_json(kFlow);
  proto::Flow flow;
  ASSERT_TRUE(flows_->CreateFlow(CloudHarness::Context(alice_).get(), create, &flow).ok());
  proto::DeleteConnectionRequest del;
  del.set_connection_id(connection.connection_id());
  proto::DeleteConnectionResponse deleted;
  ASSERT_TRUE(connections_->DeleteConnection(CloudHarness::Context(alice_).get(), del, &deleted).ok());
  proto::RunFlowRequest run;
  run.set_flow_id(flow.flow_id());
  run.set_connection_id(connection.connection_id());
  proto::RunFlowResponse started;
  grpc::Status status = runs_->RunFlow(CloudHarness::Context(alice_).get(), run, &started);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), HasSubstr("connection \"conn-0123456789abcdef\" not found"));
  proto::ListRunsResponse list;
  ASSERT_TRUE(runs_->ListRuns(CloudHarness::Context(alice_).get(), {}, &list).ok());
  EXPECT_EQ(list.runs_size(), 0);
}

TEST_F(CloudApiTest, SignedMachineRequestsRefuseReplaysStaleTimestampsAndBadSignatures) {
  TestMachine machine = Machine(alice_, "desk-1");
  constexpr char kMethod[] = "/tether.proto.MachineService/GetListenToken";
  proto::GetListenTokenRequest request;
  ASSERT_TRUE(auth::SignMachineAuth(kMethod, machine.machine_id, machine.ed25519.private_key, WallNow(),
                                    &request)
                  .ok());
  proto::ListenToken token;
  grpc::ClientContext first;
  ASSERT_TRUE(machines_->GetListenToken(&first, request, &token).ok());
  EXPECT_THAT(token.token(), HasSubstr("SharedAccessSignature sr="));
  EXPECT_EQ(token.entity(), machine.entity);

  grpc::ClientContext replay;
  grpc::Status status = machines_->GetListenToken(&replay, request, &token);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(status.error_message(), HasSubstr("replayed request"));

  proto::GetListenTokenRequest stale;
  ASSERT_TRUE(auth::SignMachineAuth(kMethod, machine.machine_id, machine.ed25519.private_key,
                                    WallNow() - absl::Minutes(6), &stale)
                  .ok());
  grpc::ClientContext stale_context;
  status = machines_->GetListenToken(&stale_context, stale, &token);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(status.error_message(), HasSubstr("stale timestamp"));

  TestMachine other = Machine(alice_, "desk-2");
  proto::GetListenTokenRequest forged;
  ASSERT_TRUE(auth::SignMachineAuth(kMethod, machine.machine_id, other.ed25519.private_key, WallNow(),
                                    &forged)
                  .ok());
  grpc::ClientContext forged_context;
  status = machines_->GetListenToken(&forged_context, forged, &token);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(status.error_message(), "bad signature");

  // A signature made for another method does not verify here.
  proto::GetListenTokenRequest wrong_method;
  ASSERT_TRUE(auth::SignMachineAuth("/tether.proto.ClusterService/GetMemberListenToken",
                                    machine.machine_id, machine.ed25519.private_key, WallNow(),
                                    &wrong_method)
                  .ok());
  grpc::ClientContext wrong_context;
  EXPECT_EQ(machines_->GetListenToken(&wrong_context, wrong_method, &token).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(CloudApiTest, ReplayIsRefusedAfterACloudRestartToo) {
  TestMachine machine = Machine(alice_, "desk-1");
  proto::GetListenTokenRequest request;
  ASSERT_TRUE(auth::SignMachineAuth("/tether.proto.MachineService/GetListenToken", machine.machine_id,
                                    machine.ed25519.private_key, WallNow(), &request)
                  .ok());
  proto::ListenToken token;
  grpc::ClientContext first;
  ASSERT_TRUE(machines_->GetListenToken(&first, request, &token).ok());
  ASSERT_TRUE(h_->RestartCloud().ok());
  machines_ = proto::MachineService::NewStub(h_->channel());
  grpc::ClientContext replay;
  EXPECT_EQ(machines_->GetListenToken(&replay, request, &token).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(CloudApiTest, JoiningAGroupNeedsTheKeyTheWrappedKeyUnwrapsTo) {
  auto group_key = crypto::GenerateX25519KeyPair();
  ASSERT_TRUE(group_key.ok());
  auto wrapped = crypto::WrapWithPassword(group_key->private_key, crypto::SecretBytes("group pw"),
                                          {.n = 1 << 10, .r = 8, .p = 1});
  ASSERT_TRUE(wrapped.ok());
  proto::CreateGroupRequest create;
  create.set_name("floor-3");
  create.set_group_pub(group_key->public_key);
  *create.mutable_wrapped_priv() = *wrapped;
  proto::MachineGroup group;
  ASSERT_TRUE(groups_->CreateGroup(CloudHarness::Context(alice_).get(), create, &group).ok());
  EXPECT_EQ(groups_->CreateGroup(CloudHarness::Context(alice_).get(), create, &group).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);

  TestMachine machine = Machine(alice_, "desk-1");
  constexpr char kMethod[] = "/tether.proto.GroupService/JoinGroup";
  proto::JoinGroupRequest join;
  join.set_group_id(group.group_id());
  ASSERT_TRUE(auth::SignMachineAuth(kMethod, machine.machine_id, machine.ed25519.private_key, WallNow(),
                                    &join)
                  .ok());
  proto::JoinGroupResponse step1;
  ASSERT_TRUE(groups_->JoinGroup(CloudHarness::Context(alice_).get(), join, &step1).ok());
  EXPECT_FALSE(step1.joined());
  EXPECT_EQ(crypto::UnwrapWithPassword(step1.wrapped_priv(), crypto::SecretBytes("wrong")).status().code(),
            absl::StatusCode::kPermissionDenied);
  auto unwrapped = crypto::UnwrapWithPassword(step1.wrapped_priv(), crypto::SecretBytes("group pw"));
  ASSERT_TRUE(unwrapped.ok());

  // A different key is refused and nothing changes.
  auto wrong = crypto::GenerateX25519KeyPair();
  join.set_derived_group_pub(wrong->public_key);
  ASSERT_TRUE(auth::SignMachineAuth(kMethod, machine.machine_id, machine.ed25519.private_key, WallNow(),
                                    &join)
                  .ok());
  proto::JoinGroupResponse refused;
  grpc::Status status = groups_->JoinGroup(CloudHarness::Context(alice_).get(), join, &refused);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(), HasSubstr("group key mismatch"));
  proto::GetGroupRequest get;
  get.set_group_id(group.group_id());
  ASSERT_TRUE(groups_->GetGroup(CloudHarness::Context(alice_).get(), get, &group).ok());
  EXPECT_EQ(group.machine_ids_size(), 0);

  join.set_derived_group_pub(*crypto::X25519PublicKey(*unwrapped));
  ASSERT_TRUE(auth::SignMachineAuth(kMethod, machine.machine_id, machine.ed25519.private_key, WallNow(),
                                    &join)
                  .ok());
  proto::JoinGroupResponse joined;
  ASSERT_TRUE(groups_->JoinGroup(CloudHarness::Context(alice_).get(), join, &joined).ok());
  EXPECT_TRUE(joined.joined());
  ASSERT_EQ(joined.group().machine_ids_size(), 1);
  EXPECT_EQ(joined.group().machine_ids(0), machine.machine_id);

  // Bob cannot make alice's machine join anything, even signed by it.
  ASSERT_TRUE(auth::SignMachineAuth(kMethod, machine.machine_id, machine.ed25519.private_key, WallNow(),
                                    &join)
                  .ok());
  EXPECT_EQ(groups_->JoinGroup(CloudHarness::Context(bob_).get(), join, &joined).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(CloudApiTest, ClusterMembersMustDeriveTheSameKey) {
  auto cluster_key = crypto::GenerateX25519KeyPair();
  auto member_x = crypto::GenerateX25519KeyPair();
  auto member_ed = crypto::GenerateEd25519KeyPair();
  proto::CreateClusterRequest create;
  create.set_name("site-a");
  create.set_cluster_pub(cluster_key->public_key);
  create.mutable_member()->set_name("gw-1");
  create.mutable_member()->set_x25519_pub(member_x->public_key);
  create.mutable_member()->set_ed25519_pub(member_ed->public_key);
  proto::ClusterMembership membership;
  ASSERT_TRUE(clusters_->CreateCluster(CloudHarness::Context(alice_).get(), create, &membership).ok());
  EXPECT_EQ(membership.entity(), absl::StrCat("hc/cluster-", membership.cluster().cluster_id()));

  proto::JoinClusterRequest join;
  join.set_cluster_id(membership.cluster().cluster_id());
  join.set_cluster_pub(member_x->public_key);  // not the cluster key
  *join.mutable_member() = create.member();
  join.mutable_member()->set_name("gw-2");
  proto::ClusterMembership joined;
  grpc::Status status = clusters_->JoinCluster(CloudHarness::Context(alice_).get(), join, &joined);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(), HasSubstr("cluster key mismatch"));
  proto::GetClusterRequest get;
  get.set_cluster_id(membership.cluster().cluster_id());
  proto::GatewayCluster cluster;
  ASSERT_TRUE(clusters_->GetCluster(CloudHarness::Context(alice_).get(), get, &cluster).ok());
  EXPECT_EQ(cluster.members_size(), 1);
  join.set_cluster_pub(cluster_key->public_key);
  ASSERT_TRUE(clusters_->JoinCluster(CloudHarness::Context(alice_).get(), join, &joined).ok());
  EXPECT_EQ(joined.cluster().members_size(), 2);

  // The member's signed token request gets a Listen token for the cluster entity.
  proto::GetMemberListenTokenRequest token_request;
  ASSERT_TRUE(auth::SignMachineAuth("/tether.proto.ClusterService/GetMemberListenToken",
                                    joined.member_id(), member_ed->private_key, WallNow(),
                                    &token_request)
                  .ok());
  grpc::ClientContext context;
  proto::ListenToken token;
  ASSERT_TRUE(clusters_->GetMemberListenToken(&context, token_request, &token).ok());
  EXPECT_EQ(token.entity(), membership.entity());

  // An agent registered behind the cluster: members list it, it sees the members.
  auto x = crypto::GenerateX25519KeyPair();
  auto ed = crypto::GenerateEd25519KeyPair();
  proto::RegisterMachineRequest reg;
  reg.set_name("behind");
  reg.set_x25519_pub(x->public_key);
  reg.set_ed25519_pub(ed->public_key);
  reg.set_cluster_id(membership.cluster().cluster_id());
  proto::RegisterMachineResponse behind;
  ASSERT_TRUE(machines_->RegisterMachine(CloudHarness::Context(alice_).get(), reg, &behind).ok());
  TestMachine direct = Machine(alice_, "direct");
  proto::ListClusterMachinesRequest list_request;
  ASSERT_TRUE(auth::SignMachineAuth("/tether.proto.ClusterService/ListClusterMachines",
                                    joined.member_id(), member_ed->private_key, WallNow(), &list_request)
                  .ok());
  grpc::ClientContext list_context;
  proto::ListMachinesResponse behind_list;
  ASSERT_TRUE(clusters_->ListClusterMachines(&list_context, list_request, &behind_list).ok());
  ASSERT_EQ(behind_list.machines_size(), 1);
  EXPECT_EQ(behind_list.machines(0).machine_id(), behind.machine_id());
  EXPECT_EQ(behind_list.machines(0).ed25519_pub(), ed->public_key);

  proto::GetMachineClusterRequest mine;
  ASSERT_TRUE(auth::SignMachineAuth("/tether.proto.MachineService/GetMachineCluster", behind.machine_id(),
                                    ed->private_key, WallNow(), &mine)
                  .ok());
  grpc::ClientContext mine_context;
  proto::GatewayCluster seen;
  ASSERT_TRUE(machines_->GetMachineCluster(&mine_context, mine, &seen).ok());
  EXPECT_EQ(seen.members_size(), 2);
  proto::GetMachineClusterRequest none;
  ASSERT_TRUE(auth::SignMachineAuth("/tether.proto.MachineService/GetMachineCluster", direct.machine_id,
                                    direct.ed25519.private_key, WallNow(), &none)
                  .ok());
  grpc::ClientContext none_context;
  EXPECT_EQ(machines_->GetMachineCluster(&none_context, none, &seen).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
}

// Reads every file under `dir` (recursively) into one string.
std::string ReadTree(const std::string& dir) {
  std::string all;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return all;
  while (dirent* entry = readdir(d)) {
    std::string name = entry->d_name;
    if (name == "." || name == "..") continue;
    std::string path = absl::StrCat(dir, "/", name);
    struct stat st;
    if (stat(path.c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      all += ReadTree(path);
    } else {
      std::ifstream in(path, std::ios::binary);
      std::stringstream bytes;
      bytes << in.rdbuf();
      all += bytes.str();
    }
  }
  closedir(d);
  return all;
}

TEST_F(CloudApiTest, NoPlaintextPasswordReachesTheCloudsDisk) {
  TestMachine machine = Machine(alice_, "desk-1");
  const std::vector<std::string> passwords = {"Tr0ub4dor&3-correct-horse", "p@55w0rd-unique-9d1c",
                                              "s3cr3t-for-connection-three"};
  for (size_t i = 0; i < passwords.size(); ++i) {
    proto::Connection connection;
    ASSERT_TRUE(connections_
                    ->CreateConnection(CloudHarness::Context(alice_).get(),
                                       ConnectionRequest(machine, absl::StrCat("conn-000000000000000", i),
                                                         absl::StrCat("c", i), passwords[i]),
                                       &connection)
                    .ok());
  }
  // Everything on disk: WAL, memtable flushes, SST files, the signing key, the manifest.
  ASSERT_TRUE(h_->RestartCloud().ok());  // a clean shutdown and reopen writes SSTs as well
  const std::string bytes = ReadTree(h_->data_dir());
  ASSERT_GT(bytes.size(), 1000u);
  EXPECT_NE(bytes.find("desk-user"), std::string::npos) << "the scan must see stored records";
  for (const std::string& password : passwords) {
    EXPECT_EQ(bytes.find(password), std::string::npos) << password;
  }
}

TEST_F(CloudApiTest, DeletedAndReplacedEnvelopesAreErasedFromTheCloudsDisk) {
  TestMachine machine = Machine(alice_, "desk-1");
  proto::Connection connection;
  const proto::CreateConnectionRequest deleted = ConnectionRequest(machine, "conn-0000000000000del", "del", "pw-1");
  const proto::CreateConnectionRequest replaced = ConnectionRequest(machine, "conn-0000000000000rep", "rep", "pw-2");
  ASSERT_TRUE(connections_->CreateConnection(CloudHarness::Context(alice_).get(), deleted, &connection).ok());
  ASSERT_TRUE(connections_->CreateConnection(CloudHarness::Context(alice_).get(), replaced, &connection).ok());
  // The ciphertexts are random bytes: found only where the envelope is stored.
  const std::string& deleted_bytes = deleted.sealed_credentials().ciphertext();
  const std::string& replaced_bytes = replaced.sealed_credentials().ciphertext();
  ASSERT_GE(deleted_bytes.size(), 16u);
  std::string before = ReadTree(h_->data_dir());
  ASSERT_NE(before.find(deleted_bytes), std::string::npos) << "the scan must see stored envelopes";
  ASSERT_NE(before.find(replaced_bytes), std::string::npos) << "the scan must see stored envelopes";

  proto::DeleteConnectionRequest remove;
  remove.set_connection_id(deleted.connection_id());
  proto::DeleteConnectionResponse removed;
  ASSERT_TRUE(connections_->DeleteConnection(CloudHarness::Context(alice_).get(), remove, &removed).ok());
  proto::UpdateConnectionCredentialsRequest update;
  update.set_connection_id(replaced.connection_id());
  update.set_username("desk-user");
  *update.mutable_sealed_credentials() =
      ConnectionRequest(machine, replaced.connection_id(), "rep", "pw-3").sealed_credentials();
  ASSERT_TRUE(connections_->UpdateConnectionCredentials(CloudHarness::Context(alice_).get(), update, &connection).ok());

  // No file of the data directory (WAL, SSTs, manifest) holds the old envelopes any more; the
  // current one is there.
  const std::string after = ReadTree(h_->data_dir());
  EXPECT_EQ(after.find(deleted_bytes), std::string::npos) << "the deleted envelope is still on disk";
  EXPECT_EQ(after.find(replaced_bytes), std::string::npos) << "the replaced envelope is still on disk";
  EXPECT_NE(after.find(update.sealed_credentials().ciphertext()), std::string::npos);
  EXPECT_EQ(ConnectionCount(alice_), 1);
}

}  // namespace
}  // namespace tether::cloud
