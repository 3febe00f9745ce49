// The cloud's gRPC services: thin adapters that authenticate the caller (bearer token or
// MachineAuth signature), call CloudService or RunManager, and turn absl::Status into grpc::Status
// (the codes are the same numbers). No rule lives here.
#ifndef TETHER_CLOUD_GRPC_SERVICES_H_
#define TETHER_CLOUD_GRPC_SERVICES_H_

#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "cloud/authenticator.h"
#include "cloud/cloud_service.h"
#include "cloud/run_manager.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/impl/codegen/service_type.h"

namespace tether::cloud {

grpc::Status ToGrpcStatus(const absl::Status& status);

// Every service of cloud.proto, ready for grpc::ServerBuilder::RegisterService. The pointers must
// outlive the returned services.
std::vector<std::unique_ptr<grpc::Service>> MakeGrpcServices(Authenticator* auth,
                                                             CloudService* service,
                                                             RunManager* runs);

}  // namespace tether::cloud

#endif  // TETHER_CLOUD_GRPC_SERVICES_H_
