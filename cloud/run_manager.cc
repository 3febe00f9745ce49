#include "cloud/run_manager.h"

#include <algorithm>
#include <random>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "cloud/cloud_store.h"
#include "common/base/clock.h"
#include "common/base/hex.h"
#include "common/base/log.h"
#include "common/base/status_macros.h"
#include "common/crypto/digest.h"
#include "common/crypto/ed25519.h"
#include "common/flow/flow_definition.h"
#include "common/net/relay_presence.h"
#include "common/net/relay_sender.h"
#include "common/proto/job.pb.h"
#include "common/proto/signing_input.h"
#include "common/store/key.h"

namespace tether::cloud {

struct CommitWaiter {
  absl::Notification done;
  absl::Status status;
};

struct RunManager::ActiveRun {
  storage::StoredRun stored;  // the dispatcher's view, possibly ahead of the disk
  proto::Run durable;         // what is on disk: what readers see
  bool queued = false;
  std::string queue_name;  // while queued
  QueueKey queue_key;      // while queued
  std::string slot_key;    // while a link serves it
};

struct RunManager::Slot {
  std::string key;         // "m:<machine>" or "c:<cluster>#<n>"
  std::string entity;
  std::string machine_id;  // empty for cluster slots
  std::string member_id;   // cluster slots: the gateway member (relay listener id) it reaches
  std::string group_id;    // the machine's group, as last read
  bool group_known = false;
  std::string run_id;      // the run assigned to the link, if any
  bool link_running = false;
  std::thread thread;
  absl::Time retry_after = absl::InfinitePast();
  int failures = 0;
};

struct RunManager::Link {
  std::unique_ptr<net::SenderChannel> channel;
};

namespace {

constexpr absl::Duration kReceivePoll = absl::Milliseconds(250);
constexpr absl::Duration kPresenceTimeout = absl::Seconds(2);
constexpr size_t kRequestIdMax = 128;
// Run events read from the store per round of WatchRun.
constexpr size_t kWatchBatch = 500;

int64_t NowMs() { return absl::ToUnixMillis(WallNow()); }

bool IsTerminal(proto::RunState state) {
  return state == proto::RUN_STATE_SUCCEEDED || state == proto::RUN_STATE_FAILED ||
         state == proto::RUN_STATE_CANCELLED || state == proto::RUN_STATE_TIMED_OUT;
}

proto::RunState RunStateOf(proto::JobState state) {
  switch (state) {
    case proto::JOB_STATE_SUCCEEDED: return proto::RUN_STATE_SUCCEEDED;
    case proto::JOB_STATE_CANCELLED: return proto::RUN_STATE_CANCELLED;
    case proto::JOB_STATE_TIMED_OUT: return proto::RUN_STATE_TIMED_OUT;
    default: return proto::RUN_STATE_FAILED;
  }
}

bool IsTerminalJobState(proto::JobState state) {
  return state == proto::JOB_STATE_SUCCEEDED || state == proto::JOB_STATE_FAILED ||
         state == proto::JOB_STATE_CANCELLED || state == proto::JOB_STATE_TIMED_OUT;
}

// The queue a run waits in: its pinned machine once a JobRequest may have reached it.
std::string QueueNameOf(const storage::StoredRun& stored) {
  const proto::Run& run = stored.run();
  switch (run.target().kind_case()) {
    case proto::ConnectionTarget::kMachineId: return absl::StrCat("m:", run.target().machine_id());
    case proto::ConnectionTarget::kGroupId:
      if (stored.maybe_delivered() && !run.machine_id().empty()) {
        return absl::StrCat("m:", run.machine_id());
      }
      return absl::StrCat("g:", run.target().group_id());
    case proto::ConnectionTarget::kClusterId:
      // Pinned to the member that may hold it, like a group run to its machine.
      if (stored.maybe_delivered() && !run.machine_id().empty()) {
        return absl::StrCat("c:", run.target().cluster_id(), "@", run.machine_id());
      }
      return absl::StrCat("c:", run.target().cluster_id());
    default: return "";
  }
}

int PriorityRank(const proto::Run& run) {
  if (run.state() == proto::RUN_STATE_RUNNING) return 0;  // resume before anything new
  return run.priority() == proto::RUN_PRIORITY_HIGH ? 1 : 2;
}

std::string MachineEntity(absl::string_view machine_id) {
  return absl::StrCat("hc/machine-", machine_id);
}

// The relay client libraries name entities without the "hc/" of the API's entity field.
std::string RelayName(absl::string_view entity) {
  absl::ConsumePrefix(&entity, "hc/");
  return std::string(entity);
}

// Issue time, expiry and a fresh nonce: what makes a signed request unreplayable.
template <typename SignedRequest>
absl::Status StampForSigning(SignedRequest& request, absl::Duration ttl) {
  const absl::Time now = WallNow();
  request.set_issued_at_unix_ms(absl::ToUnixMillis(now));
  request.set_expires_at_unix_ms(absl::ToUnixMillis(now + ttl));
  ASSIGN_OR_RETURN(std::string nonce, crypto::RandomBytes(16));
  request.set_nonce(std::move(nonce));
  return absl::OkStatus();
}

// A terminal state as a user reads it in state_detail.
absl::string_view StateWord(proto::RunState state) {
  switch (state) {
    case proto::RUN_STATE_SUCCEEDED: return "succeeded";
    case proto::RUN_STATE_FAILED: return "failed";
    case proto::RUN_STATE_CANCELLED: return "cancelled";
    case proto::RUN_STATE_TIMED_OUT: return "timed out";
    default: return "finished";
  }
}

void SetError(proto::Run& run, absl::string_view message) {
  run.mutable_error()->set_message(std::string(message));
}

}  // namespace

RunManager::RunManager(store::Store* db, store::GroupCommitWriter* writer, CloudService* service,
                       RunManagerOptions options)
    : db_(db), writer_(writer), service_(service), options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<RunManager>> RunManager::Create(store::Store* db,
                                                               store::GroupCommitWriter* writer,
                                                               CloudService* service,
                                                               RunManagerOptions options) {
  std::unique_ptr<RunManager> manager(new RunManager(db, writer, service, std::move(options)));
  RETURN_IF_ERROR(manager->Load());
  manager->scheduler_ = std::thread([m = manager.get()] { m->SchedulerLoop(); });
  return manager;
}

RunManager::~RunManager() { Stop(); }

void RunManager::Stop() {
  std::vector<std::thread> threads;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ && !scheduler_.joinable()) return;
    stopping_ = true;
    scheduler_cv_.SignalAll();
    events_cv_.SignalAll();
  }
  if (scheduler_.joinable()) scheduler_.join();
  {
    absl::MutexLock lock(&mu_);
    for (auto& [key, slot] : slots_) {
      if (slot->thread.joinable()) threads.push_back(std::move(slot->thread));
    }
  }
  for (std::thread& t : threads) t.join();
}

