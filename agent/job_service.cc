#include "agent/job_service.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/base/status_macros.h"
#include "agent/accounts/run_as.h"
#include "agent/accounts/sessions.h"
#include "agent/runner/runner.pb.h"
#include "common/base/clock.h"
#include "common/base/hex.h"
#include "common/base/log.h"
#include "common/crypto/digest.h"
#include "common/crypto/ed25519.h"
#include "common/crypto/envelope.h"
#include "common/flow/flow_definition.h"
#include "common/proto/signing_input.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl.h"
#include "google/protobuf/util/delimited_message_util.h"

namespace tether::agent {

struct JobService::Running {
  std::string job_id;
  std::string run_id;
  pid_t pid = -1;  // the runner; also its process group id
  int from_runner = -1;
  absl::Time deadline;  // job timeout + grace
  absl::Mutex mu;
  std::weak_ptr<net::ListenerChannel> channel ABSL_GUARDED_BY(mu);
  bool cancel_requested ABSL_GUARDED_BY(mu) = false;
  std::string cancel_reason ABSL_GUARDED_BY(mu);
  absl::Time kill_at ABSL_GUARDED_BY(mu) = absl::InfiniteFuture();
  bool timed_out = false;
  uint64_t seq = 0;
  int64_t started_at_ms = 0;
  absl::Notification done;
};

namespace {

// The largest message the runner may send (a result with outputs at their limits fits easily).
constexpr uint32_t kMaxRunnerMessage = 64u << 20;

int64_t NowMs() { return absl::ToUnixMillis(WallNow()); }

proto::ChannelMessage Rejected(const std::string& job_id, proto::JobRejectCode code,
                               absl::string_view reason) {
  proto::ChannelMessage message;
  message.mutable_job_rejected()->set_job_id(job_id);
  message.mutable_job_rejected()->set_code(code);
  message.mutable_job_rejected()->set_reason(std::string(reason));
  return message;
}

bool IsTerminal(proto::JobState state) {
  return state == proto::JOB_STATE_SUCCEEDED || state == proto::JOB_STATE_FAILED ||
         state == proto::JOB_STATE_CANCELLED || state == proto::JOB_STATE_TIMED_OUT;
}

}  // namespace

JobService::JobService(Ledger* ledger, JobServiceOptions options)
    : ledger_(ledger), options_(std::move(options)), member_keys_(options_.cluster_member_keys) {
  worker_ = std::thread([this] { WorkerLoop(); });
}

JobService::~JobService() { Shutdown(absl::ZeroDuration()); }

void JobService::OnMessage(std::shared_ptr<net::ListenerChannel> channel, std::string payload) {
  absl::MutexLock lock(&mu_);
  if (stopping_) return;
  inbox_.push_back(Inbound{channel, std::move(payload)});
}

void JobService::WorkerLoop() {
  while (true) {
    Inbound inbound;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](JobService* s) ABSL_NO_THREAD_SAFETY_ANALYSIS { return s->stopping_ || !s->inbox_.empty(); },
          this));
      if (stopping_ && inbox_.empty()) return;
      inbound = std::move(inbox_.front());
      inbox_.pop_front();
    }
    if (auto channel = inbound.channel.lock()) Handle(channel, inbound.payload);
  }
}

void JobService::Send(const std::shared_ptr<net::ListenerChannel>& channel,
                      const proto::ChannelMessage& message) {
  if (channel == nullptr) return;
  absl::Status status = channel->Send(message.SerializeAsString());
  if (!status.ok()) LogInfo("job_send_failed", {{"error", status.ToString()}});
}

