#include "cloud/cloud_service.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "cloud/cloud_store.h"
#include "common/base/clock.h"
#include "common/base/log.h"
#include "common/base/status_macros.h"
#include "common/crypto/digest.h"
#include "common/crypto/envelope.h"
#include "common/crypto/secret.h"
#include "common/flow/flow_definition.h"
#include "common/store/key.h"

namespace tether::cloud {
namespace {

constexpr int kDefaultPageSize = 100;
constexpr int kMaxPageSize = 1000;
constexpr size_t kKeySize = 32;
constexpr int kMaxClusterMembers = 10;

int64_t NowMs() { return absl::ToUnixMillis(WallNow()); }

std::string_view Sv(absl::string_view s) { return std::string_view(s.data(), s.size()); }

int PageSize(int32_t requested) {
  if (requested <= 0) return kDefaultPageSize;
  return std::min<int>(requested, kMaxPageSize);
}

absl::Status CheckKey(absl::string_view field, absl::string_view key) {
  if (key.size() != kKeySize) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " must be ", kKeySize, " bytes, got ", key.size()));
  }
  if (key == std::string(kKeySize, '\0')) {
    return absl::InvalidArgumentError(absl::StrCat(field, " is all zero"));
  }
  return absl::OkStatus();
}

absl::Status NotFound(absl::string_view kind, absl::string_view id) {
  return absl::NotFoundError(absl::StrCat(kind, " \"", id, "\" not found"));
}

// The ids visible to `user_id` of one kind, after `page_token`, at most `limit` + 1 (the extra one
// tells whether there is a next page).
absl::StatusOr<std::vector<std::string>> VisibleIds(const store::Store& db, absl::string_view user_id,
                                                    absl::string_view kind,
                                                    absl::string_view page_token, size_t limit) {
  std::vector<std::string> ids;
  const std::string prefix = VisiblePrefix(user_id, kind);
  const std::string start = page_token.empty() ? prefix : VisibleKey(user_id, kind, page_token);
  RETURN_IF_ERROR(db.Scan(kVisibleCf, start, prefix, [&](std::string_view key, std::string_view) {
    store::KeyReader reader(key);
    (void)reader.ReadString();
    (void)reader.ReadString();
    absl::StatusOr<std::string> id = reader.ReadString();
    if (!id.ok()) return true;
    if (!page_token.empty() && *id == page_token) return true;
    ids.push_back(*std::move(id));
    return ids.size() <= limit;
  }));
  return ids;
}

bool HasRoleToChange(proto::ShareRole role) { return role == proto::SHARE_ROLE_OWNER; }

absl::Status CheckShareRole(proto::ShareRole role) {
  if (role != proto::SHARE_ROLE_USER && role != proto::SHARE_ROLE_OWNER) {
    return absl::InvalidArgumentError("role must be SHARE_ROLE_USER or SHARE_ROLE_OWNER");
  }
  return absl::OkStatus();
}

// The role of `user_id` on an object with `owner` and `shares`, or UNSPECIFIED when none.
template <typename Shares>
proto::ShareRole RoleOn(absl::string_view user_id, absl::string_view owner, const Shares& shares) {
  if (user_id == owner) return proto::SHARE_ROLE_OWNER;
  for (const proto::Share& share : shares) {
    if (share.user_id() == user_id) return share.role();
  }
  return proto::SHARE_ROLE_UNSPECIFIED;
}

std::string TargetKind(const proto::ConnectionTarget& target) {
  switch (target.kind_case()) {
    case proto::ConnectionTarget::kMachineId: return absl::StrCat("machine:", target.machine_id());
    case proto::ConnectionTarget::kGroupId: return absl::StrCat("group:", target.group_id());
    case proto::ConnectionTarget::kClusterId: return absl::StrCat("cluster:", target.cluster_id());
    default: return "";
  }
}

// Adds or updates a share in `shares` and the visible index; returns the batch ops in `batch`.
template <typename Shares>
void PutShare(Shares* shares, const proto::User& user, proto::ShareRole role, absl::string_view kind,
              absl::string_view id, store::Batch* batch) {
  bool found = false;
  for (proto::Share& share : *shares) {
    if (share.user_id() == user.user_id()) {
      share.set_role(role);
      found = true;
    }
  }
  if (!found) {
    proto::Share* share = shares->Add();
    share->set_user_id(user.user_id());
    share->set_user_name(user.name());
    share->set_role(role);
  }
  batch->Put(kVisibleCf, VisibleKey(user.user_id(), kind, id), "");
}

template <typename Shares>
bool RemoveShare(Shares* shares, absl::string_view user_id) {
  for (int i = 0; i < shares->size(); ++i) {
    if ((*shares)[i].user_id() == user_id) {
      shares->erase(shares->begin() + i);
      return true;
    }
  }
  return false;
}

}  // namespace

absl::Status ValidateDisplayName(absl::string_view field, absl::string_view name) {
  if (name.empty() || name.size() > 128) {
    return absl::InvalidArgumentError(absl::StrCat(field, " must be 1 to 128 characters"));
  }
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError(absl::StrCat(field, " contains a control character"));
    }
  }
  if (absl::ascii_isspace(static_cast<unsigned char>(name.front())) ||
      absl::ascii_isspace(static_cast<unsigned char>(name.back()))) {
    return absl::InvalidArgumentError(absl::StrCat(field, " starts or ends with a space"));
  }
  return absl::OkStatus();
}