absl::Status RunManager::Load() {
  std::vector<std::string> ids;
  RETURN_IF_ERROR(db_->Scan(kActiveRunsCf, "", "", [&](std::string_view key, std::string_view) {
    ids.emplace_back(key);
    return true;
  }));
  absl::MutexLock lock(&mu_);
  for (const std::string& id : ids) {
    auto run = std::make_unique<ActiveRun>();
    RETURN_IF_ERROR(GetRecord(*db_, kRunsCf, id, &run->stored));
    if (IsTerminal(run->stored.run().state())) continue;
    run->durable = run->stored.run();
    last_queue_order_ = std::max(last_queue_order_, run->stored.queue_order());
    ActiveRun& ref = *run;
    runs_[id] = std::move(run);
    EnqueueLocked(ref);
  }
  stats_.runs_active = static_cast<int64_t>(runs_.size());
  if (!ids.empty()) LogInfo("runs_resumed", {{"count", absl::StrCat(runs_.size())}});
  dirty_ = true;
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// Queues and scheduling

void RunManager::EnqueueLocked(ActiveRun& run) {
  if (run.queued) return;
  run.queue_name = QueueNameOf(run.stored);
  run.queue_key = QueueKey(PriorityRank(run.stored.run()), run.stored.queue_order(),
                           run.stored.run().run_id());
  queues_[run.queue_name].insert(run.queue_key);
  run.queued = true;
  dirty_ = true;
  scheduler_cv_.Signal();
}

void RunManager::DequeueLocked(ActiveRun& run) {
  if (!run.queued) return;
  auto it = queues_.find(run.queue_name);
  if (it != queues_.end()) {
    it->second.erase(run.queue_key);
    if (it->second.empty()) queues_.erase(it);
  }
  run.queued = false;
}

RunManager::Slot& RunManager::SlotLocked(const std::string& slot_key, const std::string& entity,
                                         const std::string& machine_id) {
  std::unique_ptr<Slot>& slot = slots_[slot_key];
  if (slot == nullptr) {
    slot = std::make_unique<Slot>();
    slot->key = slot_key;
    slot->entity = entity;
    slot->machine_id = machine_id;
  }
  return *slot;
}

void RunManager::BackoffLocked(Slot& slot, absl::string_view why) {
  ++slot.failures;
  absl::Duration delay = options_.retry_min * (1 << std::min(slot.failures - 1, 16));
  delay = std::min(delay, options_.retry_max);
  static thread_local std::mt19937_64 random(std::random_device{}());
  std::uniform_real_distribution<double> jitter(0.5, 1.0);
  delay = delay * jitter(random);
  slot.retry_after = absl::Now() + delay;
  LogInfo("dispatch_backoff", {{"slot", slot.key},
                               {"retry_in_ms", absl::StrCat(absl::ToInt64Milliseconds(delay))},
                               {"why", std::string(why)}});
}

bool RunManager::TryAssignLocked(Slot& slot, const std::vector<std::string>& queue_names) {
  if (stopping_ || !slot.run_id.empty() || absl::Now() < slot.retry_after) return false;
  std::set<QueueKey>* best_queue = nullptr;
  std::string best_name;
  for (const std::string& name : queue_names) {
    auto it = queues_.find(name);
    if (it == queues_.end() || it->second.empty()) continue;
    if (best_queue == nullptr || *it->second.begin() < *best_queue->begin()) {
      best_queue = &it->second;
      best_name = name;
    }
  }
  if (best_queue == nullptr) return false;
  if (!slot.link_running && stats_.links >= options_.max_links) return false;
  const std::string run_id = std::get<2>(*best_queue->begin());
  ActiveRun& run = *runs_[run_id];
  DequeueLocked(run);
  run.slot_key = slot.key;
  slot.run_id = run_id;
  if (!slot.link_running) StartLinkLocked(slot);
  return true;
}

void RunManager::StartLinkLocked(Slot& slot) {
  if (slot.thread.joinable()) slot.thread.join();  // an ended link: its thread has returned
  slot.link_running = true;
  ++stats_.links;
  slot.thread = std::thread([this, s = &slot] { LinkLoop(s); });
}

void RunManager::ScheduleLocked() {
  std::vector<std::string> names;
  for (const auto& [name, queue] : queues_) {
    if (!queue.empty()) names.push_back(name);
  }
  for (const std::string& name : names) {
    if (queues_.find(name) == queues_.end()) continue;
    const std::string id = name.substr(2);
    if (name[0] == 'm') {
      Slot& slot = SlotLocked(name, MachineEntity(id), id);
      if (!slot.group_known) {
        proto::Machine machine;
        if (GetRecord(*db_, kMachinesCf, id, &machine).ok()) slot.group_id = machine.group_id();
        slot.group_known = true;
      }
      std::vector<std::string> serves = {name};
      if (!slot.group_id.empty()) serves.push_back(absl::StrCat("g:", slot.group_id));
      TryAssignLocked(slot, serves);
    } else if (name[0] == 'g') {
      storage::StoredGroup group;
      absl::Status status = GetRecord(*db_, kGroupsCf, id, &group);
      if (!status.ok()) continue;
      for (const std::string& machine_id : group.group().machine_ids()) {
        const std::string slot_key = absl::StrCat("m:", machine_id);
        Slot& slot = SlotLocked(slot_key, MachineEntity(machine_id), machine_id);
        slot.group_id = id;
        slot.group_known = true;
        TryAssignLocked(slot, {slot_key, name});
      }
    } else if (name[0] == 'c') {
      // One slot per member listening on the cluster's entity (relay presence lists them by
      // member id); each serves the cluster's queue and the runs pinned to it.
      const std::string cluster_id = id.substr(0, id.find('@'));
      const std::string entity = absl::StrCat("hc/cluster-", cluster_id);
      auto presence = cluster_members_.find(entity);
      if (presence == cluster_members_.end()) continue;  // the scheduler asks the relay first
      for (const std::string& member_id : presence->second) {
        Slot& slot = SlotLocked(absl::StrCat("c:", cluster_id, "#", member_id), entity, "");
        slot.member_id = member_id;
        TryAssignLocked(slot, {absl::StrCat("c:", cluster_id), absl::StrCat("c:", cluster_id, "@", member_id)});
      }
    }
  }
}

void RunManager::SchedulerLoop() {
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    dirty_ = false;
    // Clusters with queued runs: which members listen now (asked outside the lock).
    std::set<std::string> stale;
    for (const auto& [name, queue] : queues_) {
      if (name[0] != 'c' || queue.empty()) continue;
      const std::string entity = absl::StrCat("hc/cluster-", name.substr(2, name.find('@') - 2));
      auto fetched = cluster_members_fetched_.find(entity);
      if (fetched == cluster_members_fetched_.end() ||
          absl::Now() - fetched->second > options_.presence_ttl) {
        stale.insert(entity);
      }
    }
    if (!stale.empty()) {
      mu_.Unlock();
      std::map<std::string, std::vector<std::string>> answers;
      for (const std::string& entity : stale) {
        absl::StatusOr<proto::ListenerPresence> presence = FetchPresence(entity);
        if (presence.ok()) {
          answers[entity].assign(presence->listener_ids().begin(), presence->listener_ids().end());
        }
      }
      mu_.Lock();
      for (const std::string& entity : stale) {
        cluster_members_fetched_[entity] = absl::Now();
        auto answer = answers.find(entity);
        if (answer != answers.end()) cluster_members_[entity] = answer->second;
      }
      if (stopping_) break;
    }
    ScheduleLocked();
    // Wake at the earliest retry of a slot with work, or when something changes.
    absl::Time wake = absl::Now() + std::min(absl::Seconds(1), options_.presence_ttl);
    for (const auto& [key, slot] : slots_) {
      if (slot->run_id.empty() && slot->retry_after > absl::Now()) {
        wake = std::min(wake, slot->retry_after);
      }
    }
    while (!stopping_ && !dirty_ && absl::Now() < wake) {
      scheduler_cv_.WaitWithDeadline(&mu_, wake);
    }
  }
}