void JobService::Handle(const std::shared_ptr<net::ListenerChannel>& channel,
                        const std::string& payload) {
  proto::ChannelMessage message;
  if (!message.ParseFromString(payload)) {
    LogWarning("job_message_malformed", {{"bytes", absl::StrCat(payload.size())}});
    Send(channel, Rejected("", proto::JOB_REJECT_CODE_MALFORMED, "not a ChannelMessage"));
    return;
  }
  switch (message.kind_case()) {
    case proto::ChannelMessage::kJobRequest:
      return HandleJob(channel, message.job_request());
    case proto::ChannelMessage::kForwardedJobRequest:
      return HandleForwardedJob(channel, message.forwarded_job_request());
    case proto::ChannelMessage::kControl:
      return HandleControl(channel, message.control());
    default:
      LogWarning("job_message_unexpected", {{"kind", absl::StrCat(message.kind_case())}});
      Send(channel, Rejected("", proto::JOB_REJECT_CODE_MALFORMED, "unexpected message kind"));
  }
}

// Where a job came from once its cloud signature verified: which target it must name, and which
// envelope, opened with which of the agent's keys, holds its credentials.
struct JobService::JobRoute {
  // The gateway member that forwarded it; "" for a job straight from the cloud.
  std::string member_id;
  // The envelope to open (an error when the forwarded bytes do not parse as one).
  absl::StatusOr<proto::SealedEnvelope> envelope;
  const crypto::SecretBytes& key;
};

void JobService::Refuse(const std::shared_ptr<net::ListenerChannel>& channel, const std::string& job_id,
                        proto::JobRejectCode code, absl::string_view reason) {
  LogWarning("job_refused", {{"job_id", job_id},
                             {"code", proto::JobRejectCode_Name(code)},
                             {"reason", std::string(reason)}});
  Send(channel, Rejected(job_id, code, reason));
}

std::optional<proto::JobRequest> JobService::VerifyCloudSigned(
    const std::shared_ptr<net::ListenerChannel>& channel, const proto::SignedJobRequest& signed_job) {
  // Parse only to name the job in a refusal; nothing is trusted before the signature verifies.
  proto::JobRequest claimed;
  claimed.ParseFromString(signed_job.job_request());
  if (signed_job.key_id() != options_.cloud_signing_key_id) {
    Refuse(channel, claimed.job_id(), proto::JOB_REJECT_CODE_UNKNOWN_KEY,
           absl::StrCat("signed by key \"", signed_job.key_id(), "\", not the pinned cloud key"));
    return std::nullopt;
  }
  if (!crypto::Ed25519Verify(options_.cloud_signing_pub,
                             proto::JobRequestSigningInput(signed_job.job_request()),
                             signed_job.signature())
           .ok()) {
    Refuse(channel, claimed.job_id(), proto::JOB_REJECT_CODE_BAD_SIGNATURE,
           "signature does not verify with the pinned cloud key");
    return std::nullopt;
  }
  proto::JobRequest job;
  if (!job.ParseFromString(signed_job.job_request()) || job.job_id().empty()) {
    Refuse(channel, claimed.job_id(), proto::JOB_REJECT_CODE_MALFORMED, "signed job request does not parse");
    return std::nullopt;
  }
  return job;
}

void JobService::HandleJob(const std::shared_ptr<net::ListenerChannel>& channel,
                           const proto::SignedJobRequest& signed_job) {
  std::optional<proto::JobRequest> job = VerifyCloudSigned(channel, signed_job);
  if (!job.has_value()) return;
  // The cloud sealed the credentials to this machine, or to its group.
  const bool for_group = !job->target().group_id().empty();
  AcceptJob(channel, *job,
            JobRoute{.member_id = "",
                     .envelope = job->credentials(),
                     .key = for_group ? options_.group_private_key : options_.machine_private_key});
}

