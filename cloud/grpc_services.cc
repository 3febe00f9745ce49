#include "cloud/grpc_services.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/base/log.h"
#include "common/proto/cloud.grpc.pb.h"

namespace tether::cloud {
namespace {

std::string Authorization(const grpc::ServerContext* context) {
  auto it = context->client_metadata().find("authorization");
  if (it == context->client_metadata().end()) return "";
  return std::string(it->second.data(), it->second.size());
}

template <typename Response>
grpc::Status Reply(const char* method, absl::StatusOr<Response> result, Response* out) {
  if (!result.ok()) {
    if (result.status().code() == absl::StatusCode::kInternal ||
        result.status().code() == absl::StatusCode::kDataLoss ||
        result.status().code() == absl::StatusCode::kUnknown) {
      LogError("rpc_failed", {{"method", method}, {"error", result.status().ToString()}});
    }
    return ToGrpcStatus(result.status());
  }
  *out = *std::move(result);
  return grpc::Status::OK;
}

// Authenticates the bearer token, then calls fn(caller).
template <typename Response, typename Fn>
grpc::Status AsUser(Authenticator* auth, const char* method, grpc::ServerContext* context, Fn fn,
                    Response* out) {
  absl::StatusOr<Caller> caller = auth->AuthenticateUser(Authorization(context));
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  return Reply<Response>(method, fn(*caller), out);
}

// Verifies request.auth, then calls fn(signer).
template <typename Request, typename Response, typename Fn>
grpc::Status AsSigned(Authenticator* auth, const char* method, const Request& request, Fn fn,
                      Response* out) {
  absl::StatusOr<SignedCaller> signer = auth->AuthenticateSigned(method, request, request.auth());
  if (!signer.ok()) {
    LogWarning("signed_call_refused", {{"method", method},
                                       {"machine_id", request.auth().machine_id()},
                                       {"error", std::string(signer.status().message())}});
    return ToGrpcStatus(signer.status());
  }
  return Reply<Response>(method, fn(*signer), out);
}

#define TETHER_USER_RPC(Service, Method, Request, Response, target)                             \
  grpc::Status Method(grpc::ServerContext* context, const proto::Request* request,             \
                      proto::Response* response) override {                                    \
    return AsUser(auth_, "/tether.proto." #Service "/" #Method, context,                        \
                  [&](const Caller& caller) { return target->Method(caller, *request); },       \
                  response);                                                                    \
  }

class UserServiceImpl final : public proto::UserService::Service {
 public:
  UserServiceImpl(Authenticator* auth, CloudService* service) : auth_(auth), service_(service) {}

  grpc::Status WhoAmI(grpc::ServerContext* context, const proto::WhoAmIRequest*,
                      proto::WhoAmIResponse* response) override {
    return AsUser(auth_, "/tether.proto.UserService/WhoAmI", context,
                  [&](const Caller& caller) { return service_->WhoAmI(caller); }, response);
  }
  grpc::Status CreateUser(grpc::ServerContext* context, const proto::CreateUserRequest* request,
                          proto::NewApiToken* response) override {
    return AsUser(auth_, "/tether.proto.UserService/CreateUser", context,
                  [&](const Caller& caller) { return service_->CreateUser(&caller, *request); },
                  response);
  }
  TETHER_USER_RPC(UserService, CreateToken, CreateTokenRequest, NewApiToken, service_)
  TETHER_USER_RPC(UserService, RevokeToken, RevokeTokenRequest, ApiToken, service_)
  grpc::Status ListTokens(grpc::ServerContext* context, const proto::ListTokensRequest*,
                          proto::ListTokensResponse* response) override {
    return AsUser(auth_, "/tether.proto.UserService/ListTokens", context,
                  [&](const Caller& caller) { return service_->ListTokens(caller); }, response);
  }

 private:
  Authenticator* const auth_;
  CloudService* const service_;
};

class MachineServiceImpl final : public proto::MachineService::Service {
 public:
  MachineServiceImpl(Authenticator* auth, CloudService* service) : auth_(auth), service_(service) {}

