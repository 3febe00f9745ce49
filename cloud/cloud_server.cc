#include "cloud/cloud_server.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "cloud/cloud_store.h"
#include "cloud/grpc_services.h"
#include "cloud/portal/portal_assets.h"
#include "common/base/hex.h"
#include "common/base/log.h"
#include "common/base/service_main.h"
#include "common/base/status_macros.h"
#include "common/crypto/digest.h"
#include "common/crypto/key_file.h"
#include "common/crypto/sas_token.h"

namespace tether::cloud {
namespace {

absl::Status EnsureDir(const std::string& dir) {
  if (dir.empty()) return absl::InvalidArgumentError("--data_dir is required");
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create --data_dir ", dir, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadTextFile(const std::string& path, absl::string_view flag) {
  std::ifstream in(path);
  if (!in) return absl::FailedPreconditionError(absl::StrCat(flag, ": cannot read ", path));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

absl::StatusOr<crypto::SasKey> KeyWithRight(const crypto::SasKeyRing& ring, uint32_t right,
                                            absl::string_view right_name, const std::string& file) {
  for (const crypto::SasKey& key : ring.keys()) {
    if ((key.rights & right) != 0) return crypto::SasKey{key.name, key.key.Clone(), key.rights};
  }
  return absl::FailedPreconditionError(
      absl::StrCat("--relay_keys_file ", file, " has no key with the ", right_name, " right"));
}

}  // namespace

absl::StatusOr<crypto::Ed25519KeyPair> LoadOrCreateSigningKey(const std::string& data_dir) {
  RETURN_IF_ERROR(EnsureDir(data_dir));
  const std::string path = absl::StrCat(data_dir, "/", kSigningKeyFile);
  absl::StatusOr<crypto::SecretBytes> seed = crypto::ReadSecretFile(path);
  if (seed.ok()) {
    if (seed->size() != crypto::kEd25519KeySize) {
      return absl::DataLossError(absl::StrCat(path, " is not a 32-byte Ed25519 seed"));
    }
    crypto::Ed25519KeyPair pair;
    ASSIGN_OR_RETURN(pair.public_key, crypto::Ed25519PublicKey(*seed));
    pair.private_key = *std::move(seed);
    return pair;
  }
  if (!absl::IsNotFound(seed.status())) return seed.status();
  ASSIGN_OR_RETURN(crypto::Ed25519KeyPair pair, crypto::GenerateEd25519KeyPair());
  RETURN_IF_ERROR(crypto::WriteSecretFile(path, pair.private_key, /*overwrite=*/false));
  LogInfo("cloud_signing_key_created", {{"key_id", HexEncode(crypto::KeyId(pair.public_key))}});
  return pair;
}

absl::StatusOr<std::unique_ptr<CloudServer>> CloudServer::Start(CloudServerOptions options) {
  // Check everything that can be wrong with the flags before touching the disk.
  std::string host = options.listen;
  if (auto colon = host.rfind(':'); colon != std::string::npos) host = host.substr(0, colon);
  if (options.insecure && !IsLoopbackHost(host)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--insecure serves plaintext and is only allowed on loopback, not ", options.listen));
  }
  if (!options.insecure && (options.tls_cert_file.empty() || options.tls_key_file.empty())) {
    return absl::InvalidArgumentError("TLS needs --tls_cert and --tls_key (or --insecure on loopback)");
  }
  if (options.relay_url.empty()) return absl::InvalidArgumentError("--relay_url is required");
  if (options.relay_keys_file.empty()) return absl::InvalidArgumentError("--relay_keys_file is required");
  ASSIGN_OR_RETURN(crypto::SecretBytes keys_text, crypto::ReadSecretFile(options.relay_keys_file));
  absl::StatusOr<crypto::SasKeyRing> ring = crypto::SasKeyRing::Parse(keys_text.view());
  if (!ring.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--relay_keys_file ", options.relay_keys_file, ": ", ring.status().message()));
  }
  ASSIGN_OR_RETURN(crypto::SasKey listen_key,
                   KeyWithRight(*ring, crypto::kSasListen, "Listen", options.relay_keys_file));
  ASSIGN_OR_RETURN(crypto::SasKey send_key,
                   KeyWithRight(*ring, crypto::kSasSend, "Send", options.relay_keys_file));
  ASSIGN_OR_RETURN(crypto::SasKey manage_key,
                   KeyWithRight(*ring, crypto::kSasManage, "Manage", options.relay_keys_file));

  std::shared_ptr<grpc::ServerCredentials> credentials;
  crypto::SecretBytes tls_key;
  if (options.insecure) {
    credentials = grpc::InsecureServerCredentials();
  } else {
    ASSIGN_OR_RETURN(std::string cert, ReadTextFile(options.tls_cert_file, "--tls_cert"));
    ASSIGN_OR_RETURN(tls_key, crypto::ReadSecretFile(options.tls_key_file));
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({std::string(tls_key.view()), cert});
    credentials = grpc::SslServerCredentials(ssl);
    crypto::Cleanse(ssl.pem_key_cert_pairs[0].private_key.data(),
                    ssl.pem_key_cert_pairs[0].private_key.size());
  }

  std::unique_ptr<CloudServer> server(new CloudServer());
  RETURN_IF_ERROR(EnsureDir(options.data_dir));
  ASSIGN_OR_RETURN(crypto::Ed25519KeyPair signing, LoadOrCreateSigningKey(options.data_dir));
  const std::string key_id = HexEncode(crypto::KeyId(signing.public_key));
  ASSIGN_OR_RETURN(server->store_, OpenCloudStore(absl::StrCat(options.data_dir, "/db")));
  server->writer_ = std::make_unique<store::GroupCommitWriter>(server->store_.get());
  ASSIGN_OR_RETURN(server->auth_,
                   Authenticator::Create(server->store_.get(), options.machine_auth_window));

  ServiceOptions service_options;
  service_options.relay_url = options.relay_url;
  service_options.listen_key = std::move(listen_key);
  service_options.listen_token_ttl = options.listen_token_ttl;
  service_options.signing_public_key = signing.public_key;
  service_options.signing_key_id = key_id;
  server->service_ = std::make_unique<CloudService>(server->store_.get(), server->auth_.get(),
                                                    std::move(service_options));

  RunManagerOptions run_options = std::move(options.runs);
  run_options.relay_url =
      options.relay_internal_url.empty() ? options.relay_url : options.relay_internal_url;
  run_options.relay_ca_file = options.relay_ca_file;
  run_options.send_key = std::move(send_key);
  run_options.manage_key = std::move(manage_key);
  run_options.signing_private_key = std::move(signing.private_key);
  run_options.signing_key_id = key_id;
  ASSIGN_OR_RETURN(server->runs_, RunManager::Create(server->store_.get(), server->writer_.get(),
                                                     server->service_.get(), std::move(run_options)));
  server->service_->SetStatusSource(server->runs_.get());

  server->grpc_services_ =
      MakeGrpcServices(server->auth_.get(), server->service_.get(), server->runs_.get());
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options.listen, credentials, &port);
  builder.SetMaxReceiveMessageSize(16 << 20);
  for (auto& service : server->grpc_services_) builder.RegisterService(service.get());
  server->grpc_server_ = builder.BuildAndStart();
  if (server->grpc_server_ == nullptr || port == 0) {
    server->runs_->Stop();
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.listen));
  }
  server->port_ = static_cast<uint16_t>(port);
  // Both HTTP listeners use the gRPC port's TLS settings.
  auto http_server_options = [&options](const std::string& listen) {
    http::ServerOptions http_options;
    http_options.listen = listen;
    http_options.insecure = options.insecure;
    http_options.tls_cert_file = options.tls_cert_file;
    http_options.tls_key_file = options.tls_key_file;
    return http_options;
  };
  if (!options.http_listen.empty()) {
    http::ServerOptions http_options = http_server_options(options.http_listen);
    http_options.threads = 4;  // portal users poll; one slow call must not hold up the others
    http_options.body_limit = 4 << 20;  // a 1 MiB flow definition, JSON-escaped, fits
    server->rest_ = std::make_unique<RestApi>(server->auth_.get(), server->service_.get(),
                                              server->runs_.get());
    CloudServer* self = server.get();
    http_options.body_limit_for = [self, large = http_options.body_limit](const http::Request& head) {
      return self->rest_->BodyLimitFor(head, large);
    };
    absl::StatusOr<std::unique_ptr<http::Server>> http_server =
        http::Server::Start(std::move(http_options), [self, metrics = options.metrics_listen.empty()](
                                                         const http::Request& request) {
          if (absl::StartsWith(request.path, kRestPrefix)) return self->rest_->Handle(request);
          if (std::optional<http::Response> page = portal::ServePortal(request)) return *page;
          return self->Monitoring(request, metrics);
        });
    if (!http_server.ok()) {
      server->Shutdown(absl::ZeroDuration());
      return absl::Status(http_server.status().code(),
                          absl::StrCat("--http_listen: ", http_server.status().message()));
    }
    server->http_server_ = *std::move(http_server);
  }
  if (!options.metrics_listen.empty()) {
    http::ServerOptions metrics_options = http_server_options(options.metrics_listen);
    metrics_options.body_limit = kSmallBody;
    CloudServer* self = server.get();
    absl::StatusOr<std::unique_ptr<http::Server>> metrics_server = http::Server::Start(
        std::move(metrics_options),
        [self](const http::Request& request) { return self->Monitoring(request, /*metrics=*/true); });
    if (!metrics_server.ok()) {
      server->Shutdown(absl::ZeroDuration());
      return absl::Status(metrics_server.status().code(),
                          absl::StrCat("--metrics_listen: ", metrics_server.status().message()));
    }
    server->metrics_server_ = *std::move(metrics_server);
  }
  LogInfo("cloud_started", {{"port", absl::StrCat(port)},
                            {"tls", options.insecure ? "false" : "true"},
                            {"signing_key_id", key_id}});
  return server;
}