void RunManager::TargetsChanged() {
  absl::MutexLock lock(&mu_);
  for (auto& [key, slot] : slots_) slot->group_known = false;
  dirty_ = true;
  scheduler_cv_.Signal();
}

// ---------------------------------------------------------------------------------------------
// Durable transitions

void RunManager::CommitLocked(store::Batch batch, std::shared_ptr<CommitWaiter> waiter,
                              std::optional<proto::Run> durable_run) {
  writer_->CommitAsync(std::move(batch), [this, waiter, durable_run = std::move(durable_run)](
                                             absl::Status status) {
    {
      absl::MutexLock lock(&mu_);
      if (status.ok() && durable_run.has_value()) {
        auto it = runs_.find(durable_run->run_id());
        if (it != runs_.end()) it->second->durable = *durable_run;
      }
      if (!status.ok()) {
        LogError("run_write_failed",
                 {{"run_id", durable_run ? durable_run->run_id() : ""}, {"error", status.ToString()}});
      }
      events_cv_.SignalAll();
    }
    if (waiter != nullptr) {
      waiter->status = status;
      waiter->done.Notify();
    }
  });
}

absl::Status RunManager::Transition(const std::string& run_id,
                                    const std::function<void(storage::StoredRun&)>& change,
                                    bool state_event, const std::vector<proto::JobEvent>& job_events,
                                    bool wait) {
  std::shared_ptr<CommitWaiter> waiter = wait ? std::make_shared<CommitWaiter>() : nullptr;
  {
    absl::MutexLock lock(&mu_);
    auto it = runs_.find(run_id);
    if (it == runs_.end()) return absl::NotFoundError(absl::StrCat("run ", run_id, " is not active"));
    storage::StoredRun& stored = it->second->stored;
    change(stored);
    store::Batch batch;
    const int64_t now = NowMs();
    for (const proto::JobEvent& job_event : job_events) {
      proto::RunEvent event;
      event.set_run_id(run_id);
      event.set_seq(stored.last_event_seq() + 1);
      event.set_timestamp_unix_ms(now);
      *event.mutable_job_event() = job_event;
      stored.set_last_event_seq(event.seq());
      stored.set_last_job_event_seq(std::max(stored.last_job_event_seq(), job_event.seq()));
      batch.Put(kRunEventsCf, RunEventKey(run_id, event.seq()), SerializeRecord(event));
    }
    if (state_event) {
      proto::RunEvent event;
      event.set_run_id(run_id);
      event.set_seq(stored.last_event_seq() + 1);
      event.set_timestamp_unix_ms(now);
      *event.mutable_state_changed() = stored.run();
      stored.set_last_event_seq(event.seq());
      batch.Put(kRunEventsCf, RunEventKey(run_id, event.seq()), SerializeRecord(event));
    }
    batch.Put(kRunsCf, run_id, SerializeRecord(stored));
    std::optional<proto::Run> durable_run = stored.run();
    if (IsTerminal(stored.run().state())) {
      batch.Delete(kActiveRunsCf, run_id);
      DequeueLocked(*it->second);
      runs_.erase(it);
      ++stats_.runs_finished;
      stats_.runs_active = static_cast<int64_t>(runs_.size());
      durable_run.reset();  // no longer in memory: readers read the store
    }
    CommitLocked(std::move(batch), waiter, std::move(durable_run));
  }
  if (waiter == nullptr) return absl::OkStatus();
  waiter->done.WaitForNotification();
  return waiter->status;
}

// ---------------------------------------------------------------------------------------------
// Signing

std::string RunManager::SendToken(const std::string& entity) const {
  return crypto::CreateSasToken(absl::StrCat("/$", entity), options_.send_key.name,
                                options_.send_key.key,
                                absl::ToUnixSeconds(WallNow() + absl::Minutes(10)));
}

absl::StatusOr<std::string> RunManager::BuildSignedJob(const storage::StoredRun& stored,
                                                       const std::string& machine_id) {
  const proto::Run& run = stored.run();
  storage::StoredConnection connection;
  absl::Status status = GetRecord(*db_, kConnectionsCf, run.connection_id(), &connection);
  if (absl::IsNotFound(status)) {
    return absl::FailedPreconditionError(
        absl::StrCat("connection \"", run.connection_id(), "\" was deleted"));
  }
  RETURN_IF_ERROR(status);
  proto::JobRequest job;
  job.set_job_id(run.job_id());
  job.set_run_id(run.run_id());
  proto::JobTarget* target = job.mutable_target();
  target->set_machine_id(machine_id);
  if (run.target().has_group_id()) target->set_group_id(run.target().group_id());
  if (run.target().has_cluster_id()) target->set_cluster_id(run.target().cluster_id());
  job.set_flow_id(run.flow_id());
  job.set_flow_version(run.flow_version());
  job.set_flow_definition_json(stored.flow_definition_json());
  for (const auto& [name, value] : run.inputs()) (*job.mutable_inputs())[name] = value;
  *job.mutable_credentials() = connection.envelope();
  job.set_connection_id(run.connection_id());
  job.set_username(connection.connection().username());
  job.set_mode(connection.connection().mode());
  job.set_timeout_ms(run.timeout_ms());
  RETURN_IF_ERROR(StampForSigning(job, options_.job_request_ttl));
  proto::ChannelMessage message;
  proto::SignedJobRequest* signed_job = message.mutable_job_request();
  signed_job->set_job_request(SerializeRecord(job));
  ASSIGN_OR_RETURN(*signed_job->mutable_signature(),
                   crypto::Ed25519Sign(options_.signing_private_key,
                                       proto::JobRequestSigningInput(signed_job->job_request())));
  signed_job->set_key_id(options_.signing_key_id);
  return message.SerializeAsString();
}

