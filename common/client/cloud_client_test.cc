#include "common/client/cloud_client.h"

#include "gtest/gtest.h"

namespace tether::client {
namespace {

TEST(ExitCodeTest, FollowsTheDocumentedTable) {
  struct Case {
    absl::StatusCode code;
    int exit_code;
  };
  const Case cases[] = {
      {absl::StatusCode::kOk, 0},
      {absl::StatusCode::kInvalidArgument, 1},
      {absl::StatusCode::kAlreadyExists, 1},
      {absl::StatusCode::kFailedPrecondition, 1},
      {absl::StatusCode::kNotFound, 2},
      {absl::StatusCode::kUnauthenticated, 3},
      {absl::StatusCode::kPermissionDenied, 3},
      {absl::StatusCode::kUnavailable, 4},
      {absl::StatusCode::kDeadlineExceeded, 4},
      {absl::StatusCode::kInternal, 7},
      {absl::StatusCode::kDataLoss, 7},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(absl::StatusCodeToString(c.code));
    EXPECT_EQ(ExitCodeFor(absl::Status(c.code, "x")), c.exit_code);
  }
}

TEST(SplitHostPortTest, AcceptsNamesAddressesAndBracketedIpv6) {
  EXPECT_EQ(*SplitHostPort("cloud.example:8443"), std::make_pair(std::string("cloud.example"), uint16_t{8443}));
  EXPECT_EQ(*SplitHostPort("127.0.0.1:1"), std::make_pair(std::string("127.0.0.1"), uint16_t{1}));
  EXPECT_EQ(*SplitHostPort("[::1]:443"), std::make_pair(std::string("[::1]"), uint16_t{443}));
  for (const char* bad : {"cloud", ":443", "cloud:", "cloud:0", "cloud:65536", "::1:443", "a b:1"}) {
    SCOPED_TRACE(bad);
    EXPECT_EQ(SplitHostPort(bad).status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(CloudClientTest, InsecureOnlyForLoopbackHosts) {
  for (const char* address : {"127.0.0.1:9", "localhost:9", "[::1]:9"}) {
    SCOPED_TRACE(address);
    EXPECT_TRUE(CloudClient::Create({address, "", true}, crypto::SecretBytes("t")).ok());
  }
  for (const char* address : {"192.0.2.1:9", "cloud.example:443", "[2001:db8::1]:9"}) {
    SCOPED_TRACE(address);
    auto client = CloudClient::Create({address, "", true}, crypto::SecretBytes("t"));
    EXPECT_EQ(client.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(client.status().message().find("loopback"), absl::string_view::npos);
  }
}

TEST(CloudClientTest, TlsNeedsAReadableCa) {
  EXPECT_EQ(CloudClient::Create({"cloud.example:443", "", false}, crypto::SecretBytes("t")).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CloudClient::Create({"cloud.example:443", "/nonexistent/ca.pem", false},
                                crypto::SecretBytes("t"))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(FromGrpcTest, KeepsTheCodeAndPrefixesTheMessage) {
  absl::Status status = FromGrpc("create flow", grpc::Status(grpc::StatusCode::NOT_FOUND, "flow \"x\" not found"));
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(status.message(), "create flow: flow \"x\" not found");
  EXPECT_TRUE(FromGrpc("x", grpc::Status::OK).ok());
  EXPECT_EQ(FromGrpc("", grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "bad")).message(), "bad");
}

}  // namespace
}  // namespace tether::client
