#include "agent/agent_app.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "agent/accounts/verifier.h"
#include "agent/agent_state.pb.h"
#include "agent/gateway_link.h"
#include "agent/job_service.h"
#include "agent/ledger.h"
#include "common/auth/machine_auth.h"
#include "common/base/clock.h"
#include "common/base/hex.h"
#include "common/base/log.h"
#include "common/base/service_main.h"
#include "common/base/status_macros.h"
#include "common/client/cloud_client.h"
#include "common/client/data_dir.h"
#include "common/client/secret_input.h"
#include "common/crypto/digest.h"
#include "common/crypto/ed25519.h"
#include "common/crypto/hpke.h"
#include "common/crypto/key_file.h"
#include "common/crypto/password_kdf.h"
#include "common/net/relay_listener.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"

namespace tether::agent {
namespace {

int Fail(const absl::Status& status) {
  std::cerr << "agent: " << status.message() << "\n";
  return client::ExitCodeFor(status);
}

std::string PathIn(const std::string& dir, absl::string_view file) { return absl::StrCat(dir, "/", file); }

absl::Status EnsureDataDir(const std::string& dir) { return client::EnsurePrivateDir(dir); }

absl::StatusOr<AgentIdentity> LoadIdentity(const std::string& dir) {
  const std::string path = PathIn(dir, kIdentityFile);
  AgentIdentity identity;
  absl::Status status = client::ReadTextProto(path, &identity);
  if (absl::IsNotFound(status)) {
    return absl::FailedPreconditionError(
        absl::StrCat("not registered: no ", path, " (run `agent register` first)"));
  }
  RETURN_IF_ERROR(status);
  return identity;
}

absl::Status SaveIdentity(const std::string& dir, const AgentIdentity& identity) {
  return client::WriteTextProto(PathIn(dir, kIdentityFile), identity);
}

client::CloudEndpoint Endpoint(const AgentIdentity& identity) {
  return client::CloudEndpoint{identity.cloud(), identity.cloud_ca_file(), identity.cloud_insecure()};
}

// A secret from --password_file, or typed twice (`confirm`) at a no-echo prompt.
absl::StatusOr<crypto::SecretBytes> ReadPassword(const AgentFlags& flags, absl::string_view what,
                                                 bool confirm) {
  if (!flags.password_file.empty()) return client::ReadSecretLine(flags.password_file);
  if (!isatty(0)) {
    return absl::InvalidArgumentError(absl::StrCat("no terminal to type the ", what,
                                                   " on: pass --password_file FILE (mode 0600)"));
  }
  client::SecretPrompt prompt = client::TerminalPrompt(std::cin, std::cerr, 0);
  ASSIGN_OR_RETURN(crypto::SecretBytes first, prompt(absl::StrCat(what, ": ")));
  if (confirm) {
    ASSIGN_OR_RETURN(crypto::SecretBytes second, prompt(absl::StrCat("again: ")));
    if (!crypto::ConstantTimeEquals(first.view(), second.view())) {
      return absl::InvalidArgumentError("the two entries differ");
    }
  }
  return first;
}

template <typename Request>
absl::Status Sign(Request* request, absl::string_view method, const AgentIdentity& identity,
                  const crypto::SecretBytes& key) {
  return auth::SignMachineAuth(method, identity.machine_id(), key, WallNow(), request);
}

// The gateway cluster named `name_or_id` among those the user may see (ListClusters). An id
// matches first; a name shared by clusters of several owners is ambiguous.
absl::StatusOr<proto::GatewayCluster> FindCluster(const client::CloudClient& cloud,
                                                  const std::string& name_or_id) {
  std::vector<proto::GatewayCluster> by_name;
  proto::ListClustersRequest request;
  do {
    proto::ListClustersResponse page;
    RETURN_IF_ERROR(cloud.Unary("list clusters", [&](grpc::ClientContext* context) {
      return cloud.clusters()->ListClusters(context, request, &page);
    }));
    for (const proto::GatewayCluster& cluster : page.clusters()) {
      if (cluster.cluster_id() == name_or_id) return cluster;
      if (cluster.name() == name_or_id) by_name.push_back(cluster);
    }
    request.set_page_token(page.next_page_token());
  } while (!request.page_token().empty());
  if (by_name.empty()) {
    return absl::NotFoundError(absl::StrCat("no gateway cluster \"", name_or_id, "\" that you may use"));
  }
  if (by_name.size() > 1) {
    return absl::InvalidArgumentError(absl::StrCat("several clusters are named \"", name_or_id,
                                                   "\": pass --cluster with the cluster id"));
  }
  return by_name.front();
}

}  // namespace

int Register(const AgentFlags& flags) {
  if (flags.cloud.empty() || flags.token_file.empty() || flags.name.empty()) {
    return Fail(absl::InvalidArgumentError("register needs --cloud, --token_file and --name"));
  }
  if (absl::Status status = EnsureDataDir(flags.data_dir); !status.ok()) return Fail(status);
  if (absl::StatusOr<AgentIdentity> existing = LoadIdentity(flags.data_dir); existing.ok() && !flags.force) {
    return Fail(absl::AlreadyExistsError(absl::StrCat(
        "this data directory is already registered as machine ", existing->machine_id(), " (\"",
        existing->machine_name(), "\"); use --force to register again with new keys")));
  }
  absl::StatusOr<crypto::SecretBytes> token = client::ReadSecretLine(flags.token_file);
  if (!token.ok()) return Fail(token.status());
  client::CloudEndpoint endpoint{flags.cloud, flags.ca, flags.insecure};
  absl::StatusOr<std::unique_ptr<client::CloudClient>> cloud =
      client::CloudClient::Create(endpoint, *std::move(token));
  if (!cloud.ok()) return Fail(cloud.status());
  std::optional<proto::GatewayCluster> cluster;
  if (!flags.cluster.empty()) {
    absl::StatusOr<proto::GatewayCluster> found = FindCluster(**cloud, flags.cluster);
    if (!found.ok()) return Fail(found.status());
    cluster = *std::move(found);
  }

  // Fresh keys, generated here; only the public halves leave the machine.
  absl::StatusOr<crypto::X25519KeyPair> x25519 = crypto::GenerateX25519KeyPair();
  absl::StatusOr<crypto::Ed25519KeyPair> ed25519 = crypto::GenerateEd25519KeyPair();
  if (!x25519.ok() || !ed25519.ok()) return Fail(absl::InternalError("key generation failed"));
  proto::RegisterMachineRequest request;
  request.set_name(flags.name);
  request.set_x25519_pub(x25519->public_key);
  request.set_ed25519_pub(ed25519->public_key);
  if (cluster.has_value()) request.set_cluster_id(cluster->cluster_id());
  proto::RegisterMachineResponse response;
  absl::Status status = (*cloud)->Unary("register", [&](grpc::ClientContext* context) {
    return (*cloud)->machines()->RegisterMachine(context, request, &response);
  });
  if (!status.ok()) return Fail(status);

  AgentIdentity identity;
  identity.set_cloud(flags.cloud);
  identity.set_cloud_ca_file(flags.ca);
  identity.set_cloud_insecure(flags.insecure);
  identity.set_machine_id(response.machine_id());
  identity.set_machine_name(flags.name);
  identity.set_entity(response.entity());
  identity.set_relay_url(response.relay_endpoint());
  identity.set_cloud_signing_pub(response.cloud_signing_pub());
  identity.set_cloud_signing_key_id(response.cloud_signing_key_id());
  identity.set_relay_ca_file(flags.relay_ca);
  if (cluster.has_value()) {
    identity.set_cluster_id(cluster->cluster_id());
    identity.set_cluster_name(cluster->name());
  }
  for (absl::Status write : {
           crypto::WriteSecretFile(PathIn(flags.data_dir, kX25519KeyFile), x25519->private_key, true),
           crypto::WriteSecretFile(PathIn(flags.data_dir, kEd25519KeyFile), ed25519->private_key, true),
           SaveIdentity(flags.data_dir, identity)}) {
    if (!write.ok()) return Fail(write);
  }
  unlink(PathIn(flags.data_dir, kGroupKeyFile).c_str());  // a re-registration leaves any group
  std::cout << "registered machine " << response.machine_id() << " (\"" << flags.name << "\"); cloud key "
            << response.cloud_signing_key_id() << " pinned";
  if (cluster.has_value()) {
    std::cout << "; behind gateway cluster \"" << cluster->name() << "\" (" << cluster->cluster_id()
              << "): run with --via-gateway";
  }
  std::cout << "\n";
  return 0;
}

int JoinGroup(const AgentFlags& flags) {
  if (flags.group.empty() || flags.token_file.empty()) {
    return Fail(absl::InvalidArgumentError("join-group needs --group and --token_file"));
  }
  absl::StatusOr<AgentIdentity> identity = LoadIdentity(flags.data_dir);
  if (!identity.ok()) return Fail(identity.status());
  absl::StatusOr<crypto::SecretBytes> signing_key =
      crypto::ReadSecretFile(PathIn(flags.data_dir, kEd25519KeyFile));
  if (!signing_key.ok()) return Fail(signing_key.status());
  absl::StatusOr<crypto::SecretBytes> token = client::ReadSecretLine(flags.token_file);
  if (!token.ok()) return Fail(token.status());
  absl::StatusOr<std::unique_ptr<client::CloudClient>> cloud =
      client::CloudClient::Create(Endpoint(*identity), *std::move(token));
  if (!cloud.ok()) return Fail(cloud.status());

  // The group by name (or id).
  proto::ListGroupsResponse groups;
  absl::Status status = (*cloud)->Unary("list groups", [&](grpc::ClientContext* context) {
    return (*cloud)->groups()->ListGroups(context, proto::ListGroupsRequest(), &groups);
  });
  if (!status.ok()) return Fail(status);
  std::string group_id;
  for (const proto::MachineGroup& group : groups.groups()) {
    if (group.name() == flags.group || group.group_id() == flags.group) group_id = group.group_id();
  }
  std::optional<crypto::SecretBytes> password;
  if (group_id.empty()) {
    if (!flags.create) {
      return Fail(absl::NotFoundError(
          absl::StrCat("no group \"", flags.group, "\" (use --create to create it)")));
    }
    absl::StatusOr<crypto::SecretBytes> typed = ReadPassword(flags, "new group password", true);
    if (!typed.ok()) return Fail(typed.status());
    absl::StatusOr<crypto::X25519KeyPair> key = crypto::GenerateX25519KeyPair();
    if (!key.ok()) return Fail(key.status());
    absl::StatusOr<proto::WrappedKey> wrapped = crypto::WrapWithPassword(key->private_key, *typed);
    if (!wrapped.ok()) return Fail(wrapped.status());
    proto::CreateGroupRequest create;
    create.set_name(flags.group);
    create.set_group_pub(key->public_key);
    *create.mutable_wrapped_priv() = *wrapped;
    proto::MachineGroup group;
    status = (*cloud)->Unary("create group", [&](grpc::ClientContext* context) {
      return (*cloud)->groups()->CreateGroup(context, create, &group);
    });
    if (!status.ok()) return Fail(status);
    group_id = group.group_id();
    password = *std::move(typed);
  }

  // Step 1: the wrapped key. It is unwrapped here, with the password typed here.
  constexpr char kMethod[] = "/tether.proto.GroupService/JoinGroup";
  proto::JoinGroupRequest join;
  join.set_group_id(group_id);
  if (absl::Status s = Sign(&join, kMethod, *identity, *signing_key); !s.ok()) return Fail(s);
  proto::JoinGroupResponse offered;
  status = (*cloud)->Unary("join group", [&](grpc::ClientContext* context) {
    return (*cloud)->groups()->JoinGroup(context, join, &offered);
  });
  if (!status.ok()) return Fail(status);
  if (!password.has_value()) {
    absl::StatusOr<crypto::SecretBytes> typed = ReadPassword(flags, "group password", false);
    if (!typed.ok()) return Fail(typed.status());
    password = *std::move(typed);
  }
  absl::StatusOr<crypto::SecretBytes> group_key = crypto::UnwrapWithPassword(offered.wrapped_priv(), *password);
  password.reset();
  if (!group_key.ok()) {
    return Fail(absl::PermissionDeniedError(absl::StrCat(
        "cannot open the group key: ", group_key.status().message(), "; nothing was changed")));
  }
  absl::StatusOr<std::string> derived = crypto::X25519PublicKey(*group_key);
  if (!derived.ok() || !crypto::ConstantTimeEquals(*derived, offered.group_pub())) {
    return Fail(absl::PermissionDeniedError("the unwrapped key is not the group's key; nothing was changed"));
  }
  // Step 2: prove it, and join.
  join.set_derived_group_pub(*derived);
  if (absl::Status s = Sign(&join, kMethod, *identity, *signing_key); !s.ok()) return Fail(s);
  proto::JoinGroupResponse joined;
  status = (*cloud)->Unary("join group", [&](grpc::ClientContext* context) {
    return (*cloud)->groups()->JoinGroup(context, join, &joined);
  });
  if (!status.ok()) return Fail(status);
  if (absl::Status s = crypto::WriteSecretFile(PathIn(flags.data_dir, kGroupKeyFile), *group_key, true);
      !s.ok()) {
    return Fail(s);
  }
  identity->set_group_id(group_id);
  identity->set_group_name(joined.group().name());
  identity->set_group_pub(offered.group_pub());
  if (absl::Status s = SaveIdentity(flags.data_dir, *identity); !s.ok()) return Fail(s);
  std::cout << "joined group \"" << joined.group().name() << "\" (" << group_id << ")\n";
  return 0;
}

namespace {

// Writes status.json (AgentStatus as JSON) atomically.
class StatusWriter {
 public:
  StatusWriter(std::string path, std::string machine_id, std::string via_gateway) : path_(std::move(path)) {
    status_.set_machine_id(std::move(machine_id));
    status_.set_via_gateway(std::move(via_gateway));
    status_.set_pid(getpid());
  }
  void SetConnection(std::string connection) {
    absl::MutexLock lock(&mu_);
    status_.set_connection(std::move(connection));
    WriteLocked();
  }
  void SetJobs(const JobServiceStatus& jobs, const std::vector<proto::JobResult>& recent) {
    absl::MutexLock lock(&mu_);
    status_.set_current_job_id(jobs.current_job_id);
    status_.set_current_run_id(jobs.current_run_id);
    status_.clear_recent_results();
    for (const proto::JobResult& result : recent) *status_.add_recent_results() = result;
    WriteLocked();
  }

