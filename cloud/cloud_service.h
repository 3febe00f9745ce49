// The cloud's service layer (DESIGN §4): every rule about users, machines, groups, clusters,
// connections and flows lives here, once, behind plain C++ calls taking the authenticated caller
// and a request message. The gRPC services (grpc_services.h) and the portal's REST API are thin
// adapters over this class; runs are RunManager's (run_manager.h).
//
// Errors follow cloud.proto: kNotFound for anything the caller may not see (another user's
// objects look exactly like missing ones), kPermissionDenied when the caller sees the object but
// its role forbids the change, kInvalidArgument naming the bad field, kAlreadyExists for duplicate
// names and ids. A failed call writes nothing: each change is one atomic batch, checked first.
//
// Thread-safe. Mutations are serialized by one mutex (they are rare next to reads and runs), so
// "check, then write" is never raced by another mutation.
#ifndef TETHER_CLOUD_CLOUD_SERVICE_H_
#define TETHER_CLOUD_CLOUD_SERVICE_H_

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cloud/authenticator.h"
#include "cloud/storage.pb.h"
#include "common/crypto/sas_token.h"
#include "common/crypto/secret.h"
#include "common/proto/cloud.pb.h"
#include "common/store/store.h"

namespace tether::cloud {

// What the cloud tells agents and signs jobs with.
struct ServiceOptions {
  // The relay's base URL as agents and gateways reach it, e.g. "wss://relay.example:9350".
  std::string relay_url;
  // The relay key that mints Listen tokens (must have the Listen right).
  crypto::SasKey listen_key;
  // Lifetime of a Listen token.
  absl::Duration listen_token_ttl = absl::Hours(1);
  // The cloud's Ed25519 job-signing public key and its id.
  std::string signing_public_key;
  std::string signing_key_id;
};

// Live facts the service shows but does not store: relay presence and the dispatcher's view.
class MachineStatusSource {
 public:
  virtual ~MachineStatusSource() = default;
  // Status of the listener(s) on `entity`, and the run a machine executes now (may be empty).
  virtual proto::MachineStatus EntityStatus(const std::string& entity) = 0;
  virtual std::string CurrentRun(const std::string& machine_id) = 0;
  // Something a dispatcher decision depends on changed (membership, deletion).
  virtual void TargetsChanged() = 0;
  // A listener is about to connect to `entity` (it just fetched a Listen token): retry it now
  // rather than after its offline backoff.
  virtual void EntityComingOnline(const std::string& entity) = 0;
};

class CloudService {
 public:
  CloudService(store::Store* db, Authenticator* auth, ServiceOptions options);

  // Must be called before serving; `status` outlives the service. May stay null (tests): every
  // machine then shows MACHINE_STATUS_UNSPECIFIED.
  void SetStatusSource(MachineStatusSource* status) { status_ = status; }

  // ---- Users
  absl::StatusOr<proto::WhoAmIResponse> WhoAmI(const Caller& caller);
  // `caller` null = the operator's offline bootstrap (`cloud_server admin create-user`).
  absl::StatusOr<proto::NewApiToken> CreateUser(const Caller* caller,
                                                const proto::CreateUserRequest& request);
  absl::StatusOr<proto::NewApiToken> CreateToken(const Caller& caller,
                                                 const proto::CreateTokenRequest& request);
  absl::StatusOr<proto::ApiToken> RevokeToken(const Caller& caller,
                                              const proto::RevokeTokenRequest& request);
  absl::StatusOr<proto::ListTokensResponse> ListTokens(const Caller& caller);

  // ---- Machines
  absl::StatusOr<proto::RegisterMachineResponse> RegisterMachine(
      const Caller& caller, const proto::RegisterMachineRequest& request);
  absl::StatusOr<proto::ListenToken> GetListenToken(const SignedCaller& machine);
  absl::StatusOr<proto::ListMachinesResponse> ListMachines(const Caller& caller,
                                                           const proto::ListMachinesRequest& request);
  absl::StatusOr<proto::Machine> GetMachine(const Caller& caller,
                                            const proto::GetMachineRequest& request);
  absl::StatusOr<proto::DeleteMachineResponse> DeleteMachine(
      const Caller& caller, const proto::DeleteMachineRequest& request);
  absl::StatusOr<proto::Machine> ShareMachine(const Caller& caller,
                                              const proto::ShareMachineRequest& request);
  absl::StatusOr<proto::Machine> UnshareMachine(const Caller& caller,
                                                const proto::UnshareMachineRequest& request);