  TETHER_USER_RPC(MachineService, RegisterMachine, RegisterMachineRequest, RegisterMachineResponse,
                  service_)
  grpc::Status GetListenToken(grpc::ServerContext*, const proto::GetListenTokenRequest* request,
                              proto::ListenToken* response) override {
    return AsSigned(auth_, "/tether.proto.MachineService/GetListenToken", *request,
                    [&](const SignedCaller& machine) { return service_->GetListenToken(machine); },
                    response);
  }
  grpc::Status GetMachineCluster(grpc::ServerContext*, const proto::GetMachineClusterRequest* request,
                                 proto::GatewayCluster* response) override {
    return AsSigned(auth_, "/tether.proto.MachineService/GetMachineCluster", *request,
                    [&](const SignedCaller& machine) { return service_->GetMachineCluster(machine); },
                    response);
  }
  TETHER_USER_RPC(MachineService, ListMachines, ListMachinesRequest, ListMachinesResponse, service_)
  TETHER_USER_RPC(MachineService, GetMachine, GetMachineRequest, Machine, service_)
  TETHER_USER_RPC(MachineService, DeleteMachine, DeleteMachineRequest, DeleteMachineResponse, service_)
  TETHER_USER_RPC(MachineService, ShareMachine, ShareMachineRequest, Machine, service_)
  TETHER_USER_RPC(MachineService, UnshareMachine, UnshareMachineRequest, Machine, service_)

 private:
  Authenticator* const auth_;
  CloudService* const service_;
};

class GroupServiceImpl final : public proto::GroupService::Service {
 public:
  GroupServiceImpl(Authenticator* auth, CloudService* service) : auth_(auth), service_(service) {}

  TETHER_USER_RPC(GroupService, CreateGroup, CreateGroupRequest, MachineGroup, service_)
  grpc::Status JoinGroup(grpc::ServerContext* context, const proto::JoinGroupRequest* request,
                         proto::JoinGroupResponse* response) override {
    static constexpr char kMethod[] = "/tether.proto.GroupService/JoinGroup";
    absl::StatusOr<Caller> caller = auth_->AuthenticateUser(Authorization(context));
    if (!caller.ok()) return ToGrpcStatus(caller.status());
    return AsSigned(auth_, kMethod, *request,
                    [&](const SignedCaller& machine) {
                      return service_->JoinGroup(*caller, machine, *request);
                    },
                    response);
  }
  TETHER_USER_RPC(GroupService, LeaveGroup, LeaveGroupRequest, MachineGroup, service_)
  TETHER_USER_RPC(GroupService, ListGroups, ListGroupsRequest, ListGroupsResponse, service_)
  TETHER_USER_RPC(GroupService, GetGroup, GetGroupRequest, MachineGroup, service_)
  TETHER_USER_RPC(GroupService, DeleteGroup, DeleteGroupRequest, DeleteGroupResponse, service_)
  TETHER_USER_RPC(GroupService, ShareGroup, ShareGroupRequest, MachineGroup, service_)
  TETHER_USER_RPC(GroupService, UnshareGroup, UnshareGroupRequest, MachineGroup, service_)

 private:
  Authenticator* const auth_;
  CloudService* const service_;
};

class ClusterServiceImpl final : public proto::ClusterService::Service {
 public:
  ClusterServiceImpl(Authenticator* auth, CloudService* service) : auth_(auth), service_(service) {}

  TETHER_USER_RPC(ClusterService, CreateCluster, CreateClusterRequest, ClusterMembership, service_)
  TETHER_USER_RPC(ClusterService, JoinCluster, JoinClusterRequest, ClusterMembership, service_)
  TETHER_USER_RPC(ClusterService, ListClusters, ListClustersRequest, ListClustersResponse, service_)
  TETHER_USER_RPC(ClusterService, GetCluster, GetClusterRequest, GatewayCluster, service_)
  grpc::Status GetMemberListenToken(grpc::ServerContext*,
                                    const proto::GetMemberListenTokenRequest* request,
                                    proto::ListenToken* response) override {
    return AsSigned(auth_, "/tether.proto.ClusterService/GetMemberListenToken", *request,
                    [&](const SignedCaller& member) { return service_->GetMemberListenToken(member); },
                    response);
  }
  grpc::Status ListClusterMachines(grpc::ServerContext*, const proto::ListClusterMachinesRequest* request,
                                   proto::ListMachinesResponse* response) override {
    return AsSigned(auth_, "/tether.proto.ClusterService/ListClusterMachines", *request,
                    [&](const SignedCaller& member) {
                      return service_->ListClusterMachines(member, *request);
                    },
                    response);
  }
  TETHER_USER_RPC(ClusterService, RemoveClusterMember, RemoveClusterMemberRequest, GatewayCluster,
                  service_)
  TETHER_USER_RPC(ClusterService, DeleteCluster, DeleteClusterRequest, DeleteClusterResponse, service_)