absl::Status ValidateUserName(absl::string_view name) {
  if (name.empty() || name.size() > 64) {
    return absl::InvalidArgumentError("user name must be 1 to 64 characters");
  }
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      return absl::InvalidArgumentError("user name may only contain A-Z a-z 0-9 . _ -");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateConnectionId(absl::string_view id) {
  if (id.size() < 16 || id.size() > 64) {
    return absl::InvalidArgumentError("connection_id must be 16 to 64 characters of [a-z0-9-]");
  }
  for (char c : id) {
    if (!(c >= 'a' && c <= 'z') && !(c >= '0' && c <= '9') && c != '-') {
      return absl::InvalidArgumentError("connection_id must be 16 to 64 characters of [a-z0-9-]");
    }
  }
  return absl::OkStatus();
}

CloudService::CloudService(store::Store* db, Authenticator* auth, ServiceOptions options)
    : db_(db), auth_(auth), options_(std::move(options)) {}

// ---------------------------------------------------------------------------------------------
// Users

absl::StatusOr<proto::WhoAmIResponse> CloudService::WhoAmI(const Caller& caller) {
  proto::WhoAmIResponse response;
  *response.mutable_user() = caller.user;
  return response;
}

absl::StatusOr<proto::NewApiToken> CloudService::CreateUser(const Caller* caller,
                                                            const proto::CreateUserRequest& request) {
  if (caller != nullptr && !caller->user.admin()) {
    return absl::PermissionDeniedError("only an admin may create users");
  }
  RETURN_IF_ERROR(ValidateUserName(request.name()));
  absl::MutexLock lock(&write_mu_);
  if (db_->Get(kUserNamesCf, Sv(request.name())).ok()) {
    return absl::AlreadyExistsError(absl::StrCat("user \"", request.name(), "\" already exists"));
  }
  proto::NewApiToken response;
  proto::User* user = response.mutable_user();
  ASSIGN_OR_RETURN(std::string user_id, NewId("u-"));
  user->set_user_id(user_id);
  user->set_name(request.name());
  user->set_admin(request.admin());
  user->set_created_at_unix_ms(NowMs());

  ASSIGN_OR_RETURN(auto secret_and_hash, Authenticator::NewTokenSecret());
  ASSIGN_OR_RETURN(std::string token_id, NewId("tok-"));
  storage::StoredToken stored;
  proto::ApiToken* token = stored.mutable_token();
  token->set_token_id(token_id);
  token->set_user_id(user_id);
  token->set_label("created with the user");
  token->set_created_at_unix_ms(user->created_at_unix_ms());

  store::Batch batch;
  batch.Put(kUsersCf, user_id, SerializeRecord(*user));
  batch.Put(kUserNamesCf, Sv(request.name()), user_id);
  batch.Put(kTokensCf, secret_and_hash.second, SerializeRecord(stored));
  batch.Put(kTokenIdsCf, token_id, secret_and_hash.second);
  RETURN_IF_ERROR(db_->Write(batch, {.sync = true}));
  *response.mutable_token() = *token;
  response.set_secret(std::move(secret_and_hash.first));
  LogInfo("user_created", {{"user_id", user_id}, {"name", request.name()},
                           {"admin", request.admin() ? "true" : "false"}});
  return response;
}

absl::StatusOr<proto::NewApiToken> CloudService::CreateToken(const Caller& caller,
                                                             const proto::CreateTokenRequest& request) {
  if (request.label().size() > 128) {
    return absl::InvalidArgumentError("label must be at most 128 characters");
  }
  ASSIGN_OR_RETURN(auto secret_and_hash, Authenticator::NewTokenSecret());
  ASSIGN_OR_RETURN(std::string token_id, NewId("tok-"));
  storage::StoredToken stored;
  proto::ApiToken* token = stored.mutable_token();
  token->set_token_id(token_id);
  token->set_user_id(caller.user.user_id());
  token->set_label(request.label());
  token->set_created_at_unix_ms(NowMs());
  store::Batch batch;
  batch.Put(kTokensCf, secret_and_hash.second, SerializeRecord(stored));
  batch.Put(kTokenIdsCf, token_id, secret_and_hash.second);
  RETURN_IF_ERROR(db_->Write(batch, {.sync = true}));
  proto::NewApiToken response;
  *response.mutable_token() = *token;
  response.set_secret(std::move(secret_and_hash.first));
  *response.mutable_user() = caller.user;
  return response;
}

absl::StatusOr<proto::ApiToken> CloudService::RevokeToken(const Caller& caller,
                                                          const proto::RevokeTokenRequest& request) {
  absl::MutexLock lock(&write_mu_);
  absl::StatusOr<std::string> hash = db_->Get(kTokenIdsCf, Sv(request.token_id()));
  if (absl::IsNotFound(hash.status())) return NotFound("token", request.token_id());
  RETURN_IF_ERROR(hash.status());
  storage::StoredToken stored;
  RETURN_IF_ERROR(GetRecord(*db_, kTokensCf, *hash, &stored));
  if (stored.token().user_id() != caller.user.user_id() && !caller.user.admin()) {
    return NotFound("token", request.token_id());
  }
  if (stored.token().revoked_at_unix_ms() == 0) {
    stored.mutable_token()->set_revoked_at_unix_ms(NowMs());
    RETURN_IF_ERROR(db_->Put(kTokensCf, *hash, SerializeRecord(stored), {.sync = true}));
    LogInfo("token_revoked", {{"token_id", request.token_id()}, {"by", caller.user.user_id()}});
  }
  return stored.token();
}

absl::StatusOr<proto::ListTokensResponse> CloudService::ListTokens(const Caller& caller) {
  proto::ListTokensResponse response;
  std::vector<proto::ApiToken> tokens;
  absl::Status scan_error;
  RETURN_IF_ERROR(db_->Scan(kTokensCf, "", "", [&](std::string_view, std::string_view value) {
    storage::StoredToken stored;
    if (!stored.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
      scan_error = absl::DataLossError("corrupt token record");
      return false;
    }
    if (stored.token().user_id() == caller.user.user_id()) tokens.push_back(stored.token());
    return true;
  }));
  RETURN_IF_ERROR(scan_error);
  std::sort(tokens.begin(), tokens.end(), [](const proto::ApiToken& a, const proto::ApiToken& b) {
    return std::make_pair(a.created_at_unix_ms(), a.token_id()) <
           std::make_pair(b.created_at_unix_ms(), b.token_id());
  });
  for (proto::ApiToken& token : tokens) *response.add_tokens() = std::move(token);
  return response;
}

absl::StatusOr<proto::User> CloudService::UserByName(absl::string_view name) {
  absl::StatusOr<std::string> user_id = db_->Get(kUserNamesCf, Sv(name));
  if (absl::IsNotFound(user_id.status())) {
    return absl::NotFoundError(absl::StrCat("user \"", name, "\" not found"));
  }
  RETURN_IF_ERROR(user_id.status());
  proto::User user;
  RETURN_IF_ERROR(GetRecord(*db_, kUsersCf, *user_id, &user));
  return user;
}

// ---------------------------------------------------------------------------------------------
// Machines

absl::Status CloudService::ApplyShare(proto::ShareRole caller_role, absl::string_view kind,
                                      absl::string_view column_family, const std::string& id,
                                      const std::string& owner_user_id, Shares* shares,
                                      const google::protobuf::MessageLite& record,
                                      absl::string_view user_name,
                                      std::optional<proto::ShareRole> new_role) {
  if (!HasRoleToChange(caller_role)) {
    return absl::PermissionDeniedError("changing shares needs the owner role");
  }
  ASSIGN_OR_RETURN(proto::User user, UserByName(user_name));
  store::Batch batch;
  if (new_role.has_value()) {
    if (user.user_id() == owner_user_id) {
      return absl::InvalidArgumentError(absl::StrCat("the ", kind, "'s owner needs no share"));
    }
    PutShare(shares, user, *new_role, kind, id, &batch);
  } else {
    if (!RemoveShare(shares, user.user_id())) {
      return absl::NotFoundError(absl::StrCat(kind, " is not shared with \"", user_name, "\""));
    }
    batch.Delete(kVisibleCf, VisibleKey(user.user_id(), kind, id));
  }
  batch.Put(Sv(column_family), id, SerializeRecord(record));
  return db_->Write(batch, {.sync = true});
}

absl::StatusOr<proto::ListenToken> CloudService::MintListenToken(const std::string& entity) {
  const absl::Time expiry = WallNow() + options_.listen_token_ttl;
  proto::ListenToken token;
  token.set_token(crypto::CreateSasToken(absl::StrCat("/$", entity), options_.listen_key.name,
                                         options_.listen_key.key, absl::ToUnixSeconds(expiry)));
  token.set_expires_at_unix_ms(absl::ToUnixSeconds(expiry) * 1000);
  token.set_relay_endpoint(options_.relay_url);
  token.set_entity(entity);
  return token;
}

void CloudService::FillMachineStatus(proto::Machine* machine) {
  if (status_ == nullptr) return;
  std::string run = status_->CurrentRun(machine->machine_id());
  // Behind a gateway the agent listens on a member's local relay, which the cloud cannot see: its
  // presence comes from the members' reports.
  proto::MachineStatus status =
      machine->cluster_id().empty() ? status_->EntityStatus(machine->entity())
      : ReportedListening(machine->cluster_id(), machine->machine_id()) ? proto::MACHINE_STATUS_ONLINE
                                                                        : proto::MACHINE_STATUS_OFFLINE;
  if (status == proto::MACHINE_STATUS_ONLINE && !run.empty()) status = proto::MACHINE_STATUS_BUSY;
  machine->set_status(status);
  machine->set_current_run_id(run);
}

void CloudService::FillClusterStatus(proto::GatewayCluster* cluster) {
  if (status_ == nullptr) return;
  // Presence is per entity, and every member listens on the cluster's entity: members show the
  // cluster's status (the relay does not tell which listener id is which member).
  proto::MachineStatus status = status_->EntityStatus(cluster->entity());
  for (proto::ClusterMember& member : *cluster->mutable_members()) member.set_status(status);
}

absl::StatusOr<proto::RegisterMachineResponse> CloudService::RegisterMachine(
    const Caller& caller, const proto::RegisterMachineRequest& request) {
  RETURN_IF_ERROR(ValidateDisplayName("name", request.name()));
  RETURN_IF_ERROR(CheckKey("x25519_pub", request.x25519_pub()));
  RETURN_IF_ERROR(CheckKey("ed25519_pub", request.ed25519_pub()));
  absl::MutexLock lock(&write_mu_);
  if (!request.cluster_id().empty()) {
    proto::ShareRole role;
    RETURN_IF_ERROR(VisibleCluster(caller, request.cluster_id(), &role).status());
  }
  const std::string name_key = NameKey(kKindMachine, caller.user.user_id(), request.name());
  if (db_->Get(kNamesCf, name_key).ok()) {
    return absl::AlreadyExistsError(
        absl::StrCat("you already have a machine named \"", request.name(), "\""));
  }
  ASSIGN_OR_RETURN(std::string machine_id, NewId("m-"));
  proto::Machine machine;
  machine.set_machine_id(machine_id);
  machine.set_name(request.name());
  machine.set_owner_user_id(caller.user.user_id());
  machine.set_x25519_pub(request.x25519_pub());
  machine.set_ed25519_pub(request.ed25519_pub());
  machine.set_entity(absl::StrCat("hc/machine-", machine_id));
  machine.set_cluster_id(request.cluster_id());
  machine.set_registered_at_unix_ms(NowMs());

  store::Batch batch;
  batch.Put(kMachinesCf, machine_id, SerializeRecord(machine));
  batch.Put(kNamesCf, name_key, machine_id);
  batch.Put(kVisibleCf, VisibleKey(caller.user.user_id(), kKindMachine, machine_id), "");
  RETURN_IF_ERROR(db_->Write(batch, {.sync = true}));
  LogInfo("machine_registered", {{"machine_id", machine_id}, {"owner", caller.user.user_id()}});

  proto::RegisterMachineResponse response;
  response.set_machine_id(machine_id);
  response.set_relay_endpoint(options_.relay_url);
  response.set_entity(machine.entity());
  response.set_cloud_signing_pub(options_.signing_public_key);
  response.set_cloud_signing_key_id(options_.signing_key_id);
  *response.mutable_machine() = std::move(machine);
  return response;
}

absl::StatusOr<proto::ListenToken> CloudService::GetListenToken(const SignedCaller& machine) {
  if (machine.kind != SignedCaller::Kind::kMachine) {
    return absl::PermissionDeniedError("gateway members use GetMemberListenToken");
  }
  proto::Machine record;
  RETURN_IF_ERROR(GetRecord(*db_, kMachinesCf, machine.id, &record));
  if (status_ != nullptr) status_->EntityComingOnline(record.entity());
  return MintListenToken(record.entity());
}

absl::StatusOr<proto::Machine> CloudService::VisibleMachine(const Caller& caller,
                                                            absl::string_view machine_id,
                                                            proto::ShareRole* role) {
  proto::Machine machine;
  absl::Status status = GetRecord(*db_, kMachinesCf, machine_id, &machine);
  if (absl::IsNotFound(status)) return NotFound("machine", machine_id);
  RETURN_IF_ERROR(status);
  *role = RoleOn(caller.user.user_id(), machine.owner_user_id(), machine.shared_with());
  if (*role == proto::SHARE_ROLE_UNSPECIFIED) return NotFound("machine", machine_id);
  return machine;
}

absl::StatusOr<proto::ListMachinesResponse> CloudService::ListMachines(
    const Caller& caller, const proto::ListMachinesRequest& request) {
  const size_t limit = PageSize(request.page_size());
  proto::ListMachinesResponse response;
  std::string token = request.page_token();
  // Filters may skip records: keep scanning pages until this one is full or the index ends.
  while (true) {
    ASSIGN_OR_RETURN(std::vector<std::string> ids,
                     VisibleIds(*db_, caller.user.user_id(), kKindMachine, token, limit));
    bool more = ids.size() > limit;
    for (size_t i = 0; i < ids.size() && i < limit; ++i) {
      token = ids[i];
      proto::Machine machine;
      absl::Status status = GetRecord(*db_, kMachinesCf, ids[i], &machine);
      if (absl::IsNotFound(status)) continue;
      RETURN_IF_ERROR(status);
      if (!request.group_id().empty() && machine.group_id() != request.group_id()) continue;
      if (!request.cluster_id().empty() && machine.cluster_id() != request.cluster_id()) continue;
      FillMachineStatus(&machine);
      *response.add_machines() = std::move(machine);
      if (static_cast<size_t>(response.machines_size()) == limit) {
        if (more || i + 1 < ids.size()) response.set_next_page_token(token);
        return response;
      }
    }
    if (!more) return response;
  }
}

absl::StatusOr<proto::Machine> CloudService::GetMachine(const Caller& caller,
                                                        const proto::GetMachineRequest& request) {
  proto::ShareRole role;
  ASSIGN_OR_RETURN(proto::Machine machine, VisibleMachine(caller, request.machine_id(), &role));
  FillMachineStatus(&machine);
  return machine;
}

absl::Status CloudService::DeleteConnectionsTo(const proto::ConnectionTarget& target,
                                               store::Batch* batch) {
  const std::string wanted = TargetKind(target);
  absl::Status parse_error;
  RETURN_IF_ERROR(db_->Scan(kConnectionsCf, "", "", [&](std::string_view key, std::string_view value) {
    storage::StoredConnection stored;
    if (!stored.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
      parse_error = absl::DataLossError("corrupt connection record");
      return false;
    }
    if (TargetKind(stored.connection().target()) != wanted) return true;
    const proto::Connection& c = stored.connection();
    batch->Delete(kConnectionsCf, key);
    batch->Delete(kNamesCf, NameKey(kKindConnection, c.owner_user_id(), c.name()));
    batch->Delete(kVisibleCf, VisibleKey(c.owner_user_id(), kKindConnection, c.connection_id()));
    return true;
  }));
  return parse_error;
}

void CloudService::DeleteShareable(absl::string_view kind, absl::string_view column_family,
                                   const std::string& id, const std::string& owner_user_id,
                                   const std::string& name, const Shares& shares,
                                   store::Batch* batch) {
  batch->Delete(Sv(column_family), id);
  batch->Delete(kNamesCf, NameKey(kind, owner_user_id, name));
  batch->Delete(kVisibleCf, VisibleKey(owner_user_id, kind, id));
  for (const proto::Share& share : shares) {
    batch->Delete(kVisibleCf, VisibleKey(share.user_id(), kind, id));
  }
}

void CloudService::EraseOldEnvelopes() {
  // The delete (or replacement) is already durable; this only makes sure the old envelope's bytes
  // leave the disk, so a failure is worth a log line, not an error for the caller.
  if (absl::Status status = db_->CompactFully(kConnectionsCf); !status.ok()) {
    LogWarning("envelope_erase_failed", {{"error", status.ToString()}});
  }
}

absl::Status CloudService::CommitTargetDeletion(const proto::ConnectionTarget& target,
                                                store::Batch batch) {
  // Envelopes sealed to the target's key are useless without it: they go with it.
  RETURN_IF_ERROR(DeleteConnectionsTo(target, &batch));
  RETURN_IF_ERROR(db_->Write(batch, {.sync = true}));
  if (status_ != nullptr) status_->TargetsChanged();
  return absl::OkStatus();
}

absl::StatusOr<proto::DeleteMachineResponse> CloudService::DeleteMachine(
    const Caller& caller, const proto::DeleteMachineRequest& request) {
  absl::ReleasableMutexLock lock(&write_mu_);
  proto::ShareRole role;
  ASSIGN_OR_RETURN(proto::Machine machine, VisibleMachine(caller, request.machine_id(), &role));
  if (!HasRoleToChange(role)) {
    return absl::PermissionDeniedError("deleting a machine needs the owner role");
  }
  store::Batch batch;
  DeleteShareable(kKindMachine, kMachinesCf, machine.machine_id(), machine.owner_user_id(),
                  machine.name(), machine.shared_with(), &batch);
  if (!machine.group_id().empty()) {
    storage::StoredGroup group;
    absl::Status status = GetRecord(*db_, kGroupsCf, machine.group_id(), &group);
    if (status.ok()) {
      auto* ids = group.mutable_group()->mutable_machine_ids();
      ids->erase(std::remove(ids->begin(), ids->end(), machine.machine_id()), ids->end());
      batch.Put(kGroupsCf, machine.group_id(), SerializeRecord(group));
    } else if (!absl::IsNotFound(status)) {
      return status;
    }
  }
  proto::ConnectionTarget target;
  target.set_machine_id(machine.machine_id());
  RETURN_IF_ERROR(CommitTargetDeletion(target, std::move(batch)));
  LogInfo("machine_deleted", {{"machine_id", machine.machine_id()}, {"by", caller.user.user_id()}});
  lock.Release();
  EraseOldEnvelopes();
  return proto::DeleteMachineResponse();
}

absl::StatusOr<proto::Machine> CloudService::ShareMachine(const Caller& caller,
                                                          const proto::ShareMachineRequest& request) {
  RETURN_IF_ERROR(CheckShareRole(request.role()));
  absl::MutexLock lock(&write_mu_);
  proto::ShareRole role;
  ASSIGN_OR_RETURN(proto::Machine machine, VisibleMachine(caller, request.machine_id(), &role));
  RETURN_IF_ERROR(ApplyShare(role, kKindMachine, kMachinesCf, machine.machine_id(),
                             machine.owner_user_id(), machine.mutable_shared_with(), machine,
                             request.user_name(), request.role()));
  FillMachineStatus(&machine);
  return machine;
}

absl::StatusOr<proto::Machine> CloudService::UnshareMachine(
    const Caller& caller, const proto::UnshareMachineRequest& request) {
  absl::MutexLock lock(&write_mu_);
  proto::ShareRole role;
  ASSIGN_OR_RETURN(proto::Machine machine, VisibleMachine(caller, request.machine_id(), &role));
  RETURN_IF_ERROR(ApplyShare(role, kKindMachine, kMachinesCf, machine.machine_id(),
                             machine.owner_user_id(), machine.mutable_shared_with(), machine,
                             request.user_name(), std::nullopt));
  FillMachineStatus(&machine);
  return machine;
}

// ---------------------------------------------------------------------------------------------
// Machine groups

absl::StatusOr<storage::StoredGroup> CloudService::VisibleGroup(const Caller& caller,
                                                                absl::string_view group_id,
                                                                proto::ShareRole* role) {
  storage::StoredGroup group;
  absl::Status status = GetRecord(*db_, kGroupsCf, group_id, &group);
  if (absl::IsNotFound(status)) return NotFound("group", group_id);
  RETURN_IF_ERROR(status);
  *role = RoleOn(caller.user.user_id(), group.group().owner_user_id(), group.group().shared_with());
  if (*role == proto::SHARE_ROLE_UNSPECIFIED) return NotFound("group", group_id);
  return group;
}

absl::StatusOr<proto::MachineGroup> CloudService::CreateGroup(const Caller& caller,
                                                              const proto::CreateGroupRequest& request) {
  RETURN_IF_ERROR(ValidateDisplayName("name", request.name()));
  RETURN_IF_ERROR(CheckKey("group_pub", request.group_pub()));
  const proto::WrappedKey& wrapped = request.wrapped_priv();
  if (wrapped.salt().size() < 16 || wrapped.nonce().size() != 12 ||
      wrapped.ciphertext().size() != kKeySize + 16 || wrapped.scrypt_n() < 2 || wrapped.r() == 0 ||
      wrapped.p() == 0 || (wrapped.scrypt_n() & (wrapped.scrypt_n() - 1)) != 0) {
    return absl::InvalidArgumentError(
        "wrapped_priv must carry scrypt N (a power of two), r, p, a salt of at least 16 bytes, a "
        "12-byte nonce and a 48-byte ciphertext");
  }
  absl::MutexLock lock(&write_mu_);
  const std::string name_key = NameKey(kKindGroup, caller.user.user_id(), request.name());
  if (db_->Get(kNamesCf, name_key).ok()) {
    return absl::AlreadyExistsError(absl::StrCat("you already have a group named \"", request.name(), "\""));
  }
  ASSIGN_OR_RETURN(std::string group_id, NewId("g-"));
  storage::StoredGroup stored;
  proto::MachineGroup* group = stored.mutable_group();
  group->set_group_id(group_id);
  group->set_name(request.name());
  group->set_owner_user_id(caller.user.user_id());
  group->set_group_pub(request.group_pub());
  group->set_created_at_unix_ms(NowMs());
  *stored.mutable_wrapped_priv() = wrapped;
  store::Batch batch;
  batch.Put(kGroupsCf, group_id, SerializeRecord(stored));
  batch.Put(kNamesCf, name_key, group_id);
  batch.Put(kVisibleCf, VisibleKey(caller.user.user_id(), kKindGroup, group_id), "");
  RETURN_IF_ERROR(db_->Write(batch, {.sync = true}));
  LogInfo("group_created", {{"group_id", group_id}, {"owner", caller.user.user_id()}});
  return stored.group();
}

absl::StatusOr<proto::JoinGroupResponse> CloudService::JoinGroup(
    const Caller& caller, const SignedCaller& signer, const proto::JoinGroupRequest& request) {
  if (signer.kind != SignedCaller::Kind::kMachine) {
    return absl::PermissionDeniedError("only machines join groups");
  }
  absl::MutexLock lock(&write_mu_);
  proto::ShareRole group_role;
  ASSIGN_OR_RETURN(storage::StoredGroup group, VisibleGroup(caller, request.group_id(), &group_role));
  proto::ShareRole machine_role;
  ASSIGN_OR_RETURN(proto::Machine machine, VisibleMachine(caller, signer.id, &machine_role));
  if (!HasRoleToChange(machine_role)) {
    return absl::PermissionDeniedError("adding a machine to a group needs the owner role on it");
  }
  proto::JoinGroupResponse response;
  *response.mutable_wrapped_priv() = group.wrapped_priv();
  response.set_group_pub(group.group().group_pub());
  if (request.derived_group_pub().empty()) {
    *response.mutable_group() = group.group();
    return response;
  }
  if (!crypto::ConstantTimeEquals(request.derived_group_pub(), group.group().group_pub())) {
    return absl::PermissionDeniedError(
        "group key mismatch: the unwrapped key is not this group's (wrong password?)");
  }
  if (!machine.group_id().empty() && machine.group_id() != group.group().group_id()) {
    return absl::FailedPreconditionError(
        absl::StrCat("machine is already in group \"", machine.group_id(), "\"; leave it first"));
  }
  if (machine.group_id().empty()) {
    machine.set_group_id(group.group().group_id());
    group.mutable_group()->add_machine_ids(machine.machine_id());
    store::Batch batch;
    batch.Put(kMachinesCf, machine.machine_id(), SerializeRecord(machine));
    batch.Put(kGroupsCf, group.group().group_id(), SerializeRecord(group));
    RETURN_IF_ERROR(db_->Write(batch, {.sync = true}));
    LogInfo("group_joined", {{"group_id", group.group().group_id()}, {"machine_id", machine.machine_id()}});
    if (status_ != nullptr) status_->TargetsChanged();
  }
  response.set_joined(true);
  *response.mutable_group() = group.group();
  return response;
}

absl::StatusOr<proto::MachineGroup> CloudService::LeaveGroup(const Caller& caller,
                                                             const proto::LeaveGroupRequest& request) {
  absl::MutexLock lock(&write_mu_);
  proto::ShareRole group_role;
  ASSIGN_OR_RETURN(storage::StoredGroup group, VisibleGroup(caller, request.group_id(), &group_role));
  proto::Machine machine;
  absl::Status status = GetRecord(*db_, kMachinesCf, request.machine_id(), &machine);
  if (absl::IsNotFound(status) || machine.group_id() != group.group().group_id()) {
    return absl::NotFoundError(
        absl::StrCat("machine \"", request.machine_id(), "\" is not in this group"));
  }
  RETURN_IF_ERROR(status);
  proto::ShareRole machine_role =
      RoleOn(caller.user.user_id(), machine.owner_user_id(), machine.shared_with());
  if (!HasRoleToChange(group_role) && !HasRoleToChange(machine_role)) {
    return absl::PermissionDeniedError("removing a machine needs the owner role on it or the group");
  }
  machine.clear_group_id();
  auto* ids = group.mutable_group()->mutable_machine_ids();
  ids->erase(std::remove(ids->begin(), ids->end(), machine.machine_id()), ids->end());
  store::Batch batch;
  batch.Put(kMachinesCf, machine.machine_id(), SerializeRecord(machine));
  batch.Put(kGroupsCf, group.group().group_id(), SerializeRecord(group));
  RETURN_IF_ERROR(db_->Write(batch, {.sync = true}));
  if (status_ != nullptr) status_->TargetsChanged();
  return group.group();
}

absl::StatusOr<proto::ListGroupsResponse> CloudService::ListGroups(
    const Caller& caller, const proto::ListGroupsRequest& request) {
  const size_t limit = PageSize(request.page_size());
  ASSIGN_OR_RETURN(std::vector<std::string> ids,
                   VisibleIds(*db_, caller.user.user_id(), kKindGroup, request.page_token(), limit));
  proto::ListGroupsResponse response;
  for (size_t i = 0; i < ids.size() && i < limit; ++i) {
    storage::StoredGroup group;
    absl::Status status = GetRecord(*db_, kGroupsCf, ids[i], &group);
    if (absl::IsNotFound(status)) continue;
    RETURN_IF_ERROR(status);
    *response.add_groups() = group.group();
  }
  if (ids.size() > limit) response.set_next_page_token(ids[limit - 1]);
  return response;
}

absl::StatusOr<proto::MachineGroup> CloudService::GetGroup(const Caller& caller,
                                                           const proto::GetGroupRequest& request) {
  proto::ShareRole role;
  ASSIGN_OR_RETURN(storage::StoredGroup group, VisibleGroup(caller, request.group_id(), &role));
  return group.group();
}

absl::StatusOr<proto::DeleteGroupResponse> CloudService::DeleteGroup(
    const Caller& caller, const proto::DeleteGroupRequest& request) {
  absl::ReleasableMutexLock lock(&write_mu_);
  proto::ShareRole role;
  ASSIGN_OR_RETURN(storage::StoredGroup stored, VisibleGroup(caller, request.group_id(), &role));
  if (!HasRoleToChange(role)) return absl::PermissionDeniedError("deleting a group needs the owner role");
  const proto::MachineGroup& group = stored.group();
  store::Batch batch;
  DeleteShareable(kKindGroup, kGroupsCf, group.group_id(), group.owner_user_id(), group.name(),
                  group.shared_with(), &batch);
  for (const std::string& machine_id : group.machine_ids()) {
    proto::Machine machine;
    absl::Status status = GetRecord(*db_, kMachinesCf, machine_id, &machine);
    if (absl::IsNotFound(status)) continue;
    RETURN_IF_ERROR(status);
    machine.clear_group_id();
    batch.Put(kMachinesCf, machine_id, SerializeRecord(machine));
  }
  proto::ConnectionTarget target;
  target.set_group_id(group.group_id());
  RETURN_IF_ERROR(CommitTargetDeletion(target, std::move(batch)));
  LogInfo("group_deleted", {{"group_id", group.group_id()}, {"by", caller.user.user_id()}});
  lock.Release();
  EraseOldEnvelopes();
  return proto::DeleteGroupResponse();
}

absl::StatusOr<proto::MachineGroup> CloudService::ShareGroup(const Caller& caller,
                                                             const proto::ShareGroupRequest& request) {
  RETURN_IF_ERROR(CheckShareRole(request.role()));
  absl::MutexLock lock(&write_mu_);
  proto::ShareRole role;
  ASSIGN_OR_RETURN(storage::StoredGroup stored, VisibleGroup(caller, request.group_id(), &role));
  proto::MachineGroup* group = stored.mutable_group();
  RETURN_IF_ERROR(ApplyShare(role, kKindGroup, kGroupsCf, group->group_id(), group->owner_user_id(),
                             group->mutable_shared_with(), stored, request.user_name(),
                             request.role()));
  return stored.group();
}

absl::StatusOr<proto::MachineGroup> CloudService::UnshareGroup(
    const Caller& caller, const proto::UnshareGroupRequest& request) {
  absl::MutexLock lock(&write_mu_);
  proto::ShareRole role;
  ASSIGN_OR_RETURN(storage::StoredGroup stored, VisibleGroup(caller, request.group_id(), &role));
  proto::MachineGroup* group = stored.mutable_group();
  RETURN_IF_ERROR(ApplyShare(role, kKindGroup, kGroupsCf, group->group_id(), group->owner_user_id(),
                             group->mutable_shared_with(), stored, request.user_name(),
                             std::nullopt));
  return stored.group();
}

// ---------------------------------------------------------------------------------------------
// Gateway clusters

absl::StatusOr<proto::GatewayCluster> CloudService::VisibleCluster(const Caller& caller,
                                                                   absl::string_view cluster_id,
                                                                   proto::ShareRole* role) {
  proto::GatewayCluster cluster;
  absl::Status status = GetRecord(*db_, kClustersCf, cluster_id, &cluster);
  if (absl::IsNotFound(status)) return NotFound("cluster", cluster_id);
  RETURN_IF_ERROR(status);
  *role = RoleOn(caller.user.user_id(), cluster.owner_user_id(), cluster.shared_with());
  if (*role == proto::SHARE_ROLE_UNSPECIFIED) return NotFound("cluster", cluster_id);
  return cluster;
}

namespace {

absl::StatusOr<proto::ClusterMember> NewMember(const proto::NewClusterMember& request) {
  RETURN_IF_ERROR(ValidateDisplayName("member.name", request.name()));
  RETURN_IF_ERROR(CheckKey("member.x25519_pub", request.x25519_pub()));
  RETURN_IF_ERROR(CheckKey("member.ed25519_pub", request.ed25519_pub()));
  proto::ClusterMember member;
  ASSIGN_OR_RETURN(std::string member_id, NewId("gm-"));
  member.set_member_id(member_id);
  member.set_name(request.name());
  member.set_x25519_pub(request.x25519_pub());
  member.set_ed25519_pub(request.ed25519_pub());
  member.set_joined_at_unix_ms(absl::ToUnixMillis(WallNow()));
  return member;
}

}  // namespace

absl::StatusOr<proto::ClusterMembership> CloudService::CreateCluster(
    const Caller& caller, const proto::CreateClusterRequest& request) {
  RETURN_IF_ERROR(ValidateDisplayName("name", request.name()));
  RETURN_IF_ERROR(CheckKey("cluster_pub", request.cluster_pub()));
  ASSIGN_OR_RETURN(proto::ClusterMember member, NewMember(request.member()));
  absl::MutexLock lock(&write_mu_);
  const std::string name_key = NameKey(kKindCluster, caller.user.user_id(), request.name());
  if (db_->Get(kNamesCf, name_key).ok()) {
    return absl::AlreadyExistsError(absl::StrCat("you already have a cluster named \"", request.name(), "\""));
  }
  ASSIGN_OR_RETURN(std::string cluster_id, NewId("c-"));
  proto::GatewayCluster cluster;
  cluster.set_cluster_id(cluster_id);
  cluster.set_name(request.name());
  cluster.set_owner_user_id(caller.user.user_id());
  cluster.set_cluster_pub(request.cluster_pub());
  cluster.set_entity(absl::StrCat("hc/cluster-", cluster_id));
  cluster.set_created_at_unix_ms(NowMs());
  *cluster.add_members() = member;
  storage::StoredMemberIndex index;
  index.set_cluster_id(cluster_id);
  store::Batch batch;
  batch.Put(kClustersCf, cluster_id, SerializeRecord(cluster));
  batch.Put(kMembersCf, member.member_id(), SerializeRecord(index));
  batch.Put(kNamesCf, name_key, cluster_id);
  batch.Put(kVisibleCf, VisibleKey(caller.user.user_id(), kKindCluster, cluster_id), "");
  RETURN_IF_ERROR(db_->Write(batch, {.sync = true}));
  LogInfo("cluster_created", {{"cluster_id", cluster_id}, {"member_id", member.member_id()}});
  proto::ClusterMembership response;
  *response.mutable_cluster() = std::move(cluster);
  response.set_member_id(member.member_id());
  response.set_relay_endpoint(options_.relay_url);
  response.set_entity(response.cluster().entity());
  response.set_cloud_signing_pub(options_.signing_public_key);
  response.set_cloud_signing_key_id(options_.signing_key_id);
  return response;
}

absl::StatusOr<proto::ClusterMembership> CloudService::JoinCluster(
    const Caller& caller, const proto::JoinClusterRequest& request) {
  ASSIGN_OR_RETURN(proto::ClusterMember member, NewMember(request.member()));
  absl::MutexLock lock(&write_mu_);
  proto::ShareRole role;
  ASSIGN_OR_RETURN(proto::GatewayCluster cluster, VisibleCluster(caller, request.cluster_id(), &role));
  if (!HasRoleToChange(role)) return absl::PermissionDeniedError("joining a cluster needs the owner role");
  if (!crypto::ConstantTimeEquals(request.cluster_pub(), cluster.cluster_pub())) {
    return absl::PermissionDeniedError("cluster key mismatch (wrong recovery key?)");
  }
  if (cluster.members_size() >= kMaxClusterMembers) {
    return absl::FailedPreconditionError(
        absl::StrCat("cluster already has ", kMaxClusterMembers, " members (the maximum)"));
  }
  *cluster.add_members() = member;
  storage::StoredMemberIndex index;
  index.set_cluster_id(cluster.cluster_id());
  store::Batch batch;
  batch.Put(kClustersCf, cluster.cluster_id(), SerializeRecord(cluster));
  batch.Put(kMembersCf, member.member_id(), SerializeRecord(index));
  RETURN_IF_ERROR(db_->Write(batch, {.sync = true}));
  LogInfo("cluster_joined", {{"cluster_id", cluster.cluster_id()}, {"member_id", member.member_id()}});
  proto::ClusterMembership response;
  *response.mutable_cluster() = std::move(cluster);
  response.set_member_id(member.member_id());
  response.set_relay_endpoint(options_.relay_url);
  response.set_entity(response.cluster().entity());
  response.set_cloud_signing_pub(options_.signing_public_key);
  response.set_cloud_signing_key_id(options_.signing_key_id);
  return response;
}

absl::StatusOr<proto::ListClustersResponse> CloudService::ListClusters(
    const Caller& caller, const proto::ListClustersRequest& request) {
  const size_t limit = PageSize(request.page_size());
  ASSIGN_OR_RETURN(std::vector<std::string> ids,
                   VisibleIds(*db_, caller.user.user_id(), kKindCluster, request.page_token(), limit));
  proto::ListClustersResponse response;
  for (size_t i = 0; i < ids.size() && i < limit; ++i) {
    proto::GatewayCluster cluster;
    absl::Status status = GetRecord(*db_, kClustersCf, ids[i], &cluster);
    if (absl::IsNotFound(status)) continue;
    RETURN_IF_ERROR(status);
    FillClusterStatus(&cluster);
    *response.add_clusters() = std::move(cluster);
  }
  if (ids.size() > limit) response.set_next_page_token(ids[limit - 1]);
  return response;
}

absl::StatusOr<proto::GatewayCluster> CloudService::GetCluster(const Caller& caller,
                                                               const proto::GetClusterRequest& request) {
  proto::ShareRole role;
  ASSIGN_OR_RETURN(proto::GatewayCluster cluster, VisibleCluster(caller, request.cluster_id(), &role));
  FillClusterStatus(&cluster);
  return cluster;
}

absl::StatusOr<proto::ListenToken> CloudService::GetMemberListenToken(const SignedCaller& member) {
  if (member.kind != SignedCaller::Kind::kClusterMember) {
    return absl::PermissionDeniedError("machines use GetListenToken");
  }
  proto::GatewayCluster cluster;
  RETURN_IF_ERROR(GetRecord(*db_, kClustersCf, member.cluster_id, &cluster));
  if (status_ != nullptr) status_->EntityComingOnline(cluster.entity());
  return MintListenToken(cluster.entity());
}

absl::StatusOr<proto::ListMachinesResponse> CloudService::ListClusterMachines(
    const SignedCaller& member, const proto::ListClusterMachinesRequest& request) {
  if (member.kind != SignedCaller::Kind::kClusterMember) {
    return absl::PermissionDeniedError("only gateway members list their cluster's machines");
  }
  proto::ListMachinesResponse response;
  absl::Status parse_error;
  RETURN_IF_ERROR(db_->Scan(kMachinesCf, "", "", [&](std::string_view, std::string_view value) {
    proto::Machine machine;
    if (!machine.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
      parse_error = absl::DataLossError("corrupt machine record");
      return false;
    }
    if (machine.cluster_id() == member.cluster_id) {
      machine.clear_shared_with();
      *response.add_machines() = std::move(machine);
    }
    return true;
  }));
  RETURN_IF_ERROR(parse_error);
  // The member's presence report, kept for the machines behind its own cluster only.
  MemberReport report{member.cluster_id, absl::Now(), {}};
  std::set<std::string> requested(request.listening_machine_ids().begin(),
                                  request.listening_machine_ids().end());
  for (const proto::Machine& machine : response.machines()) {
    if (requested.count(machine.machine_id()) > 0) report.listening.insert(machine.machine_id());
  }
  absl::MutexLock lock(&reports_mu_);
  member_reports_[member.id] = std::move(report);
  return response;
}

bool CloudService::ReportedListening(const std::string& cluster_id, const std::string& machine_id) {
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&reports_mu_);
  for (auto it = member_reports_.begin(); it != member_reports_.end();) {
    if (now - it->second.at > kGatewayReportTtl) {
      it = member_reports_.erase(it);  // a member that stopped reporting
      continue;
    }
    if (it->second.cluster_id == cluster_id && it->second.listening.count(machine_id) > 0) return true;
    ++it;
  }
  return false;
}