absl::StatusOr<std::string> RunManager::BuildSignedControl(const proto::ControlRequest& control_in) {
  proto::ControlRequest control = control_in;
  RETURN_IF_ERROR(StampForSigning(control, options_.job_request_ttl));
  proto::ChannelMessage message;
  proto::SignedControl* signed_control = message.mutable_control();
  signed_control->set_control_request(SerializeRecord(control));
  ASSIGN_OR_RETURN(*signed_control->mutable_signature(),
                   crypto::Ed25519Sign(options_.signing_private_key,
                                       proto::ControlRequestSigningInput(
                                           signed_control->control_request())));
  signed_control->set_key_id(options_.signing_key_id);
  return message.SerializeAsString();
}

// ---------------------------------------------------------------------------------------------
// Links

void RunManager::LinkLoop(Slot* slot) {
  Link link;
  struct WaitFor {
    RunManager* manager;
    Slot* slot;
  } wait_for{this, slot};
  const absl::Condition has_work(
      +[](WaitFor* w) ABSL_NO_THREAD_SAFETY_ANALYSIS {
        return w->manager->stopping_ || !w->slot->run_id.empty();
      },
      &wait_for);
  mu_.Lock();
  while (true) {
    const bool woken = mu_.AwaitWithTimeout(has_work, options_.link_idle);
    if (stopping_ || (!woken && slot->run_id.empty())) break;
    if (slot->run_id.empty()) continue;
    const std::string run_id = slot->run_id;
    mu_.Unlock();
    ServeRun(slot, link, run_id);
    mu_.Lock();
  }
  slot->link_running = false;
  --stats_.links;
  if (!slot->run_id.empty()) {
    // Stopping with a run assigned but not served: it keeps its durable state.
    auto it = runs_.find(slot->run_id);
    if (it != runs_.end()) it->second->slot_key.clear();
    slot->run_id.clear();
  }
  mu_.Unlock();
  if (link.channel != nullptr) link.channel->Close(1001, "cloud link idle").IgnoreError();
}

