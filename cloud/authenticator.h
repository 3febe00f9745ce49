// Who is calling the cloud (DESIGN §4): users by bearer API token, machines and gateway members by
// an Ed25519-signed MachineAuth with a timestamp and a nonce that may be used once.
#ifndef TETHER_CLOUD_AUTHENTICATOR_H_
#define TETHER_CLOUD_AUTHENTICATOR_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/proto/cloud.pb.h"
#include "common/proto/crypto.pb.h"
#include "common/store/store.h"
#include "google/protobuf/message.h"

namespace tether::cloud {

// A user authenticated by an API token.
struct Caller {
  proto::User user;
  std::string token_id;  // which of the user's tokens was used
};

// A machine or gateway member authenticated by its signature.
struct SignedCaller {
  enum class Kind { kMachine, kClusterMember };
  Kind kind = Kind::kMachine;
  std::string id;          // machine id or member id
  std::string cluster_id;  // for members: their cluster
  std::string owner_user_id;
};

// The prefix of every API token secret.
inline constexpr absl::string_view kApiTokenPrefix = "tt_";

// Thread-safe. Reads users, tokens, machines and clusters from `db`; records nonces in it.
class Authenticator {
 public:
  // Loads the nonces still inside the replay window, so a restart does not reopen it.
  static absl::StatusOr<std::unique_ptr<Authenticator>> Create(store::Store* db,
                                                               absl::Duration window);

  // `authorization` is the gRPC metadata value, "Bearer <token>". kUnauthenticated with a
  // one-line reason (missing, malformed, unknown or revoked token).
  absl::StatusOr<Caller> AuthenticateUser(absl::string_view authorization) const;

  // Verifies request.auth for a call to `full_method`. kUnauthenticated for a missing or
  // malformed auth, an unknown machine, a timestamp outside the window ("stale timestamp"), a bad
  // signature or a nonce already seen ("replayed request"). A successful check records the nonce
  // (synced) before returning, so the same request can never succeed twice.
  absl::StatusOr<SignedCaller> AuthenticateSigned(absl::string_view full_method,
                                                  const google::protobuf::Message& request,
                                                  const proto::MachineAuth& auth);

  // A new token secret and its SHA-256 (the stored key).
  static absl::StatusOr<std::pair<std::string, std::string>> NewTokenSecret();

 private:
  Authenticator(store::Store* db, absl::Duration window) : db_(db), window_(window) {}

  absl::Status RecordNonce(const std::string& machine_id, const std::string& nonce,
                           int64_t timestamp_ms);

  store::Store* const db_;
  const absl::Duration window_;

  absl::Mutex mu_;
  // (machine_id, nonce) pairs seen inside the window, and their expiry order.
  absl::flat_hash_set<std::string> seen_ ABSL_GUARDED_BY(mu_);
  std::deque<std::pair<int64_t, std::string>> expiry_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tether::cloud

#endif  // TETHER_CLOUD_AUTHENTICATOR_H_
