#include "common/client/cloud_client.h"

#include <chrono>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/base/service_main.h"

namespace tether::client {

int ExitCodeFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return kExitOk;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return kExitUsage;
    case absl::StatusCode::kNotFound:
      return kExitNotFound;
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kPermissionDenied:
      return kExitDenied;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return kExitUnreachable;
    default:
      return kExitInternal;
  }
}

absl::StatusOr<std::pair<std::string, uint16_t>> SplitHostPort(absl::string_view address) {
  const size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos || colon == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cloud address \"", address, "\" must be HOST:PORT"));
  }
  absl::string_view host = address.substr(0, colon);
  if (host.find(':') != absl::string_view::npos &&
      !(absl::StartsWith(host, "[") && absl::EndsWith(host, "]"))) {
    return absl::InvalidArgumentError(
        absl::StrCat("cloud address \"", address, "\": write IPv6 hosts in brackets, [::1]:8443"));
  }
  uint32_t port = 0;
  if (!absl::SimpleAtoi(address.substr(colon + 1), &port) || port == 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("cloud address \"", address, "\": the port must be 1 to 65535"));
  }
  for (char c : host) {
    if (c <= ' ' || c == 0x7f) {
      return absl::InvalidArgumentError(absl::StrCat("cloud address \"", address, "\" is malformed"));
    }
  }
  return std::make_pair(std::string(host), static_cast<uint16_t>(port));
}

absl::Status FromGrpc(absl::string_view what, const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  std::string message = status.error_message();
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    message = absl::StrCat("cloud unreachable (", message, ")");
  } else if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    message = absl::StrCat("no answer from the cloud in time (", message, ")");
  }
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      what.empty() ? message : absl::StrCat(what, ": ", message));
}

absl::StatusOr<std::unique_ptr<CloudClient>> CloudClient::Create(const CloudEndpoint& endpoint,
                                                                 crypto::SecretBytes token) {
  absl::StatusOr<std::pair<std::string, uint16_t>> host_port = SplitHostPort(endpoint.address);
  if (!host_port.ok()) return host_port.status();
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (endpoint.insecure) {
    if (!IsLoopbackHost(host_port->first)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--insecure talks plaintext and is for loopback clouds only; ", host_port->first,
          " is not a loopback address (use --ca FILE)"));
    }
    credentials = grpc::InsecureChannelCredentials();
  } else {
    if (endpoint.ca_file.empty()) {
      return absl::InvalidArgumentError("no CA certificate: pass --ca FILE (or --insecure for a loopback cloud)");
    }
    std::ifstream in(endpoint.ca_file);
    std::stringstream pem;
    pem << in.rdbuf();
    if (!in || pem.str().empty()) {
      return absl::InvalidArgumentError(absl::StrCat("cannot read CA certificate ", endpoint.ca_file));
    }
    if (pem.str().find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(endpoint.ca_file, " holds no PEM certificate"));
    }
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = pem.str();
    credentials = grpc::SslCredentials(options);
  }
  std::shared_ptr<grpc::Channel> channel = grpc::CreateChannel(endpoint.address, credentials);
  return std::unique_ptr<CloudClient>(
      new CloudClient(endpoint.address, std::move(channel), std::move(token)));
}

CloudClient::CloudClient(std::string address, std::shared_ptr<grpc::Channel> channel,
                         crypto::SecretBytes token)
    : address_(std::move(address)),
      channel_(std::move(channel)),
      token_(std::move(token)),
      users_(proto::UserService::NewStub(channel_)),
      machines_(proto::MachineService::NewStub(channel_)),
      groups_(proto::GroupService::NewStub(channel_)),
      clusters_(proto::ClusterService::NewStub(channel_)),
      connections_(proto::ConnectionService::NewStub(channel_)),
      flows_(proto::FlowService::NewStub(channel_)),
      runs_(proto::RunService::NewStub(channel_)) {}

std::unique_ptr<grpc::ClientContext> CloudClient::NewContext(bool deadline) const {
  auto context = std::make_unique<grpc::ClientContext>();
  // Machine-signed calls (agent, gateway) carry no user token.
  if (!token_.empty()) context->AddMetadata("authorization", absl::StrCat("Bearer ", token_.view()));
  if (deadline) {
    context->set_deadline(std::chrono::system_clock::now() +
                          absl::ToChronoMilliseconds(kCallTimeout));
  }
  return context;
}

}  // namespace tether::client
