#include "agent/gateway_link.h"

#include <chrono>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/auth/machine_auth.h"
#include "common/base/clock.h"
#include "common/base/service_main.h"
#include "common/client/cloud_client.h"

namespace tether::agent {

absl::StatusOr<std::unique_ptr<GatewayLink>> GatewayLink::Create(const GatewayEndpoint& endpoint,
                                                                 std::string machine_id,
                                                                 const crypto::SecretBytes& signing_key) {
  absl::StatusOr<std::pair<std::string, uint16_t>> host_port = client::SplitHostPort(endpoint.address);
  if (!host_port.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--via_gateway: ", host_port.status().message()));
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (endpoint.ca_file.empty()) {
    if (!IsLoopbackHost(host_port->first)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--via_gateway ", endpoint.address, ": pass --gateway_ca FILE (plaintext is for a gateway on ",
          "a loopback address only)"));
    }
    credentials = grpc::InsecureChannelCredentials();
  } else {
    std::ifstream in(endpoint.ca_file);
    std::stringstream pem;
    pem << in.rdbuf();
    if (!in || pem.str().find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("--gateway_ca ", endpoint.ca_file, " is not a readable PEM certificate"));
    }
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = pem.str();
    credentials = grpc::SslCredentials(options);
  }
  return std::unique_ptr<GatewayLink>(new GatewayLink(endpoint.address,
                                                      grpc::CreateChannel(endpoint.address, credentials),
                                                      std::move(machine_id), signing_key.Clone()));
}

GatewayLink::GatewayLink(std::string address, std::shared_ptr<grpc::Channel> channel, std::string machine_id,
                         crypto::SecretBytes signing_key)
    : address_(std::move(address)),
      machine_id_(std::move(machine_id)),
      signing_key_(std::move(signing_key)),
      stub_(proto::GatewayService::NewStub(channel)) {}

absl::StatusOr<proto::ListenToken> GatewayLink::ListenToken() const {
  proto::GetListenTokenRequest request;
  if (absl::Status signed_ok =
          auth::SignMachineAuth(kListenTokenMethod, machine_id_, signing_key_, WallNow(), &request);
      !signed_ok.ok()) {
    return signed_ok;
  }
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(kCallTimeout));
  proto::ListenToken token;
  const grpc::Status status = stub_->GetAgentListenToken(&context, request, &token);
  const auto code = static_cast<absl::StatusCode>(status.error_code());
  if (code == absl::StatusCode::kUnavailable || code == absl::StatusCode::kDeadlineExceeded) {
    return absl::Status(code,
                        absl::StrCat("gateway ", address_, " unreachable (", status.error_message(), ")"));
  }
  if (!status.ok()) {
    return absl::Status(code, absl::StrCat("gateway refused this agent: ", status.error_message()));
  }
  if (token.token().empty() || token.relay_endpoint().empty() || token.entity().empty()) {
    return absl::InternalError(absl::StrCat(
        "gateway ", address_, " answered a listen token without token, relay_endpoint or entity"));
  }
  return token;
}

}  // namespace tether::agent
