#include "relay/longpoll_listener.h"

#include <utility>

#include <boost/asio/post.hpp>

#include "absl/time/clock.h"
#include "common/base/clock.h"
#include "common/base/log.h"

namespace tether::relay {
namespace {

namespace net = boost::asio;

// One poll response carries at most this many bytes of frames; the rest waits for the next poll.
constexpr std::size_t kMaxResponseBytes = 4 << 20;

std::chrono::milliseconds ToChrono(absl::Duration d) {
  return std::chrono::milliseconds(absl::ToInt64Milliseconds(d));
}

}  // namespace

std::shared_ptr<LongPollListener> LongPollListener::Create(RelayContext* context,
                                                           net::any_io_executor executor,
                                                           std::string entity, std::string id,
                                                           int64_t token_expiry_unix) {
  return std::shared_ptr<LongPollListener>(new LongPollListener(
      context, std::move(executor), std::move(entity), std::move(id), token_expiry_unix));
}

LongPollListener::LongPollListener(RelayContext* context, net::any_io_executor executor,
                                   std::string entity, std::string id, int64_t token_expiry_unix)
    : ListenerCore(context, std::move(entity), std::move(id), ListenerTransport::kLongPoll,
                   token_expiry_unix),
      strand_(net::make_strand(std::move(executor))),
      wait_timer_(strand_),
      idle_timer_(strand_),
      last_activity_(WallNow()) {}

void LongPollListener::Start() {
  net::post(strand_, [self = self()] { self->ArmIdleTimer(); });
}

void LongPollListener::ArmIdleTimer() {
  idle_timer_.expires_after(ToChrono(context()->options.longpoll_idle_timeout));
  idle_timer_.async_wait([self = self()](boost::system::error_code ec) {
    if (!ec) self->OnIdleTimer();
  });
}

void LongPollListener::OnIdleTimer() {
  if (closed_) return;
  if (token_expiry_unix() <= context()->NowUnix()) {
    CloseTransport(proto::RELAY_CLOSE_CODE_TOKEN_EXPIRED, "token expired");
    return;
  }
  absl::Duration idle = WallNow() - last_activity_;
  if (!parked_ && idle >= context()->options.longpoll_idle_timeout) {
    LogInfo("longpoll_listener_idle", {{"entity", entity()}, {"listener_id", id()}});
    CloseTransport(proto::RELAY_CLOSE_CODE_LISTENER_GONE, "long-poll listener stopped polling");
    return;
  }
  // Check again when the idle time could next run out, or at the token's expiry if sooner.
  absl::Duration next = context()->options.longpoll_idle_timeout - (parked_ ? absl::ZeroDuration()
                                                                            : idle);
  absl::Duration to_expiry = absl::Seconds(token_expiry_unix() - context()->NowUnix());
  if (to_expiry < next) next = to_expiry;
  if (next < absl::Milliseconds(10)) next = absl::Milliseconds(10);
  idle_timer_.expires_after(ToChrono(next));
  idle_timer_.async_wait([self = self()](boost::system::error_code ec) {
    if (!ec) self->OnIdleTimer();
  });
}

void LongPollListener::Poll(absl::Duration wait, PollCallback done) {
  net::post(strand_, [self = self(), wait, done = std::move(done)]() mutable {
    self->context()->metrics.longpoll_polls.fetch_add(1, std::memory_order_relaxed);
    self->last_activity_ = WallNow();
    if (self->parked_) self->CompleteParked();  // the client gave up on the older poll
    self->parked_ = std::move(done);
    if (!self->queue_.empty() || self->closed_ || wait <= absl::ZeroDuration()) {
      self->CompleteParked();
      return;
    }
    uint64_t generation = ++self->poll_generation_;
    self->wait_timer_.expires_after(ToChrono(wait));
    self->wait_timer_.async_wait([self, generation](boost::system::error_code ec) {
      if (ec || generation != self->poll_generation_) return;
      self->CompleteParked();
    });
  });
}

void LongPollListener::CompleteParked() {
  if (!parked_) return;
  ++poll_generation_;
  wait_timer_.cancel();
  std::vector<std::string> frames;
  std::size_t bytes = 0;
  while (!queue_.empty() && (frames.empty() || bytes + queue_.front().bytes.size() <=
                                                   kMaxResponseBytes)) {
    Item item = std::move(queue_.front());
    queue_.pop_front();
    bytes += item.bytes.size();
    queued_bytes_.fetch_sub(item.bytes.size(), std::memory_order_relaxed);
    OnWritten(item.channel_id, item.bytes.size());
    frames.push_back(std::move(item.bytes));
  }
  PollCallback done = std::move(parked_);
  parked_ = nullptr;
  last_activity_ = WallNow();
  done(std::move(frames));
}

void LongPollListener::Requeue(std::vector<std::string> frames) {
  net::post(strand_, [self = self(), frames = std::move(frames)]() mutable {
    if (self->closed_) return;
    for (auto it = frames.rbegin(); it != frames.rend(); ++it) {
      self->queued_bytes_.fetch_add(it->size(), std::memory_order_relaxed);
      self->queue_.push_front(Item{0, std::move(*it)});
    }
  });
}

bool LongPollListener::EnqueueFrame(uint64_t channel_id, std::string bytes) {
  std::size_t total = queued_bytes_.fetch_add(bytes.size()) + bytes.size();
  if (total > context()->options.connection_queue_bytes) {
    queued_bytes_.fetch_sub(bytes.size());
    return false;
  }
  net::post(strand_, [self = self(), channel_id, bytes = std::move(bytes)]() mutable {
    if (self->closed_) return;
    self->queue_.push_back(Item{channel_id, std::move(bytes)});
    if (self->parked_) self->CompleteParked();
  });
  return true;
}

void LongPollListener::CloseTransport(uint32_t code, std::string reason) {
  net::post(strand_, [self = self(), code, reason = std::move(reason)]() mutable {
    if (self->closed_) return;
    self->closed_ = true;
    self->idle_timer_.cancel();
    // The control channel's close reaches a long-poll listener as a Close frame on channel 0
    // in its next (or parked) poll response, the last one it gets.
    proto::RelayFrame close;
    close.mutable_close()->set_channel_id(0);
    close.mutable_close()->set_code(code);
    close.mutable_close()->set_reason(reason);
    self->queue_.clear();
    self->queued_bytes_ = 0;
    self->queue_.push_back(Item{0, close.SerializeAsString()});
    if (self->parked_) self->CompleteParked();
    self->OnTransportClosed();
  });
}

}  // namespace tether::relay