  // ---- Machine groups
  absl::StatusOr<proto::MachineGroup> CreateGroup(const Caller& caller,
                                                  const proto::CreateGroupRequest& request);
  // `machine` authenticated request.auth (the caller must also be allowed to use the machine).
  absl::StatusOr<proto::JoinGroupResponse> JoinGroup(const Caller& caller,
                                                     const SignedCaller& machine,
                                                     const proto::JoinGroupRequest& request);
  absl::StatusOr<proto::MachineGroup> LeaveGroup(const Caller& caller,
                                                 const proto::LeaveGroupRequest& request);
  absl::StatusOr<proto::ListGroupsResponse> ListGroups(const Caller& caller,
                                                       const proto::ListGroupsRequest& request);
  absl::StatusOr<proto::MachineGroup> GetGroup(const Caller& caller,
                                               const proto::GetGroupRequest& request);
  absl::StatusOr<proto::DeleteGroupResponse> DeleteGroup(const Caller& caller,
                                                         const proto::DeleteGroupRequest& request);
  absl::StatusOr<proto::MachineGroup> ShareGroup(const Caller& caller,
                                                 const proto::ShareGroupRequest& request);
  absl::StatusOr<proto::MachineGroup> UnshareGroup(const Caller& caller,
                                                   const proto::UnshareGroupRequest& request);

  // ---- Gateway clusters
  absl::StatusOr<proto::ClusterMembership> CreateCluster(const Caller& caller,
                                                         const proto::CreateClusterRequest& request);
  absl::StatusOr<proto::ClusterMembership> JoinCluster(const Caller& caller,
                                                       const proto::JoinClusterRequest& request);
  absl::StatusOr<proto::ListClustersResponse> ListClusters(const Caller& caller,
                                                           const proto::ListClustersRequest& request);
  absl::StatusOr<proto::GatewayCluster> GetCluster(const Caller& caller,
                                                   const proto::GetClusterRequest& request);
  absl::StatusOr<proto::ListenToken> GetMemberListenToken(const SignedCaller& member);
  absl::StatusOr<proto::ListMachinesResponse> ListClusterMachines(
      const SignedCaller& member, const proto::ListClusterMachinesRequest& request);
  absl::StatusOr<proto::GatewayCluster> GetMachineCluster(const SignedCaller& machine);
  absl::StatusOr<proto::GatewayCluster> RemoveClusterMember(
      const Caller& caller, const proto::RemoveClusterMemberRequest& request);
  absl::StatusOr<proto::DeleteClusterResponse> DeleteCluster(
      const Caller& caller, const proto::DeleteClusterRequest& request);

  // ---- Connections
  absl::StatusOr<proto::Connection> CreateConnection(const Caller& caller,
                                                     const proto::CreateConnectionRequest& request);
  absl::StatusOr<proto::Connection> UpdateConnectionCredentials(
      const Caller& caller, const proto::UpdateConnectionCredentialsRequest& request);
  absl::StatusOr<proto::ListConnectionsResponse> ListConnections(
      const Caller& caller, const proto::ListConnectionsRequest& request);
  absl::StatusOr<proto::Connection> GetConnection(const Caller& caller,
                                                  const proto::GetConnectionRequest& request);
  absl::StatusOr<proto::DeleteConnectionResponse> DeleteConnection(
      const Caller& caller, const proto::DeleteConnectionRequest& request);

  // ---- Flows
  absl::StatusOr<proto::Flow> CreateFlow(const Caller& caller, const proto::CreateFlowRequest& request);
  absl::StatusOr<proto::Flow> UpdateFlow(const Caller& caller, const proto::UpdateFlowRequest& request);
  absl::StatusOr<proto::Flow> GetFlow(const Caller& caller, const proto::GetFlowRequest& request);
  absl::StatusOr<proto::ListFlowsResponse> ListFlows(const Caller& caller,
                                                     const proto::ListFlowsRequest& request);

