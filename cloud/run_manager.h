// Runs (DESIGN §4): the durable run queue and the dispatcher.
//
// Every run lives in RocksDB; each state transition is one batch (the run record, a RunEvent, the
// index entries) committed with sync through a GroupCommitWriter, so many runs' transitions share
// one fsync, and no transition is acknowledged before it is durable.
//
//   queued -> dispatching -> running -> succeeded | failed | cancelled | timed_out
//      ^          |
//      +----------+  (Busy, channel lost before acceptance, agent error)
//
// Dispatch: for every idle machine (or gateway-cluster slot) with work, a link thread opens a
// sender channel to the machine's relay entity, marks the run dispatching, and sends the
// cloud-signed JobRequest. The run is running only after the agent's JobAccepted. One run at a time
// per machine. Priority HIGH before NORMAL, FIFO within a priority; a group run goes to any idle
// online member. The job id is fixed when the run is created, so redeliveries carry the same id and
// the agent's ledger runs it at most once. Once a JobRequest may have reached a machine
// (dispatching, running), the run is pinned to that machine: it is re-sent or queried there only,
// never handed to another group member, until that machine says it does not hold it.
//
// Failures: offline machine (relay 503) -> stays queued, machine retried with backoff; channel lost
// after acceptance -> reconnect and QueryJob; cloud restart (even SIGKILL) -> Create() reloads
// every non-terminal run from its last durable state and resumes it.
//
// Thread-safe. Threads: one scheduler, one per active link (a link stays for `link_idle` after its
// last run, keeping its channel open for the next one).
#ifndef TETHER_CLOUD_RUN_MANAGER_H_
#define TETHER_CLOUD_RUN_MANAGER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cloud/authenticator.h"
#include "cloud/cloud_service.h"
#include "cloud/storage.pb.h"
#include "common/crypto/sas_token.h"
#include "common/crypto/secret.h"
#include "common/proto/cloud.pb.h"
#include "common/proto/relay.pb.h"
#include "common/store/group_commit.h"
#include "common/store/store.h"

namespace tether::cloud {

struct RunManagerOptions {
  // The relay as the cloud reaches it (http(s):// or ws(s)://), and the CA to verify it.
  std::string relay_url;
  std::string relay_ca_file;
  // Relay keys: Send (channels to agents) and Manage (presence).
  crypto::SasKey send_key;
  crypto::SasKey manage_key;
  // The cloud's Ed25519 job-signing key.
  crypto::SecretBytes signing_private_key;
  std::string signing_key_id;

  absl::Duration default_run_timeout = absl::Hours(1);
  absl::Duration max_run_timeout = absl::Hours(24);
  // How long a JobRequest stays valid on the agent after it was signed.
  absl::Duration job_request_ttl = absl::Minutes(10);
  // How long the dispatcher waits for JobAccepted / Busy / JobRejected.
  absl::Duration accept_timeout = absl::Seconds(30);
  // After a run's timeout, how long the agent gets to report before the cloud cancels it, and
  // again before the cloud gives up and marks it timed out.
  absl::Duration timeout_grace = absl::Seconds(30);
  // A link with no run for this long closes its channel and ends its thread.
  absl::Duration link_idle = absl::Seconds(30);
  // Retry delays for an offline, busy or failing machine (exponential, capped).
  absl::Duration retry_min = absl::Milliseconds(500);
  absl::Duration retry_max = absl::Seconds(5);
  // How long a relay presence answer is reused.
  absl::Duration presence_ttl = absl::Seconds(2);
  // Links (machines and cluster slots being served at once).
  int max_links = 512;
};

// Counters for /metrics.
struct RunManagerStats {
  uint64_t runs_created = 0;
  uint64_t jobs_sent = 0;
  uint64_t jobs_accepted = 0;
  uint64_t busy_answers = 0;
  uint64_t rejections = 0;
  uint64_t channel_failures = 0;
  uint64_t runs_finished = 0;
  uint64_t presence_fetches = 0;  // presence questions sent to the relay (answered or not)
  int64_t runs_active = 0;
  int64_t links = 0;
};

class RunManager : public MachineStatusSource {
 public:
  // Loads every non-terminal run and starts the scheduler. `db`, `writer` and `service` must
  // outlive the manager.
  static absl::StatusOr<std::unique_ptr<RunManager>> Create(store::Store* db,
                                                            store::GroupCommitWriter* writer,
                                                            CloudService* service,
                                                            RunManagerOptions options);
  ~RunManager() override;

  // Stops dispatching: links finish the message they are handling, close their channels and end.
  // Runs keep their durable state and resume on the next Create(). Idempotent.
  void Stop();

