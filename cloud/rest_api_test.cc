// The REST API and the portal's files over real HTTP on loopback, against the in-process cloud of
// CloudHarness: every answer is compared with what gRPC answers for the same call, so the two
// adapters cannot drift apart; bad input gets its error and stores nothing.
#include "cloud/rest_api.h"

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "absl/strings/escaping.h"
#include "absl/time/clock.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "cloud/portal/portal_assets.h"
#include "cloud/testing/cloud_harness.h"
#include "common/crypto/envelope.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace tether::cloud {
namespace {

namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace asio = boost::asio;
using ::testing::HasSubstr;
using testing::CloudHarness;

constexpr char kFlow[] = R"({"name":"Hello","inputs":[{"name":"Who","type":"text","default":"world"}],
  "outputs":[{"name":"Greeting"}],
  "actions":[{"action":"Variables.SetVariable","variable":"Greeting","value":"hello %Who%"}]})";

struct Reply {
  int status = 0;
  std::string content_type;
  std::string body;
  bhttp::fields headers;
};

class RestApiTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(nullptr); }

  void Start(std::function<void(RunManagerOptions&)> tweak) {
    h_.reset();
    auto harness = CloudHarness::Start(std::move(tweak));
    ASSERT_TRUE(harness.ok()) << harness.status();
    h_ = *std::move(harness);
    auto alice = h_->CreateUser("alice");
    auto bob = h_->CreateUser("bob");
    ASSERT_TRUE(alice.ok() && bob.ok());
    alice_ = *alice;
    bob_ = *bob;
    auto machine = h_->RegisterMachine(alice_, "desk-1");
    ASSERT_TRUE(machine.ok()) << machine.status();
    machine_ = *std::move(machine);
  }

  // One HTTP/1.1 exchange on a fresh connection.
  Reply Send(bhttp::verb verb, const std::string& target, const std::string& body,
             const std::string& token, std::vector<std::pair<std::string, std::string>> headers = {
                                           {"Content-Type", "application/json"}}) {
    asio::io_context io;
    asio::ip::tcp::socket socket(io);
    socket.connect({asio::ip::make_address("127.0.0.1"), h_->cloud().http_port()});
    bhttp::request<bhttp::string_body> request(verb, target, 11);
    request.set(bhttp::field::host, absl::StrCat("127.0.0.1:", h_->cloud().http_port()));
    if (!token.empty()) request.set(bhttp::field::authorization, absl::StrCat("Bearer ", token));
    for (const auto& [name, value] : headers) request.set(name, value);
    request.body() = body;
    request.prepare_payload();
    bhttp::write(socket, request);
    beast::flat_buffer buffer;
    bhttp::response<bhttp::string_body> response;
    bhttp::read(socket, buffer, response);
    Reply reply;
    reply.status = static_cast<int>(response.result_int());
    reply.content_type = std::string(response[bhttp::field::content_type]);
    reply.body = response.body();
    reply.headers = response.base();
    return reply;
  }

  Reply Call(const std::string& method, const std::string& body, const std::string& token) {
    return Send(bhttp::verb::post, absl::StrCat("/api/v1/", method), body, token);
  }

  template <typename Message>
  Message Parse(const Reply& reply) {
    Message message;
    auto status = google::protobuf::util::JsonStringToMessage(reply.body, &message);
    EXPECT_TRUE(status.ok()) << status.ToString() << " in " << reply.body;
    return message;
  }

  // The events of a WatchRun answer, {"events": [RunEvent...]}, read through google.protobuf.Struct.
  std::vector<proto::RunEvent> Events(const Reply& reply) {
    google::protobuf::Struct answer;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(reply.body, &answer).ok()) << reply.body;
    std::vector<proto::RunEvent> events;
    for (const google::protobuf::Value& value : answer.fields().at("events").list_value().values()) {
      std::string json;
      EXPECT_TRUE(google::protobuf::util::MessageToJsonString(value, &json).ok());
      proto::RunEvent event;
      EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &event).ok()) << json;
      events.push_back(std::move(event));
    }
    return events;
  }

  std::string Json(const google::protobuf::Message& message) {
    std::string json;
    EXPECT_TRUE(google::protobuf::util::MessageToJsonString(message, &json).ok());
    return json;
  }

  int CountFlows(const std::string& token) {
    proto::ListFlowsResponse flows;
    grpc::Status status = proto::FlowService::NewStub(h_->channel())
                              ->ListFlows(CloudHarness::Context(token).get(), {}, &flows);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return flows.flows_size();
  }

  std::unique_ptr<CloudHarness> h_;
  std::string alice_;
  std::string bob_;
  testing::TestMachine machine_;
};