void RunManager::ServeRun(Slot* slot, Link& link, const std::string& run_id) {
  auto count = [&](uint64_t RunManagerStats::*field) {
    absl::MutexLock lock(&mu_);
    ++(stats_.*field);
  };
  // Ends this run's turn on the slot; `requeue` puts a non-terminal run back in its queue.
  auto release = [&](bool requeue, absl::string_view backoff_reason) {
    absl::MutexLock lock(&mu_);
    slot->run_id.clear();
    auto it = runs_.find(run_id);
    if (it != runs_.end()) {
      it->second->slot_key.clear();
      if (requeue && !stopping_) EnqueueLocked(*it->second);
    }
    if (!backoff_reason.empty()) {
      BackoffLocked(*slot, backoff_reason);
    } else {
      slot->failures = 0;
      slot->retry_after = absl::InfinitePast();
    }
    dirty_ = true;
    scheduler_cv_.Signal();
  };
  auto snapshot = [&]() -> std::optional<storage::StoredRun> {
    absl::MutexLock lock(&mu_);
    auto it = runs_.find(run_id);
    if (it == runs_.end()) return std::nullopt;
    return it->second->stored;
  };
  auto drop_channel = [&] {
    if (link.channel != nullptr) {
      link.channel->Close(1000, "").IgnoreError();
      link.channel.reset();
    }
  };
  auto connect = [&]() -> absl::Status {
    net::SenderOptions sender;
    sender.relay_url = options_.relay_url;
    sender.entity = RelayName(slot->entity);
    sender.listener_id = slot->member_id;
    sender.token = SendToken(slot->entity);
    sender.ca_file = options_.relay_ca_file;
    absl::StatusOr<std::unique_ptr<net::SenderChannel>> channel = net::RelaySender::Connect(sender);
    if (!channel.ok()) {
      count(&RunManagerStats::channel_failures);
      return channel.status();
    }
    link.channel = *std::move(channel);
    return absl::OkStatus();
  };
  auto send = [&](const absl::StatusOr<std::string>& bytes) -> absl::Status {
    RETURN_IF_ERROR(bytes.status());
    return link.channel->Send(*bytes);
  };

  std::optional<storage::StoredRun> run = snapshot();
  if (!run.has_value()) return release(false, "");
  const std::string job_id = run->run().job_id();

  auto control = [&](bool cancel, uint64_t since_seq, absl::string_view reason) {
    proto::ControlRequest request;
    if (cancel) {
      request.mutable_cancel_job()->set_job_id(job_id);
      request.mutable_cancel_job()->set_reason(std::string(reason));
    } else {
      request.mutable_query_job()->set_job_id(job_id);
      request.mutable_query_job()->set_since_seq(since_seq);
    }
    return send(BuildSignedControl(request));
  };
  auto last_job_seq = [&]() -> uint64_t {
    std::optional<storage::StoredRun> now = snapshot();
    return now.has_value() ? now->last_job_event_seq() : 0;
  };
  bool timeout_cancel_sent = false;
  auto finish = [&](const proto::JobResult& result) {
    absl::Status status = Transition(run_id, [&](storage::StoredRun& s) {
      proto::Run& r = *s.mutable_run();
      r.set_state(RunStateOf(result.state()));
      if (timeout_cancel_sent && !r.cancel_requested() && r.state() == proto::RUN_STATE_CANCELLED) {
        // The cloud cancelled it because its timeout passed without a result.
        r.set_state(proto::RUN_STATE_TIMED_OUT);
      }
      r.set_state_detail(std::string(StateWord(r.state())));
      r.mutable_outputs()->clear();
      for (const auto& [name, value] : result.outputs()) (*r.mutable_outputs())[name] = value;
      if (result.state() != proto::JOB_STATE_SUCCEEDED) {
        *r.mutable_error() = result.error();
        if (r.state() == proto::RUN_STATE_CANCELLED && r.cancel_requested()) {
          SetError(r, s.cancel_reason());  // the user's words, not the agent's
        }
        if (r.state() == proto::RUN_STATE_TIMED_OUT && timeout_cancel_sent) {
          SetError(r, absl::StrCat("timed out after ", r.timeout_ms(), " ms"));
        }
        if (r.error().message().empty()) SetError(r, proto::JobState_Name(result.state()));
      }
      r.set_started_at_unix_ms(result.started_at_unix_ms());
      r.set_finished_at_unix_ms(result.finished_at_unix_ms() != 0 ? result.finished_at_unix_ms()
                                                                  : NowMs());
      r.set_cancel_requested(false);
      s.set_maybe_delivered(false);
    }, true, {}, /*wait=*/false);
    if (status.ok()) {
      LogInfo("run_finished", {{"run_id", run_id}, {"state", proto::JobState_Name(result.state())}});
    }
    release(false, "");
  };
  auto end_run = [&](proto::RunState state, absl::string_view message) {
    Transition(run_id, [&](storage::StoredRun& s) {
      proto::Run& r = *s.mutable_run();
      r.set_state(state);
      r.set_state_detail(std::string(message));
      SetError(r, message);
      r.set_finished_at_unix_ms(NowMs());
      s.set_maybe_delivered(false);
    }, true, {}, /*wait=*/false).IgnoreError();
    LogInfo("run_finished", {{"run_id", run_id}, {"state", proto::RunState_Name(state)},
                             {"why", std::string(message)}});
    release(false, "");
  };
  // The machine said it does not hold the job: it may go anywhere again.
  auto back_to_queue = [&](absl::string_view detail, absl::string_view backoff) {
    Transition(run_id, [&](storage::StoredRun& s) {
      proto::Run& r = *s.mutable_run();
      r.set_state(proto::RUN_STATE_QUEUED);
      r.set_state_detail(std::string(detail));
      if (!r.target().has_machine_id()) r.clear_machine_id();
      s.set_maybe_delivered(false);
    }, true, {}, /*wait=*/false).IgnoreError();
    release(true, backoff);
  };

  if (run->run().cancel_requested() && run->run().state() == proto::RUN_STATE_QUEUED) {
    return end_run(proto::RUN_STATE_CANCELLED, "cancelled before dispatch");
  }
  bool accepted = run->run().state() == proto::RUN_STATE_RUNNING;
  // Build the job before connecting: a run whose connection (or machine) was deleted fails now
  // rather than waiting for a machine that may never come back.
  absl::StatusOr<std::string> job;
  if (!accepted) {
    job = BuildSignedJob(*run, slot->machine_id);
    if (absl::IsFailedPrecondition(job.status())) {
      return end_run(proto::RUN_STATE_FAILED, job.status().message());
    }
    if (!job.ok()) return release(true, job.status().message());
  }
  if (link.channel == nullptr) {
    absl::Status status = connect();
    if (!status.ok()) {
      // A run sent before stays pinned where it may be (DISPATCHING): say that it waits for that
      // machine, not that it was "sent to" it. Written once, when the detail changes.
      const std::string waiting = absl::StrCat("waiting for ", slot->entity,
                                               " to come back (it may hold the job)");
      if (!accepted && run->maybe_delivered() && run->run().state_detail() != waiting) {
        Transition(run_id, [&](storage::StoredRun& s) { s.mutable_run()->set_state_detail(waiting); },
                   /*state_event=*/false, {}, /*wait=*/false).IgnoreError();
      }
      return release(true, status.message());
    }
  }

  absl::Time guard_deadline = absl::InfiniteFuture();
  if (accepted) {
    guard_deadline = absl::FromUnixMillis(run->run().dispatched_at_unix_ms()) +
                     absl::Milliseconds(run->run().timeout_ms()) + options_.timeout_grace;
    if (!control(false, run->last_job_event_seq(), "").ok()) {
      drop_channel();
      return release(true, "query failed");
    }
  } else {
    absl::Status status = Transition(run_id, [&](storage::StoredRun& s) {
      proto::Run& r = *s.mutable_run();
      r.set_state(proto::RUN_STATE_DISPATCHING);
      r.set_state_detail(absl::StrCat("sent to ", slot->entity));
      // The run is pinned to where it may now be: the machine, or the gateway member.
      const std::string& pin = slot->machine_id.empty() ? slot->member_id : slot->machine_id;
      if (!pin.empty()) r.set_machine_id(pin);
      r.set_attempt_count(r.attempt_count() + 1);
      s.set_maybe_delivered(!pin.empty());
    });
    if (absl::IsNotFound(status)) return release(false, "");  // cancelled meanwhile: send nothing
    if (!status.ok()) return release(true, "run store write failed");
    if (!link.channel->Send(*job).ok()) {
      drop_channel();
      return release(true, "send failed");
    }
    count(&RunManagerStats::jobs_sent);
  }

  absl::Time accept_deadline = absl::Now() + options_.accept_timeout;
  bool cancel_sent = false;
  std::optional<proto::JobResult> pending_result;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) break;
    }
    absl::StatusOr<std::string> bytes = link.channel->Receive(kReceivePoll);
    if (absl::IsDeadlineExceeded(bytes.status())) {
      std::optional<storage::StoredRun> now = snapshot();
      if (!now.has_value()) return release(false, "");
      if (accepted && now->run().cancel_requested() && !cancel_sent) {
        cancel_sent = control(true, 0, now->cancel_reason()).ok();
      }
      if (!accepted && absl::Now() > accept_deadline) {
        LogWarning("dispatch_no_answer", {{"run_id", run_id}, {"entity", slot->entity}});
        drop_channel();
        return release(true, "no answer to the job request");
      }
      if (accepted && absl::Now() > guard_deadline) {
        if (!cancel_sent) {
          cancel_sent = control(true, 0, "run timeout").ok();
          timeout_cancel_sent = cancel_sent;
          guard_deadline = absl::Now() + options_.timeout_grace;
        } else {
          return end_run(proto::RUN_STATE_TIMED_OUT, "no result from the agent within the run's timeout");
        }
      }
      continue;
    }
    if (!bytes.ok()) {
      drop_channel();
      count(&RunManagerStats::channel_failures);
      LogInfo("dispatch_channel_lost", {{"run_id", run_id}, {"error", bytes.status().ToString()}});
      if (!accepted) return release(true, bytes.status().message());
      // Accepted: the agent keeps running the job. Reconnect and ask where it is.
      absl::Duration delay = options_.retry_min;
      while (true) {
        {
          absl::MutexLock lock(&mu_);
          mu_.AwaitWithTimeout(absl::Condition(&stopping_), delay);
          if (stopping_) break;
        }
        if (!snapshot().has_value()) return release(false, "");
        if (connect().ok() && control(false, last_job_seq(), "").ok()) break;
        drop_channel();
        delay = std::min(delay * 2, options_.retry_max);
      }
      if (link.channel == nullptr) break;  // stopping
      continue;
    }
    proto::ChannelMessage message;
    if (!message.ParseFromString(*bytes)) {
      LogWarning("dispatch_bad_message", {{"run_id", run_id}, {"entity", slot->entity}});
      continue;
    }
    switch (message.kind_case()) {
      case proto::ChannelMessage::kJobAccepted: {
        if (message.job_accepted().job_id() != job_id) break;
        count(&RunManagerStats::jobs_accepted);
        if (!accepted) {
          accepted = true;
          Transition(run_id, [&](storage::StoredRun& s) {
            proto::Run& r = *s.mutable_run();
            r.set_state(proto::RUN_STATE_RUNNING);
            r.set_state_detail(absl::StrCat("running on ", slot->entity));
            r.set_dispatched_at_unix_ms(NowMs());
          }, true, {}, /*wait=*/false).IgnoreError();
          std::optional<storage::StoredRun> now = snapshot();
          guard_deadline = absl::Now() + absl::Milliseconds(now ? now->run().timeout_ms() : 0) +
                           options_.timeout_grace;
        }
        if (message.job_accepted().duplicate()) control(false, last_job_seq(), "").IgnoreError();
        break;
      }
      case proto::ChannelMessage::kBusy:
        if (message.busy().job_id() != job_id) break;
        count(&RunManagerStats::busy_answers);
        back_to_queue(absl::StrCat("queued: machine busy (", message.busy().reason(), ")"), "busy");
        return;
      case proto::ChannelMessage::kJobRejected: {
        const proto::JobRejected& rejected = message.job_rejected();
        if (rejected.job_id() != job_id) break;
        count(&RunManagerStats::rejections);
        LogWarning("job_rejected", {{"run_id", run_id},
                                    {"code", proto::JobRejectCode_Name(rejected.code())},
                                    {"reason", rejected.reason()}});
        if (rejected.code() == proto::JOB_REJECT_CODE_AGENT_ERROR ||
            rejected.code() == proto::JOB_REJECT_CODE_EXPIRED) {
          back_to_queue(absl::StrCat("queued: the agent could not take it now (", rejected.reason(), ")"),
                        rejected.reason());
          return;
        }
        return end_run(proto::RUN_STATE_FAILED,
                       absl::StrCat("rejected by the agent (", proto::JobRejectCode_Name(rejected.code()),
                                    "): ", rejected.reason()));
      }
      case proto::ChannelMessage::kJobEvent: {
        const proto::JobEvent& event = message.job_event();
        if (event.job_id() != job_id || event.seq() <= last_job_seq()) break;
        Transition(run_id, [](storage::StoredRun&) {}, false, {event}, /*wait=*/false).IgnoreError();
        break;
      }
      case proto::ChannelMessage::kJobResult: {
        const proto::JobResult& result = message.job_result();
        if (result.job_id() != job_id) break;
        const uint64_t last = last_job_seq();
        if (result.last_event_seq() > last && !pending_result.has_value()) {
          // Some events were lost with an earlier channel: fetch them before the result.
          pending_result = result;
          if (control(false, last, "").ok()) break;
        }
        return finish(result);
      }
      case proto::ChannelMessage::kJobStatus: {
        const proto::JobStatus& status = message.job_status();
        if (status.job_id() != job_id) break;
        const uint64_t last = last_job_seq();
        std::vector<proto::JobEvent> missing;
        for (const proto::JobEvent& event : status.events()) {
          if (event.seq() > last) missing.push_back(event);
        }
        if (!missing.empty()) {
          Transition(run_id, [](storage::StoredRun&) {}, false, missing, /*wait=*/false)
              .IgnoreError();
        }
        if (status.more_events()) {
          control(false, last_job_seq(), "").IgnoreError();
          break;
        }
        if (status.state() == proto::JOB_STATE_UNKNOWN) {
          back_to_queue("queued: the machine has no record of the job; sending it again", "");
          return;
        }
        if (IsTerminalJobState(status.state())) {
          if (status.has_result()) return finish(status.result());
          proto::JobResult result;
          result.set_job_id(job_id);
          result.set_state(status.state());
          return finish(pending_result.has_value() ? *pending_result : result);
        }
        if (pending_result.has_value()) return finish(*pending_result);
        if (!accepted) {
          accepted = true;
          Transition(run_id, [&](storage::StoredRun& s) {
            proto::Run& r = *s.mutable_run();
            r.set_state(proto::RUN_STATE_RUNNING);
            r.set_state_detail(absl::StrCat("running on ", slot->entity));
            r.set_dispatched_at_unix_ms(NowMs());
          }, true, {}, /*wait=*/false).IgnoreError();
        }
        break;
      }
      default:
        LogWarning("dispatch_unexpected_message", {{"run_id", run_id}});
        break;
    }
  }
  // Stopping: the run keeps its durable state and resumes after the next start.
  drop_channel();
  release(false, "");
}

