#include "cloud/testing/stub_agent.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/base/clock.h"
#include "common/crypto/ed25519.h"
#include "common/proto/signing_input.h"

namespace tether::cloud::testing {
namespace {

int64_t NowMs() { return absl::ToUnixMillis(WallNow()); }

std::string Serialize(const proto::ChannelMessage& message) { return message.SerializeAsString(); }

}  // namespace

absl::StatusOr<std::unique_ptr<StubAgent>> StubAgent::Start(StubAgentOptions options) {
  std::unique_ptr<StubAgent> agent(new StubAgent(std::move(options)));
  agent->busy_ = agent->options_.busy;
  agent->hold_ = agent->options_.hold_jobs;
  if (absl::Status status = agent->Listen(); !status.ok()) return status;
  return agent;
}

absl::Status StubAgent::Listen() {
  net::ListenerOptions listener;
  listener.relay_url = options_.relay_url;
  listener.entity = options_.entity;
  listener.listener_id = options_.listener_id;
  listener.token_provider = options_.token_provider;
  listener.backoff.initial = absl::Milliseconds(50);
  listener.backoff.cap = absl::Milliseconds(500);
  listener.on_channel = [this](std::shared_ptr<net::ListenerChannel> channel) {
    OnChannel(std::move(channel));
  };
  absl::StatusOr<std::unique_ptr<net::RelayListener>> created = net::RelayListener::Create(listener);
  if (!created.ok()) return created.status();
  listener_ = *std::move(created);
  return listener_->Start();
}

void StubAgent::Disconnect() {
  if (listener_ != nullptr) listener_->Stop();
  listener_.reset();
}

absl::Status StubAgent::Resume() { return Listen(); }

StubAgent::~StubAgent() { Stop(); }

void StubAgent::Stop() {
  if (listener_ != nullptr) listener_->Stop();
}

void StubAgent::OnChannel(std::shared_ptr<net::ListenerChannel> channel) {
  std::weak_ptr<net::ListenerChannel> weak = channel;
  net::ListenerChannel::Handlers handlers;
  handlers.on_data = [this, weak](std::string payload) {
    if (auto channel = weak.lock()) OnMessage(channel, payload);
  };
  handlers.on_close = [](uint32_t, std::string) {};
  channel->Accept(std::move(handlers)).IgnoreError();
}

void StubAgent::OnMessage(const std::shared_ptr<net::ListenerChannel>& channel,
                          const std::string& payload) {
  proto::ChannelMessage message;
  if (!message.ParseFromString(payload)) return;
  proto::ChannelMessage reply;
  std::string finish_job;
  if (message.has_job_request()) {
    const proto::SignedJobRequest& signed_job = message.job_request();
    proto::JobRequest request;
    const bool verified =
        crypto::Ed25519Verify(options_.cloud_signing_pub,
                              proto::JobRequestSigningInput(signed_job.job_request()),
                              signed_job.signature())
            .ok();
    if (!verified || !request.ParseFromString(signed_job.job_request())) {
      absl::MutexLock lock(&mu_);
      ++bad_signatures_;
      proto::JobRejected* rejected = reply.mutable_job_rejected();
      rejected->set_job_id(request.job_id());
      rejected->set_code(proto::JOB_REJECT_CODE_BAD_SIGNATURE);
      rejected->set_reason("signature does not verify with the pinned cloud key");
    } else {
      if (options_.on_job) options_.on_job(request);
      if (options_.silent) return;
      absl::MutexLock lock(&mu_);
      auto it = jobs_.find(request.job_id());
      if (it != jobs_.end()) {
        it->second.channel = channel;
        reply.mutable_job_accepted()->set_job_id(request.job_id());
        reply.mutable_job_accepted()->set_duplicate(true);
        reply.mutable_job_accepted()->set_accepted_at_unix_ms(NowMs());
      } else if (busy_) {
        reply.mutable_busy()->set_job_id(request.job_id());
        reply.mutable_busy()->set_reason("stub agent told to be busy");
      } else {
        Job& job = jobs_[request.job_id()];
        job.request = request;
        job.executions = 1;
        job.channel = channel;
        accepted_.push_back(request.job_id());
        reply.mutable_job_accepted()->set_job_id(request.job_id());
        reply.mutable_job_accepted()->set_accepted_at_unix_ms(NowMs());
        if (!hold_) finish_job = request.job_id();
      }
    }
  } else if (message.has_control()) {
    proto::ControlRequest control;
    const bool verified =
        crypto::Ed25519Verify(options_.cloud_signing_pub,
                              proto::ControlRequestSigningInput(message.control().control_request()),
                              message.control().signature())
            .ok();
    if (!verified || !control.ParseFromString(message.control().control_request())) return;
    const std::string job_id =
        control.has_query_job() ? control.query_job().job_id() : control.cancel_job().job_id();
    bool cancel = false;
    {
      absl::MutexLock lock(&mu_);
      proto::JobStatus* status = reply.mutable_job_status();
      status->set_job_id(job_id);
      auto it = jobs_.find(job_id);
      if (it == jobs_.end()) {
        status->set_state(proto::JOB_STATE_UNKNOWN);
      } else {
        it->second.channel = channel;
        status->set_state(it->second.state);
        const uint64_t since = control.has_query_job() ? control.query_job().since_seq() : 0;
        for (const proto::JobEvent& event : it->second.events) {
          if (event.seq() > since) *status->add_events() = event;
        }
        if (it->second.state != proto::JOB_STATE_ACCEPTED) *status->mutable_result() = it->second.result;
        cancel = control.has_cancel_job() && it->second.state == proto::JOB_STATE_ACCEPTED;
      }
    }
    channel->Send(Serialize(reply)).IgnoreError();
    if (cancel) Finish(job_id, proto::JOB_STATE_CANCELLED);
    return;
  } else {
    return;
  }
  channel->Send(Serialize(reply)).IgnoreError();
  if (!finish_job.empty()) Finish(finish_job, proto::JOB_STATE_SUCCEEDED);
}

void StubAgent::Finish(const std::string& job_id, proto::JobState state) {
  std::vector<std::string> messages;
  std::shared_ptr<net::ListenerChannel> channel;
  {
    absl::MutexLock lock(&mu_);
    auto it = jobs_.find(job_id);
    if (it == jobs_.end() || it->second.state != proto::JOB_STATE_ACCEPTED) return;
    Job& job = it->second;
    const int64_t started = NowMs();
    auto add_event = [&](const std::function<void(proto::JobEvent&)>& fill) {
      proto::JobEvent event;
      event.set_job_id(job_id);
      event.set_seq(job.events.size() + 1);
      event.set_timestamp_unix_ms(NowMs());
      fill(event);
      job.events.push_back(event);
      proto::ChannelMessage message;
      *message.mutable_job_event() = event;
      messages.push_back(Serialize(message));
    };
    if (state == proto::JOB_STATE_SUCCEEDED) {
      for (int i = 0; i < options_.log_lines_per_job; ++i) {
        add_event([&](proto::JobEvent& e) {
          e.mutable_log_line()->set_stream(proto::JobEvent::LogLine::STREAM_RUNNER);
          e.mutable_log_line()->set_text(absl::StrCat("line ", i + 1));
        });
      }
      add_event([&](proto::JobEvent& e) {
        e.mutable_output()->set_name("result");
        e.mutable_output()->set_value(absl::StrCat("ok:", job.request.username()));
      });
    }
    job.state = state;
    proto::JobResult& result = job.result;
    result.set_job_id(job_id);
    result.set_state(state);
    if (state == proto::JOB_STATE_SUCCEEDED) {
      (*result.mutable_outputs())["result"] = absl::StrCat("ok:", job.request.username());
      for (const auto& [name, value] : job.request.inputs()) (*result.mutable_outputs())[name] = value;
    } else {
      result.mutable_error()->set_message("cancelled");
    }
    result.set_started_at_unix_ms(started);
    result.set_finished_at_unix_ms(NowMs());
    result.set_last_event_seq(job.events.size());
    proto::ChannelMessage message;
    *message.mutable_job_result() = result;
    messages.push_back(Serialize(message));
    channel = job.channel.lock();
  }
  if (channel == nullptr) return;
  for (const std::string& message : messages) channel->Send(message).IgnoreError();
}

std::vector<std::string> StubAgent::accepted_jobs() const {
  absl::MutexLock lock(&mu_);
  return accepted_;
}

int StubAgent::executions(const std::string& job_id) const {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  return it == jobs_.end() ? 0 : it->second.executions;
}

int StubAgent::bad_signatures() const {
  absl::MutexLock lock(&mu_);
  return bad_signatures_;
}

absl::StatusOr<proto::JobRequest> StubAgent::request(const std::string& job_id) const {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return absl::NotFoundError(job_id);
  return it->second.request;
}

bool StubAgent::WaitForAccepted(size_t n, absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  struct Ctx {
    const StubAgent* agent;
    size_t n;
  } ctx{this, n};
  return mu_.AwaitWithTimeout(absl::Condition(
                                  +[](Ctx* c) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                                    return c->agent->accepted_.size() >= c->n;
                                  },
                                  &ctx),
                              timeout);
}

void StubAgent::Release(const std::string& job_id) { Finish(job_id, proto::JOB_STATE_SUCCEEDED); }

void StubAgent::SetBusy(bool busy) {
  absl::MutexLock lock(&mu_);
  busy_ = busy;
}

void StubAgent::SetHold(bool hold) {
  absl::MutexLock lock(&mu_);
  hold_ = hold;
}

}  // namespace tether::cloud::testing