 private:
  void WriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    status_.set_updated_at_unix_ms(absl::ToUnixMillis(WallNow()));
    std::string json;
    google::protobuf::util::JsonPrintOptions options;
    options.add_whitespace = true;
    if (!google::protobuf::util::MessageToJsonString(status_, &json, options).ok()) return;
    const std::string tmp = path_ + ".tmp";
    {
      std::ofstream out(tmp, std::ios::trunc);
      out << json;
    }
    std::rename(tmp.c_str(), path_.c_str());
  }

  const std::string path_;
  absl::Mutex mu_;
  AgentStatus status_ ABSL_GUARDED_BY(mu_);
};

std::string RunnerPath(const AgentFlags& flags) {
  if (!flags.runner.empty()) return flags.runner;
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return "flow_runner";
  std::string dir(self, static_cast<size_t>(n));
  dir = dir.substr(0, dir.rfind('/'));
  // Installed: beside the agent. Under bazel-bin: agent/runner/flow_runner.
  for (const std::string& candidate : {dir + "/flow_runner", dir + "/runner/flow_runner"}) {
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return dir + "/flow_runner";
}

// The relay listener takes the relay's base URL as http(s); the URL a cloud or gateway member
// announces may name the WebSocket scheme instead (proto docs: "wss://relay.example.com:9350").
std::string ListenerRelayUrl(absl::string_view url) {
  if (absl::StartsWithIgnoreCase(url, "wss://")) return absl::StrCat("https://", url.substr(6));
  if (absl::StartsWithIgnoreCase(url, "ws://")) return absl::StrCat("http://", url.substr(5));
  return std::string(url);
}

// The Ed25519 public keys of the members of the cluster this machine is registered behind, by
// member id, from a machine-signed GetMachineCluster call to the cloud.
absl::StatusOr<std::map<std::string, std::string>> FetchMemberKeys(const client::CloudClient& cloud,
                                                                   const AgentIdentity& identity,
                                                                   const crypto::SecretBytes& signing_key) {
  proto::GetMachineClusterRequest request;
  RETURN_IF_ERROR(Sign(&request, "/tether.proto.MachineService/GetMachineCluster", identity, signing_key));
  proto::GatewayCluster cluster;
  RETURN_IF_ERROR(cloud.Unary("cluster members", [&](grpc::ClientContext* context) {
    return cloud.machines()->GetMachineCluster(context, request, &cluster);
  }));
  if (cluster.cluster_id() != identity.cluster_id()) {
    return absl::FailedPreconditionError(absl::StrCat("the cloud has this machine behind cluster \"",
                                                      cluster.cluster_id(), "\", agent.conf says \"",
                                                      identity.cluster_id(), "\" (register again)"));
  }
  std::map<std::string, std::string> keys;
  for (const proto::ClusterMember& member : cluster.members()) keys[member.member_id()] = member.ed25519_pub();
  return keys;
}

}  // namespace

int Run(const AgentFlags& flags) {
  absl::StatusOr<AgentIdentity> identity = LoadIdentity(flags.data_dir);
  if (!identity.ok()) return Fail(identity.status());
  if (absl::Status status = EnsureDataDir(flags.data_dir); !status.ok()) return Fail(status);
  absl::StatusOr<crypto::SecretBytes> x25519 = crypto::ReadSecretFile(PathIn(flags.data_dir, kX25519KeyFile));
  absl::StatusOr<crypto::SecretBytes> ed25519 = crypto::ReadSecretFile(PathIn(flags.data_dir, kEd25519KeyFile));
  if (!x25519.ok()) return Fail(x25519.status());
  if (!ed25519.ok()) return Fail(ed25519.status());
  crypto::SecretBytes group_key;
  if (!identity->group_id().empty()) {
    absl::StatusOr<crypto::SecretBytes> key = crypto::ReadSecretFile(PathIn(flags.data_dir, kGroupKeyFile));
    if (!key.ok()) return Fail(key.status());
    group_key = *std::move(key);
  }
  absl::StatusOr<std::unique_ptr<accounts::AccountVerifier>> verifier = accounts::MakeVerifier(flags.accounts);
  if (!verifier.ok()) return Fail(verifier.status());
  const std::string runner = RunnerPath(flags);
  if (access(runner.c_str(), X_OK) != 0) {
    return Fail(absl::FailedPreconditionError(
        absl::StrCat("flow runner ", runner, " is not executable (pass --runner)")));
  }
  absl::StatusOr<std::unique_ptr<Ledger>> ledger = Ledger::Open(PathIn(flags.data_dir, kLedgerDir));
  if (!ledger.ok()) return Fail(ledger.status());
  absl::StatusOr<std::unique_ptr<client::CloudClient>> cloud =
      client::CloudClient::Create(Endpoint(*identity), crypto::SecretBytes());
  if (!cloud.ok()) return Fail(cloud.status());
  const crypto::SecretBytes& signing_key = *ed25519;
  client::CloudClient* cloud_client = cloud->get();

  // Where to listen: the cloud's relay, or (gateway mode) the local relay of a gateway member,
  // which names it when it first gives this machine a token.
  std::string relay_url = identity->relay_url();
  std::string entity = identity->entity();
  std::string relay_ca = identity->relay_ca_file();
  std::unique_ptr<GatewayLink> gateway;
  JobServiceOptions options;
  if (!flags.via_gateway.empty()) {
    if (identity->cluster_id().empty()) {
      return Fail(absl::FailedPreconditionError(absl::StrCat(
          "--via-gateway: machine ", identity->machine_id(),
          " was registered without a gateway cluster; register it with `agent register --cluster NAME`")));
    }
    absl::StatusOr<std::unique_ptr<GatewayLink>> link =
        GatewayLink::Create({flags.via_gateway, flags.gateway_ca}, identity->machine_id(), signing_key);
    if (!link.ok()) return Fail(link.status());
    absl::StatusOr<proto::ListenToken> first = (*link)->ListenToken();
    if (!first.ok()) return Fail(first.status());
    relay_url = first->relay_endpoint();
    entity = first->entity();
    relay_ca = flags.gateway_ca;
    gateway = *std::move(link);

    // Who may forward jobs: the cluster's members, as the cloud knows them (again when an unknown
    // member forwards one). An unreachable cloud is not fatal: the keys are fetched at the first
    // forwarded job.
    options.cluster_id = identity->cluster_id();
    options.fetch_cluster_member_keys = [cloud_client, &identity, &signing_key] {
      return FetchMemberKeys(*cloud_client, *identity, signing_key);
    };
    absl::StatusOr<std::map<std::string, std::string>> members = options.fetch_cluster_member_keys();
    if (members.ok()) {
      options.cluster_member_keys = *std::move(members);
    } else if (absl::IsUnavailable(members.status()) || absl::IsDeadlineExceeded(members.status())) {
      LogWarning("cluster_members_unavailable", {{"error", members.status().ToString()}});
    } else {
      return Fail(members.status());
    }
  }

  options.machine_id = identity->machine_id();
  options.group_id = identity->group_id();
  options.cloud_signing_pub = identity->cloud_signing_pub();
  options.cloud_signing_key_id = identity->cloud_signing_key_id();
  options.machine_private_key = *std::move(x25519);
  options.group_private_key = std::move(group_key);
  options.verifier = verifier->get();
  options.runner_path = runner;
  StatusWriter status_file(PathIn(flags.data_dir, kStatusFile), identity->machine_id(), flags.via_gateway);
  JobService* jobs_ptr = nullptr;
  options.on_change = [&] {
    if (jobs_ptr != nullptr) status_file.SetJobs(jobs_ptr->status(), (*ledger)->RecentResults(5));
  };
  JobService jobs(ledger->get(), std::move(options));
  jobs_ptr = &jobs;

  status_file.SetConnection("connecting");
  status_file.SetJobs(jobs.status(), (*ledger)->RecentResults(5));

  net::ListenerOptions listener;
  listener.relay_url = ListenerRelayUrl(relay_url);
  listener.entity = std::string(absl::StripPrefix(entity, "hc/"));
  listener.listener_id = identity->machine_id();
  listener.ca_file = relay_ca;
  if (flags.transport == "websocket") listener.transport = net::ListenerOptions::Transport::kWebSocketOnly;
  if (flags.transport == "longpoll") listener.transport = net::ListenerOptions::Transport::kLongPollOnly;
  if (gateway != nullptr) {
    listener.token_provider = [link = gateway.get()]() -> absl::StatusOr<std::string> {
      ASSIGN_OR_RETURN(proto::ListenToken token, link->ListenToken());
      return token.token();
    };
  } else {
    listener.token_provider = [&]() -> absl::StatusOr<std::string> {
      proto::GetListenTokenRequest request;
      RETURN_IF_ERROR(Sign(&request, "/tether.proto.MachineService/GetListenToken", *identity, signing_key));
      proto::ListenToken token;
      RETURN_IF_ERROR(cloud_client->Unary("listen token", [&](grpc::ClientContext* context) {
        return cloud_client->machines()->GetListenToken(context, request, &token);
      }));
      return token.token();
    };
  }
  listener.on_channel = [&](std::shared_ptr<net::ListenerChannel> channel) {
    std::weak_ptr<net::ListenerChannel> weak = channel;
    net::ListenerChannel::Handlers handlers;
    handlers.on_data = [&jobs, weak](std::string payload) {
      if (auto channel = weak.lock()) jobs.OnMessage(channel, std::move(payload));
    };
    handlers.on_close = [](uint32_t, std::string) {};
    channel->Accept(std::move(handlers)).IgnoreError();
  };
  listener.on_state = [&](const net::ListenerState& state) {
    std::string text(net::ListenerStateName(state.kind));
    if (!state.last_error.ok()) absl::StrAppend(&text, ": ", state.last_error.message());
    status_file.SetConnection(text);
  };
  absl::StatusOr<std::unique_ptr<net::RelayListener>> relay = net::RelayListener::Create(std::move(listener));
  if (!relay.ok()) return Fail(relay.status());
  if (absl::Status status = (*relay)->Start(); !status.ok()) return Fail(status);
  LogInfo("agent_running", {{"machine_id", identity->machine_id()},
                            {"runner", runner},
                            {"accounts", flags.accounts},
                            {"relay", relay_url},
                            {"via_gateway", flags.via_gateway}});

  // Wait for SIGTERM/SIGINT, refreshing status.json every second.
  const sigset_t signals = TerminationSignals();
  while (true) {
    timespec second{1, 0};
    int received = sigtimedwait(&signals, nullptr, &second);
    if (received == SIGINT || received == SIGTERM) {
      LogInfo("agent_signal", {{"signal", received == SIGTERM ? "SIGTERM" : "SIGINT"}});
      break;
    }
    status_file.SetJobs(jobs.status(), (*ledger)->RecentResults(5));
  }
  // Finish (or cancel) the running job while the relay is still up to report it, then leave.
  jobs.Shutdown(flags.shutdown_grace);
  (*relay)->Stop();
  status_file.SetConnection("stopped");
  status_file.SetJobs(jobs.status(), (*ledger)->RecentResults(5));
  LogInfo("agent_stopped");
  return 0;
}

int Status(const AgentFlags& flags) {
  absl::StatusOr<AgentIdentity> identity = LoadIdentity(flags.data_dir);
  if (!identity.ok()) return Fail(identity.status());
  // The key ids a user can compare with what the portal's connection form shows before sealing.
  std::string machine_key_id = "(unreadable)";
  if (absl::StatusOr<crypto::SecretBytes> x25519 = crypto::ReadSecretFile(PathIn(flags.data_dir, kX25519KeyFile));
      x25519.ok()) {
    if (absl::StatusOr<std::string> pub = crypto::X25519PublicKey(*x25519); pub.ok()) {
      machine_key_id = HexEncode(crypto::KeyId(*pub));
    }
  }
  std::cout << "machine      " << identity->machine_id() << " (\"" << identity->machine_name() << "\")\n"
            << "key id       " << machine_key_id
            << (identity->group_pub().empty()
                    ? std::string()
                    : absl::StrCat("  (group key id ", HexEncode(crypto::KeyId(identity->group_pub())), ")"))
            << "\n"
            << "cloud        " << identity->cloud() << "  (job key " << identity->cloud_signing_key_id()
            << " pinned)\n"
            << "relay        " << identity->relay_url() << "  entity " << identity->entity() << "\n"
            << "group        "
            << (identity->group_id().empty() ? std::string("(none)")
                                             : absl::StrCat(identity->group_name(), " (", identity->group_id(), ")"))
            << "\n"
            << "cluster      "
            << (identity->cluster_id().empty()
                    ? std::string("(none)")
                    : absl::StrCat(identity->cluster_name(), " (", identity->cluster_id(), ")"))
            << "\n";
  std::ifstream in(PathIn(flags.data_dir, kStatusFile));
  std::stringstream json;
  json << in.rdbuf();
  AgentStatus status;
  if (!in || !google::protobuf::util::JsonStringToMessage(json.str(), &status).ok()) {
    std::cout << "service      not running (no status yet)\n";
    return 0;
  }
  const bool alive = status.pid() > 0 && kill(status.pid(), 0) == 0 && status.connection() != "stopped";
  std::cout << "service      " << (alive ? absl::StrCat("running (pid ", status.pid(), ")") : "not running")
            << "\nconnection   " << status.connection()
            << (status.via_gateway().empty() ? "" : absl::StrCat(" (via gateway ", status.via_gateway(), ")"))
            << "\ncurrent job  "
            << (status.current_job_id().empty() ? "(none)"
                                                : absl::StrCat(status.current_job_id(), " (run ",
                                                               status.current_run_id(), ")"))
            << "\n";
  for (const proto::JobResult& result : status.recent_results()) {
    std::cout << "last result  " << result.job_id() << "  " << proto::JobState_Name(result.state());
    if (!result.error().message().empty()) std::cout << "  " << result.error().message();
    std::cout << "\n";
  }
  return 0;
}

}  // namespace tether::agent