// ---------------------------------------------------------------------------------------------
// The RunService API

absl::StatusOr<proto::RunFlowResponse> RunManager::RunFlow(const Caller& caller,
                                                           const proto::RunFlowRequest& request) {
  if (request.request_id().size() > kRequestIdMax) {
    return absl::InvalidArgumentError("request_id must be at most 128 characters");
  }
  if (!request.request_id().empty()) {
    absl::StatusOr<std::string> existing =
        db_->Get(kRunRequestsCf, RunRequestKey(caller.user.user_id(), request.request_id()));
    if (existing.ok()) {
      proto::GetRunRequest get;
      get.set_run_id(*existing);
      ASSIGN_OR_RETURN(proto::Run run, GetRun(caller, get));
      proto::RunFlowResponse response;
      response.set_run_id(run.run_id());
      *response.mutable_run() = std::move(run);
      return response;
    }
    if (!absl::IsNotFound(existing.status())) return existing.status();
  }
  proto::RunPriority priority = request.priority();
  if (priority == proto::RUN_PRIORITY_UNSPECIFIED) priority = proto::RUN_PRIORITY_NORMAL;
  if (priority != proto::RUN_PRIORITY_NORMAL && priority != proto::RUN_PRIORITY_HIGH) {
    return absl::InvalidArgumentError("priority must be RUN_PRIORITY_NORMAL or RUN_PRIORITY_HIGH");
  }
  int64_t timeout_ms = request.timeout_ms();
  if (timeout_ms == 0) timeout_ms = absl::ToInt64Milliseconds(options_.default_run_timeout);
  if (timeout_ms < 0 || timeout_ms > absl::ToInt64Milliseconds(options_.max_run_timeout)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "timeout_ms must be between 1 and ", absl::ToInt64Milliseconds(options_.max_run_timeout)));
  }
  proto::GetFlowRequest get_flow;
  get_flow.set_flow_id(request.flow_id());
  get_flow.set_version(request.flow_version());
  ASSIGN_OR_RETURN(proto::Flow flow, service_->GetFlow(caller, get_flow));
  absl::StatusOr<flow::FlowDefinition> definition = flow::ParseFlowDefinition(flow.definition_json());
  if (!definition.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("the flow's definition no longer validates: ", definition.status().message()));
  }
  std::map<std::string, std::string> given(request.inputs().begin(), request.inputs().end());
  absl::StatusOr<std::map<std::string, std::string>> inputs = flow::ResolveRunInputs(*definition, given);
  if (!inputs.ok()) return absl::InvalidArgumentError(absl::StrCat("inputs: ", inputs.status().message()));
  ASSIGN_OR_RETURN(storage::StoredConnection connection,
                   service_->OwnConnection(caller, request.connection_id()));
  // The caller must still be allowed to use the target (a share may have been taken away).
  RETURN_IF_ERROR(service_->TargetPublicKey(caller, connection.connection().target()).status());

  ASSIGN_OR_RETURN(std::string run_id, NewId("run-"));
  storage::StoredRun stored;
  proto::Run* run = stored.mutable_run();
  run->set_run_id(run_id);
  run->set_job_id(absl::StrCat("job-", run_id.substr(4)));
  run->set_flow_id(flow.flow_id());
  run->set_flow_version(flow.version());
  run->set_connection_id(connection.connection().connection_id());
  *run->mutable_target() = connection.connection().target();
  for (const auto& [name, value] : *inputs) (*run->mutable_inputs())[name] = value;
  run->set_priority(priority);
  run->set_timeout_ms(timeout_ms);
  run->set_state(proto::RUN_STATE_QUEUED);
  run->set_state_detail("queued");
  run->set_created_at_unix_ms(NowMs());
  run->set_owner_user_id(caller.user.user_id());
  stored.set_flow_definition_json(flow.definition_json());
  stored.set_request_id(request.request_id());
  {
    absl::MutexLock lock(&mu_);
    last_queue_order_ = std::max(last_queue_order_ + 1,
                                 static_cast<uint64_t>(absl::ToUnixMicros(WallNow())));
    stored.set_queue_order(last_queue_order_);
  }

  proto::RunEvent event;
  event.set_run_id(run_id);
  event.set_seq(1);
  event.set_timestamp_unix_ms(run->created_at_unix_ms());
  *event.mutable_state_changed() = *run;
  stored.set_last_event_seq(1);

  store::Batch batch;
  batch.Put(kRunsCf, run_id, SerializeRecord(stored));
  batch.Put(kActiveRunsCf, run_id, "");
  batch.Put(kRunEventsCf, RunEventKey(run_id, 1), SerializeRecord(event));
  batch.Put(kRunsByOwnerCf, RunsByOwnerKey(caller.user.user_id(), run->created_at_unix_ms(), run_id), "");
  if (!request.request_id().empty()) {
    batch.Put(kRunRequestsCf, RunRequestKey(caller.user.user_id(), request.request_id()), run_id);
  }
  RETURN_IF_ERROR(writer_->Commit(std::move(batch)));

  proto::RunFlowResponse response;
  response.set_run_id(run_id);
  *response.mutable_run() = *run;
  {
    absl::MutexLock lock(&mu_);
    auto active = std::make_unique<ActiveRun>();
    active->durable = stored.run();
    active->stored = std::move(stored);
    ActiveRun& ref = *active;
    runs_[run_id] = std::move(active);
    ++stats_.runs_created;
    stats_.runs_active = static_cast<int64_t>(runs_.size());
    if (!stopping_) EnqueueLocked(ref);
  }
  return response;
}