absl::StatusOr<proto::GatewayCluster> CloudService::GetMachineCluster(const SignedCaller& machine) {
  if (machine.kind != SignedCaller::Kind::kMachine) {
    return absl::PermissionDeniedError("only machines ask for their cluster");
  }
  proto::Machine record;
  RETURN_IF_ERROR(GetRecord(*db_, kMachinesCf, machine.id, &record));
  if (record.cluster_id().empty()) {
    return absl::FailedPreconditionError("this machine is not registered behind a gateway cluster");
  }
  proto::GatewayCluster cluster;
  RETURN_IF_ERROR(GetRecord(*db_, kClustersCf, record.cluster_id(), &cluster));
  cluster.clear_shared_with();
  return cluster;
}

absl::StatusOr<proto::GatewayCluster> CloudService::RemoveClusterMember(
    const Caller& caller, const proto::RemoveClusterMemberRequest& request) {
  absl::MutexLock lock(&write_mu_);
  proto::ShareRole role;
  ASSIGN_OR_RETURN(proto::GatewayCluster cluster, VisibleCluster(caller, request.cluster_id(), &role));
  if (!HasRoleToChange(role)) return absl::PermissionDeniedError("removing a member needs the owner role");
  auto* members = cluster.mutable_members();
  auto it = std::find_if(members->begin(), members->end(), [&](const proto::ClusterMember& m) {
    return m.member_id() == request.member_id();
  });
  if (it == members->end()) {
    return absl::NotFoundError(absl::StrCat("member \"", request.member_id(), "\" not in this cluster"));
  }
  members->erase(it);
  store::Batch batch;
  batch.Put(kClustersCf, cluster.cluster_id(), SerializeRecord(cluster));
  batch.Delete(kMembersCf, request.member_id());
  RETURN_IF_ERROR(db_->Write(batch, {.sync = true}));
  FillClusterStatus(&cluster);
  return cluster;
}

