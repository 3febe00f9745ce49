#include "tools/tetherctl/commands.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/hex.h"
#include "common/crypto/digest.h"
#include "tools/tetherctl/config.h"
#include "tools/tetherctl/output.h"

namespace tether::tetherctl {
namespace {

// Tries `key` as an id with `get`; on kNotFound, as a name among what `list()` returns, and then
// fetches the one object of that name with `get`.
template <typename T>
absl::StatusOr<T> Resolve(
    absl::string_view kind, const std::string& key,
    const std::function<absl::Status(const std::string&, T*)>& get,
    const std::function<absl::StatusOr<google::protobuf::RepeatedPtrField<T>>()>& list,
    const std::function<const std::string&(const T&)>& id_of) {
  if (key.empty()) return absl::InvalidArgumentError(absl::StrCat("empty ", kind, " id"));
  T found;
  absl::Status by_id = get(key, &found);
  if (by_id.ok()) return found;
  if (!absl::IsNotFound(by_id)) return by_id;
  absl::StatusOr<google::protobuf::RepeatedPtrField<T>> items = list();
  if (!items.ok()) return items.status();
  std::vector<std::string> ids;
  for (const T& item : *items) {
    if (item.name() == key) ids.push_back(id_of(item));
  }
  if (ids.empty()) return by_id;
  if (ids.size() > 1) {
    return absl::InvalidArgumentError(absl::StrCat("several ", kind, "s are named \"", key, "\" (",
                                                   absl::StrJoin(ids, ", "), "): give an id"));
  }
  absl::Status by_name = get(ids[0], &found);
  if (!by_name.ok()) return by_name;
  return found;
}

// A `get` for Resolve: one unary Get call whose request names the object by `set_id`.
template <typename Stub, typename Request, typename T, typename SetId>
std::function<absl::Status(const std::string&, T*)> Getter(
    const CloudClient& client, Stub* stub,
    grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, T*), SetId set_id) {
  return [&client, stub, method, set_id](const std::string& id, T* out) {
    Request request;
    set_id(request, id);
    return client.Unary("", [&](grpc::ClientContext* c) { return (stub->*method)(c, request, out); });
  };
}

}  // namespace

absl::StatusOr<std::string> Invocation::ConfigFile() const {
  return ConfigPath(globals_.config, io_.env);
}

absl::StatusOr<const CloudClient*> Invocation::Client() {
  if (client_ != nullptr) return client_.get();
  absl::StatusOr<std::string> path = ConfigFile();
  if (!path.ok()) return path.status();
  absl::StatusOr<Config> config = LoadConfig(*path);
  if (!config.ok()) return config.status();
  CloudEndpoint endpoint{config->cloud, config->ca_file, config->insecure};
  absl::StatusOr<std::unique_ptr<CloudClient>> client =
      CloudClient::Create(endpoint, std::move(config->token));
  if (!client.ok()) {
    return absl::Status(client.status().code(),
                        absl::StrCat("config file ", *path, ": ", client.status().message()));
  }
  client_ = *std::move(client);
  return client_.get();
}

absl::StatusOr<crypto::SecretBytes> Invocation::ReadSecret(absl::string_view file_flag,
                                                           absl::string_view prompt,
                                                           bool confirm) const {
  if (args_.Has(file_flag)) return ReadSecretLine(args_.Value(file_flag));
  if (!io_.prompt) {
    return absl::InvalidArgumentError(absl::StrCat(
        "stdin is not a terminal, so nothing can be typed without echo: pass --", file_flag, " FILE"));
  }
  absl::StatusOr<crypto::SecretBytes> first = io_.prompt(prompt);
  if (!first.ok()) return first.status();
  if (first->empty()) return absl::InvalidArgumentError("nothing was typed");
  if (confirm) {
    absl::StatusOr<crypto::SecretBytes> second = io_.prompt("again, to confirm: ");
    if (!second.ok()) return second.status();
    if (!crypto::ConstantTimeEquals(first->view(), second->view())) {
      return absl::InvalidArgumentError("the two entries differ");
    }
  }
  return first;
}

absl::StatusOr<bool> Invocation::MaybeJson(const google::protobuf::Message& message) const {
  if (!globals_.json) return false;
  absl::Status printed = PrintJson(message, out());
  if (!printed.ok()) return printed;
  return true;
}

const std::vector<Command>& AllCommands() {
  static const std::vector<Command>* commands = [] {
    auto* all = new std::vector<Command>();
    for (auto part : {AccountCommands(), TargetCommands(), FlowCommands()}) {
      all->insert(all->end(), part.begin(), part.end());
    }
    return all;
  }();
  return *commands;
}

absl::StatusOr<proto::Machine> ResolveMachine(const CloudClient& client, const std::string& key) {
  using Stub = proto::MachineService::Stub;
  return Resolve<proto::Machine>(
      "machine", key,
      Getter(client, client.machines(), &Stub::GetMachine,
             [](proto::GetMachineRequest& r, const std::string& id) { r.set_machine_id(id); }),
      [&]() -> absl::StatusOr<google::protobuf::RepeatedPtrField<proto::Machine>> {
        auto all = ListAll(client, client.machines(), &Stub::ListMachines);
        if (!all.ok()) return all.status();
        return std::move(*all->mutable_machines());
      },
      [](const proto::Machine& m) -> const std::string& { return m.machine_id(); });
}