absl::StatusOr<storage::StoredRun> RunManager::LoadRun(const Caller& caller, const std::string& run_id) {
  storage::StoredRun stored;
  bool found = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = runs_.find(run_id);
    if (it != runs_.end()) {
      *stored.mutable_run() = it->second->durable;  // readers see what is on disk
      found = true;
    }
  }
  if (!found) {
    absl::Status status = GetRecord(*db_, kRunsCf, run_id, &stored);
    if (absl::IsNotFound(status)) return absl::NotFoundError(absl::StrCat("run \"", run_id, "\" not found"));
    RETURN_IF_ERROR(status);
  }
  if (stored.run().owner_user_id() != caller.user.user_id()) {
    return absl::NotFoundError(absl::StrCat("run \"", run_id, "\" not found"));
  }
  return stored;
}

absl::StatusOr<proto::Run> RunManager::GetRun(const Caller& caller, const proto::GetRunRequest& request) {
  ASSIGN_OR_RETURN(storage::StoredRun stored, LoadRun(caller, request.run_id()));
  return stored.run();
}

absl::StatusOr<proto::Run> RunManager::CancelRun(const Caller& caller,
                                                 const proto::CancelRunRequest& request) {
  if (request.reason().size() > 512) return absl::InvalidArgumentError("reason is over 512 characters");
  ASSIGN_OR_RETURN(storage::StoredRun stored, LoadRun(caller, request.run_id()));
  if (IsTerminal(stored.run().state())) {
    return absl::FailedPreconditionError(absl::StrCat(
        "run already finished (", proto::RunState_Name(stored.run().state()), ")"));
  }
  const std::string reason = request.reason().empty() ? "cancelled by the user" : request.reason();
  // A run still QUEUED has not been sent anywhere (a link marks it DISPATCHING, under the same
  // mutex, before it sends): it ends here. The link that may hold it finds it gone and sends
  // nothing. A dispatched run is cancelled on the agent.
  bool queued_now = false;
  absl::Status status = Transition(request.run_id(), [&](storage::StoredRun& s) {
    proto::Run& r = *s.mutable_run();
    queued_now = r.state() == proto::RUN_STATE_QUEUED;
    if (queued_now) {
      r.set_state(proto::RUN_STATE_CANCELLED);
      r.set_state_detail(absl::StrCat("cancelled: ", reason));
      SetError(r, reason);
      r.set_finished_at_unix_ms(NowMs());
    } else {
      r.set_cancel_requested(true);
      r.set_state_detail(absl::StrCat("cancelling: ", reason));
      s.set_cancel_reason(reason);
    }
  });
  if (absl::IsNotFound(status)) return absl::FailedPreconditionError("run already finished");
  RETURN_IF_ERROR(status);
  ASSIGN_OR_RETURN(stored, LoadRun(caller, request.run_id()));
  return stored.run();
}