absl::StatusOr<proto::DeleteClusterResponse> CloudService::DeleteCluster(
    const Caller& caller, const proto::DeleteClusterRequest& request) {
  absl::ReleasableMutexLock lock(&write_mu_);
  proto::ShareRole role;
  ASSIGN_OR_RETURN(proto::GatewayCluster cluster, VisibleCluster(caller, request.cluster_id(), &role));
  if (!HasRoleToChange(role)) return absl::PermissionDeniedError("deleting a cluster needs the owner role");
  store::Batch batch;
  DeleteShareable(kKindCluster, kClustersCf, cluster.cluster_id(), cluster.owner_user_id(),
                  cluster.name(), cluster.shared_with(), &batch);
  for (const proto::ClusterMember& member : cluster.members()) {
    batch.Delete(kMembersCf, member.member_id());
  }
  proto::ConnectionTarget target;
  target.set_cluster_id(cluster.cluster_id());
  RETURN_IF_ERROR(CommitTargetDeletion(target, std::move(batch)));
  lock.Release();
  EraseOldEnvelopes();
  return proto::DeleteClusterResponse();
}

// ---------------------------------------------------------------------------------------------
// Connections

absl::StatusOr<std::string> CloudService::TargetPublicKey(const Caller& caller,
                                                          const proto::ConnectionTarget& target) {
  proto::ShareRole role;
  switch (target.kind_case()) {
    case proto::ConnectionTarget::kMachineId: {
      ASSIGN_OR_RETURN(proto::Machine machine, VisibleMachine(caller, target.machine_id(), &role));
      return machine.x25519_pub();
    }
    case proto::ConnectionTarget::kGroupId: {
      ASSIGN_OR_RETURN(storage::StoredGroup group, VisibleGroup(caller, target.group_id(), &role));
      return group.group().group_pub();
    }
    case proto::ConnectionTarget::kClusterId: {
      ASSIGN_OR_RETURN(proto::GatewayCluster cluster, VisibleCluster(caller, target.cluster_id(), &role));
      return cluster.cluster_pub();
    }
    default:
      return absl::InvalidArgumentError("target must name a machine, a group or a cluster");
  }
}

