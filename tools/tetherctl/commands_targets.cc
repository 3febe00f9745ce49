// machines, groups, clusters, connections: what flows run on, and the sealed credentials to sign in
// there.
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/hex.h"
#include "common/crypto/digest.h"
#include "common/crypto/envelope.h"
#include "common/crypto/hpke.h"
#include "common/crypto/password_kdf.h"
#include "tools/tetherctl/commands.h"
#include "tools/tetherctl/output.h"

namespace tether::tetherctl {
namespace {

// "unknown" when the cloud could not ask the relay.
std::string MachineStatusLabel(proto::MachineStatus status) {
  if (status == proto::MACHINE_STATUS_UNSPECIFIED) return "unknown";
  return EnumLabel(proto::MachineStatus_Name(status), "MACHINE_STATUS_");
}

std::string RunModeLabel(proto::RunMode mode) { return EnumLabel(proto::RunMode_Name(mode), "RUN_MODE_"); }

// ---- machines

absl::Status MachinesList(Invocation& inv) {
  absl::StatusOr<const CloudClient*> client = inv.Client();
  if (!client.ok()) return client.status();
  absl::StatusOr<proto::ListMachinesResponse> all =
      ListAll(**client, (*client)->machines(), &proto::MachineService::Stub::ListMachines);
  if (!all.ok()) return all.status();
  absl::StatusOr<bool> json = inv.MaybeJson(*all);
  if (!json.ok() || *json) return json.status();
  Table table({"MACHINE ID", "NAME", "STATUS", "GROUP", "CLUSTER", "CURRENT RUN"});
  for (const proto::Machine& m : all->machines()) {
    table.AddRow({m.machine_id(), m.name(), MachineStatusLabel(m.status()), OrDash(m.group_id()),
                  OrDash(m.cluster_id()), OrDash(m.current_run_id())});
  }
  table.Print(inv.out());
  return absl::OkStatus();
}

absl::Status PrintMachine(Invocation& inv, const proto::Machine& m) {
  absl::StatusOr<bool> json = inv.MaybeJson(m);
  if (!json.ok() || *json) return json.status();
  Fields fields;
  fields.Add("machine id", m.machine_id());
  fields.Add("name", m.name());
  fields.Add("status", MachineStatusLabel(m.status()));
  fields.Add("current run", OrDash(m.current_run_id()));
  fields.Add("owner", m.owner_user_id());
  fields.Add("shared with", SharesText(m.shared_with()));
  fields.Add("group", OrDash(m.group_id()));
  fields.Add("cluster", OrDash(m.cluster_id()));
  fields.Add("relay entity", m.entity());
  fields.Add("x25519 key", absl::StrCat(HexEncode(m.x25519_pub()), " (key id ", KeyIdText(m.x25519_pub()), ")"));
  fields.Add("ed25519 key", HexEncode(m.ed25519_pub()));
  fields.Add("registered", FormatTime(m.registered_at_unix_ms()));
  fields.Print(inv.out());
  return absl::OkStatus();
}

absl::Status MachinesShow(Invocation& inv) {
  absl::StatusOr<const CloudClient*> client = inv.Client();
  if (!client.ok()) return client.status();
  absl::StatusOr<proto::Machine> machine = ResolveMachine(**client, inv.arg(0));
  if (!machine.ok()) return machine.status();
  return PrintMachine(inv, *machine);
}

absl::Status MachinesShare(Invocation& inv) {
  absl::StatusOr<proto::ShareRole> role = ParseShareRole(inv.args().Value("role", "user"));
  if (!role.ok()) return role.status();
  absl::StatusOr<const CloudClient*> client = inv.Client();
  if (!client.ok()) return client.status();
  absl::StatusOr<proto::Machine> machine = ResolveMachine(**client, inv.arg(0));
  if (!machine.ok()) return machine.status();
  proto::ShareMachineRequest request;
  request.set_machine_id(machine->machine_id());
  request.set_user_name(inv.arg(1));
  request.set_role(*role);
  proto::Machine shared;
  absl::Status status = (*client)->Unary("", [&](grpc::ClientContext* c) {
    return (*client)->machines()->ShareMachine(c, request, &shared);
  });
  if (!status.ok()) return status;
  absl::StatusOr<bool> json = inv.MaybeJson(shared);
  if (!json.ok() || *json) return json.status();
  inv.out() << "machine " << shared.machine_id() << " (" << shared.name() << ") is shared with "
            << inv.arg(1) << " as " << ShareRoleLabel(*role) << "\n";
  return absl::OkStatus();
}

absl::Status MachinesUnshare(Invocation& inv) {
  absl::StatusOr<const CloudClient*> client = inv.Client();
  if (!client.ok()) return client.status();
  absl::StatusOr<proto::Machine> machine = ResolveMachine(**client, inv.arg(0));
  if (!machine.ok()) return machine.status();
  proto::UnshareMachineRequest request;
  request.set_machine_id(machine->machine_id());
  request.set_user_name(inv.arg(1));
  proto::Machine unshared;
  absl::Status status = (*client)->Unary("", [&](grpc::ClientContext* c) {
    return (*client)->machines()->UnshareMachine(c, request, &unshared);
  });
  if (!status.ok()) return status;
  absl::StatusOr<bool> json = inv.MaybeJson(unshared);
  if (!json.ok() || *json) return json.status();
  inv.out() << "machine " << unshared.machine_id() << " (" << unshared.name()
            << ") is no longer shared with " << inv.arg(1) << "\n";
  return absl::OkStatus();
}

absl::Status MachinesDelete(Invocation& inv) {
  absl::StatusOr<const CloudClient*> client = inv.Client();
  if (!client.ok()) return client.status();
  absl::StatusOr<proto::Machine> machine = ResolveMachine(**client, inv.arg(0));
  if (!machine.ok()) return machine.status();
  proto::DeleteMachineRequest request;
  request.set_machine_id(machine->machine_id());
  proto::DeleteMachineResponse response;
  absl::Status status = (*client)->Unary("", [&](grpc::ClientContext* c) {
    return (*client)->machines()->DeleteMachine(c, request, &response);
  });
  if (!status.ok()) return status;
  absl::StatusOr<bool> json = inv.MaybeJson(response);
  if (!json.ok() || *json) return json.status();
  inv.out() << "deleted machine " << machine->machine_id() << " (" << machine->name()
            << ") and the connections sealed to its key\n";
  return absl::OkStatus();
}

// ---- groups

absl::Status GroupsCreate(Invocation& inv) {
  absl::StatusOr<const CloudClient*> client = inv.Client();
  if (!client.ok()) return client.status();
  absl::StatusOr<crypto::SecretBytes> password =
      inv.ReadSecret("password-file", "group password: ", /*confirm=*/true);
  if (!password.ok()) return password.status();
  // The key pair is made here and its private half leaves only wrapped with the password.
  absl::StatusOr<crypto::X25519KeyPair> keys = crypto::GenerateX25519KeyPair();
  if (!keys.ok()) return keys.status();
  absl::StatusOr<proto::WrappedKey> wrapped = crypto::WrapWithPassword(keys->private_key, *password);
  if (!wrapped.ok()) return wrapped.status();
  proto::CreateGroupRequest request;
  request.set_name(inv.arg(0));
  request.set_group_pub(keys->public_key);
  *request.mutable_wrapped_priv() = *std::move(wrapped);
  proto::MachineGroup group;
  absl::Status status = (*client)->Unary("", [&](grpc::ClientContext* c) {
    return (*client)->groups()->CreateGroup(c, request, &group);
  });
  if (!status.ok()) return status;
  absl::StatusOr<bool> json = inv.MaybeJson(group);
  if (!json.ok() || *json) return json.status();
  inv.out() << "created group " << group.group_id() << " (" << group.name() << "), key id "
            << KeyIdText(group.group_pub()) << "\n";
  inv.err() << "machines join it with the group password, which the cloud never saw: keep it\n";
  return absl::OkStatus();
}

absl::Status GroupsList(Invocation& inv) {
  absl::StatusOr<const CloudClient*> client = inv.Client();
  if (!client.ok()) return client.status();
  absl::StatusOr<proto::ListGroupsResponse> all =
      ListAll(**client, (*client)->groups(), &proto::GroupService::Stub::ListGroups);
  if (!all.ok()) return all.status();
  absl::StatusOr<bool> json = inv.MaybeJson(*all);
  if (!json.ok() || *json) return json.status();
  Table table({"GROUP ID", "NAME", "MACHINES", "KEY ID", "CREATED"});
  for (const proto::MachineGroup& g : all->groups()) {
    table.AddRow({g.group_id(), g.name(), absl::StrCat(g.machine_ids_size()), KeyIdText(g.group_pub()),
                  FormatTime(g.created_at_unix_ms())});
  }
  table.Print(inv.out());
  return absl::OkStatus();
}

absl::Status GroupsShow(Invocation& inv) {
  absl::StatusOr<const CloudClient*> client = inv.Client();
  if (!client.ok()) return client.status();
  absl::StatusOr<proto::MachineGroup> group = ResolveGroup(**client, inv.arg(0));
  if (!group.ok()) return group.status();
  absl::StatusOr<bool> json = inv.MaybeJson(*group);
  if (!json.ok() || *json) return json.status();
  Fields fields;
  fields.Add("group id", group->group_id());
  fields.Add("name", group->name());
  fields.Add("owner", group->owner_user_id());
  fields.Add("shared with", SharesText(group->shared_with()));
  fields.Add("machines", group->machine_ids().empty() ? "-" : absl::StrJoin(group->machine_ids(), ", "));
  fields.Add("x25519 key", absl::StrCat(HexEncode(group->group_pub()), " (key id ",
                                        KeyIdText(group->group_pub()), ")"));
  fields.Add("created", FormatTime(group->created_at_unix_ms()));
  fields.Print(inv.out());
  return absl::OkStatus();
}

// ---- clusters

absl::Status ClustersList(Invocation& inv) {
  absl::StatusOr<const CloudClient*> client = inv.Client();
  if (!client.ok()) return client.status();
  absl::StatusOr<proto::ListClustersResponse> all =
      ListAll(**client, (*client)->clusters(), &proto::ClusterService::Stub::ListClusters);
  if (!all.ok()) return all.status();
  absl::StatusOr<bool> json = inv.MaybeJson(*all);
  if (!json.ok() || *json) return json.status();
  Table table({"CLUSTER ID", "NAME", "MEMBERS", "KEY ID", "CREATED"});
  for (const proto::GatewayCluster& c : all->clusters()) {
    table.AddRow({c.cluster_id(), c.name(), absl::StrCat(c.members_size()), KeyIdText(c.cluster_pub()),
                  FormatTime(c.created_at_unix_ms())});
  }
  table.Print(inv.out());
  return absl::OkStatus();
}

absl::Status ClustersShow(Invocation& inv) {
  absl::StatusOr<const CloudClient*> client = inv.Client();
  if (!client.ok()) return client.status();
  absl::StatusOr<proto::GatewayCluster> cluster = ResolveCluster(**client, inv.arg(0));
  if (!cluster.ok()) return cluster.status();
  absl::StatusOr<bool> json = inv.MaybeJson(*cluster);
  if (!json.ok() || *json) return json.status();
  Fields fields;
  fields.Add("cluster id", cluster->cluster_id());
  fields.Add("name", cluster->name());
  fields.Add("owner", cluster->owner_user_id());
  fields.Add("shared with", SharesText(cluster->shared_with()));
  fields.Add("relay entity", cluster->entity());
  fields.Add("x25519 key", absl::StrCat(HexEncode(cluster->cluster_pub()), " (key id ",
                                        KeyIdText(cluster->cluster_pub()), ")"));
  fields.Add("created", FormatTime(cluster->created_at_unix_ms()));
  fields.Print(inv.out());
  inv.out() << "\n";
  Table members({"MEMBER ID", "NAME", "STATUS", "JOINED"});
  for (const proto::ClusterMember& m : cluster->members()) {
    members.AddRow({m.member_id(), m.name(), MachineStatusLabel(m.status()), FormatTime(m.joined_at_unix_ms())});
  }
  members.Print(inv.out());
  return absl::OkStatus();
}

// ---- connections

absl::Status ConnectionsCreate(Invocation& inv) {
  const ParsedArgs& args = inv.args();
  const int targets = args.Has("machine") + args.Has("group") + args.Has("cluster");
  if (targets != 1) {
    return absl::InvalidArgumentError("give exactly one of --machine ID, --group ID and --cluster ID");
  }
  absl::StatusOr<const CloudClient*> client = inv.Client();
  if (!client.ok()) return client.status();

  // The target's public key, fetched before the password is asked for.
  proto::CreateConnectionRequest request;
  std::string public_key;
  if (args.Has("machine")) {
    absl::StatusOr<proto::Machine> machine = ResolveMachine(**client, args.Value("machine"));
    if (!machine.ok()) return machine.status();
    request.mutable_target()->set_machine_id(machine->machine_id());
    public_key = machine->x25519_pub();
  } else if (args.Has("group")) {
    absl::StatusOr<proto::MachineGroup> group = ResolveGroup(**client, args.Value("group"));
    if (!group.ok()) return group.status();
    request.mutable_target()->set_group_id(group->group_id());
    public_key = group->group_pub();
  } else {
    absl::StatusOr<proto::GatewayCluster> cluster = ResolveCluster(**client, args.Value("cluster"));
    if (!cluster.ok()) return cluster.status();
    request.mutable_target()->set_cluster_id(cluster->cluster_id());
    public_key = cluster->cluster_pub();
  }
  if (public_key.size() != crypto::kX25519KeySize) {
    return absl::FailedPreconditionError(
        absl::StrCat(TargetText(request.target()), " has no usable public key"));
  }

  // The id is chosen here because the envelope's aad binds it.
  absl::StatusOr<std::string> random = crypto::RandomBytes(16);
  if (!random.ok()) return random.status();
  const std::string connection_id = HexEncode(*random);
  crypto::Credentials credentials;
  credentials.username = args.Value("username");
  absl::StatusOr<crypto::SecretBytes> password = inv.ReadSecret(
      "password-file", absl::StrCat("password for ", credentials.username, ": "), /*confirm=*/false);
  if (!password.ok()) return password.status();
  credentials.password = *std::move(password);
  absl::StatusOr<proto::SealedEnvelope> sealed =
      crypto::SealCredentials(public_key, connection_id, credentials);
  credentials.password.Clear();
  if (!sealed.ok()) return sealed.status();

  request.set_connection_id(connection_id);
  request.set_name(inv.arg(0));
  request.set_username(credentials.username);
  *request.mutable_sealed_credentials() = *std::move(sealed);
  request.set_mode(args.Has("attended") ? proto::RUN_MODE_ATTENDED : proto::RUN_MODE_UNATTENDED);
  proto::Connection connection;
  absl::Status status = (*client)->Unary("", [&](grpc::ClientContext* c) {
    return (*client)->connections()->CreateConnection(c, request, &connection);
  });
  if (!status.ok()) return status;
  absl::StatusOr<bool> json = inv.MaybeJson(connection);
  if (!json.ok() || *json) return json.status();
  inv.out() << "created connection " << connection.connection_id() << " (" << connection.name()
            << ") to " << TargetText(connection.target()) << " as " << connection.username()
            << ", credentials sealed to key id " << HexEncode(connection.recipient_key_id()) << "\n";
  return absl::OkStatus();
}

absl::Status ConnectionsList(Invocation& inv) {
  absl::StatusOr<const CloudClient*> client = inv.Client();
  if (!client.ok()) return client.status();
  absl::StatusOr<proto::ListConnectionsResponse> all =
      ListAll(**client, (*client)->connections(), &proto::ConnectionService::Stub::ListConnections);
  if (!all.ok()) return all.status();
  absl::StatusOr<bool> json = inv.MaybeJson(*all);
  if (!json.ok() || *json) return json.status();
  Table table({"CONNECTION ID", "NAME", "TARGET", "USERNAME", "MODE"});
  for (const proto::Connection& c : all->connections()) {
    table.AddRow({c.connection_id(), c.name(), TargetText(c.target()), c.username(), RunModeLabel(c.mode())});
  }
  table.Print(inv.out());
  return absl::OkStatus();
}

absl::Status ConnectionsShow(Invocation& inv) {
  absl::StatusOr<const CloudClient*> client = inv.Client();
  if (!client.ok()) return client.status();
  absl::StatusOr<proto::Connection> connection = ResolveConnection(**client, inv.arg(0));
  if (!connection.ok()) return connection.status();
  absl::StatusOr<bool> json = inv.MaybeJson(*connection);
  if (!json.ok() || *json) return json.status();
  Fields fields;
  fields.Add("connection id", connection->connection_id());
  fields.Add("name", connection->name());
  fields.Add("target", TargetText(connection->target()));
  fields.Add("username", connection->username());
  fields.Add("mode", RunModeLabel(connection->mode()));
  fields.Add("sealed to key id", HexEncode(connection->recipient_key_id()));
  fields.Add("created", FormatTime(connection->created_at_unix_ms()));
  fields.Add("updated", FormatTime(connection->updated_at_unix_ms()));
  fields.Print(inv.out());
  return absl::OkStatus();
}

absl::Status ConnectionsDelete(Invocation& inv) {
  absl::StatusOr<const CloudClient*> client = inv.Client();
  if (!client.ok()) return client.status();
  absl::StatusOr<proto::Connection> connection = ResolveConnection(**client, inv.arg(0));
  if (!connection.ok()) return connection.status();
  proto::DeleteConnectionRequest request;
  request.set_connection_id(connection->connection_id());
  proto::DeleteConnectionResponse response;
  absl::Status status = (*client)->Unary("", [&](grpc::ClientContext* c) {
    return (*client)->connections()->DeleteConnection(c, request, &response);
  });
  if (!status.ok()) return status;
  absl::StatusOr<bool> json = inv.MaybeJson(response);
  if (!json.ok() || *json) return json.status();
  inv.out() << "deleted connection " << connection->connection_id() << " (" << connection->name()
            << ") and its sealed credentials\n";
  return absl::OkStatus();
}

}  // namespace

std::vector<Command> TargetCommands() {
  const std::string kIdOrName = "ID may also be a name, when it is unique among those you can see.\n";
  return {
      {"machines list", "", "machines you own or that are shared with you, with their status", "", {},
       0, 0, MachinesList},
      {"machines show", "ID", "one machine: status, keys, group, shares", kIdOrName, {}, 1, 1, MachinesShow},
      {"machines share", "ID USER", "let another user run flows on a machine (or co-own it)", kIdOrName,
       {{"role", "user|owner", "user may run flows on it (default); owner may also share and delete it"}},
       2, 2, MachinesShare},
      {"machines unshare", "ID USER", "take a user's role on a machine away", kIdOrName, {}, 2, 2,
       MachinesUnshare},
      {"machines delete", "ID", "delete a machine, with the connections sealed to its key", kIdOrName, {},
       1, 1, MachinesDelete},
      {"groups create", "NAME", "create a machine group with a key pair made here",
       "The group's X25519 key pair is generated on this machine; the private key is wrapped with\n"
       "the group password (scrypt + AES-256-GCM) before it is sent. Neither the password nor the\n"
       "private key reaches the cloud. The password is typed twice without echo, or read from the\n"
       "first line of --password-file.\n",
       {{"password-file", "FILE", "read the group password from this file (mode 0600, or a pipe)"}}, 1, 1,
       GroupsCreate},
      {"groups list", "", "machine groups you own or that are shared with you", "", {}, 0, 0, GroupsList},
      {"groups show", "ID", "one machine group", kIdOrName, {}, 1, 1, GroupsShow},
      {"clusters list", "", "gateway clusters you own or that are shared with you", "", {}, 0, 0,
       ClustersList},
      {"clusters show", "ID", "one gateway cluster and its members", kIdOrName, {}, 1, 1, ClustersShow},
      {"connections create", "NAME", "store an account's credentials, sealed to a target's key",
       "The target's public key is fetched from the cloud, the password is typed without echo (or\n"
       "read from the first line of --password-file) and sealed here with HPKE to that key, bound to\n"
       "a random connection id. The cloud stores the envelope and can never open it. The target may\n"
       "be given by id or unique name.\n",
       {{"machine", "ID", "run on this machine"},
        {"group", "ID", "run on any machine of this group"},
        {"cluster", "ID", "run behind this gateway cluster"},
        {"username", "USER", "the account flows run as", false, true},
        {"password-file", "FILE", "read the account's password from this file (mode 0600, or a pipe)"},
        {"attended", "", "run in the user's existing login session (default: unattended)"}},
       1, 1, ConnectionsCreate},
      {"connections list", "", "your connections", "", {}, 0, 0, ConnectionsList},
      {"connections show", "ID", "one connection (never its credentials)", kIdOrName, {}, 1, 1,
       ConnectionsShow},
      {"connections delete", "ID", "delete a connection and its sealed credentials for good", kIdOrName,
       {}, 1, 1, ConnectionsDelete},
  };
}

}  // namespace tether::tetherctl