TEST_F(RestApiTest, ListsWhatGrpcLists) {
  Reply reply = Call("MachineService/ListMachines", "{}", alice_);
  ASSERT_EQ(reply.status, 200) << reply.body;
  EXPECT_EQ(reply.content_type, "application/json");
  auto rest = Parse<proto::ListMachinesResponse>(reply);

  proto::ListMachinesResponse grpc_list;
  ASSERT_TRUE(proto::MachineService::NewStub(h_->channel())
                  ->ListMachines(CloudHarness::Context(alice_).get(), {}, &grpc_list)
                  .ok());
  ASSERT_EQ(rest.machines_size(), 1);
  rest.mutable_machines(0)->clear_status();  // presence is read live; may differ between calls
  grpc_list.mutable_machines(0)->clear_status();
  EXPECT_EQ(rest.SerializeAsString(), grpc_list.SerializeAsString());
  // Defaults are printed (the portal relies on every field being present) and bytes are base64.
  EXPECT_THAT(reply.body, HasSubstr("\"groupId\":\"\""));
  EXPECT_THAT(reply.body, HasSubstr(absl::Base64Escape(machine_.x25519.public_key)));
}

TEST_F(RestApiTest, AnotherUsersMachineIsNotFoundExactlyAsOverGrpc) {
  Reply reply = Call("MachineService/GetMachine",
                     absl::StrCat(R"({"machineId": ")", machine_.machine_id, R"("})"), bob_);
  EXPECT_EQ(reply.status, 404) << reply.body;
  proto::GetMachineRequest request;
  request.set_machine_id(machine_.machine_id);
  proto::Machine ignored;
  grpc::Status grpc_status = proto::MachineService::NewStub(h_->channel())
                                 ->GetMachine(CloudHarness::Context(bob_).get(), request, &ignored);
  ASSERT_EQ(grpc_status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(reply.body, HasSubstr("\"code\":\"NOT_FOUND\""));
  EXPECT_THAT(reply.body, HasSubstr(absl::StrReplaceAll(grpc_status.error_message(), {{"\"", "\\\""}})));
  // Bob's list does not show it either.
  Reply list = Call("MachineService/ListMachines", "", bob_);
  ASSERT_EQ(list.status, 200);
  EXPECT_EQ(Parse<proto::ListMachinesResponse>(list).machines_size(), 0);
}

TEST_F(RestApiTest, RefusesMissingMalformedAndUnknownTokens) {
  for (const std::string& token : {std::string(""), std::string("not-a-token"),
                                   std::string("tt_0000000000000000_0000000000000000")}) {
    Reply reply = Call("MachineService/ListMachines", "{}", token);
    EXPECT_EQ(reply.status, 401) << token;
    EXPECT_THAT(reply.body, HasSubstr("\"code\":\"UNAUTHENTICATED\""));
    EXPECT_EQ(reply.headers["WWW-Authenticate"], "Bearer");
    EXPECT_THAT(reply.body, ::testing::Not(HasSubstr("desk-1")));
  }
}

TEST_F(RestApiTest, BadBodiesAreRefusedAndStoreNothing) {
  struct Case {
    std::string body;
    std::string message;
  } cases[] = {
      {"{not json", "request body is not a valid CreateFlowRequest"},
      {R"({"name": "x", "definitionJson": "{}", "colour": "red"})", "colour"},
      {R"({"name": 7, "definitionJson": []})", "CreateFlowRequest"},
      {R"({"name": "bad", "definitionJson": "{\"name\":\"x\",\"actions\":[{\"action\":\"Nope.Nope\"}]}"})",
       "$.actions[0]"},
      {R"({"name": "bad", "definitionJson": "{\n\"name\": \"x\",\n\"actions\": [,]}"})", "line 3"},
  };
  for (const Case& c : cases) {
    Reply reply = Call("FlowService/CreateFlow", c.body, alice_);
    EXPECT_EQ(reply.status, 400) << c.body << " -> " << reply.body;
    EXPECT_THAT(reply.body, HasSubstr("\"code\":\"INVALID_ARGUMENT\"")) << c.body;
    EXPECT_THAT(reply.body, HasSubstr(c.message)) << c.body;
  }
  EXPECT_EQ(CountFlows(alice_), 0);

  // The same body, well formed, is accepted: the refusals above were about the input.
  proto::CreateFlowRequest good;
  good.set_name("hello");
  good.set_definition_json(kFlow);
  Reply created = Call("FlowService/CreateFlow", Json(good), alice_);
  EXPECT_EQ(created.status, 200) << created.body;
  EXPECT_EQ(CountFlows(alice_), 1);
}

