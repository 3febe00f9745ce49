// An in-process cloud for tests: a real relay binary (RelayProcess), a CloudServer on loopback
// port 0 over a RocksDB in TEST_TMPDIR, helpers to make users, register machines with fresh keys
// and start stub agents for them, and a restart on the same data directory. Test-only.
#ifndef TETHER_CLOUD_TESTING_CLOUD_HARNESS_H_
#define TETHER_CLOUD_TESTING_CLOUD_HARNESS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "cloud/cloud_server.h"
#include "cloud/testing/stub_agent.h"
#include "common/crypto/ed25519.h"
#include "common/crypto/hpke.h"
#include "common/net/relay_process.h"
#include "common/proto/cloud.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace tether::cloud::testing {

struct TestMachine {
  std::string machine_id;
  std::string entity;
  crypto::X25519KeyPair x25519;
  crypto::Ed25519KeyPair ed25519;
  std::string cloud_signing_pub;
};

class CloudHarness {
 public:
  // `tweak` may adjust the run options (timeouts) before the cloud starts.
  static absl::StatusOr<std::unique_ptr<CloudHarness>> Start(
      std::function<void(RunManagerOptions&)> tweak = nullptr);
  ~CloudHarness();

  CloudServer& cloud() { return *cloud_; }
  net::testing::RelayProcess& relay() { return *relay_; }
  const std::string& data_dir() const { return data_dir_; }
  std::shared_ptr<grpc::Channel> channel() const { return channel_; }

  // A new user; returns its API token.
  absl::StatusOr<std::string> CreateUser(const std::string& name, bool admin = false);
  // A client context carrying `token` as the bearer token, with a 30 s deadline.
  static std::unique_ptr<grpc::ClientContext> Context(const std::string& token);

  // Registers a machine owned by `token`'s user, with freshly generated keys.
  absl::StatusOr<TestMachine> RegisterMachine(const std::string& token, const std::string& name);
  // A stub agent listening as `machine` (its Listen token comes from GetListenToken, signed).
  absl::StatusOr<std::unique_ptr<StubAgent>> StartAgent(const TestMachine& machine,
                                                        StubAgentOptions options = {});
  // A listen token for `machine`, fetched with a signed GetListenToken call.
  absl::StatusOr<std::string> ListenToken(const TestMachine& machine);

  // Stops the cloud cleanly and starts it again on the same data directory and port.
  absl::Status RestartCloud();

 private:
  CloudHarness() = default;
  absl::Status StartCloud(uint16_t port);

  std::unique_ptr<net::testing::RelayProcess> relay_;
  std::unique_ptr<CloudServer> cloud_;
  std::shared_ptr<grpc::Channel> channel_;
  std::string data_dir_;
  std::function<void(RunManagerOptions&)> tweak_;
};

}  // namespace tether::cloud::testing

#endif  // TETHER_CLOUD_TESTING_CLOUD_HARNESS_H_
