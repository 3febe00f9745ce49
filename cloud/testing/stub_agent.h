// A stand-in desktop agent for cloud tests and benchmarks: listens on a machine's relay entity
// with the real RelayListener and speaks the job protocol (job.proto) from an in-memory ledger —
// verifies the cloud's signature, dedupes by job id, answers QueryJob and CancelJob — but runs no
// flow: a job "executes" by emitting a few events and succeeding, at once or when released.
// Test-only; the real agent is //agent.
#ifndef TETHER_CLOUD_TESTING_STUB_AGENT_H_
#define TETHER_CLOUD_TESTING_STUB_AGENT_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/net/relay_listener.h"
#include "common/proto/job.pb.h"

namespace tether::cloud::testing {

struct StubAgentOptions {
  std::string relay_url;
  std::string entity;
  std::string listener_id = "stub-agent";
  std::function<absl::StatusOr<std::string>()> token_provider;
  // The cloud's Ed25519 public key: jobs and controls not signed by it are rejected.
  std::string cloud_signing_pub;
  // Log lines emitted per job before its output (events 1..n), then one Output event.
  int log_lines_per_job = 2;
  // Hold accepted jobs until Release() instead of finishing them at once.
  bool hold_jobs = false;
  // Answer every job with Busy.
  bool busy = false;
  // Never answer a JobRequest (a desktop that took the job in and went quiet).
  bool silent = false;
  // Called (on the listener's I/O thread) for every verified JobRequest, before it is answered.
  std::function<void(const proto::JobRequest&)> on_job;
};

class StubAgent {
 public:
  static absl::StatusOr<std::unique_ptr<StubAgent>> Start(StubAgentOptions options);
  ~StubAgent();

  // Jobs accepted (first delivery only), in order.
  std::vector<std::string> accepted_jobs() const;
  // How many times each job id was started (the ledger makes it 1; a test checks it).
  int executions(const std::string& job_id) const;
  // JobRequests whose signature did not verify.
  int bad_signatures() const;
  // The last JobRequest received for `job_id` (verified).
  absl::StatusOr<proto::JobRequest> request(const std::string& job_id) const;
  // Waits until at least `n` jobs were accepted; false on timeout.
  bool WaitForAccepted(size_t n, absl::Duration timeout) const;
  // Finishes a held job (SUCCEEDED) on its most recent channel.
  void Release(const std::string& job_id);
  void SetBusy(bool busy);
  // Drops the relay connection, as a killed agent would, keeping the ledger (the real agent's is
  // on disk); Resume() listens again.
  void Disconnect();
  absl::Status Resume();
  void SetHold(bool hold);
  void Stop();

 private:
  struct Job {
    proto::JobRequest request;
    int executions = 0;
    proto::JobState state = proto::JOB_STATE_ACCEPTED;
    std::vector<proto::JobEvent> events;
    proto::JobResult result;
    std::weak_ptr<net::ListenerChannel> channel;  // where to report
  };

  explicit StubAgent(StubAgentOptions options) : options_(std::move(options)) {}
  absl::Status Listen();
  void OnChannel(std::shared_ptr<net::ListenerChannel> channel);
  void OnMessage(const std::shared_ptr<net::ListenerChannel>& channel, const std::string& payload);
  // Emits the job's events and result (under mu_ the ledger is updated; sends happen after).
  void Finish(const std::string& job_id, proto::JobState state);

  StubAgentOptions options_;
  std::unique_ptr<net::RelayListener> listener_;
  mutable absl::Mutex mu_;
  std::map<std::string, Job> jobs_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> accepted_ ABSL_GUARDED_BY(mu_);
  int bad_signatures_ ABSL_GUARDED_BY(mu_) = 0;
  bool busy_ ABSL_GUARDED_BY(mu_) = false;
  bool hold_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace tether::cloud::testing

#endif  // TETHER_CLOUD_TESTING_STUB_AGENT_H_