void JobService::HandleForwardedJob(const std::shared_ptr<net::ListenerChannel>& channel,
                                    const proto::ForwardedJobRequest& forwarded) {
  // The member first: only a member of this machine's cluster may hand it jobs.
  const std::string* member_key = MemberKey(forwarded.member_id());
  if (member_key == nullptr ||
      !crypto::Ed25519Verify(*member_key, proto::ForwardedJobSigningInput(forwarded), forwarded.signature())
           .ok()) {
    proto::JobRequest claimed;
    claimed.ParseFromString(forwarded.job().job_request());
    return Refuse(channel, claimed.job_id(), proto::JOB_REJECT_CODE_BAD_SIGNATURE,
                  absl::StrCat("not forwarded by a member of this machine's cluster (member \"",
                               forwarded.member_id(), "\": ",
                               options_.cluster_id.empty() ? "this agent does not run --via-gateway"
                               : member_key == nullptr     ? "not a member"
                                                           : "bad signature",
                               ")"));
  }
  std::optional<proto::JobRequest> job = VerifyCloudSigned(channel, forwarded.job());
  if (!job.has_value()) return;
  // The member re-sealed the credentials to this machine's key; the job's own envelope, sealed to
  // the cluster key this agent does not hold, is not looked at.
  proto::SealedEnvelope envelope;
  JobRoute route{.member_id = forwarded.member_id(),
                 .envelope = envelope.ParseFromString(forwarded.credentials())
                                 ? absl::StatusOr<proto::SealedEnvelope>(std::move(envelope))
                                 : absl::InvalidArgumentError("the forwarded credentials do not parse"),
                 .key = options_.machine_private_key};
  AcceptJob(channel, *job, route);
}

const std::string* JobService::MemberKey(const std::string& member_id) {
  if (options_.cluster_id.empty() || member_id.empty()) return nullptr;
  auto found = member_keys_.find(member_id);
  if (found != member_keys_.end()) return &found->second;
  // Perhaps a member that joined after the keys were fetched: ask again, but not for every
  // unknown id a sender makes up.
  if (!options_.fetch_cluster_member_keys ||
      absl::Now() - members_fetched_at_ < options_.member_refresh_interval) {
    return nullptr;
  }
  members_fetched_at_ = absl::Now();
  absl::StatusOr<std::map<std::string, std::string>> keys = options_.fetch_cluster_member_keys();
  if (!keys.ok()) {
    LogWarning("cluster_members_refresh_failed", {{"error", keys.status().ToString()}});
    return nullptr;
  }
  member_keys_ = *std::move(keys);
  LogInfo("cluster_members_refreshed", {{"members", absl::StrCat(member_keys_.size())}});
  found = member_keys_.find(member_id);
  return found == member_keys_.end() ? nullptr : &found->second;
}

std::string JobService::WrongTarget(const proto::JobRequest& job, const JobRoute& route) const {
  const proto::JobTarget& target = job.target();
  if (route.member_id.empty()) {
    // Straight from the cloud: this machine, and its group if the job names one.
    const bool for_group = !target.group_id().empty();
    if (target.cluster_id().empty() && target.machine_id() == options_.machine_id &&
        (!for_group || (!options_.group_id.empty() && target.group_id() == options_.group_id))) {
      return "";
    }
    return absl::StrCat("job is for machine \"", target.machine_id(), "\"",
                        for_group ? absl::StrCat(" in group \"", target.group_id(), "\"") : "",
                        target.cluster_id().empty()
                            ? ""
                            : absl::StrCat(" in cluster \"", target.cluster_id(), "\""),
                        ", this is ", options_.machine_id);
  }
  // Through a gateway member: this machine's cluster, and this machine or any of the cluster's.
  if (!options_.cluster_id.empty() && target.cluster_id() == options_.cluster_id &&
      target.group_id().empty() &&
      (target.machine_id().empty() || target.machine_id() == options_.machine_id)) {
    return "";
  }
  return absl::StrCat("forwarded job is for cluster \"", target.cluster_id(), "\"",
                      target.machine_id().empty()
                          ? ""
                          : absl::StrCat(", machine \"", target.machine_id(), "\""),
                      target.group_id().empty() ? "" : absl::StrCat(", group \"", target.group_id(), "\""),
                      "; this is ", options_.machine_id, " in cluster \"", options_.cluster_id, "\"");
}