  // For RunManager: the caller's connection (kNotFound otherwise) and a visible flow version.
  absl::StatusOr<storage::StoredConnection> OwnConnection(const Caller& caller,
                                                          absl::string_view connection_id);

  // The recipient public key of a connection target, if the caller may use the target.
  absl::StatusOr<std::string> TargetPublicKey(const Caller& caller,
                                              const proto::ConnectionTarget& target);

 private:
  using Shares = google::protobuf::RepeatedPtrField<proto::Share>;

  absl::StatusOr<proto::Machine> VisibleMachine(const Caller& caller, absl::string_view machine_id,
                                                proto::ShareRole* role);
  absl::StatusOr<storage::StoredGroup> VisibleGroup(const Caller& caller, absl::string_view group_id,
                                                    proto::ShareRole* role);
  absl::StatusOr<proto::GatewayCluster> VisibleCluster(const Caller& caller,
                                                       absl::string_view cluster_id,
                                                       proto::ShareRole* role);
  absl::StatusOr<proto::User> UserByName(absl::string_view name);
  // Gives `user_name` `new_role` on the object (or, with nullopt, takes its share away):
  // `shares` points into `record`, which is written to `column_family` under `id` afterwards.
  absl::Status ApplyShare(proto::ShareRole caller_role, absl::string_view kind,
                          absl::string_view column_family, const std::string& id,
                          const std::string& owner_user_id, Shares* shares,
                          const google::protobuf::MessageLite& record, absl::string_view user_name,
                          std::optional<proto::ShareRole> new_role);
  absl::StatusOr<proto::ListenToken> MintListenToken(const std::string& entity);
  void FillMachineStatus(proto::Machine* machine);
  void FillClusterStatus(proto::GatewayCluster* cluster);
  absl::Status DeleteConnectionsTo(const proto::ConnectionTarget& target, store::Batch* batch);
  // Adds to `batch` the deletion of a machine, group or cluster record with its name and its
  // owner's and sharees' visibility entries.
  void DeleteShareable(absl::string_view kind, absl::string_view column_family, const std::string& id,
                       const std::string& owner_user_id, const std::string& name,
                       const Shares& shares, store::Batch* batch);
  // Deletes the connections to `target` in the same batch, writes it (synced) and tells the
  // dispatcher.
  absl::Status CommitTargetDeletion(const proto::ConnectionTarget& target, store::Batch batch);
  // Erases deleted and replaced envelopes from the files on disk (Store::CompactFully of the
  // connections column family), after their synced delete or replacement. Slow: called without
  // write_mu_. A failure is logged, not returned: the delete itself is durable.
  void EraseOldEnvelopes();

  store::Store* const db_;
  Authenticator* const auth_;
  const ServiceOptions options_;
  MachineStatusSource* status_ = nullptr;
  absl::Mutex write_mu_;

  // Presence reports of gateway members (ListClusterMachines): which machines listen on each
  // member's local relay, and when the member said so. In memory only: members report every few
  // seconds, so a restarted cloud knows again within one interval.
  struct MemberReport {
    std::string cluster_id;
    absl::Time at;
    std::set<std::string> listening;
  };
  // Whether a member of `cluster_id` reported `machine_id` listening within kGatewayReportTtl.
  bool ReportedListening(const std::string& cluster_id, const std::string& machine_id);
  absl::Mutex reports_mu_;
  std::map<std::string, MemberReport> member_reports_ ABSL_GUARDED_BY(reports_mu_);
};

// How long a gateway member's presence report counts.
inline constexpr absl::Duration kGatewayReportTtl = absl::Seconds(20);

// Validation helpers shared with the REST adapter and tetherctl's tests.
absl::Status ValidateDisplayName(absl::string_view field, absl::string_view name);
absl::Status ValidateUserName(absl::string_view name);
absl::Status ValidateConnectionId(absl::string_view id);

}  // namespace tether::cloud

#endif  // TETHER_CLOUD_CLOUD_SERVICE_H_
