// Proves the generated code for //common/proto compiles, links and behaves as the services expect.
#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/proto/cloud.grpc.pb.h"
#include "common/proto/cloud.pb.h"
#include "common/proto/crypto.pb.h"
#include "common/proto/job.pb.h"
#include "common/proto/relay.pb.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"

namespace tether::proto {
namespace {

using google::protobuf::util::MessageDifferencer;

std::vector<RelayFrame> OneFrameOfEachKind() {
  std::vector<RelayFrame> frames(8);
  RelayFrame::Open* open = frames[0].mutable_open();
  open->set_channel_id(7);
  open->mutable_sender_meta()->set_remote_address("10.0.0.1:5555");
  open->mutable_sender_meta()->set_request_target("/$hc/machine-42?action=connect");
  (*open->mutable_sender_meta()->mutable_headers())["user-agent"] = "tether-cloud/1";
  frames[1].mutable_accept()->set_channel_id(7);
  frames[2].mutable_reject()->set_channel_id(8);
  frames[2].mutable_reject()->set_http_status(503);
  frames[2].mutable_reject()->set_reason("busy");
  frames[3].mutable_data()->set_channel_id(7);
  frames[3].mutable_data()->set_payload(std::string("\0\x01\xff payload", 11));
  frames[4].mutable_close()->set_channel_id(7);
  frames[4].mutable_close()->set_code(RELAY_CLOSE_CODE_QUEUE_FULL);
  frames[4].mutable_close()->set_reason("channel queue full");
  frames[5].mutable_renew_token()->set_token("SharedAccessSignature sr=x&sig=y&se=1&skn=listen");
  frames[6].mutable_ping()->set_nonce(99);
  frames[6].mutable_ping()->set_sent_at_unix_ms(1700000000000);
  frames[7].mutable_pong()->set_nonce(99);
  frames[7].mutable_pong()->set_ping_sent_at_unix_ms(1700000000000);
  return frames;
}

TEST(RelayFrameTest, EveryKindRoundTripsThroughBytes) {
  std::set<int> kinds_seen;
  for (const RelayFrame& frame : OneFrameOfEachKind()) {
    SCOPED_TRACE(frame.ShortDebugString());
    ASSERT_NE(frame.kind_case(), RelayFrame::KIND_NOT_SET);
    std::string bytes;
    ASSERT_TRUE(frame.SerializeToString(&bytes));
    RelayFrame parsed;
    ASSERT_TRUE(parsed.ParseFromString(bytes));
    EXPECT_EQ(parsed.kind_case(), frame.kind_case());
    EXPECT_TRUE(MessageDifferencer::Equals(parsed, frame));
    kinds_seen.insert(parsed.kind_case());
  }
  // Fails when a kind is added to the oneof without a case here.
  EXPECT_EQ(kinds_seen.size(),
            static_cast<size_t>(RelayFrame::descriptor()->FindOneofByName("kind")->field_count()));
}

TEST(RelayFrameTest, DataPayloadKeepsArbitraryBytes) {
  RelayFrame frame;
  std::string payload;
  for (int i = 0; i < 256; ++i) payload.push_back(static_cast<char>(i));
  frame.mutable_data()->set_payload(payload);
  RelayFrame parsed;
  ASSERT_TRUE(parsed.ParseFromString(frame.SerializeAsString()));
  EXPECT_EQ(parsed.data().payload(), payload);
}

TEST(RelayFrameTest, GarbageThatIsNotProtobufFailsToParse) {
  RelayFrame frame;
  // A tag varint that never ends.
  EXPECT_FALSE(frame.ParseFromString("\xff\xff\xff\xff"));
  // Field 1 (open) as length-delimited, declaring 5 bytes with only 1 present.
  EXPECT_FALSE(frame.ParseFromString(std::string("\x0a\x05\x01", 3)));
  // Wire type 7 does not exist.
  EXPECT_FALSE(frame.ParseFromString("\x0f"));
  // Field number 0 is invalid.
  EXPECT_FALSE(frame.ParseFromString(std::string("\x00\x01", 2)));
}

TEST(RelayFrameTest, WellFormedButForeignBytesParseWithNoKindSet) {
  // Field 1 with the wrong wire type (varint instead of a message) and an unknown field 99: valid
  // protobuf, so parsing succeeds, but no kind is set and receivers must ignore the frame.
  RelayFrame frame;
  const std::string foreign = std::string("\x08\x01", 2) + std::string("\x98\x06\x05", 3);
  ASSERT_TRUE(frame.ParseFromString(foreign));
  EXPECT_EQ(frame.kind_case(), RelayFrame::KIND_NOT_SET);
}

TEST(ListenerPresenceTest, JsonUsesProto3FieldNames) {
  ListenerPresence presence;
  presence.set_entity("hc/machine-42");
  presence.set_listener_count(2);
  presence.add_listener_ids("a");
  presence.add_listener_ids("b");
  std::string json;
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(presence, &json).ok());
  EXPECT_EQ(json, R"({"entity":"hc/machine-42","listenerCount":2,"listenerIds":["a","b"]})");
  ListenerPresence parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &parsed).ok());
  EXPECT_TRUE(MessageDifferencer::Equals(parsed, presence));
}