  // ---- The RunService API (errors as in cloud.proto)
  absl::StatusOr<proto::RunFlowResponse> RunFlow(const Caller& caller,
                                                 const proto::RunFlowRequest& request);
  absl::StatusOr<proto::Run> GetRun(const Caller& caller, const proto::GetRunRequest& request);
  absl::StatusOr<proto::Run> CancelRun(const Caller& caller, const proto::CancelRunRequest& request);
  absl::StatusOr<proto::ListRunsResponse> ListRuns(const Caller& caller,
                                                   const proto::ListRunsRequest& request);
  // Calls `emit` for each event after request.since_seq, as they happen, until the run is terminal
  // and all its events were emitted (OK), `emit` returns false or `cancelled` returns true
  // (kCancelled), or the manager stops (kUnavailable).
  absl::Status WatchRun(const Caller& caller, const proto::WatchRunRequest& request,
                        const std::function<bool(const proto::RunEvent&)>& emit,
                        const std::function<bool()>& cancelled);

  // ---- MachineStatusSource
  proto::MachineStatus EntityStatus(const std::string& entity) override;
  std::string CurrentRun(const std::string& machine_id) override;
  void TargetsChanged() override;
  void EntityComingOnline(const std::string& entity) override;

  RunManagerStats stats() const;

 private:
  struct Link;
  struct Slot;
  struct ActiveRun;
  // Queue order: resumed runs, then HIGH, then NORMAL; FIFO (StoredRun.queue_order) within each.
  using QueueKey = std::tuple<int, uint64_t, std::string>;

  RunManager(store::Store* db, store::GroupCommitWriter* writer, CloudService* service,
             RunManagerOptions options);

  absl::Status Load();
  void SchedulerLoop();
  void ScheduleLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool TryAssignLocked(Slot& slot, const std::vector<std::string>& queue_keys)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EnqueueLocked(ActiveRun& run) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DequeueLocked(ActiveRun& run) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Slot& SlotLocked(const std::string& slot_key, const std::string& entity,
                   const std::string& machine_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StartLinkLocked(Slot& slot) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void LinkLoop(Slot* slot);
  void ServeRun(Slot* slot, Link& link, const std::string& run_id);
  void BackoffLocked(Slot& slot, absl::string_view why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Applies `change` to the run's record, appends `job_events` and (if `state_event`) a
  // state_changed RunEvent, and queues the batch on the group-commit writer. Batches are applied
  // in the order they were queued, so a later transition is never durable before an earlier one.
  // With `wait`, blocks until the batch is durable and returns the write's status; without, the
  // dispatcher goes on at once (used where a crash before the write is harmless: the run resumes
  // from its previous durable state and the agent's ledger makes a redelivery idempotent).
  // Readers (GetRun, WatchRun) only ever see durable state. kNotFound if the run is no longer
  // active (it ended meanwhile, e.g. cancelled).
  absl::Status Transition(const std::string& run_id,
                          const std::function<void(storage::StoredRun&)>& change,
                          bool state_event = true,
                          const std::vector<proto::JobEvent>& job_events = {}, bool wait = true);
  // Queues `batch`; once durable, `durable_run` (if set) becomes the run's readable state.
  void CommitLocked(store::Batch batch, std::shared_ptr<struct CommitWaiter> waiter,
                    std::optional<proto::Run> durable_run) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::StatusOr<storage::StoredRun> LoadRun(const Caller& caller, const std::string& run_id);
  absl::StatusOr<std::string> BuildSignedJob(const storage::StoredRun& run,
                                             const std::string& machine_id);
  absl::StatusOr<std::string> BuildSignedControl(const proto::ControlRequest& control);
  std::string SendToken(const std::string& entity) const;
  absl::StatusOr<proto::ListenerPresence> FetchPresence(const std::string& entity) const;

  store::Store* const db_;
  store::GroupCommitWriter* const writer_;
  CloudService* const service_;
  const RunManagerOptions options_;

  mutable absl::Mutex mu_;
  absl::CondVar scheduler_cv_;
  absl::CondVar events_cv_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool dirty_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t last_queue_order_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<std::string, std::unique_ptr<ActiveRun>> runs_ ABSL_GUARDED_BY(mu_);
  // Queue key ("m:<machine>", "g:<group>", "c:<cluster>") -> queued runs in dispatch order.
  std::map<std::string, std::set<QueueKey>> queues_ ABSL_GUARDED_BY(mu_);
  // Slot key ("m:<machine>" or "c:<cluster>#<n>") -> its link state.
  std::map<std::string, std::unique_ptr<Slot>> slots_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::pair<int, absl::Time>> presence_ ABSL_GUARDED_BY(mu_);
  // Cluster entity -> the member ids listening on it, and when the relay was last asked.
  std::map<std::string, std::vector<std::string>> cluster_members_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, absl::Time> cluster_members_fetched_ ABSL_GUARDED_BY(mu_);
  RunManagerStats stats_ ABSL_GUARDED_BY(mu_);
  std::thread scheduler_;
};

}  // namespace tether::cloud

#endif  // TETHER_CLOUD_RUN_MANAGER_H_
