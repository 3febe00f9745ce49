#include "common/proto/signing_input.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/proto/cloud.grpc.pb.h"
#include "common/proto/cloud.pb.h"
#include "common/proto/crypto.pb.h"
#include "gtest/gtest.h"

namespace tether::proto {
namespace {

std::string Bytes(std::initializer_list<int> values) {
  std::string out;
  for (int v : values) out.push_back(static_cast<char>(v));
  return out;
}

TEST(SigningInputTest, JobRequestInputIsContextNulThenLengthPrefixedBytes) {
  EXPECT_EQ(JobRequestSigningInput("abc"),
            std::string("tether/job-request/v1") + Bytes({0, 0, 0, 0, 3}) + "abc");
}

TEST(SigningInputTest, JobAndControlInputsDifferForTheSameBytes) {
  // A signature over a job must never verify as a control request, or the reverse.
  EXPECT_NE(JobRequestSigningInput("same"), ControlRequestSigningInput("same"));
  EXPECT_EQ(ControlRequestSigningInput(""),
            std::string("tether/control-request/v1") + Bytes({0, 0, 0, 0, 0}));
}

TEST(SigningInputTest, ForwardedJobInputCoversEverythingButItsOwnSignature) {
  ForwardedJobRequest forwarded;
  forwarded.mutable_job()->set_job_request("job");
  forwarded.mutable_job()->set_signature("cloudsig");
  forwarded.set_credentials("env");
  forwarded.set_member_id("m1");
  const std::string input = ForwardedJobSigningInput(forwarded);
  EXPECT_EQ(input, std::string("tether/forwarded-job/v1") + Bytes({0, 0, 0, 0, 3}) + "job" +
                       Bytes({0, 0, 0, 8}) + "cloudsig" + Bytes({0, 0, 0, 3}) + "env" +
                       Bytes({0, 0, 0, 2}) + "m1");

  ForwardedJobRequest resigned = forwarded;
  resigned.set_signature("anything");
  EXPECT_EQ(ForwardedJobSigningInput(resigned), input);

  // Moving bytes between adjacent fields changes the input (length prefixes prevent ambiguity).
  ForwardedJobRequest shifted = forwarded;
  shifted.set_credentials("envm");
  shifted.set_member_id("1");
  EXPECT_NE(ForwardedJobSigningInput(shifted), input);
}

const std::string kGetListenToken =
    absl::StrCat("/", MachineService::service_full_name(), "/GetListenToken");

GetListenTokenRequest SignedTokenRequest() {
  GetListenTokenRequest request;
  request.mutable_auth()->set_machine_id("m-1");
  request.mutable_auth()->set_timestamp_unix_ms(0x0102030405060708);
  request.mutable_auth()->set_nonce("nn");
  request.mutable_auth()->set_signature(std::string(64, 's'));
  return request;
}

TEST(SigningInputTest, MachineAuthInputHasTheDocumentedLayout) {
  ASSERT_EQ(kGetListenToken, "/tether.proto.MachineService/GetListenToken");
  auto input = MachineAuthSigningInput(kGetListenToken, SignedTokenRequest());
  ASSERT_TRUE(input.ok()) << input.status();
  // GetListenTokenRequest has only `auth`, so the request part is empty once auth is cleared.
  EXPECT_EQ(*input, std::string("tether/machine-auth/v1") + Bytes({0, 0, 0, 0, 43}) +
                        kGetListenToken + Bytes({0, 0, 0, 3}) + "m-1" +
                        Bytes({1, 2, 3, 4, 5, 6, 7, 8}) + Bytes({0, 0, 0, 2}) + "nn" +
                        Bytes({0, 0, 0, 0}));
}

TEST(SigningInputTest, MachineAuthInputIgnoresTheSignatureItself) {
  GetListenTokenRequest request = SignedTokenRequest();
  auto before = MachineAuthSigningInput(kGetListenToken, request);
  request.mutable_auth()->clear_signature();
  auto after = MachineAuthSigningInput(kGetListenToken, request);
  ASSERT_TRUE(before.ok() && after.ok());
  EXPECT_EQ(*before, *after);
}

TEST(SigningInputTest, MachineAuthInputCoversRequestFieldsMethodAndAuthFields) {
  JoinGroupRequest request;
  request.set_group_id("g-1");
  *request.mutable_auth() = SignedTokenRequest().auth();
  const std::string method = "/tether.proto.GroupService/JoinGroup";
  auto base = MachineAuthSigningInput(method, request);
  ASSERT_TRUE(base.ok()) << base.status();

  JoinGroupRequest other_group = request;
  other_group.set_group_id("g-2");
  JoinGroupRequest with_pub = request;
  with_pub.set_derived_group_pub("pub");
  JoinGroupRequest other_machine = request;
  other_machine.mutable_auth()->set_machine_id("m-2");
  JoinGroupRequest other_time = request;
  other_time.mutable_auth()->set_timestamp_unix_ms(1);
  JoinGroupRequest other_nonce = request;
  other_nonce.mutable_auth()->set_nonce("NN");
  for (const JoinGroupRequest* changed :
       {&other_group, &with_pub, &other_machine, &other_time, &other_nonce}) {
    SCOPED_TRACE(changed->ShortDebugString());
    auto input = MachineAuthSigningInput(method, *changed);
    ASSERT_TRUE(input.ok()) << input.status();
    EXPECT_NE(*input, *base);
  }
  auto other_method = MachineAuthSigningInput("/tether.proto.GroupService/LeaveGroup", request);
  ASSERT_TRUE(other_method.ok());
  EXPECT_NE(*other_method, *base);
}

TEST(SigningInputTest, MachineAuthInputRefusesARequestWithoutAuth) {
  auto input = MachineAuthSigningInput("/tether.proto.UserService/WhoAmI", WhoAmIRequest());
  EXPECT_EQ(input.status().code(), absl::StatusCode::kInvalidArgument);
  // A field named differently does not count either.
  auto wrong = MachineAuthSigningInput("/x", SealedEnvelope());
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tether::proto
