// cloud_server: the Tether cloud service (DESIGN §4, docs/CLOUD.md).
//
//   bazel run //cloud:cloud_server -- --data_dir=/var/lib/tether-cloud --tls_cert=... --tls_key=...
//       --relay_url=wss://relay.example:9350 --relay_keys_file=/etc/tether/relay-keys
//   bazel run //cloud:cloud_server -- admin create-user alice --admin --data_dir=...
#include <signal.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "cloud/cloud_server.h"
#include "common/base/log.h"
#include "common/base/service_main.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:8443", "gRPC host:port (port 0 picks one)");
ABSL_FLAG(std::string, port_file, "", "write the bound gRPC port to this file once serving");
ABSL_FLAG(std::string, http_listen, "127.0.0.1:8080",
          "host:port of the web portal, its REST API, /healthz and /metrics (same TLS as gRPC; "
          "empty: off)");
ABSL_FLAG(std::string, http_port_file, "", "write the bound --http_listen port here");
ABSL_FLAG(std::string, metrics_listen, "",
          "host:port of /metrics and /healthz on a port of their own (then not on --http_listen)");
ABSL_FLAG(std::string, metrics_port_file, "", "write the bound --metrics_listen port here");
ABSL_FLAG(std::string, data_dir, "", "database and signing key directory (created if missing)");
ABSL_FLAG(std::string, tls_cert, "", "TLS certificate chain (PEM)");
ABSL_FLAG(std::string, tls_key, "", "TLS private key (PEM, mode 0600)");
ABSL_FLAG(bool, insecure, false, "serve plaintext (loopback addresses only)");
ABSL_FLAG(std::string, relay_url, "", "the relay as agents reach it, e.g. wss://relay:9350");
ABSL_FLAG(std::string, relay_internal_url, "", "the relay as the cloud reaches it (default: --relay_url)");
ABSL_FLAG(std::string, relay_ca, "", "CA certificate (PEM) that verifies the relay");
ABSL_FLAG(std::string, relay_keys_file, "",
          "relay SAS keys (NAME KEY RIGHTS lines, mode 0600) with Listen, Send and Manage rights");
ABSL_FLAG(int64_t, listen_token_ttl_s, 3600, "lifetime of the Listen tokens given to agents");
ABSL_FLAG(int64_t, default_run_timeout_s, 3600, "run timeout when RunFlow gives none");
ABSL_FLAG(int64_t, accept_timeout_ms, 30000, "time an agent has to answer a JobRequest");
ABSL_FLAG(bool, admin, false, "admin create-user: the new user may administer users");

namespace {

int Fail(const std::string& message) {
  tether::LogError("cloud_start_failed", {{"error", message}});
  std::fprintf(stderr, "cloud_server: %s\n", message.c_str());
  return 2;
}

int Admin(const std::vector<char*>& positional) {
  // positional: program, "admin", command, args...
  if (positional.size() == 4 && std::string(positional[2]) == "create-user") {
    auto token = tether::cloud::CreateUserOffline(absl::GetFlag(FLAGS_data_dir), positional[3],
                                                  absl::GetFlag(FLAGS_admin));
    if (!token.ok()) {
      std::fprintf(stderr, "cloud_server admin: %s\n", std::string(token.status().message()).c_str());
      return absl::IsAlreadyExists(token.status()) || absl::IsInvalidArgument(token.status()) ? 1 : 2;
    }
    std::fprintf(stderr, "created user %s (%s)%s; its API token is shown once:\n",
                 token->user().name().c_str(), token->user().user_id().c_str(),
                 token->user().admin() ? ", admin" : "");
    std::printf("%s\n", token->secret().c_str());
    return 0;
  }
  std::fprintf(stderr, "usage: cloud_server admin create-user NAME [--admin] --data_dir=DIR\n");
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Tether cloud: users, machines, connections, flows and the run dispatcher (docs/CLOUD.md)");
  std::vector<std::string> storage;
  std::vector<char*> args = tether::ExpandConfigFlag(argc, argv, &storage);
  std::vector<char*> positional = absl::ParseCommandLine(static_cast<int>(args.size()), args.data());
  if (positional.size() > 1 && std::string(positional[1]) == "admin") return Admin(positional);
  if (positional.size() > 1) {
    return Fail(absl::StrCat("unknown command \"", positional[1], "\" (commands: admin)"));
  }

  tether::cloud::CloudServerOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.http_listen = absl::GetFlag(FLAGS_http_listen);
  options.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  options.data_dir = absl::GetFlag(FLAGS_data_dir);
  options.tls_cert_file = absl::GetFlag(FLAGS_tls_cert);
  options.tls_key_file = absl::GetFlag(FLAGS_tls_key);
  options.insecure = absl::GetFlag(FLAGS_insecure);
  options.relay_url = absl::GetFlag(FLAGS_relay_url);
  options.relay_internal_url = absl::GetFlag(FLAGS_relay_internal_url);
  options.relay_ca_file = absl::GetFlag(FLAGS_relay_ca);
  options.relay_keys_file = absl::GetFlag(FLAGS_relay_keys_file);
  options.listen_token_ttl = absl::Seconds(absl::GetFlag(FLAGS_listen_token_ttl_s));
  options.runs.default_run_timeout = absl::Seconds(absl::GetFlag(FLAGS_default_run_timeout_s));
  options.runs.accept_timeout = absl::Milliseconds(absl::GetFlag(FLAGS_accept_timeout_ms));
  if (options.listen_token_ttl < absl::Seconds(60) || options.runs.accept_timeout < absl::Milliseconds(100) ||
      options.runs.default_run_timeout < absl::Seconds(1)) {
    return Fail("--listen_token_ttl_s >= 60, --accept_timeout_ms >= 100 and --default_run_timeout_s >= 1");
  }

  // Signals are taken synchronously by this thread; the server's threads never see them.
  tether::BlockTerminationSignals();
  const sigset_t signals = tether::TerminationSignals();

  auto server = tether::cloud::CloudServer::Start(std::move(options));
  if (!server.ok()) return Fail(std::string(server.status().message()));
  const std::string port_file = absl::GetFlag(FLAGS_port_file);
  if (!port_file.empty()) {
    if (absl::Status written = tether::WritePortFile(port_file, (*server)->port()); !written.ok()) {
      return Fail(std::string(written.message()));
    }
  }
  const std::string http_port_file = absl::GetFlag(FLAGS_http_port_file);
  if (!http_port_file.empty()) {
    if (absl::Status written = tether::WritePortFile(http_port_file, (*server)->http_port());
        !written.ok()) {
      return Fail(std::string(written.message()));
    }
  }
  const std::string metrics_port_file = absl::GetFlag(FLAGS_metrics_port_file);
  if (!metrics_port_file.empty()) {
    if (absl::Status written = tether::WritePortFile(metrics_port_file, (*server)->metrics_port());
        !written.ok()) {
      return Fail(std::string(written.message()));
    }
  }
  int received = 0;
  sigwait(&signals, &received);
  tether::LogInfo("cloud_signal", {{"signal", received == SIGTERM ? "SIGTERM" : "SIGINT"}});
  (*server)->Shutdown();
  tether::LogInfo("cloud_stopped");
  return 0;
}
