// Test-only: runs the real relay (//relay:relay_server, a data dependency of the test) as a child
// process on 127.0.0.1, with a keys file in TEST_TMPDIR and the port read from --port_file.
#ifndef TETHER_COMMON_NET_RELAY_PROCESS_H_
#define TETHER_COMMON_NET_RELAY_PROCESS_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace tether::net::testing {

// Keys of the test relay: one per right.
struct TestKey {
  std::string name;
  std::string key;
};
extern const TestKey kListenKey;  // Listen
extern const TestKey kSendKey;    // Send
extern const TestKey kManageKey;  // Manage

// A SAS token for `/$hc/<entity>` signed with `key`, expiring `lifetime` from now.
std::string MakeToken(const TestKey& key, const std::string& entity, absl::Duration lifetime);

class RelayProcess {
 public:
  // Starts relay/relay_server with --listen=127.0.0.1:<port> (0: any) --port_file --sas_keys_file
  // and `flags` (e.g. "--insecure", "--ping_interval_ms=200"), and waits up to 20 s for the port
  // file.
  static absl::StatusOr<std::unique_ptr<RelayProcess>> Start(std::vector<std::string> flags,
                                                             uint16_t port = 0);
  // SIGTERM, then SIGKILL if it has not exited within 10 s.
  ~RelayProcess();

  uint16_t port() const { return port_; }
  // "http://127.0.0.1:<port>" (or https:// when started with TLS flags).
  std::string url() const;

  // SIGKILL and reap: the relay vanishes without closing anything gracefully.
  void Kill();
  // Starts the relay again on the same port, with the same flags or with `flags` (the keys file
  // is kept).
  absl::Status Restart();
  absl::Status Restart(std::vector<std::string> flags);
  // SIGSTOP / SIGCONT: the relay keeps its sockets but answers nothing (a half-dead peer).
  void Pause();
  void Resume();

 private:
  RelayProcess(std::vector<std::string> flags, std::string keys_flag)
      : flags_(std::move(flags)), keys_flag_(std::move(keys_flag)) {}
  absl::Status Spawn(uint16_t port);

  std::vector<std::string> flags_;
  const std::string keys_flag_;
  pid_t pid_ = -1;
  uint16_t port_ = 0;
};

}  // namespace tether::net::testing

#endif  // TETHER_COMMON_NET_RELAY_PROCESS_H_