absl::StatusOr<storage::StoredConnection> CloudService::OwnConnection(const Caller& caller,
                                                                      absl::string_view connection_id) {
  storage::StoredConnection stored;
  absl::Status status = GetRecord(*db_, kConnectionsCf, connection_id, &stored);
  if (absl::IsNotFound(status)) return NotFound("connection", connection_id);
  RETURN_IF_ERROR(status);
  if (stored.connection().owner_user_id() != caller.user.user_id()) {
    return NotFound("connection", connection_id);
  }
  return stored;
}

namespace {

absl::Status CheckUsername(absl::string_view username) {
  if (username.empty() || username.size() > 256) {
    return absl::InvalidArgumentError("username must be 1 to 256 characters");
  }
  for (unsigned char c : username) {
    if (c < 0x20 || c == 0x7f) return absl::InvalidArgumentError("username contains a control character");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<proto::Connection> CloudService::CreateConnection(
    const Caller& caller, const proto::CreateConnectionRequest& request) {
  RETURN_IF_ERROR(ValidateConnectionId(request.connection_id()));
  RETURN_IF_ERROR(ValidateDisplayName("name", request.name()));
  RETURN_IF_ERROR(CheckUsername(request.username()));
  if (request.mode() != proto::RUN_MODE_ATTENDED && request.mode() != proto::RUN_MODE_UNATTENDED) {
    return absl::InvalidArgumentError("mode must be RUN_MODE_ATTENDED or RUN_MODE_UNATTENDED");
  }
  if (!request.has_sealed_credentials()) {
    return absl::InvalidArgumentError("sealed_credentials is missing");
  }
  absl::MutexLock lock(&write_mu_);
  ASSIGN_OR_RETURN(std::string public_key, TargetPublicKey(caller, request.target()));
  absl::Status valid =
      crypto::ValidateEnvelope(request.sealed_credentials(), public_key, request.connection_id());
  if (!valid.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("sealed_credentials: ", valid.message()));
  }
  if (db_->Get(kConnectionsCf, Sv(request.connection_id())).ok()) {
    return absl::AlreadyExistsError(
        absl::StrCat("connection id \"", request.connection_id(), "\" is already in use"));
  }
  const std::string name_key = NameKey(kKindConnection, caller.user.user_id(), request.name());
  if (db_->Get(kNamesCf, name_key).ok()) {
    return absl::AlreadyExistsError(
        absl::StrCat("you already have a connection named \"", request.name(), "\""));
  }
  storage::StoredConnection stored;
  proto::Connection* connection = stored.mutable_connection();
  connection->set_connection_id(request.connection_id());
  connection->set_name(request.name());
  connection->set_owner_user_id(caller.user.user_id());
  *connection->mutable_target() = request.target();
  connection->set_username(request.username());
  connection->set_mode(request.mode());
  connection->set_recipient_key_id(request.sealed_credentials().recipient_key_id());
  connection->set_created_at_unix_ms(NowMs());
  connection->set_updated_at_unix_ms(connection->created_at_unix_ms());
  *stored.mutable_envelope() = request.sealed_credentials();
  store::Batch batch;
  batch.Put(kConnectionsCf, Sv(request.connection_id()), SerializeRecord(stored));
  batch.Put(kNamesCf, name_key, Sv(request.connection_id()));
  batch.Put(kVisibleCf, VisibleKey(caller.user.user_id(), kKindConnection, request.connection_id()), "");
  RETURN_IF_ERROR(db_->Write(batch, {.sync = true}));
  LogInfo("connection_created", {{"connection_id", request.connection_id()},
                                 {"owner", caller.user.user_id()},
                                 {"target", TargetKind(request.target())}});
  return stored.connection();
}

absl::StatusOr<proto::Connection> CloudService::UpdateConnectionCredentials(
    const Caller& caller, const proto::UpdateConnectionCredentialsRequest& request) {
  RETURN_IF_ERROR(CheckUsername(request.username()));
  if (!request.has_sealed_credentials()) {
    return absl::InvalidArgumentError("sealed_credentials is missing");
  }
  absl::ReleasableMutexLock lock(&write_mu_);
  ASSIGN_OR_RETURN(storage::StoredConnection stored, OwnConnection(caller, request.connection_id()));
  ASSIGN_OR_RETURN(std::string public_key, TargetPublicKey(caller, stored.connection().target()));
  absl::Status valid =
      crypto::ValidateEnvelope(request.sealed_credentials(), public_key, request.connection_id());
  if (!valid.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("sealed_credentials: ", valid.message()));
  }
  proto::Connection* connection = stored.mutable_connection();
  connection->set_username(request.username());
  connection->set_recipient_key_id(request.sealed_credentials().recipient_key_id());
  connection->set_updated_at_unix_ms(NowMs());
  *stored.mutable_envelope() = request.sealed_credentials();
  RETURN_IF_ERROR(db_->Put(kConnectionsCf, Sv(request.connection_id()), SerializeRecord(stored),
                           {.sync = true}));
  lock.Release();
  EraseOldEnvelopes();  // the replaced envelope
  return stored.connection();
}

absl::StatusOr<proto::ListConnectionsResponse> CloudService::ListConnections(
    const Caller& caller, const proto::ListConnectionsRequest& request) {
  const size_t limit = PageSize(request.page_size());
  const std::string wanted = TargetKind(request.target());
  proto::ListConnectionsResponse response;
  std::string token = request.page_token();
  while (true) {
    ASSIGN_OR_RETURN(std::vector<std::string> ids,
                     VisibleIds(*db_, caller.user.user_id(), kKindConnection, token, limit));
    const bool more = ids.size() > limit;
    for (size_t i = 0; i < ids.size() && i < limit; ++i) {
      token = ids[i];
      storage::StoredConnection stored;
      absl::Status status = GetRecord(*db_, kConnectionsCf, ids[i], &stored);
      if (absl::IsNotFound(status)) continue;
      RETURN_IF_ERROR(status);
      if (!wanted.empty() && TargetKind(stored.connection().target()) != wanted) continue;
      *response.add_connections() = stored.connection();
      if (static_cast<size_t>(response.connections_size()) == limit) {
        if (more || i + 1 < ids.size()) response.set_next_page_token(token);
        return response;
      }
    }
    if (!more) return response;
  }
}

absl::StatusOr<proto::Connection> CloudService::GetConnection(
    const Caller& caller, const proto::GetConnectionRequest& request) {
  ASSIGN_OR_RETURN(storage::StoredConnection stored, OwnConnection(caller, request.connection_id()));
  return stored.connection();
}

absl::StatusOr<proto::DeleteConnectionResponse> CloudService::DeleteConnection(
    const Caller& caller, const proto::DeleteConnectionRequest& request) {
  absl::ReleasableMutexLock lock(&write_mu_);
  ASSIGN_OR_RETURN(storage::StoredConnection stored, OwnConnection(caller, request.connection_id()));
  const proto::Connection& c = stored.connection();
  store::Batch batch;
  batch.Delete(kConnectionsCf, Sv(c.connection_id()));
  batch.Delete(kNamesCf, NameKey(kKindConnection, c.owner_user_id(), c.name()));
  batch.Delete(kVisibleCf, VisibleKey(c.owner_user_id(), kKindConnection, c.connection_id()));
  RETURN_IF_ERROR(db_->Write(batch, {.sync = true}));
  LogInfo("connection_deleted", {{"connection_id", c.connection_id()}, {"by", caller.user.user_id()}});
  lock.Release();
  EraseOldEnvelopes();
  return proto::DeleteConnectionResponse();
}

// ---------------------------------------------------------------------------------------------
// Flows

namespace {

absl::Status ValidateFlow(absl::string_view definition_json) {
  absl::StatusOr<flow::FlowDefinition> parsed = flow::ParseFlowDefinition(definition_json);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("definition_json: ", parsed.status().message()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<proto::Flow> CloudService::CreateFlow(const Caller& caller,
                                                     const proto::CreateFlowRequest& request) {
  RETURN_IF_ERROR(ValidateDisplayName("name", request.name()));
  RETURN_IF_ERROR(ValidateFlow(request.definition_json()));
  absl::MutexLock lock(&write_mu_);
  const std::string name_key = NameKey(kKindFlow, caller.user.user_id(), request.name());
  if (db_->Get(kNamesCf, name_key).ok()) {
    return absl::AlreadyExistsError(absl::StrCat("you already have a flow named \"", request.name(), "\""));
  }
  ASSIGN_OR_RETURN(std::string flow_id, NewId("f-"));
  proto::Flow flow;
  flow.set_flow_id(flow_id);
  flow.set_name(request.name());
  flow.set_version(1);
  flow.set_definition_json(request.definition_json());
  flow.set_owner_user_id(caller.user.user_id());
  flow.set_created_at_unix_ms(NowMs());
  store::Batch batch;
  batch.Put(kFlowsCf, FlowKey(flow_id, 1), SerializeRecord(flow));
  batch.Put(kNamesCf, name_key, flow_id);
  batch.Put(kVisibleCf, VisibleKey(caller.user.user_id(), kKindFlow, flow_id), "");
  RETURN_IF_ERROR(db_->Write(batch, {.sync = true}));
  return flow;
}

absl::StatusOr<proto::Flow> CloudService::GetFlow(const Caller& caller,
                                                  const proto::GetFlowRequest& request) {
  proto::Flow flow;
  bool found = false;
  absl::Status parse_error;
  if (request.version() != 0) {
    absl::Status status = GetRecord(*db_, kFlowsCf, FlowKey(request.flow_id(), request.version()), &flow);
    if (!absl::IsNotFound(status)) RETURN_IF_ERROR(status);
    found = status.ok();
  } else {
    RETURN_IF_ERROR(db_->Scan(kFlowsCf, "", FlowPrefix(request.flow_id()),
                              [&](std::string_view, std::string_view value) {
                                if (!flow.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
                                  parse_error = absl::DataLossError("corrupt flow record");
                                  return false;
                                }
                                found = true;
                                return true;
                              }));
    RETURN_IF_ERROR(parse_error);
  }
  if (!found || flow.owner_user_id() != caller.user.user_id()) {
    if (request.version() != 0 && found) return NotFound("flow", request.flow_id());
    if (request.version() != 0) {
      return absl::NotFoundError(
          absl::StrCat("flow \"", request.flow_id(), "\" version ", request.version(), " not found"));
    }
    return NotFound("flow", request.flow_id());
  }
  return flow;
}

absl::StatusOr<proto::Flow> CloudService::UpdateFlow(const Caller& caller,
                                                     const proto::UpdateFlowRequest& request) {
  RETURN_IF_ERROR(ValidateFlow(request.definition_json()));
  absl::MutexLock lock(&write_mu_);
  proto::GetFlowRequest get;
  get.set_flow_id(request.flow_id());
  ASSIGN_OR_RETURN(proto::Flow flow, GetFlow(caller, get));
  flow.set_version(flow.version() + 1);
  flow.set_definition_json(request.definition_json());
  flow.set_created_at_unix_ms(NowMs());
  RETURN_IF_ERROR(db_->Put(kFlowsCf, FlowKey(flow.flow_id(), flow.version()), SerializeRecord(flow),
                           {.sync = true}));
  return flow;
}

absl::StatusOr<proto::ListFlowsResponse> CloudService::ListFlows(const Caller& caller,
                                                                 const proto::ListFlowsRequest& request) {
  const size_t limit = PageSize(request.page_size());
  ASSIGN_OR_RETURN(std::vector<std::string> ids,
                   VisibleIds(*db_, caller.user.user_id(), kKindFlow, request.page_token(), limit));
  proto::ListFlowsResponse response;
  for (size_t i = 0; i < ids.size() && i < limit; ++i) {
    proto::GetFlowRequest get;
    get.set_flow_id(ids[i]);
    absl::StatusOr<proto::Flow> flow = GetFlow(caller, get);
    if (absl::IsNotFound(flow.status())) continue;
    RETURN_IF_ERROR(flow.status());
    flow->clear_definition_json();
    *response.add_flows() = *std::move(flow);
  }
  if (ids.size() > limit) response.set_next_page_token(ids[limit - 1]);
  return response;
}

}  // namespace tether::cloud
