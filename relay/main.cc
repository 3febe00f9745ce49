// relay_server: flags, signals and wiring for tether::relay::RelayServer (docs/RELAY.md).
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/base/log.h"
#include "common/base/service_main.h"
#include "common/crypto/key_file.h"
#include "common/crypto/sas_token.h"
#include "relay/relay_server.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:9350", "host:port to serve on (port 0 picks one)");
ABSL_FLAG(std::string, port_file, "", "write the bound port to this file once listening");
ABSL_FLAG(std::string, tls_cert, "", "TLS certificate chain (PEM)");
ABSL_FLAG(std::string, tls_key, "", "TLS private key (PEM, mode 0600)");
ABSL_FLAG(bool, insecure, false, "serve plaintext (loopback addresses only)");
ABSL_FLAG(int, threads, 0, "I/O threads (0 = one per core)");
ABSL_FLAG(std::string, sas_keys_file, "",
          "SAS keys, one 'NAME KEY RIGHTS' a line (mode 0600; rights Listen,Send,Manage)");
ABSL_FLAG(int64_t, ping_interval_ms, 20000, "WebSocket ping interval; 3 silent intervals drop");
ABSL_FLAG(int64_t, longpoll_idle_timeout_ms, 60000, "drop a long-poll listener after this idle");
ABSL_FLAG(int64_t, handshake_timeout_ms, 10000, "time to send a complete request (and TLS)");
ABSL_FLAG(int64_t, accept_timeout_ms, 30000, "time a listener has to accept a channel");
ABSL_FLAG(int64_t, drain_timeout_ms, 10000, "on SIGTERM, time channels get to finish");
ABSL_FLAG(int64_t, max_frame_bytes, 1 << 20, "largest message payload");
ABSL_FLAG(int64_t, channel_queue_bytes, 4 << 20, "per-channel queue bound");
ABSL_FLAG(int64_t, connection_queue_bytes, 16 << 20, "per-listener-connection queue bound");
ABSL_FLAG(int, max_listeners_per_entity, 25, "listeners allowed per entity");
ABSL_FLAG(bool, refuse_websocket_upgrade, false,
          "answer listener WebSocket upgrades with 400 (tests of the long-poll fallback)");

namespace {

using tether::LogError;
using tether::LogInfo;

int Fail(const std::string& message) {
  LogError("relay_start_failed", {{"error", message}});
  std::fprintf(stderr, "relay_server: %s\n", message.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Tether relay: rendezvous for listeners and senders (docs/RELAY.md)");
  std::vector<std::string> storage;
  std::vector<char*> args = tether::ExpandConfigFlag(argc, argv, &storage);
  absl::ParseCommandLine(static_cast<int>(args.size()), args.data());

  tether::relay::RelayOptions options;
  std::string listen = absl::GetFlag(FLAGS_listen);
  std::size_t colon = listen.rfind(':');
  int port = -1;
  if (colon == std::string::npos || !absl::SimpleAtoi(listen.substr(colon + 1), &port) ||
      port < 0 || port > 65535) {
    return Fail("--listen must be host:port");
  }
  options.listen_host = listen.substr(0, colon);
  if (options.listen_host.size() > 2 && options.listen_host.front() == '[') {
    options.listen_host = options.listen_host.substr(1, options.listen_host.size() - 2);
  }
  options.listen_port = static_cast<uint16_t>(port);
  options.tls_cert_file = absl::GetFlag(FLAGS_tls_cert);
  options.tls_key_file = absl::GetFlag(FLAGS_tls_key);
  options.insecure = absl::GetFlag(FLAGS_insecure);
  options.threads = absl::GetFlag(FLAGS_threads);
  options.ping_interval = absl::Milliseconds(absl::GetFlag(FLAGS_ping_interval_ms));
  options.longpoll_idle_timeout = absl::Milliseconds(absl::GetFlag(FLAGS_longpoll_idle_timeout_ms));
  options.handshake_timeout = absl::Milliseconds(absl::GetFlag(FLAGS_handshake_timeout_ms));
  options.accept_timeout = absl::Milliseconds(absl::GetFlag(FLAGS_accept_timeout_ms));
  options.drain_timeout = absl::Milliseconds(absl::GetFlag(FLAGS_drain_timeout_ms));
  options.refuse_websocket_upgrade = absl::GetFlag(FLAGS_refuse_websocket_upgrade);
  int64_t max_frame = absl::GetFlag(FLAGS_max_frame_bytes);
  int64_t channel_queue = absl::GetFlag(FLAGS_channel_queue_bytes);
  int64_t connection_queue = absl::GetFlag(FLAGS_connection_queue_bytes);
  int max_listeners = absl::GetFlag(FLAGS_max_listeners_per_entity);
  if (max_frame < 1024 || channel_queue < max_frame || connection_queue < channel_queue ||
      max_listeners < 1) {
    return Fail("need 1024 <= max_frame_bytes <= channel_queue_bytes <= connection_queue_bytes "
                "and max_listeners_per_entity >= 1");
  }
  if (options.ping_interval < absl::Milliseconds(10) ||
      options.handshake_timeout < absl::Milliseconds(10)) {
    return Fail("intervals and timeouts must be at least 10 ms");
  }
  options.max_frame_bytes = static_cast<std::size_t>(max_frame);
  options.channel_queue_bytes = static_cast<std::size_t>(channel_queue);
  options.connection_queue_bytes = static_cast<std::size_t>(connection_queue);
  options.max_listeners_per_entity = static_cast<std::size_t>(max_listeners);

  std::string keys_file = absl::GetFlag(FLAGS_sas_keys_file);
  if (keys_file.empty()) return Fail("--sas_keys_file is required");
  auto keys_text = tether::crypto::ReadSecretFile(keys_file);
  if (!keys_text.ok()) return Fail(std::string(keys_text.status().message()));
  auto ring = tether::crypto::SasKeyRing::Parse(keys_text->view());
  if (!ring.ok()) return Fail(absl::StrCat(keys_file, ": ", ring.status().message()));
  options.keys = std::make_shared<const tether::crypto::SasKeyRing>(*std::move(ring));

  // Signals are taken synchronously by this thread; the I/O threads never see them.
  tether::BlockTerminationSignals();
  const sigset_t signals = tether::TerminationSignals();

  auto server = tether::relay::RelayServer::Create(std::move(options));
  if (!server.ok()) return Fail(std::string(server.status().message()));
  (*server)->Start();
  std::string port_file = absl::GetFlag(FLAGS_port_file);
  if (!port_file.empty()) {
    if (absl::Status written = tether::WritePortFile(port_file, (*server)->port()); !written.ok()) {
      return Fail(std::string(written.message()));
    }
  }

  int received = 0;
  sigwait(&signals, &received);
  LogInfo("relay_signal", {{"signal", received == SIGTERM ? "SIGTERM" : "SIGINT"}});
  (*server)->Drain();
  (*server)->Wait();
  LogInfo("relay_stopped");
  return 0;
}