absl::StatusOr<proto::MachineGroup> ResolveGroup(const CloudClient& client, const std::string& key) {
  using Stub = proto::GroupService::Stub;
  return Resolve<proto::MachineGroup>(
      "group", key,
      Getter(client, client.groups(), &Stub::GetGroup,
             [](proto::GetGroupRequest& r, const std::string& id) { r.set_group_id(id); }),
      [&]() -> absl::StatusOr<google::protobuf::RepeatedPtrField<proto::MachineGroup>> {
        auto all = ListAll(client, client.groups(), &Stub::ListGroups);
        if (!all.ok()) return all.status();
        return std::move(*all->mutable_groups());
      },
      [](const proto::MachineGroup& g) -> const std::string& { return g.group_id(); });
}

absl::StatusOr<proto::GatewayCluster> ResolveCluster(const CloudClient& client,
                                                     const std::string& key) {
  using Stub = proto::ClusterService::Stub;
  return Resolve<proto::GatewayCluster>(
      "cluster", key,
      Getter(client, client.clusters(), &Stub::GetCluster,
             [](proto::GetClusterRequest& r, const std::string& id) { r.set_cluster_id(id); }),
      [&]() -> absl::StatusOr<google::protobuf::RepeatedPtrField<proto::GatewayCluster>> {
        auto all = ListAll(client, client.clusters(), &Stub::ListClusters);
        if (!all.ok()) return all.status();
        return std::move(*all->mutable_clusters());
      },
      [](const proto::GatewayCluster& c) -> const std::string& { return c.cluster_id(); });
}

absl::StatusOr<proto::Connection> ResolveConnection(const CloudClient& client,
                                                    const std::string& key) {
  using Stub = proto::ConnectionService::Stub;
  return Resolve<proto::Connection>(
      "connection", key,
      Getter(client, client.connections(), &Stub::GetConnection,
             [](proto::GetConnectionRequest& r, const std::string& id) { r.set_connection_id(id); }),
      [&]() -> absl::StatusOr<google::protobuf::RepeatedPtrField<proto::Connection>> {
        auto all = ListAll(client, client.connections(), &Stub::ListConnections);
        if (!all.ok()) return all.status();
        return std::move(*all->mutable_connections());
      },
      [](const proto::Connection& c) -> const std::string& { return c.connection_id(); });
}

absl::StatusOr<proto::Flow> ResolveFlow(const CloudClient& client, const std::string& key,
                                        uint32_t version) {
  using Stub = proto::FlowService::Stub;
  return Resolve<proto::Flow>(
      "flow", key,
      Getter(client, client.flows(), &Stub::GetFlow,
             [version](proto::GetFlowRequest& r, const std::string& id) {
               r.set_flow_id(id);
               r.set_version(version);
             }),
      [&]() -> absl::StatusOr<google::protobuf::RepeatedPtrField<proto::Flow>> {
        auto all = ListAll(client, client.flows(), &Stub::ListFlows);
        if (!all.ok()) return all.status();
        return std::move(*all->mutable_flows());
      },
      [](const proto::Flow& f) -> const std::string& { return f.flow_id(); });
}

absl::StatusOr<proto::ShareRole> ParseShareRole(absl::string_view text) {
  const std::string lower = absl::AsciiStrToLower(text);
  if (lower == "user") return proto::SHARE_ROLE_USER;
  if (lower == "owner") return proto::SHARE_ROLE_OWNER;
  return absl::InvalidArgumentError(absl::StrCat("--role must be user or owner, not \"", text, "\""));
}

std::string ShareRoleLabel(proto::ShareRole role) {
  return EnumLabel(proto::ShareRole_Name(role), "SHARE_ROLE_");
}

std::string SharesText(const google::protobuf::RepeatedPtrField<proto::Share>& shares) {
  std::vector<std::string> parts;
  for (const proto::Share& share : shares) {
    parts.push_back(absl::StrCat(share.user_name(), " (", ShareRoleLabel(share.role()), ")"));
  }
  return parts.empty() ? "-" : absl::StrJoin(parts, ", ");
}

std::string TargetText(const proto::ConnectionTarget& target) {
  switch (target.kind_case()) {
    case proto::ConnectionTarget::kMachineId: return absl::StrCat("machine ", target.machine_id());
    case proto::ConnectionTarget::kGroupId: return absl::StrCat("group ", target.group_id());
    case proto::ConnectionTarget::kClusterId: return absl::StrCat("cluster ", target.cluster_id());
    default: return "-";
  }
}

std::string KeyIdText(absl::string_view public_key) { return HexEncode(crypto::KeyId(public_key)); }

}  // namespace tether::tetherctl