 private:
  Authenticator* const auth_;
  CloudService* const service_;
};

class ConnectionServiceImpl final : public proto::ConnectionService::Service {
 public:
  ConnectionServiceImpl(Authenticator* auth, CloudService* service) : auth_(auth), service_(service) {}

  TETHER_USER_RPC(ConnectionService, CreateConnection, CreateConnectionRequest, Connection, service_)
  TETHER_USER_RPC(ConnectionService, UpdateConnectionCredentials, UpdateConnectionCredentialsRequest,
                  Connection, service_)
  TETHER_USER_RPC(ConnectionService, ListConnections, ListConnectionsRequest, ListConnectionsResponse,
                  service_)
  TETHER_USER_RPC(ConnectionService, GetConnection, GetConnectionRequest, Connection, service_)
  TETHER_USER_RPC(ConnectionService, DeleteConnection, DeleteConnectionRequest,
                  DeleteConnectionResponse, service_)

 private:
  Authenticator* const auth_;
  CloudService* const service_;
};

class FlowServiceImpl final : public proto::FlowService::Service {
 public:
  FlowServiceImpl(Authenticator* auth, CloudService* service) : auth_(auth), service_(service) {}

  TETHER_USER_RPC(FlowService, CreateFlow, CreateFlowRequest, Flow, service_)
  TETHER_USER_RPC(FlowService, UpdateFlow, UpdateFlowRequest, Flow, service_)
  TETHER_USER_RPC(FlowService, GetFlow, GetFlowRequest, Flow, service_)
  TETHER_USER_RPC(FlowService, ListFlows, ListFlowsRequest, ListFlowsResponse, service_)

 private:
  Authenticator* const auth_;
  CloudService* const service_;
};

class RunServiceImpl final : public proto::RunService::Service {
 public:
  RunServiceImpl(Authenticator* auth, RunManager* runs) : auth_(auth), runs_(runs) {}

  TETHER_USER_RPC(RunService, RunFlow, RunFlowRequest, RunFlowResponse, runs_)
  TETHER_USER_RPC(RunService, GetRun, GetRunRequest, Run, runs_)
  TETHER_USER_RPC(RunService, CancelRun, CancelRunRequest, Run, runs_)
  TETHER_USER_RPC(RunService, ListRuns, ListRunsRequest, ListRunsResponse, runs_)

  grpc::Status WatchRun(grpc::ServerContext* context, const proto::WatchRunRequest* request,
                        grpc::ServerWriter<proto::RunEvent>* writer) override {
    absl::StatusOr<Caller> caller = auth_->AuthenticateUser(Authorization(context));
    if (!caller.ok()) return ToGrpcStatus(caller.status());
    absl::Status status = runs_->WatchRun(
        *caller, *request, [&](const proto::RunEvent& event) { return writer->Write(event); },
        [&] { return context->IsCancelled(); });
    return ToGrpcStatus(status);
  }

 private:
  Authenticator* const auth_;
  RunManager* const runs_;
};

#undef TETHER_USER_RPC

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

std::vector<std::unique_ptr<grpc::Service>> MakeGrpcServices(Authenticator* auth,
                                                             CloudService* service,
                                                             RunManager* runs) {
  std::vector<std::unique_ptr<grpc::Service>> services;
  services.push_back(std::make_unique<UserServiceImpl>(auth, service));
  services.push_back(std::make_unique<MachineServiceImpl>(auth, service));
  services.push_back(std::make_unique<GroupServiceImpl>(auth, service));
  services.push_back(std::make_unique<ClusterServiceImpl>(auth, service));
  services.push_back(std::make_unique<ConnectionServiceImpl>(auth, service));
  services.push_back(std::make_unique<FlowServiceImpl>(auth, service));
  services.push_back(std::make_unique<RunServiceImpl>(auth, runs));
  return services;
}

}  // namespace tether::cloud