JobRequest SampleJobRequest() {
  JobRequest job;
  job.set_job_id("job-1");
  job.set_run_id("run-1");
  job.mutable_target()->set_machine_id("machine-42");
  job.set_flow_id("flow-1");
  job.set_flow_version(3);
  job.set_flow_definition_json(R"({"name":"hello","actions":[]})");
  (*job.mutable_inputs())["Path"] = "/tmp/x";
  (*job.mutable_inputs())["Count"] = "3";
  SealedEnvelope* envelope = job.mutable_credentials();
  envelope->set_kem_id(0x0020);
  envelope->set_kdf_id(0x0001);
  envelope->set_aead_id(0x0002);
  envelope->set_recipient_key_id(std::string(16, '\x11'));
  envelope->set_enc(std::string(32, '\x22'));
  envelope->set_ciphertext("sealed");
  job.set_connection_id("conn-1");
  job.set_username("alice");
  job.set_mode(RUN_MODE_UNATTENDED);
  job.set_timeout_ms(60000);
  job.set_issued_at_unix_ms(1700000000000);
  job.set_expires_at_unix_ms(1700000300000);
  job.set_nonce(std::string(16, '\x33'));
  return job;
}

TEST(JobTest, SignedJobRequestCarriesJobRequestBytesExactly) {
  const JobRequest job = SampleJobRequest();
  ChannelMessage message;
  SignedJobRequest* signed_job = message.mutable_job_request();
  signed_job->set_job_request(job.SerializeAsString());
  signed_job->set_signature(std::string(64, '\x44'));
  signed_job->set_key_id("00112233445566778899aabbccddeeff");

  ChannelMessage parsed_message;
  ASSERT_TRUE(parsed_message.ParseFromString(message.SerializeAsString()));
  ASSERT_EQ(parsed_message.kind_case(), ChannelMessage::kJobRequest);
  // The signed bytes arrive unchanged, so a signature over them still verifies.
  EXPECT_EQ(parsed_message.job_request().job_request(), signed_job->job_request());
  JobRequest parsed_job;
  ASSERT_TRUE(parsed_job.ParseFromString(parsed_message.job_request().job_request()));
  EXPECT_TRUE(MessageDifferencer::Equals(parsed_job, job));
  EXPECT_EQ(parsed_job.credentials().recipient_key_id().size(), 16u);
  EXPECT_EQ(parsed_job.inputs().at("Count"), "3");
}

TEST(JobTest, SignedControlCarriesQueryOrCancel) {
  ControlRequest control;
  control.mutable_cancel_job()->set_job_id("job-1");
  control.mutable_cancel_job()->set_reason("user asked");
  control.set_issued_at_unix_ms(1);
  control.set_expires_at_unix_ms(2);
  ChannelMessage message;
  message.mutable_control()->set_control_request(control.SerializeAsString());

  ChannelMessage parsed_message;
  ASSERT_TRUE(parsed_message.ParseFromString(message.SerializeAsString()));
  ASSERT_EQ(parsed_message.kind_case(), ChannelMessage::kControl);
  ControlRequest parsed;
  ASSERT_TRUE(parsed.ParseFromString(parsed_message.control().control_request()));
  ASSERT_EQ(parsed.kind_case(), ControlRequest::kCancelJob);
  EXPECT_EQ(parsed.cancel_job().job_id(), "job-1");
}

