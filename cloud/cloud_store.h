// The cloud's RocksDB layout (DESIGN §4): one column family per record type, keys built with
// //common/store:key so they sort by their segments. Every multi-record change goes through one
// store::Batch, so it is applied entirely or not at all.
//
//   users            user_id                      -> proto::User
//   user_names       name                         -> user_id
//   tokens           SHA-256(secret)              -> storage::StoredToken
//   token_ids        token_id                     -> SHA-256(secret)
//   machines         machine_id                   -> proto::Machine (status fields not stored)
//   groups           group_id                     -> storage::StoredGroup
//   clusters         cluster_id                   -> proto::GatewayCluster
//   members          member_id                    -> storage::StoredMemberIndex
//   connections      connection_id                -> storage::StoredConnection
//   flows            flow_id, version             -> proto::Flow
//   names            kind, owner_user_id, name    -> id   (unique names per owner)
//   visible          user_id, kind, id            -> ""   (owned or shared objects of a user)
//   nonces           machine_id, nonce            -> timestamp (MachineAuth replay window)
//   runs             run_id                       -> storage::StoredRun
//   active_runs      run_id                       -> ""   (runs not in a terminal state)
//   run_events       run_id, seq                  -> proto::RunEvent
//   runs_by_owner    user_id, ~created_ms, run_id -> ""   (ListRuns, newest first)
//   run_requests     user_id, request_id          -> run_id (RunFlow idempotency)
#ifndef TETHER_CLOUD_CLOUD_STORE_H_
#define TETHER_CLOUD_CLOUD_STORE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/store/store.h"
#include "google/protobuf/message_lite.h"

namespace tether::cloud {

inline constexpr char kUsersCf[] = "users";
inline constexpr char kUserNamesCf[] = "user_names";
inline constexpr char kTokensCf[] = "tokens";
inline constexpr char kTokenIdsCf[] = "token_ids";
inline constexpr char kMachinesCf[] = "machines";
inline constexpr char kGroupsCf[] = "groups";
inline constexpr char kClustersCf[] = "clusters";
inline constexpr char kMembersCf[] = "members";
inline constexpr char kConnectionsCf[] = "connections";
inline constexpr char kFlowsCf[] = "flows";
inline constexpr char kNamesCf[] = "names";
inline constexpr char kVisibleCf[] = "visible";
inline constexpr char kNoncesCf[] = "nonces";
inline constexpr char kRunsCf[] = "runs";
inline constexpr char kActiveRunsCf[] = "active_runs";
inline constexpr char kRunEventsCf[] = "run_events";
inline constexpr char kRunsByOwnerCf[] = "runs_by_owner";
inline constexpr char kRunRequestsCf[] = "run_requests";

// The column families above, for store::Store::Open.
std::vector<std::string> CloudColumnFamilies();

// Opens (creating if missing) the cloud database in `dir`.
absl::StatusOr<std::unique_ptr<store::Store>> OpenCloudStore(const std::string& dir);

// Reads and parses one record. kNotFound if absent; kDataLoss if the bytes do not parse (a
// corrupt record is reported, not guessed around).
absl::Status GetRecord(const store::Store& db, absl::string_view column_family,
                       absl::string_view key, google::protobuf::MessageLite* record);

// Serializes a record for a Put (deterministically, so equal records are equal bytes).
std::string SerializeRecord(const google::protobuf::MessageLite& record);

// A fresh random id: `prefix` then 20 lower-case hex characters (80 bits).
absl::StatusOr<std::string> NewId(absl::string_view prefix);

// Object kinds, for the names and visible column families.
inline constexpr char kKindMachine[] = "machine";
inline constexpr char kKindGroup[] = "group";
inline constexpr char kKindCluster[] = "cluster";
inline constexpr char kKindConnection[] = "connection";
inline constexpr char kKindFlow[] = "flow";

// Keys of the index column families.
std::string NameKey(absl::string_view kind, absl::string_view owner_user_id, absl::string_view name);
std::string VisibleKey(absl::string_view user_id, absl::string_view kind, absl::string_view id);
std::string VisiblePrefix(absl::string_view user_id, absl::string_view kind);
std::string FlowKey(absl::string_view flow_id, uint32_t version);
std::string FlowPrefix(absl::string_view flow_id);
std::string RunEventKey(absl::string_view run_id, uint64_t seq);
std::string RunEventPrefix(absl::string_view run_id);
std::string RunsByOwnerKey(absl::string_view user_id, int64_t created_at_unix_ms,
                           absl::string_view run_id);
std::string RunsByOwnerPrefix(absl::string_view user_id);
std::string RunRequestKey(absl::string_view user_id, absl::string_view request_id);
std::string NonceKey(absl::string_view machine_id, absl::string_view nonce);

}  // namespace tether::cloud

#endif  // TETHER_CLOUD_CLOUD_STORE_H_