// Without a token that authenticates, a large body is refused from the header, before it is read.
TEST_F(RestApiTest, OnlyAuthenticatedCallersMaySendLargeBodies) {
  proto::CreateFlowRequest big;
  big.set_name("big");
  big.set_definition_json(absl::StrCat(R"({"name":"x","description":")", std::string(100000, 'd'),
                                       R"(","actions":[]})"));
  for (const std::string& token : {std::string(""), std::string("tt_forged")}) {
    Reply refused = Call("FlowService/CreateFlow", Json(big), token);
    EXPECT_EQ(refused.status, 413) << refused.body;
  }
  Reply accepted = Call("FlowService/CreateFlow", Json(big), alice_);
  EXPECT_NE(accepted.status, 413) << accepted.body;  // judged by the flow rules, not the size
  // A small unauthenticated call still gets its 401.
  EXPECT_EQ(Call("FlowService/ListFlows", "{}", "").status, 401);
}

TEST_F(RestApiTest, RefusesWrongVerbsMethodsOriginsAndContentTypes) {
  Reply get = Send(bhttp::verb::get, "/api/v1/MachineService/ListMachines", "", alice_);
  EXPECT_EQ(get.status, 405);
  EXPECT_EQ(get.headers["Allow"], "POST");

  Reply unknown = Call("MachineService/GetListenToken", "{}", alice_);  // machine-signed: gRPC only
  EXPECT_EQ(unknown.status, 404);
  EXPECT_THAT(unknown.body, HasSubstr("no API method MachineService/GetListenToken"));

  proto::CreateFlowRequest good;
  good.set_name("hello");
  good.set_definition_json(kFlow);
  Reply cross = Send(bhttp::verb::post, "/api/v1/FlowService/CreateFlow", Json(good), alice_,
                     {{"Content-Type", "application/json"}, {"Origin", "https://evil.example"}});
  EXPECT_EQ(cross.status, 403) << cross.body;
  Reply form = Send(bhttp::verb::post, "/api/v1/FlowService/CreateFlow", Json(good), alice_,
                    {{"Content-Type", "application/x-www-form-urlencoded"}});
  EXPECT_EQ(form.status, 415) << form.body;
  EXPECT_EQ(CountFlows(alice_), 0);
}

