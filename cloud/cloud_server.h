// The cloud service assembled (DESIGN §4): RocksDB store, group-commit writer, authenticator,
// service layer, run manager and dispatcher, and the gRPC server on one TLS port. main.cc turns
// flags into CloudServerOptions; tests and tools start it in-process the same way.
#ifndef TETHER_CLOUD_CLOUD_SERVER_H_
#define TETHER_CLOUD_CLOUD_SERVER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cloud/authenticator.h"
#include "cloud/cloud_service.h"
#include "cloud/http/http_server.h"
#include "cloud/rest_api.h"
#include "cloud/run_manager.h"
#include "common/crypto/ed25519.h"
#include "common/proto/cloud.pb.h"
#include "common/store/group_commit.h"
#include "common/store/store.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/impl/codegen/service_type.h"

namespace tether::cloud {

struct CloudServerOptions {
  // gRPC address, "host:port" (port 0 picks one).
  std::string listen = "127.0.0.1:8443";
  // HTTP(S) address of the web portal, its REST API, /healthz and /metrics (same TLS settings as
  // gRPC); empty: none.
  std::string http_listen;
  // If set, /metrics (and a /healthz) move to this address of their own, off the port browsers
  // use, so a firewall can keep them for monitoring only; the portal port then answers /metrics
  // with 404.
  std::string metrics_listen;
  // Where the database and the cloud's signing key live (created if missing).
  std::string data_dir;
  // TLS certificate chain and key (PEM; the key file must be mode 0600), or plaintext on loopback.
  std::string tls_cert_file;
  std::string tls_key_file;
  bool insecure = false;
  // The relay as agents reach it (told to them at registration) and as the cloud reaches it
  // (defaults to relay_url), the CA that verifies the relay, and the relay's SAS keys file (the
  // cloud needs keys with the Listen, Send and Manage rights; mode 0600).
  std::string relay_url;
  std::string relay_internal_url;
  std::string relay_ca_file;
  std::string relay_keys_file;
  absl::Duration listen_token_ttl = absl::Hours(1);
  absl::Duration machine_auth_window = absl::Minutes(5);
  // Everything else about runs (timeouts, retries); relay and key fields are filled in by Start.
  RunManagerOptions runs;
};

// The file in data_dir holding the cloud's Ed25519 job-signing key (raw 32-byte seed, mode 0600).
inline constexpr char kSigningKeyFile[] = "cloud-signing.key";

// Reads the signing key from data_dir, or makes one on first start.
absl::StatusOr<crypto::Ed25519KeyPair> LoadOrCreateSigningKey(const std::string& data_dir);

class CloudServer {
 public:
  // Opens the store (refused if another process holds it), loads the keys, resumes every
  // unfinished run and starts serving. Errors name the flag or file at fault.
  static absl::StatusOr<std::unique_ptr<CloudServer>> Start(CloudServerOptions options);
  ~CloudServer();

  uint16_t port() const { return port_; }
  // The portal / REST / /healthz port (0 without http_listen).
  uint16_t http_port() const;
  // The port of metrics_listen (0 without it).
  uint16_t metrics_port() const;

  // Stops taking calls (in-flight calls get `grace`), stops dispatching (runs keep their durable
  // state), flushes the writer and closes the store. Idempotent.
  void Shutdown(absl::Duration grace = absl::Seconds(5));

  CloudService* service() { return service_.get(); }
  RunManager* runs() { return runs_.get(); }
  // Prometheus text for /metrics.
  std::string MetricsText() const;
  // /healthz, and /metrics when `metrics`; 404 for anything else.
  http::Response Monitoring(const http::Request& request, bool metrics) const;

 private:
  CloudServer() = default;

  std::unique_ptr<store::Store> store_;
  std::unique_ptr<store::GroupCommitWriter> writer_;
  std::unique_ptr<Authenticator> auth_;
  std::unique_ptr<CloudService> service_;
  std::unique_ptr<RunManager> runs_;
  std::vector<std::unique_ptr<grpc::Service>> grpc_services_;
  std::unique_ptr<grpc::Server> grpc_server_;
  std::unique_ptr<RestApi> rest_;
  std::unique_ptr<http::Server> http_server_;
  std::unique_ptr<http::Server> metrics_server_;
  uint16_t port_ = 0;
  bool shut_down_ = false;
};

// `cloud_server admin create-user`: opens the store in `data_dir` directly (the server must not be
// running: the store is locked) and creates a user. Returns its first token (shown once).
absl::StatusOr<proto::NewApiToken> CreateUserOffline(const std::string& data_dir,
                                                     const std::string& name, bool admin);

}  // namespace tether::cloud

#endif  // TETHER_CLOUD_CLOUD_SERVER_H_
