#include "gateway/gateway_app.h"

#include <signal.h>
#include <unistd.h>

#include <iostream>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/base/log.h"
#include "common/base/service_main.h"
#include "common/base/status_macros.h"
#include "common/client/cloud_client.h"
#include "common/client/data_dir.h"
#include "common/client/secret_input.h"
#include "common/crypto/ed25519.h"
#include "common/crypto/hpke.h"
#include "common/crypto/key_file.h"
#include "common/crypto/password_kdf.h"
#include "gateway/gateway_state.pb.h"
#include "gateway/member.h"

namespace tether::gateway {
namespace {

int Fail(const absl::Status& status) {
  std::cerr << "gateway: " << status.message() << "\n";
  return client::ExitCodeFor(status);
}

std::string PathIn(const std::string& dir, absl::string_view file) { return absl::StrCat(dir, "/", file); }

// The recovery key: from a 0600 file or typed without echo; never a flag value or the environment.
absl::StatusOr<crypto::SecretBytes> RecoveryKey(const GatewayFlags& flags) {
  if (!flags.recovery_key_file.empty()) return client::ReadSecretLine(flags.recovery_key_file);
  if (!isatty(0)) {
    return absl::InvalidArgumentError("no terminal to type the recovery key on: pass --recovery_key_file FILE (0600)");
  }
  return client::TerminalPrompt(std::cin, std::cerr, 0)("recovery key: ");
}

std::string MemberName(const GatewayFlags& flags) {
  if (!flags.name.empty()) return flags.name;
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  return host[0] != '\0' ? host : "gateway";
}

// create-cluster and join-cluster: derive the cluster key, make this member's keys, register.
int Enroll(const GatewayFlags& flags, bool create) {
  if (flags.cloud.empty() || flags.token_file.empty() || flags.cluster.empty()) {
    return Fail(absl::InvalidArgumentError("needs --cloud, --token_file and --cluster"));
  }
  if (absl::Status s = client::EnsurePrivateDir(flags.data_dir); !s.ok()) return Fail(s);
  GatewayIdentity existing;
  if (client::ReadTextProto(PathIn(flags.data_dir, kIdentityFile), &existing).ok()) {
    return Fail(absl::AlreadyExistsError(absl::StrCat("this data directory is already member ",
                                                      existing.member_id(), " of cluster \"",
                                                      existing.cluster_name(), "\"")));
  }
  absl::StatusOr<crypto::SecretBytes> token = client::ReadSecretLine(flags.token_file);
  if (!token.ok()) return Fail(token.status());
  absl::StatusOr<std::unique_ptr<client::CloudClient>> cloud =
      client::CloudClient::Create({flags.cloud, flags.ca, flags.insecure}, *std::move(token));
  if (!cloud.ok()) return Fail(cloud.status());

  std::string cluster_id, cluster_name = flags.cluster;
  if (!create) {
    proto::ListClustersResponse clusters;
    absl::Status status = (*cloud)->Unary("list clusters", [&](grpc::ClientContext* context) {
      return (*cloud)->clusters()->ListClusters(context, proto::ListClustersRequest(), &clusters);
    });
    if (!status.ok()) return Fail(status);
    for (const proto::GatewayCluster& cluster : clusters.clusters()) {
      if (cluster.name() == flags.cluster || cluster.cluster_id() == flags.cluster) {
        cluster_id = cluster.cluster_id();
        cluster_name = cluster.name();
      }
    }
    if (cluster_id.empty()) return Fail(absl::NotFoundError(absl::StrCat("no cluster \"", flags.cluster, "\"")));
  }
  absl::StatusOr<crypto::SecretBytes> recovery_key = RecoveryKey(flags);
  if (!recovery_key.ok()) return Fail(recovery_key.status());
  absl::StatusOr<crypto::X25519KeyPair> cluster_key = crypto::DeriveClusterKeyPair(*recovery_key, cluster_name);
  recovery_key = crypto::SecretBytes();  // wiped: it is needed for the derivation only
  if (!cluster_key.ok()) return Fail(cluster_key.status());
  absl::StatusOr<crypto::X25519KeyPair> member_x = crypto::GenerateX25519KeyPair();
  absl::StatusOr<crypto::Ed25519KeyPair> member_ed = crypto::GenerateEd25519KeyPair();
  if (!member_x.ok() || !member_ed.ok()) return Fail(absl::InternalError("key generation failed"));
  proto::NewClusterMember member;
  member.set_name(MemberName(flags));
  member.set_x25519_pub(member_x->public_key);
  member.set_ed25519_pub(member_ed->public_key);

  proto::ClusterMembership membership;
  absl::Status status;
  if (create) {
    proto::CreateClusterRequest request;
    request.set_name(cluster_name);
    request.set_cluster_pub(cluster_key->public_key);
    *request.mutable_member() = member;
    status = (*cloud)->Unary("create cluster", [&](grpc::ClientContext* context) {
      return (*cloud)->clusters()->CreateCluster(context, request, &membership);
    });
  } else {
    proto::JoinClusterRequest request;
    request.set_cluster_id(cluster_id);
    request.set_cluster_pub(cluster_key->public_key);
    *request.mutable_member() = member;
    status = (*cloud)->Unary("join cluster", [&](grpc::ClientContext* context) {
      return (*cloud)->clusters()->JoinCluster(context, request, &membership);
    });
  }
  if (!status.ok()) return Fail(status);  // nothing was written

  GatewayIdentity identity;
  identity.set_cloud(flags.cloud);
  identity.set_cloud_ca_file(flags.ca);
  identity.set_cloud_insecure(flags.insecure);
  identity.set_cluster_id(membership.cluster().cluster_id());
  identity.set_cluster_name(membership.cluster().name());
  identity.set_member_id(membership.member_id());
  identity.set_member_name(member.name());
  identity.set_entity(membership.entity());
  identity.set_relay_url(membership.relay_endpoint());
  identity.set_relay_ca_file(flags.relay_ca);
  identity.set_cloud_signing_pub(membership.cloud_signing_pub());
  identity.set_cloud_signing_key_id(membership.cloud_signing_key_id());
  identity.set_cluster_pub(cluster_key->public_key);
  for (absl::Status write :
       {crypto::WriteSecretFile(PathIn(flags.data_dir, kClusterKeyFile), cluster_key->private_key, true),
        crypto::WriteSecretFile(PathIn(flags.data_dir, kMemberKeyFile), member_ed->private_key, true),
        crypto::WriteSecretFile(PathIn(flags.data_dir, kMemberX25519File), member_x->private_key, true),
        client::WriteTextProto(PathIn(flags.data_dir, kIdentityFile), identity)}) {
    if (!write.ok()) return Fail(write);
  }
  std::cout << (create ? "created cluster \"" : "joined cluster \"") << identity.cluster_name() << "\" ("
            << identity.cluster_id() << ") as member " << identity.member_id() << "\n";
  return 0;
}

}  // namespace

int CreateCluster(const GatewayFlags& flags) { return Enroll(flags, /*create=*/true); }
int JoinCluster(const GatewayFlags& flags) { return Enroll(flags, /*create=*/false); }

int Run(const GatewayFlags& flags) {
  MemberOptions options;
  if (absl::Status s = client::EnsurePrivateDir(flags.data_dir); !s.ok()) return Fail(s);
  if (absl::Status s = client::ReadTextProto(PathIn(flags.data_dir, kIdentityFile), &options.identity); !s.ok()) {
    return Fail(absl::IsNotFound(s) ? absl::FailedPreconditionError(
                                          "not a cluster member yet: run create-cluster or join-cluster")
                                    : s);
  }
  absl::StatusOr<crypto::SecretBytes> member_key = crypto::ReadSecretFile(PathIn(flags.data_dir, kMemberKeyFile));
  absl::StatusOr<crypto::SecretBytes> cluster_key = crypto::ReadSecretFile(PathIn(flags.data_dir, kClusterKeyFile));
  if (!member_key.ok()) return Fail(member_key.status());
  if (!cluster_key.ok()) return Fail(cluster_key.status());
  options.member_signing_key = *std::move(member_key);
  options.cluster_key = *std::move(cluster_key);
  options.local_relay_listen = flags.local_relay_listen;
  options.service_listen = flags.service_listen;
  options.advertised_relay_url = flags.advertised_relay_url;
  options.tls_cert_file = flags.tls_cert;
  options.tls_key_file = flags.tls_key;
  options.local_ca_file = flags.local_ca;
  options.insecure = flags.insecure;
  options.state_dir = flags.data_dir;
  absl::StatusOr<std::unique_ptr<GatewayMember>> member = GatewayMember::Start(std::move(options));
  if (!member.ok()) return Fail(member.status());
  if (!flags.relay_port_file.empty()) {
    if (absl::Status s = WritePortFile(flags.relay_port_file, (*member)->relay_port()); !s.ok()) return Fail(s);
  }
  if (!flags.service_port_file.empty()) {
    if (absl::Status s = WritePortFile(flags.service_port_file, (*member)->service_port()); !s.ok()) {
      return Fail(s);
    }
  }
  const sigset_t signals = TerminationSignals();
  int received = 0;
  sigwait(&signals, &received);
  LogInfo("gateway_signal", {{"signal", received == SIGTERM ? "SIGTERM" : "SIGINT"}});
  (*member)->Stop();
  LogInfo("gateway_stopped");
  return 0;
}

}  // namespace tether::gateway
