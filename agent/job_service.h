// The agent's side of the job protocol (job.proto, DESIGN §5, docs/CLOUD.md "What the agent must
// do"): verify the cloud's signature, dedupe by job id in the ledger, open the credential envelope
// with the machine (or group) key, verify the account, and run the flow as that account in a
// separate flow_runner process, streaming its events and result back on the channel that asked
// last. One job at a time (Busy otherwise). Thread-safe: messages are queued to one worker thread,
// so the relay client's I/O thread never blocks on scrypt, PAM or the disk.
//
// Gateway mode (agent run --via-gateway): jobs for the machine's cluster arrive as
// ForwardedJobRequest from a gateway member. The member's signature is checked against the
// cluster's member keys first; the cloud-signed job inside then goes through exactly the checks of
// a direct job, except that its target must be this machine's cluster (and this machine or none),
// and the credentials come from the envelope the member re-sealed to this machine's key.
#ifndef TETHER_AGENT_JOB_SERVICE_H_
#define TETHER_AGENT_JOB_SERVICE_H_

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
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
  // Gateway mode: the cluster this machine is registered behind ("" = not in gateway mode: every
  // ForwardedJobRequest is refused) and its members' Ed25519 public keys by member id.
  std::string cluster_id;
  std::map<std::string, std::string> cluster_member_keys;
  // Asked (on the worker thread; it may block on an RPC) for the cluster's current member keys
  // when a forwarded job names a member that is not in the map, so members that joined after the
  // agent started are believed. At most once per member_refresh_interval; unset = never.
  std::function<absl::StatusOr<std::map<std::string, std::string>>()> fetch_cluster_member_keys;
  absl::Duration member_refresh_interval = absl::Seconds(10);
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
  struct JobRoute;
  struct Inbound {
    std::weak_ptr<net::ListenerChannel> channel;
    std::string payload;
  };

  void WorkerLoop();
  void Handle(const std::shared_ptr<net::ListenerChannel>& channel, const std::string& payload);
  // A job straight from the cloud (SignedJobRequest).
  void HandleJob(const std::shared_ptr<net::ListenerChannel>& channel,
                 const proto::SignedJobRequest& signed_job);
  // A job a gateway member forwarded: checks the member, then shares AcceptJob with HandleJob.
  void HandleForwardedJob(const std::shared_ptr<net::ListenerChannel>& channel,
                          const proto::ForwardedJobRequest& forwarded);
  // The cloud's key id and signature, then the parse. The job, or nullopt once refused.
  std::optional<proto::JobRequest> VerifyCloudSigned(const std::shared_ptr<net::ListenerChannel>& channel,
                                                     const proto::SignedJobRequest& signed_job);
  // Everything after the cloud signature, for both paths: dedupe, expiry, target (per `route`),
  // Busy, the envelope `route` names, the account, the flow, the ledger, then the run.
  void AcceptJob(const std::shared_ptr<net::ListenerChannel>& channel, const proto::JobRequest& job,
                 const JobRoute& route);
  // Why `job` is not for this agent on `route`, or "" when it is.
  std::string WrongTarget(const proto::JobRequest& job, const JobRoute& route) const;
  // The Ed25519 public key of cluster member `member_id`, refreshing the keys once if unknown;
  // nullptr when it is not a member. Worker thread only.
  const std::string* MemberKey(const std::string& member_id);
  void Refuse(const std::shared_ptr<net::ListenerChannel>& channel, const std::string& job_id,
              proto::JobRejectCode code, absl::string_view reason);
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
  // The cluster's member keys and when they were last fetched: worker thread only.
  std::map<std::string, std::string> member_keys_;
  absl::Time members_fetched_at_ = absl::InfinitePast();
  std::thread worker_;
};

}  // namespace tether::agent

#endif  // TETHER_AGENT_JOB_SERVICE_H_
