// The agent's job ledger (DESIGN §5): RocksDB in the data directory, job id -> state, events and
// result. It is what makes execution exactly-once: a job id is accepted at most once (the accept
// is synced before JobAccepted leaves), and QueryJob is answered from it, also after a restart.
#ifndef TETHER_AGENT_LEDGER_H_
#define TETHER_AGENT_LEDGER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/agent_state.pb.h"
#include "common/proto/job.pb.h"
#include "common/store/store.h"

namespace tether::agent {

class Ledger {
 public:
  // Opens (creating) the ledger in `dir`. Jobs a previous process left ACCEPTED or RUNNING were
  // interrupted by the agent's death: they are ended FAILED ("interrupted: the agent stopped
  // during the run") and never started again.
  static absl::StatusOr<std::unique_ptr<Ledger>> Open(const std::string& dir);

  // kNotFound if the job was never accepted.
  absl::StatusOr<LedgerJob> Get(const std::string& job_id) const;
  // Records a newly accepted job (synced). kAlreadyExists if the id is known.
  absl::Status Accept(const std::string& job_id, const LedgerJob& job);
  // Appends an event (its seq must be last_event_seq + 1) and updates the job's state.
  absl::Status AppendEvent(const std::string& job_id, const proto::JobEvent& event);
  absl::Status SetState(const std::string& job_id, proto::JobState state, int64_t started_at_ms);
  // Records the terminal result (synced).
  absl::Status Finish(const std::string& job_id, const proto::JobResult& result);
  // Events with seq > since, at most max_bytes of them (more = true when cut).
  absl::StatusOr<std::vector<proto::JobEvent>> Events(const std::string& job_id, uint64_t since,
                                                      size_t max_bytes, bool* more) const;
  // The most recent terminal results, newest first.
  std::vector<proto::JobResult> RecentResults(size_t n) const;

 private:
  explicit Ledger(std::unique_ptr<store::Store> db) : db_(std::move(db)) {}
  absl::Status Put(const std::string& job_id, const LedgerJob& job, bool sync);

  std::unique_ptr<store::Store> db_;
};

}  // namespace tether::agent

#endif  // TETHER_AGENT_LEDGER_H_