TEST(JobTest, JobStatusCarriesEventsAndResult) {
  JobStatus status;
  status.set_job_id("job-1");
  status.set_state(JOB_STATE_FAILED);
  JobEvent* started = status.add_events();
  started->set_seq(1);
  started->mutable_action_started()->set_index(0);
  started->mutable_action_started()->set_name("Flow.Fail");
  JobEvent* log = status.add_events();
  log->set_seq(2);
  log->mutable_log_line()->set_stream(JobEvent::LogLine::STREAM_STDERR);
  log->mutable_log_line()->set_text("boom");
  JobResult* result = status.mutable_result();
  result->set_state(JOB_STATE_FAILED);
  result->mutable_error()->set_message("failed on purpose");
  result->mutable_error()->set_action_index(0);
  result->set_last_event_seq(2);

  JobStatus parsed;
  ASSERT_TRUE(parsed.ParseFromString(status.SerializeAsString()));
  EXPECT_TRUE(MessageDifferencer::Equals(parsed, status));
  ASSERT_EQ(parsed.events_size(), 2);
  EXPECT_EQ(parsed.events(1).kind_case(), JobEvent::kLogLine);
  // Action 0 is a real index: its presence survives the round trip.
  EXPECT_TRUE(parsed.result().error().has_action_index());
  EXPECT_EQ(parsed.result().error().action_index(), 0u);
  JobResult no_action;
  no_action.mutable_error()->set_message("no session");
  ASSERT_TRUE(parsed.mutable_result()->ParseFromString(no_action.SerializeAsString()));
  EXPECT_FALSE(parsed.result().error().has_action_index());
}

// Walks every message reachable from `descriptor` and records field names and message types.
void CollectReachable(const google::protobuf::Descriptor* descriptor,
                      std::set<const google::protobuf::Descriptor*>& seen) {
  if (!seen.insert(descriptor).second) return;
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const google::protobuf::Descriptor* type = descriptor->field(i)->message_type();
    if (type != nullptr) CollectReachable(type, seen);
  }
}

TEST(CloudApiTest, NoRequestCarriesAPlaintextPassword) {
  const google::protobuf::FileDescriptor* file = WhoAmIRequest::descriptor()->file();
  ASSERT_EQ(file->service_count(), 7);
  std::set<const google::protobuf::Descriptor*> reachable;
  for (int s = 0; s < file->service_count(); ++s) {
    for (int m = 0; m < file->service(s)->method_count(); ++m) {
      CollectReachable(file->service(s)->method(m)->input_type(), reachable);
    }
  }
  EXPECT_TRUE(reachable.count(CreateConnectionRequest::descriptor()));
  EXPECT_TRUE(reachable.count(SealedEnvelope::descriptor()));
  EXPECT_FALSE(reachable.count(SealedCredentialPlaintext::descriptor()));
  for (const google::protobuf::Descriptor* message : reachable) {
    for (int i = 0; i < message->field_count(); ++i) {
      const std::string name = absl::AsciiStrToLower(message->field(i)->name());
      EXPECT_EQ(name.find("password"), std::string::npos) << message->full_name() << "." << name;
      EXPECT_EQ(name.find("secret"), std::string::npos) << message->full_name() << "." << name;
    }
  }
}

TEST(CloudApiTest, EveryServiceStubCanBeCreatedWithoutCallingIt) {
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel("localhost:1", grpc::InsecureChannelCredentials());
  EXPECT_NE(UserService::NewStub(channel), nullptr);
  EXPECT_NE(MachineService::NewStub(channel), nullptr);
  EXPECT_NE(GroupService::NewStub(channel), nullptr);
  EXPECT_NE(ClusterService::NewStub(channel), nullptr);
  EXPECT_NE(ConnectionService::NewStub(channel), nullptr);
  EXPECT_NE(FlowService::NewStub(channel), nullptr);
  EXPECT_NE(RunService::NewStub(channel), nullptr);
  EXPECT_STREQ(MachineService::service_full_name(), "tether.proto.MachineService");
}