TEST_F(RestApiTest, ConnectionsRunsAndEventsEndToEnd) {
  auto agent = h_->StartAgent(machine_);
  ASSERT_TRUE(agent.ok()) << agent.status();

  // A connection whose envelope travels as proto3 JSON (base64 bytes), as the portal sends it.
  proto::CreateConnectionRequest create;
  create.set_connection_id("conn-rest-0123456789");
  create.set_name("main");
  create.mutable_target()->set_machine_id(machine_.machine_id);
  create.set_username("desk-user");
  create.set_mode(proto::RUN_MODE_UNATTENDED);
  *create.mutable_sealed_credentials() = *crypto::SealCredentials(
      machine_.x25519.public_key, create.connection_id(), {"desk-user", crypto::SecretBytes("pw-1")});
  Reply connection = Call("ConnectionService/CreateConnection", Json(create), alice_);
  ASSERT_EQ(connection.status, 200) << connection.body;
  // Bob cannot run through it, nor see it.
  Reply bob_get = Call("ConnectionService/GetConnection",
                       R"({"connectionId": "conn-rest-0123456789"})", bob_);
  EXPECT_EQ(bob_get.status, 404);

  proto::CreateFlowRequest flow_request;
  flow_request.set_name("hello");
  flow_request.set_definition_json(kFlow);
  Reply flow = Call("FlowService/CreateFlow", Json(flow_request), alice_);
  ASSERT_EQ(flow.status, 200) << flow.body;
  std::string flow_id = Parse<proto::Flow>(flow).flow_id();

  proto::RunFlowRequest run_request;
  run_request.set_flow_id(flow_id);
  run_request.set_connection_id("conn-rest-0123456789");
  run_request.set_priority(proto::RUN_PRIORITY_HIGH);
  (*run_request.mutable_inputs())["Who"] = "rest";
  Reply bob_run = Call("RunService/RunFlow", Json(run_request), bob_);
  EXPECT_EQ(bob_run.status, 404) << bob_run.body;
  Reply run = Call("RunService/RunFlow", Json(run_request), alice_);
  ASSERT_EQ(run.status, 200) << run.body;
  EXPECT_THAT(run.body, HasSubstr("RUN_PRIORITY_HIGH"));  // enums by name
  std::string run_id = Parse<proto::RunFlowResponse>(run).run_id();

  // Poll WatchRun as the portal does: each answer is immediate and holds only newer events.
  std::vector<proto::RunEvent> events;
  uint64_t since = 0;
  bool ended = false;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (!ended && absl::Now() < deadline) {
    Reply watch = Call("RunService/WatchRun",
                       absl::StrCat(R"({"runId": ")", run_id, R"(", "sinceSeq": ")", since, "\"}"),
                       alice_);
    ASSERT_EQ(watch.status, 200) << watch.body;
    for (const proto::RunEvent& event : Events(watch)) {
      EXPECT_GT(event.seq(), since);
      since = event.seq();
      if (event.has_state_changed() && event.state_changed().state() == proto::RUN_STATE_SUCCEEDED) {
        ended = true;
      }
      events.push_back(event);
    }
    if (!ended) absl::SleepFor(absl::Milliseconds(20));  // the portal's poll interval, shortened
  }
  ASSERT_TRUE(ended) << "run did not succeed; " << events.size() << " events";
  Reply got = Call("RunService/GetRun", absl::StrCat(R"({"runId": ")", run_id, R"("})"), alice_);
  ASSERT_EQ(got.status, 200);
  proto::Run final_run = Parse<proto::Run>(got);
  EXPECT_EQ(final_run.state(), proto::RUN_STATE_SUCCEEDED);
  ASSERT_EQ(final_run.outputs().count("result"), 1u);
  EXPECT_EQ(final_run.outputs().at("result"), "ok:desk-user");  // the stub opened the envelope
}