CloudServer::~CloudServer() { Shutdown(); }

uint16_t CloudServer::http_port() const {
  return http_server_ != nullptr ? http_server_->port() : 0;
}

uint16_t CloudServer::metrics_port() const {
  return metrics_server_ != nullptr ? metrics_server_->port() : 0;
}

http::Response CloudServer::Monitoring(const http::Request& request, bool metrics) const {
  http::Response response;
  if (request.path == "/healthz") {
    response.body = "ok\n";
  } else if (metrics && request.path == "/metrics") {
    response.content_type = "text/plain; version=0.0.4; charset=utf-8";
    response.body = MetricsText();
  } else {
    response.status = 404;
    response.body = "not found\n";
  }
  return response;
}

void CloudServer::Shutdown(absl::Duration grace) {
  if (shut_down_) return;
  shut_down_ = true;
  if (http_server_ != nullptr) http_server_->Stop();
  if (metrics_server_ != nullptr) metrics_server_->Stop();
  if (runs_ != nullptr) runs_->Stop();  // first: wakes WatchRun streams so the server can end
  if (grpc_server_ != nullptr) {
    grpc_server_->Shutdown(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(grace));
    grpc_server_->Wait();
  }
  if (writer_ != nullptr) writer_->Stop();
}

std::string CloudServer::MetricsText() const {
  RunManagerStats s = runs_->stats();
  store::GroupCommitStats w = writer_->stats();
  std::string out;
  auto metric = [&](absl::string_view name, absl::string_view type, absl::string_view help,
                    auto value) {
    absl::StrAppend(&out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n", name, " ",
                    value, "\n");
  };
  metric("tether_cloud_runs_created_total", "counter", "Runs queued by RunFlow.", s.runs_created);
  metric("tether_cloud_runs_finished_total", "counter", "Runs that reached a terminal state.",
         s.runs_finished);
  metric("tether_cloud_runs_active", "gauge", "Runs not in a terminal state.", s.runs_active);
  metric("tether_cloud_jobs_sent_total", "counter", "JobRequests sent to agents.", s.jobs_sent);
  metric("tether_cloud_jobs_accepted_total", "counter", "JobAccepted answers.", s.jobs_accepted);
  metric("tether_cloud_busy_answers_total", "counter", "Busy answers.", s.busy_answers);
  metric("tether_cloud_job_rejections_total", "counter", "JobRejected answers.", s.rejections);
  metric("tether_cloud_channel_failures_total", "counter",
         "Relay channels that failed to open or broke.", s.channel_failures);
  metric("tether_cloud_dispatch_links", "gauge", "Machines and cluster slots being served.", s.links);
  metric("tether_cloud_presence_fetches_total", "counter",
         "Presence questions sent to the relay (answers and failures are both cached 2 s).",
         s.presence_fetches);
  metric("tether_cloud_store_sync_writes_total", "counter", "Synced RocksDB writes (group commits).",
         w.writes);
  metric("tether_cloud_store_batches_total", "counter", "Batches committed through group commit.",
         w.batches);
  if (rest_ != nullptr) {
    absl::StrAppend(&out,
                    "# HELP tether_cloud_rest_calls_total REST API calls (web portal) by outcome.\n"
                    "# TYPE tether_cloud_rest_calls_total counter\n");
    for (const auto& [code, calls] : rest_->CallCounts()) {
      absl::StrAppend(&out, "tether_cloud_rest_calls_total{code=\"", code, "\"} ", calls, "\n");
    }
  }
  return out;
}

absl::StatusOr<proto::NewApiToken> CreateUserOffline(const std::string& data_dir,
                                                     const std::string& name, bool admin) {
  RETURN_IF_ERROR(EnsureDir(data_dir));
  absl::StatusOr<std::unique_ptr<store::Store>> db = OpenCloudStore(absl::StrCat(data_dir, "/db"));
  if (!db.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot open the cloud database (is cloud_server running? stop it first): ",
        db.status().message()));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<Authenticator> auth, Authenticator::Create(db->get(), absl::Minutes(5)));
  CloudService service(db->get(), auth.get(), ServiceOptions());
  proto::CreateUserRequest request;
  request.set_name(name);
  request.set_admin(admin);
  return service.CreateUser(nullptr, request);
}

}  // namespace tether::cloud
