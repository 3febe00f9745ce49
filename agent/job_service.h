// The agent's side of the job protocol (job.proto, DESIGN §5, docs/CLOUD.md "What the agent must
// do"): verify the cloud's signature, dedupe by job id in the ledger, open the credential envelope
// with the machine (or group) key, verify the account, and run the flow as that account in a
// separate flow_runner process, streaming its events and result back on the channel that asked
// last. One job at a time (Busy otherwise). Thread-safe: messages are queued to one worker thread,
// so the relay client's I/O thread never blocks on scrypt, PAM or the disk.
#ifndef TETHER_AGENT_JOB_SERVICE_H_
#define TETHER_AGENT_JOB_SERVICE_H_

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/accounts/verifier.h"
#include "agent/ledger.h"
#include "common/crypto/secret.h"
#include "common/net/relay_listener.h"
#include "common/proto/job.pb.h"

namespace tether::agent {

struct JobServiceOptions {
  std::string machine_id;
  std::string group_id;  // "" when not in a group
  std::string cloud_signing_pub;
  std::string cloud_signing_key_id;
  crypto::SecretBytes machine_private_key;  // X25519
  crypto::SecretBytes group_private_key;    // X25519, empty when not in a group
  accounts::AccountVerifier* verifier = nullptr;
  // The flow_runner binary.
  std::string runner_path;
  // Tolerated clock difference for issued_at in the future.
  absl::Duration clock_skew = absl::Minutes(5);
  // After a cancel (SIGTERM to the runner's process group), how long before SIGKILL.
  absl::Duration cancel_grace = absl::Seconds(5);
  // After the job's own timeout, how long the runner gets to report before it is killed.
  absl::Duration timeout_grace = absl::Seconds(10);
  // Largest JobStatus answer (events beyond are sent with more_events).
  size_t max_status_bytes = 512 << 10;
  // Per RunApplication stdout capture, passed to the runner.
  uint64_t max_capture_bytes = 1 << 20;
  // Called (on an internal thread) when a job starts and when it has ended and is in the ledger,
  // before its result is sent: `agent status` is current by the time the cloud knows.
  std::function<void()> on_change;
};

// What `agent status` shows about jobs.
struct JobServiceStatus {
  std::string current_job_id;
  std::string current_run_id;
};

class JobService {
 public:
  JobService(Ledger* ledger, JobServiceOptions options);
  ~JobService();

  // Called by the relay listener for each message on an accepted channel.
  void OnMessage(std::shared_ptr<net::ListenerChannel> channel, std::string payload);

  // Stops taking jobs. A running job gets `grace` to finish; then it is cancelled (result
  // CANCELLED "agent stopping", recorded in the ledger and sent if a channel is up). Returns once
  // no job runs. Idempotent; the destructor calls it with no grace.
  void Shutdown(absl::Duration grace);

  JobServiceStatus status() const;

 private:
  struct Running;
  struct Inbound {
    std::weak_ptr<net::ListenerChannel> channel;
    std::string payload;
  };

  void WorkerLoop();
  void Handle(const std::shared_ptr<net::ListenerChannel>& channel, const std::string& payload);
  void HandleJob(const std::shared_ptr<net::ListenerChannel>& channel,
                 const proto::SignedJobRequest& signed_job);
  void HandleControl(const std::shared_ptr<net::ListenerChannel>& channel,
                     const proto::SignedControl& signed_control);
  // Starts the runner for an accepted job; returns the error that keeps it from starting.
  absl::Status Start(const proto::JobRequest& job, const std::string& username,
                     std::shared_ptr<net::ListenerChannel> channel);
  void ReadRunner(std::shared_ptr<Running> running);
  void Send(const std::shared_ptr<net::ListenerChannel>& channel, const proto::ChannelMessage& message);
  proto::JobStatus StatusOf(const std::string& job_id, uint64_t since);

  Ledger* const ledger_;
  const JobServiceOptions options_;

  mutable absl::Mutex mu_;
  std::deque<Inbound> inbox_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::shared_ptr<Running> running_ ABSL_GUARDED_BY(mu_);
  // The last job started, kept after it ends so Shutdown can wait until its reader is done.
  std::shared_ptr<Running> last_started_ ABSL_GUARDED_BY(mu_);
  std::thread worker_;
};

}  // namespace tether::agent

#endif  // TETHER_AGENT_JOB_SERVICE_H_