class FakeUserService final : public UserService::Service {
 public:
  grpc::Status WhoAmI(grpc::ServerContext* context, const WhoAmIRequest* /*request*/,
                      WhoAmIResponse* response) override {
    auto it = context->client_metadata().find("authorization");
    if (it == context->client_metadata().end() || it->second != "Bearer token-1") {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "bad token");
    }
    response->mutable_user()->set_user_id("u-1");
    response->mutable_user()->set_name("alice");
    return grpc::Status::OK;
  }
};

class FakeRunService final : public RunService::Service {
 public:
  grpc::Status WatchRun(grpc::ServerContext* /*context*/, const WatchRunRequest* request,
                        grpc::ServerWriter<RunEvent>* writer) override {
    for (uint64_t seq = request->since_seq() + 1; seq <= 3; ++seq) {
      RunEvent event;
      event.set_run_id(request->run_id());
      event.set_seq(seq);
      event.mutable_state_changed()->set_state(seq == 3 ? RUN_STATE_SUCCEEDED : RUN_STATE_RUNNING);
      if (!writer->Write(event)) break;
    }
    return grpc::Status::OK;
  }
};

class LoopbackServer {
 public:
  LoopbackServer() {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&users_);
    builder.RegisterService(&runs_);
    builder.RegisterService(&machines_);  // Every method answers UNIMPLEMENTED.
    server_ = builder.BuildAndStart();
  }
  ~LoopbackServer() {
    if (server_ != nullptr) server_->Shutdown();
  }
  bool ok() const { return server_ != nullptr && port_ > 0; }
  std::shared_ptr<grpc::Channel> Channel() const {
    return grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_),
                               grpc::InsecureChannelCredentials());
  }

 private:
  FakeUserService users_;
  FakeRunService runs_;
  MachineService::Service machines_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

void SetDeadline(grpc::ClientContext& context) {
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
}

TEST(CloudApiTest, UnaryCallWorksOverLoopback) {
  LoopbackServer server;
  ASSERT_TRUE(server.ok());
  std::unique_ptr<UserService::Stub> stub = UserService::NewStub(server.Channel());

  grpc::ClientContext context;
  SetDeadline(context);
  context.AddMetadata("authorization", "Bearer token-1");
  WhoAmIResponse response;
  grpc::Status status = stub->WhoAmI(&context, WhoAmIRequest(), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.user().name(), "alice");

  grpc::ClientContext bad_context;
  SetDeadline(bad_context);
  bad_context.AddMetadata("authorization", "Bearer wrong");
  EXPECT_EQ(stub->WhoAmI(&bad_context, WhoAmIRequest(), &response).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

TEST(CloudApiTest, ServerStreamingWatchRunDeliversEventsInOrder) {
  LoopbackServer server;
  ASSERT_TRUE(server.ok());
  std::unique_ptr<RunService::Stub> stub = RunService::NewStub(server.Channel());

  grpc::ClientContext context;
  SetDeadline(context);
  WatchRunRequest request;
  request.set_run_id("run-1");
  request.set_since_seq(1);
  std::unique_ptr<grpc::ClientReader<RunEvent>> reader = stub->WatchRun(&context, request);
  std::vector<uint64_t> seqs;
  RunEvent event;
  while (reader->Read(&event)) {
    EXPECT_EQ(event.run_id(), "run-1");
    seqs.push_back(event.seq());
  }
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(seqs, (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(event.state_changed().state(), RUN_STATE_SUCCEEDED);
}

TEST(CloudApiTest, MethodsNotOverriddenAnswerUnimplemented) {
  LoopbackServer server;
  ASSERT_TRUE(server.ok());
  std::unique_ptr<MachineService::Stub> stub = MachineService::NewStub(server.Channel());
  grpc::ClientContext context;
  SetDeadline(context);
  GetMachineRequest request;
  request.set_machine_id("machine-42");
  Machine machine;
  EXPECT_EQ(stub->GetMachine(&context, request, &machine).error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
}

}  // namespace
}  // namespace tether::proto