// A run with a long history: gRPC streams every event in order; REST hands it out 500 at a time.
TEST_F(RestApiTest, WatchRunPagesALongHistory) {
  testing::StubAgentOptions options;
  options.log_lines_per_job = 1200;
  auto agent = h_->StartAgent(machine_, options);
  ASSERT_TRUE(agent.ok()) << agent.status();
  proto::CreateConnectionRequest create;
  create.set_connection_id("conn-rest-long-0000001");
  create.set_name("long");
  create.mutable_target()->set_machine_id(machine_.machine_id);
  create.set_username("desk-user");
  create.set_mode(proto::RUN_MODE_UNATTENDED);
  *create.mutable_sealed_credentials() = *crypto::SealCredentials(
      machine_.x25519.public_key, create.connection_id(), {"desk-user", crypto::SecretBytes("pw-1")});
  ASSERT_EQ(Call("ConnectionService/CreateConnection", Json(create), alice_).status, 200);
  proto::CreateFlowRequest flow;
  flow.set_name("hello");
  flow.set_definition_json(kFlow);
  Reply created = Call("FlowService/CreateFlow", Json(flow), alice_);
  ASSERT_EQ(created.status, 200);
  proto::RunFlowRequest run;
  run.set_flow_id(Parse<proto::Flow>(created).flow_id());
  run.set_connection_id(create.connection_id());
  Reply started = Call("RunService/RunFlow", Json(run), alice_);
  ASSERT_EQ(started.status, 200) << started.body;
  const std::string run_id = Parse<proto::RunFlowResponse>(started).run_id();

  // gRPC: the whole history, in order, without gaps, until the run ends.
  auto runs = proto::RunService::NewStub(h_->channel());
  proto::WatchRunRequest watch;
  watch.set_run_id(run_id);
  auto context = CloudHarness::Context(alice_);
  auto reader = runs->WatchRun(context.get(), watch);
  proto::RunEvent event;
  uint64_t last = 0;
  int log_lines = 0;
  proto::RunState final_state = proto::RUN_STATE_UNSPECIFIED;
  while (reader->Read(&event)) {
    ASSERT_EQ(event.seq(), last + 1);
    last = event.seq();
    if (event.has_job_event() && event.job_event().has_log_line()) ++log_lines;
    if (event.has_state_changed()) final_state = event.state_changed().state();
  }
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(final_state, proto::RUN_STATE_SUCCEEDED);
  EXPECT_EQ(log_lines, 1200);
  ASSERT_GT(last, 1000u);

  // REST: at most 500 per answer, continuing from the last seq.
  uint64_t since = 0;
  int answers = 0;
  while (since < last) {
    Reply page = Call("RunService/WatchRun",
                      absl::StrCat(R"({"runId": ")", run_id, R"(", "sinceSeq": ")", since, "\"}"),
                      alice_);
    ASSERT_EQ(page.status, 200);
    std::vector<proto::RunEvent> events = Events(page);
    ASSERT_FALSE(events.empty());
    ASSERT_LE(events.size(), static_cast<size_t>(kRestWatchBatch));
    if (since + kRestWatchBatch <= last) {
      EXPECT_EQ(events.size(), static_cast<size_t>(kRestWatchBatch));
    }
    for (const proto::RunEvent& event : events) ASSERT_EQ(event.seq(), ++since);
    ++answers;
  }
  EXPECT_EQ(since, last);
  EXPECT_EQ(answers, static_cast<int>((last + kRestWatchBatch - 1) / kRestWatchBatch));
}

// While the relay does not answer, a machine's presence question is not asked again on every
// listing: failures are cached like answers.
TEST_F(RestApiTest, ARelayThatDoesNotAnswerIsAskedOncePerTtl) {
  Start([](RunManagerOptions& options) { options.presence_ttl = absl::Minutes(10); });
  h_->relay().Kill();
  const uint64_t before = h_->cloud().runs()->stats().presence_fetches;
  for (int i = 0; i < 3; ++i) {
    Reply list = Call("MachineService/ListMachines", "{}", alice_);
    ASSERT_EQ(list.status, 200) << list.body;
    EXPECT_THAT(list.body, HasSubstr("MACHINE_STATUS_UNSPECIFIED"));
  }
  EXPECT_EQ(h_->cloud().runs()->stats().presence_fetches, before + 1);
}

TEST_F(RestApiTest, ServesThePortalWithItsSecurityHeaders) {
  Reply index = Send(bhttp::verb::get, "/", "", "", {});
  ASSERT_EQ(index.status, 200);
  EXPECT_EQ(index.content_type, "text/html; charset=utf-8");
  EXPECT_EQ(index.headers["Content-Security-Policy"], portal::kContentSecurityPolicy);
  EXPECT_EQ(index.headers["X-Frame-Options"], "DENY");
  EXPECT_EQ(index.headers["Referrer-Policy"], "no-referrer");
  EXPECT_EQ(index.headers["Set-Cookie"], "");  // no cookies: the token lives in sessionStorage
  EXPECT_THAT(index.body, HasSubstr("<script type=\"module\""));
  EXPECT_THAT(index.body, ::testing::Not(HasSubstr("<script>")));  // no inline script

  Reply hpke = Send(bhttp::verb::get, "/static/js/hpke.js", "", "", {});
  EXPECT_EQ(hpke.status, 200);
  EXPECT_EQ(hpke.content_type, "text/javascript; charset=utf-8");

  EXPECT_EQ(Send(bhttp::verb::get, "/static/../BUILD", "", "", {}).status, 404);
  EXPECT_EQ(Send(bhttp::verb::get, "/static/js/nope.js", "", "", {}).status, 404);
  EXPECT_EQ(Send(bhttp::verb::post, "/", "", "", {}).status, 405);

  Reply metrics = Send(bhttp::verb::get, "/metrics", "", "", {});
  EXPECT_THAT(metrics.body, HasSubstr("tether_cloud_rest_calls_total"));
}

}  // namespace
}  // namespace tether::cloud
