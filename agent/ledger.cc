#include "agent/ledger.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/base/clock.h"
#include "common/base/log.h"
#include "common/base/status_macros.h"
#include "common/store/key.h"

namespace tether::agent {
namespace {

constexpr char kJobsCf[] = "jobs";
constexpr char kEventsCf[] = "events";

std::string EventKey(const std::string& job_id, uint64_t seq) {
  return store::KeyBuilder().AddString(job_id).AddUint64(seq).Build();
}

bool IsTerminal(proto::JobState state) {
  return state == proto::JOB_STATE_SUCCEEDED || state == proto::JOB_STATE_FAILED ||
         state == proto::JOB_STATE_CANCELLED || state == proto::JOB_STATE_TIMED_OUT;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Ledger>> Ledger::Open(const std::string& dir) {
  ASSIGN_OR_RETURN(std::unique_ptr<store::Store> db, store::Store::Open(dir, {kJobsCf, kEventsCf}));
  std::unique_ptr<Ledger> ledger(new Ledger(std::move(db)));
  std::vector<std::pair<std::string, LedgerJob>> interrupted;
  absl::Status error;
  RETURN_IF_ERROR(ledger->db_->Scan(kJobsCf, "", "", [&](std::string_view key, std::string_view value) {
    LedgerJob job;
    if (!job.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
      error = absl::DataLossError(absl::StrCat("corrupt ledger record for job ", std::string(key)));
      return false;
    }
    if (!IsTerminal(job.state())) interrupted.emplace_back(std::string(key), job);
    return true;
  }));
  RETURN_IF_ERROR(error);
  for (auto& [job_id, job] : interrupted) {
    proto::JobResult result;
    result.set_job_id(job_id);
    result.set_state(proto::JOB_STATE_FAILED);
    result.mutable_error()->set_message("interrupted: the agent stopped during the run");
    result.set_started_at_unix_ms(job.started_at_unix_ms());
    result.set_finished_at_unix_ms(absl::ToUnixMillis(WallNow()));
    result.set_last_event_seq(job.last_event_seq());
    RETURN_IF_ERROR(ledger->Finish(job_id, result));
    LogWarning("job_interrupted", {{"job_id", job_id}});
  }
  return ledger;
}

absl::StatusOr<LedgerJob> Ledger::Get(const std::string& job_id) const {
  ASSIGN_OR_RETURN(std::string bytes, db_->Get(kJobsCf, job_id));
  LedgerJob job;
  if (!job.ParseFromString(bytes)) return absl::DataLossError("corrupt ledger record");
  return job;
}

absl::Status Ledger::Put(const std::string& job_id, const LedgerJob& job, bool sync) {
  return db_->Put(kJobsCf, job_id, job.SerializeAsString(), {.sync = sync});
}

absl::Status Ledger::Accept(const std::string& job_id, const LedgerJob& job) {
  if (db_->Get(kJobsCf, job_id).ok()) {
    return absl::AlreadyExistsError(absl::StrCat("job ", job_id, " is already in the ledger"));
  }
  return Put(job_id, job, /*sync=*/true);
}

absl::Status Ledger::AppendEvent(const std::string& job_id, const proto::JobEvent& event) {
  ASSIGN_OR_RETURN(LedgerJob job, Get(job_id));
  if (event.seq() != job.last_event_seq() + 1) {
    return absl::InternalError(absl::StrCat("event seq ", event.seq(), " after ", job.last_event_seq()));
  }
  job.set_last_event_seq(event.seq());
  store::Batch batch;
  batch.Put(kEventsCf, EventKey(job_id, event.seq()), event.SerializeAsString());
  batch.Put(kJobsCf, job_id, job.SerializeAsString());
  return db_->Write(batch);
}

absl::Status Ledger::SetState(const std::string& job_id, proto::JobState state, int64_t started_at_ms) {
  ASSIGN_OR_RETURN(LedgerJob job, Get(job_id));
  job.set_state(state);
  if (started_at_ms != 0) job.set_started_at_unix_ms(started_at_ms);
  return Put(job_id, job, /*sync=*/false);
}

absl::Status Ledger::Finish(const std::string& job_id, const proto::JobResult& result) {
  ASSIGN_OR_RETURN(LedgerJob job, Get(job_id));
  job.set_state(result.state());
  *job.mutable_result() = result;
  return Put(job_id, job, /*sync=*/true);
}

absl::StatusOr<std::vector<proto::JobEvent>> Ledger::Events(const std::string& job_id, uint64_t since,
                                                            size_t max_bytes, bool* more) const {
  std::vector<proto::JobEvent> events;
  size_t bytes = 0;
  *more = false;
  absl::Status error;
  const std::string prefix = store::KeyBuilder().AddString(job_id).Build();
  RETURN_IF_ERROR(db_->Scan(kEventsCf, EventKey(job_id, since + 1), prefix,
                            [&](std::string_view, std::string_view value) {
                              if (bytes + value.size() > max_bytes && !events.empty()) {
                                *more = true;
                                return false;
                              }
                              proto::JobEvent event;
                              if (!event.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
                                error = absl::DataLossError("corrupt ledger event");
                                return false;
                              }
                              bytes += value.size();
                              events.push_back(std::move(event));
                              return true;
                            }));
  RETURN_IF_ERROR(error);
  return events;
}

std::vector<proto::JobResult> Ledger::RecentResults(size_t n) const {
  std::vector<proto::JobResult> results;
  db_->Scan(kJobsCf, "", "", [&](std::string_view, std::string_view value) {
       LedgerJob job;
       if (job.ParseFromArray(value.data(), static_cast<int>(value.size())) && job.has_result()) {
         results.push_back(job.result());
       }
       return true;
     }).IgnoreError();
  std::sort(results.begin(), results.end(), [](const proto::JobResult& a, const proto::JobResult& b) {
    return a.finished_at_unix_ms() > b.finished_at_unix_ms();
  });
  if (results.size() > n) results.resize(n);
  return results;
}

}  // namespace tether::agent