void JobService::AcceptJob(const std::shared_ptr<net::ListenerChannel>& channel,
                           const proto::JobRequest& job, const JobRoute& route) {
  auto refuse = [&](proto::JobRejectCode code, absl::string_view reason) {
    Refuse(channel, job.job_id(), code, reason);
  };

  // Dedupe first: a job already in the ledger is never started again, whatever else holds.
  absl::StatusOr<LedgerJob> known = ledger_->Get(job.job_id());
  if (known.ok()) {
    {
      absl::MutexLock lock(&mu_);
      if (running_ != nullptr && running_->job_id == job.job_id()) {
        absl::MutexLock running_lock(&running_->mu);
        running_->channel = channel;
      }
    }
    proto::ChannelMessage accepted;
    accepted.mutable_job_accepted()->set_job_id(job.job_id());
    accepted.mutable_job_accepted()->set_duplicate(true);
    accepted.mutable_job_accepted()->set_accepted_at_unix_ms(known->accepted_at_unix_ms());
    Send(channel, accepted);
    return;
  }
  if (!absl::IsNotFound(known.status())) {
    return refuse(proto::JOB_REJECT_CODE_AGENT_ERROR, absl::StrCat("ledger: ", known.status().message()));
  }

  const int64_t now = NowMs();
  if (job.expires_at_unix_ms() < now) {
    return refuse(proto::JOB_REJECT_CODE_EXPIRED, "job request expired");
  }
  if (job.issued_at_unix_ms() > now + absl::ToInt64Milliseconds(options_.clock_skew)) {
    return refuse(proto::JOB_REJECT_CODE_EXPIRED, "job request issued in the future (clock skew?)");
  }
  if (std::string wrong = WrongTarget(job, route); !wrong.empty()) {
    return refuse(proto::JOB_REJECT_CODE_WRONG_TARGET, wrong);
  }
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return refuse(proto::JOB_REJECT_CODE_AGENT_ERROR, "agent is stopping");
    if (running_ != nullptr) {
      proto::ChannelMessage busy;
      busy.mutable_busy()->set_job_id(job.job_id());
      busy.mutable_busy()->set_reason(absl::StrCat("running job ", running_->job_id));
      Send(channel, busy);
      return;
    }
  }

  // The credentials: only this machine (or its group) can open them; a forwarded job's, re-sealed
  // by the member, only this machine.
  if (!route.envelope.ok()) {
    return refuse(proto::JOB_REJECT_CODE_CREDENTIALS_UNREADABLE, route.envelope.status().message());
  }
  absl::StatusOr<crypto::Credentials> credentials =
      crypto::OpenCredentials(*route.envelope, route.key, job.connection_id());
  if (!credentials.ok()) {
    return refuse(proto::JOB_REJECT_CODE_CREDENTIALS_UNREADABLE, credentials.status().message());
  }
  if (credentials->username != job.username()) {
    return refuse(proto::JOB_REJECT_CODE_CREDENTIALS_UNREADABLE,
                  "the envelope's account is not the job's account");
  }
  absl::StatusOr<accounts::RunAsAccount> account = accounts::LookupAccount(job.username());
  if (!account.ok()) {
    return refuse(proto::JOB_REJECT_CODE_ACCOUNT_VERIFICATION_FAILED, account.status().message());
  }
  absl::Status verified = options_.verifier->Verify(job.username(), credentials->password);
  credentials->password = crypto::SecretBytes();  // wiped: the password's work is done
  if (!verified.ok()) {
    return refuse(proto::JOB_REJECT_CODE_ACCOUNT_VERIFICATION_FAILED, verified.message());
  }
  if (absl::Status may = accounts::CheckMayRunAs(*account); !may.ok()) {
    return refuse(proto::JOB_REJECT_CODE_NOT_PERMITTED, may.message());
  }
  if (job.mode() == proto::RUN_MODE_ATTENDED) {
    absl::StatusOr<bool> session = accounts::HasActiveSession(job.username());
    if (!session.ok() || !*session) {
      return refuse(proto::JOB_REJECT_CODE_NO_SESSION,
                    absl::StrCat("attended run, but \"", job.username(), "\" has no active login session"));
    }
  }
  if (absl::StatusOr<flow::FlowDefinition> flow = flow::ParseFlowDefinition(job.flow_definition_json());
      !flow.ok()) {
    return refuse(proto::JOB_REJECT_CODE_INVALID_FLOW, flow.status().message());
  }

  LedgerJob entry;
  *entry.mutable_job() = job;
  entry.mutable_job()->clear_credentials();  // never kept on disk beside the key that opens it
  entry.set_run_id(job.run_id());
  entry.set_state(proto::JOB_STATE_ACCEPTED);
  entry.set_accepted_at_unix_ms(NowMs());
  entry.set_forwarded_by(route.member_id);
  if (absl::Status status = ledger_->Accept(job.job_id(), entry); !status.ok()) {
    return refuse(proto::JOB_REJECT_CODE_AGENT_ERROR, absl::StrCat("ledger: ", status.message()));
  }
  proto::ChannelMessage accepted;
  accepted.mutable_job_accepted()->set_job_id(job.job_id());
  accepted.mutable_job_accepted()->set_accepted_at_unix_ms(entry.accepted_at_unix_ms());
  Send(channel, accepted);
  LogInfo("job_accepted", {{"job_id", job.job_id()},
                           {"run_id", job.run_id()},
                           {"account", job.username()},
                           {"forwarded_by", route.member_id}});

  if (absl::Status started = Start(job, job.username(), channel); !started.ok()) {
    proto::JobResult result;
    result.set_job_id(job.job_id());
    result.set_state(proto::JOB_STATE_FAILED);
    result.mutable_error()->set_message(absl::StrCat("the run could not start: ", started.message()));
    result.set_finished_at_unix_ms(NowMs());
    ledger_->Finish(job.job_id(), result).IgnoreError();
    proto::ChannelMessage message;
    *message.mutable_job_result() = result;
    Send(channel, message);
  }
}