absl::StatusOr<proto::ListRunsResponse> RunManager::ListRuns(const Caller& caller,
                                                             const proto::ListRunsRequest& request) {
  int limit = request.page_size() <= 0 ? 100 : std::min(request.page_size(), 1000);
  const std::string prefix = RunsByOwnerPrefix(caller.user.user_id());
  std::string start = prefix;
  if (!request.page_token().empty()) {
    absl::StatusOr<std::string> decoded = HexDecode(request.page_token());
    if (!decoded.ok() || decoded->compare(0, prefix.size(), prefix) != 0) {
      return absl::InvalidArgumentError("page_token is not one this server gave out");
    }
    start = *decoded + '\0';  // strictly after the last key of the previous page
  }
  std::set<int> states(request.states().begin(), request.states().end());
  std::vector<std::string> run_ids;
  std::string last_key;
  bool more = false;
  absl::Status error;
  RETURN_IF_ERROR(db_->Scan(kRunsByOwnerCf, start, prefix, [&](std::string_view key, std::string_view) {
    if (static_cast<int>(run_ids.size()) == limit) {
      more = true;
      return false;
    }
    store::KeyReader reader(key);
    (void)reader.ReadString();
    absl::StatusOr<uint64_t> inverted = reader.ReadUint64();
    absl::StatusOr<std::string> run_id = reader.ReadString();
    if (!inverted.ok() || !run_id.ok()) {
      error = absl::DataLossError("corrupt runs_by_owner key");
      return false;
    }
    const int64_t created = static_cast<int64_t>(~*inverted);
    last_key = std::string(key);
    if (request.created_after_unix_ms() != 0 && created < request.created_after_unix_ms()) {
      return false;  // newest first: everything further is older still
    }
    if (request.created_before_unix_ms() != 0 && created >= request.created_before_unix_ms()) {
      return true;
    }
    run_ids.push_back(*run_id);
    return true;
  }));
  RETURN_IF_ERROR(error);
  proto::ListRunsResponse response;
  for (const std::string& run_id : run_ids) {
    absl::StatusOr<storage::StoredRun> stored = LoadRun(caller, run_id);
    if (!stored.ok()) continue;
    const proto::Run& run = stored->run();
    if (!request.flow_id().empty() && run.flow_id() != request.flow_id()) continue;
    if (!request.connection_id().empty() && run.connection_id() != request.connection_id()) continue;
    if (!request.machine_id().empty() && run.machine_id() != request.machine_id()) continue;
    if (!states.empty() && !states.contains(static_cast<int>(run.state()))) continue;
    *response.add_runs() = run;
  }
  if (more) response.set_next_page_token(HexEncode(last_key));
  return response;
}

absl::Status RunManager::WatchRun(const Caller& caller, const proto::WatchRunRequest& request,
                                  const std::function<bool(const proto::RunEvent&)>& emit,
                                  const std::function<bool()>& cancelled) {
  RETURN_IF_ERROR(LoadRun(caller, request.run_id()).status());
  uint64_t sent = request.since_seq();
  while (true) {
    // Read what is durable now, then decide whether the run is over.
    std::vector<proto::RunEvent> events;
    absl::Status error;
    RETURN_IF_ERROR(db_->Scan(kRunEventsCf, RunEventKey(request.run_id(), sent + 1),
                              RunEventPrefix(request.run_id()),
                              [&](std::string_view, std::string_view value) {
                                proto::RunEvent event;
                                if (!event.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
                                  error = absl::DataLossError("corrupt run event");
                                  return false;
                                }
                                events.push_back(std::move(event));
                                // A batch at a time: a long history is never read whole, and a
                                // watcher that stops early (REST) pays for what it takes.
                                return events.size() < kWatchBatch;
                              }));
    RETURN_IF_ERROR(error);
    bool terminal = false;
    for (const proto::RunEvent& event : events) {
      if (!emit(event)) return absl::CancelledError("watcher went away");
      sent = event.seq();
      if (event.has_state_changed() && IsTerminal(event.state_changed().state())) terminal = true;
    }
    if (terminal) return absl::OkStatus();
    if (request.recorded_only() && events.size() < kWatchBatch) return absl::OkStatus();
    if (events.empty()) {
      storage::StoredRun stored;
      if (GetRecord(*db_, kRunsCf, request.run_id(), &stored).ok() &&
          IsTerminal(stored.run().state()) && stored.last_event_seq() <= sent) {
        return absl::OkStatus();
      }
    }
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::UnavailableError("the cloud is shutting down");
    if (cancelled()) return absl::CancelledError("watch cancelled");
    if (!events.empty()) continue;
    events_cv_.WaitWithTimeout(&mu_, absl::Milliseconds(500));
  }
}

// ---------------------------------------------------------------------------------------------
// Status

proto::MachineStatus RunManager::EntityStatus(const std::string& entity) {
  {
    absl::MutexLock lock(&mu_);
    auto it = presence_.find(entity);
    if (it != presence_.end() && absl::Now() - it->second.second < options_.presence_ttl) {
      if (it->second.first < 0) return proto::MACHINE_STATUS_UNSPECIFIED;  // the relay did not answer
      return it->second.first > 0 ? proto::MACHINE_STATUS_ONLINE : proto::MACHINE_STATUS_OFFLINE;
    }
  }
  {
    absl::MutexLock lock(&mu_);
    ++stats_.presence_fetches;
  }
  absl::StatusOr<proto::ListenerPresence> answer = FetchPresence(entity);
  if (!answer.ok()) {
    LogWarning("presence_failed", {{"entity", entity}, {"error", answer.status().ToString()}});
    // Remembered like an answer (count -1): while the relay is slow or down, a listing of many
    // machines must not wait out one timeout per machine on every call.
    absl::MutexLock lock(&mu_);
    presence_[entity] = {-1, absl::Now()};
    return proto::MACHINE_STATUS_UNSPECIFIED;
  }
  absl::MutexLock lock(&mu_);
  const int count = static_cast<int>(answer->listener_count());
  presence_[entity] = {count, absl::Now()};
  if (count > 0) {
    dirty_ = true;  // an entity came online: its queued runs may go now
    scheduler_cv_.Signal();
  }
  return count > 0 ? proto::MACHINE_STATUS_ONLINE : proto::MACHINE_STATUS_OFFLINE;
}

void RunManager::EntityComingOnline(const std::string& entity) {
  absl::MutexLock lock(&mu_);
  for (auto& [key, slot] : slots_) {
    if (slot->entity != entity) continue;
    slot->failures = 0;
    slot->retry_after = absl::InfinitePast();
  }
  presence_.erase(entity);
  dirty_ = true;
  scheduler_cv_.Signal();
}

absl::StatusOr<proto::ListenerPresence> RunManager::FetchPresence(const std::string& entity) const {
  net::PresenceOptions presence;
  presence.relay_url = options_.relay_url;
  presence.ca_file = options_.relay_ca_file;
  presence.timeout = kPresenceTimeout;
  presence.token = crypto::CreateSasToken(absl::StrCat("/$", entity), options_.manage_key.name,
                                          options_.manage_key.key,
                                          absl::ToUnixSeconds(WallNow() + absl::Minutes(5)));
  return net::FetchRelayPresence(presence, RelayName(entity));
}

std::string RunManager::CurrentRun(const std::string& machine_id) {
  absl::MutexLock lock(&mu_);
  auto it = slots_.find(absl::StrCat("m:", machine_id));
  if (it == slots_.end()) return "";
  return it->second->run_id;
}

RunManagerStats RunManager::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

}  // namespace tether::cloud