absl::Status JobService::Start(const proto::JobRequest& job, const std::string& username,
                               std::shared_ptr<net::ListenerChannel> channel) {
  ASSIGN_OR_RETURN(accounts::RunAsAccount account, accounts::LookupAccount(username));
  ASSIGN_OR_RETURN(std::vector<gid_t> groups, accounts::SupplementaryGroups(account));
  RunnerRequest request;
  request.set_job_id(job.job_id());
  request.set_flow_definition_json(job.flow_definition_json());
  for (const auto& [name, value] : job.inputs()) (*request.mutable_inputs())[name] = value;
  request.set_timeout_ms(job.timeout_ms());
  request.set_max_capture_bytes(options_.max_capture_bytes);
  // Like login(1): an account without a usable home starts in "/".
  request.set_working_directory(access(account.home.c_str(), X_OK) == 0 ? account.home : "/");
  std::string request_bytes;
  {
    google::protobuf::io::StringOutputStream stream(&request_bytes);
    if (!google::protobuf::util::SerializeDelimitedToZeroCopyStream(request, &stream)) {
      return absl::InternalError("cannot serialize the runner request");
    }
  }

  int to_runner[2], from_runner[2];
  if (pipe2(to_runner, O_CLOEXEC) != 0) return absl::InternalError(std::strerror(errno));
  if (pipe2(from_runner, O_CLOEXEC) != 0) {
    close(to_runner[0]);
    close(to_runner[1]);
    return absl::InternalError(std::strerror(errno));
  }
  const std::string runner_path = options_.runner_path;
  // Root switches to the account; an agent already running as it (or root running a root job)
  // stays as it is.
  const bool switch_user = geteuid() == 0 && account.uid != geteuid();
  pid_t pid = fork();
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  if (pid == 0) {
    // The child: its own process group (CancelJob kills the group), the account's identity, the
    // pipes on 0 and 1, then the runner. Only async-signal-safe calls from here.
    setpgid(0, 0);
    // The agent blocks SIGTERM/SIGINT (its main thread takes them with sigwait) and ignores
    // SIGPIPE; an exec'd program would inherit both, and the runner must die of a cancel's
    // SIGTERM and see broken pipes.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGPIPE, SIG_DFL);
    if (switch_user && !accounts::SwitchToAccount(account, groups).ok()) _exit(126);
    dup2(to_runner[0], 0);
    dup2(from_runner[1], 1);
    char* argv[] = {const_cast<char*>("flow_runner"), nullptr};
    execv(runner_path.c_str(), argv);
    _exit(127);
  }
  setpgid(pid, pid);
  close(to_runner[0]);
  close(from_runner[1]);
  // The request is small (bounded by the relay's frame limit), far below a pipe's buffer? Not
  // necessarily (64 KiB); write it all, the runner reads it first thing.
  size_t written = 0;
  while (written < request_bytes.size()) {
    ssize_t n = write(to_runner[1], request_bytes.data() + written, request_bytes.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    written += static_cast<size_t>(n);
  }
  close(to_runner[1]);

  auto running = std::make_shared<Running>();
  running->job_id = job.job_id();
  running->run_id = job.run_id();
  running->pid = pid;
  running->from_runner = from_runner[0];
  running->started_at_ms = NowMs();
  running->deadline = absl::Now() + absl::Milliseconds(job.timeout_ms()) + options_.timeout_grace;
  {
    absl::MutexLock lock(&running->mu);
    running->channel = channel;
  }
  ledger_->SetState(job.job_id(), proto::JOB_STATE_RUNNING, running->started_at_ms).IgnoreError();
  {
    absl::MutexLock lock(&mu_);
    running_ = running;
    last_started_ = running;
  }
  if (options_.on_change) options_.on_change();
  // The reader owns the job from here; Shutdown() waits on `done`.
  std::thread([this, running] { ReadRunner(running); }).detach();
  return absl::OkStatus();
}

void JobService::ReadRunner(std::shared_ptr<Running> running) {
  auto channel_now = [&]() {
    absl::MutexLock lock(&running->mu);
    return running->channel.lock();
  };
  // Length-delimited RunnerMessages, read with our own buffer: every whole message that has
  // arrived is handled at once (a buffering stream would leave some waiting for the next poll,
  // holding back live progress until the runner writes again).
  std::string pending;
  std::optional<RunnerResult> runner_result;
  bool eof = false;
  auto handle = [&](const RunnerMessage& message) {
    if (message.has_event()) {
      proto::JobEvent event = message.event();
      event.set_job_id(running->job_id);
      event.set_seq(++running->seq);
      ledger_->AppendEvent(running->job_id, event).IgnoreError();
      proto::ChannelMessage out;
      *out.mutable_job_event() = event;
      Send(channel_now(), out);
    } else if (message.has_result()) {
      runner_result = message.result();
    }
  };
  while (!eof && !runner_result.has_value()) {
    // Wait for data with a deadline: the job's timeout, and a pending cancel's SIGKILL.
    absl::Time kill_at;
    {
      absl::MutexLock lock(&running->mu);
      kill_at = running->kill_at;
    }
    const absl::Time wake = std::min(running->deadline, kill_at);
    pollfd pfd{running->from_runner, POLLIN, 0};
    int timeout_ms = static_cast<int>(std::clamp<int64_t>(
        absl::ToInt64Milliseconds(wake - absl::Now()), 0, 1000));
    int ready = poll(&pfd, 1, timeout_ms);
    if (ready == 0) {
      if (absl::Now() >= running->deadline && !running->timed_out) {
        running->timed_out = true;
        killpg(running->pid, SIGKILL);
        LogWarning("job_killed_after_timeout", {{"job_id", running->job_id}});
      } else if (absl::Now() >= kill_at) {
        killpg(running->pid, SIGKILL);
      }
      continue;
    }
    if (ready < 0 && errno == EINTR) continue;
    char chunk[64 * 1024];
    ssize_t n = read(running->from_runner, chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the runner closed its end (or died)
    pending.append(chunk, static_cast<size_t>(n));
    while (!runner_result.has_value()) {
      google::protobuf::io::CodedInputStream coded(reinterpret_cast<const uint8_t*>(pending.data()),
                                                   static_cast<int>(pending.size()));
      uint32_t size = 0;
      if (!coded.ReadVarint32(&size)) {
        if (pending.size() >= 5) eof = true;  // not a length prefix: a corrupt stream
        break;
      }
      if (size > kMaxRunnerMessage) {
        eof = true;
        break;
      }
      const size_t header = static_cast<size_t>(coded.CurrentPosition());
      if (pending.size() - header < size) break;  // the rest is on its way
      RunnerMessage message;
      if (!message.ParseFromArray(pending.data() + header, static_cast<int>(size))) {
        eof = true;
        break;
      }
      pending.erase(0, header + size);
      handle(message);
    }
  }
  if (eof) LogWarning("runner_stream_corrupt", {{"job_id", running->job_id}});
  close(running->from_runner);
  int status = 0;
  while (waitpid(running->pid, &status, 0) < 0 && errno == EINTR) {
  }
  killpg(running->pid, SIGKILL);  // anything the flow left behind in its group

  proto::JobResult result;
  result.set_job_id(running->job_id);
  bool cancelled;
  std::string cancel_reason;
  {
    absl::MutexLock lock(&running->mu);
    cancelled = running->cancel_requested;
    cancel_reason = running->cancel_reason;
  }
  if (runner_result.has_value()) {
    result.set_state(runner_result->state());
    *result.mutable_error() = runner_result->error();
    for (const auto& [name, value] : runner_result->outputs()) (*result.mutable_outputs())[name] = value;
    result.set_started_at_unix_ms(runner_result->started_at_unix_ms());
    result.set_finished_at_unix_ms(runner_result->finished_at_unix_ms());
  } else {
    result.set_started_at_unix_ms(running->started_at_ms);
    result.set_finished_at_unix_ms(NowMs());
    if (running->timed_out) {
      result.set_state(proto::JOB_STATE_TIMED_OUT);
      result.mutable_error()->set_message("the run outlived its timeout and was killed");
    } else if (cancelled) {
      result.set_state(proto::JOB_STATE_CANCELLED);
      result.mutable_error()->set_message(cancel_reason);
    } else {
      result.set_state(proto::JOB_STATE_FAILED);
      result.mutable_error()->set_message(
          WIFSIGNALED(status) ? absl::StrCat("the flow runner was killed by signal ", WTERMSIG(status))
          : WEXITSTATUS(status) == 126 ? std::string("cannot switch to the job's account")
          : WEXITSTATUS(status) == 127 ? absl::StrCat("cannot run ", options_.runner_path)
                                       : absl::StrCat("the flow runner exited with code ",
                                                      WEXITSTATUS(status), " without a result"));
    }
  }
  if (cancelled && result.state() == proto::JOB_STATE_CANCELLED && !cancel_reason.empty()) {
    result.mutable_error()->set_message(cancel_reason);
  }
  result.set_last_event_seq(running->seq);
  if (absl::Status status = ledger_->Finish(running->job_id, result); !status.ok()) {
    LogError("ledger_finish_failed", {{"job_id", running->job_id}, {"error", status.ToString()}});
  }
  LogInfo("job_finished", {{"job_id", running->job_id}, {"state", proto::JobState_Name(result.state())}});
  {
    absl::MutexLock lock(&mu_);
    if (running_ == running) running_.reset();
  }
  if (options_.on_change) options_.on_change();
  proto::ChannelMessage out;
  *out.mutable_job_result() = result;
  Send(channel_now(), out);
  running->done.Notify();
}

proto::JobStatus JobService::StatusOf(const std::string& job_id, uint64_t since) {
  proto::JobStatus status;
  status.set_job_id(job_id);
  absl::StatusOr<LedgerJob> job = ledger_->Get(job_id);
  if (!job.ok()) {
    status.set_state(proto::JOB_STATE_UNKNOWN);
    return status;
  }
  status.set_state(job->state());
  bool more = false;
  absl::StatusOr<std::vector<proto::JobEvent>> events =
      ledger_->Events(job_id, since, options_.max_status_bytes, &more);
  if (events.ok()) {
    for (proto::JobEvent& event : *events) *status.add_events() = std::move(event);
  }
  status.set_more_events(more);
  if (IsTerminal(job->state()) && !more) *status.mutable_result() = job->result();
  return status;
}

void JobService::HandleControl(const std::shared_ptr<net::ListenerChannel>& channel,
                               const proto::SignedControl& signed_control) {
  proto::ControlRequest control;
  if (signed_control.key_id() != options_.cloud_signing_key_id ||
      !crypto::Ed25519Verify(options_.cloud_signing_pub,
                             proto::ControlRequestSigningInput(signed_control.control_request()),
                             signed_control.signature())
           .ok() ||
      !control.ParseFromString(signed_control.control_request())) {
    LogWarning("control_refused", {{"reason", "bad signature or key"}});
    Send(channel, Rejected("", proto::JOB_REJECT_CODE_BAD_SIGNATURE,
                           "control request not signed by the pinned cloud key"));
    return;
  }
  const std::string job_id =
      control.has_query_job() ? control.query_job().job_id() : control.cancel_job().job_id();
  if (control.expires_at_unix_ms() < NowMs()) {
    Send(channel, Rejected(job_id, proto::JOB_REJECT_CODE_EXPIRED, "control request expired"));
    return;
  }
  std::shared_ptr<Running> running;
  {
    absl::MutexLock lock(&mu_);
    if (running_ != nullptr && running_->job_id == job_id) running = running_;
  }
  if (running != nullptr) {
    // From now on the job reports on the channel that asked (the cloud's newest).
    absl::MutexLock lock(&running->mu);
    running->channel = channel;
    if (control.has_cancel_job() && !running->cancel_requested) {
      running->cancel_requested = true;
      running->cancel_reason =
          control.cancel_job().reason().empty() ? "cancelled" : control.cancel_job().reason();
      running->kill_at = absl::Now() + options_.cancel_grace;
      killpg(running->pid, SIGTERM);
      LogInfo("job_cancelling", {{"job_id", job_id}});
    }
  }
  proto::ChannelMessage reply;
  *reply.mutable_job_status() =
      StatusOf(job_id, control.has_query_job() ? control.query_job().since_seq() : 0);
  Send(channel, reply);
}

void JobService::Shutdown(absl::Duration grace) {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  // The worker may be starting a job right now: let it finish that before looking.
  if (worker_.joinable()) worker_.join();
  std::shared_ptr<Running> running;
  {
    absl::MutexLock lock(&mu_);
    running = last_started_;
  }
  if (running == nullptr || running->done.HasBeenNotified()) return;
  if (!running->done.WaitForNotificationWithTimeout(grace)) {
    {
      absl::MutexLock lock(&running->mu);
      if (!running->cancel_requested) {
        running->cancel_requested = true;
        running->cancel_reason = "agent stopping";
        running->kill_at = absl::Now() + options_.cancel_grace;
        killpg(running->pid, SIGTERM);
      }
    }
    running->done.WaitForNotification();
  }
}

JobServiceStatus JobService::status() const {
  absl::MutexLock lock(&mu_);
  JobServiceStatus status;
  if (running_ != nullptr) {
    status.current_job_id = running_->job_id;
    status.current_run_id = running_->run_id;
  }
  return status;
}

}  // namespace tether::agent
