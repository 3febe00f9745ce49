#include "relay/listener_core.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/base/log.h"
#include "common/crypto/sas_token.h"

namespace tether::relay {
namespace {

constexpr uint32_t kCloseQueueFull = proto::RELAY_CLOSE_CODE_QUEUE_FULL;
constexpr uint32_t kCloseListenerGone = proto::RELAY_CLOSE_CODE_LISTENER_GONE;
constexpr uint32_t kCloseTokenExpired = proto::RELAY_CLOSE_CODE_TOKEN_EXPIRED;
constexpr uint32_t kCloseUnknownChannel = proto::RELAY_CLOSE_CODE_UNKNOWN_CHANNEL;

}  // namespace

ListenerCore::ListenerCore(RelayContext* context, std::string entity, std::string id,
                           ListenerTransport transport, int64_t token_expiry_unix)
    : context_(context),
      entity_(std::move(entity)),
      id_(std::move(id)),
      transport_(transport),
      token_expiry_unix_(token_expiry_unix) {}

ListenerCore::~ListenerCore() = default;

int64_t ListenerCore::token_expiry_unix() const {
  absl::MutexLock lock(&mu_);
  return token_expiry_unix_;
}

std::size_t ListenerCore::channel_count() const {
  absl::MutexLock lock(&mu_);
  return channels_.size();
}

void ListenerCore::Send(uint64_t channel_id, const proto::RelayFrame& frame) {
  if (!EnqueueFrame(channel_id, frame.SerializeAsString())) {
    context_->metrics.queue_full_closes.fetch_add(1, std::memory_order_relaxed);
    LogWarning("listener_queue_full", {{"entity", entity_}, {"listener_id", id_}});
    Close(kCloseQueueFull, "queue full: the listener does not read");
  }
}

void ListenerCore::SendClose(uint64_t channel_id, uint32_t code, absl::string_view reason) {
  proto::RelayFrame frame;
  auto* close = frame.mutable_close();
  close->set_channel_id(channel_id);
  close->set_code(code);
  close->set_reason(std::string(reason));
  Send(0, frame);
}

std::shared_ptr<SenderEndpoint> ListenerCore::TakeChannel(uint64_t channel_id) {
  absl::MutexLock lock(&mu_);
  auto it = channels_.find(channel_id);
  if (it == channels_.end()) return nullptr;
  std::shared_ptr<SenderEndpoint> sender = std::move(it->second.sender);
  channels_.erase(it);
  context_->metrics.channels.fetch_sub(1, std::memory_order_relaxed);
  return sender;
}

uint64_t ListenerCore::OpenChannel(std::shared_ptr<SenderEndpoint> sender,
                                   proto::RelayFrame::SenderMeta meta) {
  uint64_t channel_id = context_->NewChannelId();
  {
    absl::MutexLock lock(&mu_);
    if (closed_) return 0;
    channels_[channel_id] = Channel{std::move(sender), false, 0};
  }
  context_->metrics.channels.fetch_add(1, std::memory_order_relaxed);
  context_->metrics.channels_opened.fetch_add(1, std::memory_order_relaxed);
  proto::RelayFrame frame;
  frame.mutable_open()->set_channel_id(channel_id);
  *frame.mutable_open()->mutable_sender_meta() = std::move(meta);
  Send(0, frame);
  return channel_id;
}

void ListenerCore::SenderData(uint64_t channel_id, std::string payload) {
  std::size_t size = payload.size();
  bool over = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = channels_.find(channel_id);
    if (it == channels_.end() || !it->second.accepted) return;
    it->second.bytes_queued += size;
    over = it->second.bytes_queued > context_->options.channel_queue_bytes;
  }
  if (over) {
    context_->metrics.queue_full_closes.fetch_add(1, std::memory_order_relaxed);
    if (auto sender = TakeChannel(channel_id)) {
      sender->CloseFromListener(kCloseQueueFull, "queue full: the listener does not read");
    }
    SendClose(channel_id, kCloseQueueFull, "queue full: channel closed");
    return;
  }
  context_->metrics.frames_to_listener.fetch_add(1, std::memory_order_relaxed);
  context_->metrics.bytes_to_listener.fetch_add(size, std::memory_order_relaxed);
  proto::RelayFrame frame;
  frame.mutable_data()->set_channel_id(channel_id);
  frame.mutable_data()->set_payload(std::move(payload));
  Send(channel_id, frame);
}

void ListenerCore::SenderClosed(uint64_t channel_id, uint32_t code, std::string reason) {
  if (TakeChannel(channel_id) == nullptr) return;
  SendClose(channel_id, code, reason);
}

void ListenerCore::OnWritten(uint64_t channel_id, std::size_t bytes) {
  if (channel_id == 0) return;
  absl::MutexLock lock(&mu_);
  auto it = channels_.find(channel_id);
  if (it == channels_.end()) return;
  // Written sizes are of serialized frames, slightly above the payload: clamp at zero.
  it->second.bytes_queued = it->second.bytes_queued > bytes ? it->second.bytes_queued - bytes : 0;
}

void ListenerCore::HandleFrame(const proto::RelayFrame& frame) {
  switch (frame.kind_case()) {
    case proto::RelayFrame::kAccept: {
      std::shared_ptr<SenderEndpoint> sender;
      {
        absl::MutexLock lock(&mu_);
        auto it = channels_.find(frame.accept().channel_id());
        if (it != channels_.end() && !it->second.accepted) {
          it->second.accepted = true;
          sender = it->second.sender;
        }
      }
      if (sender) {
        sender->OnAccepted();
      } else {
        SendClose(frame.accept().channel_id(), kCloseUnknownChannel, "unknown channel");
      }
      return;
    }
    case proto::RelayFrame::kReject: {
      uint64_t channel_id = frame.reject().channel_id();
      std::shared_ptr<SenderEndpoint> sender;
      {
        absl::MutexLock lock(&mu_);
        auto it = channels_.find(channel_id);
        if (it != channels_.end() && !it->second.accepted) {
          sender = std::move(it->second.sender);
          channels_.erase(it);
          context_->metrics.channels.fetch_sub(1, std::memory_order_relaxed);
        }
      }
      if (!sender) {
        SendClose(channel_id, kCloseUnknownChannel, "unknown channel");
        return;
      }
      context_->metrics.channels_rejected.fetch_add(1, std::memory_order_relaxed);
      uint32_t status = frame.reject().http_status();
      if (status < 400 || status > 599) status = 502;  // relay.proto: out of range is 502
      sender->OnRejected(status, frame.reject().reason());
      return;
    }
    case proto::RelayFrame::kData: {
      uint64_t channel_id = frame.data().channel_id();
      std::shared_ptr<SenderEndpoint> sender;
      {
        absl::MutexLock lock(&mu_);
        auto it = channels_.find(channel_id);
        if (it != channels_.end() && it->second.accepted) sender = it->second.sender;
      }
      if (!sender) {
        SendClose(channel_id, kCloseUnknownChannel, "unknown channel");
        return;
      }
      context_->metrics.frames_to_sender.fetch_add(1, std::memory_order_relaxed);
      context_->metrics.bytes_to_sender.fetch_add(frame.data().payload().size(),
                                                  std::memory_order_relaxed);
      sender->DeliverData(frame.data().payload());
      return;
    }
    case proto::RelayFrame::kClose: {
      uint64_t channel_id = frame.close().channel_id();
      if (channel_id == 0) {
        Close(proto::RELAY_CLOSE_CODE_NORMAL, "listener closed");
        return;
      }
      // Closing a channel that is already gone is not an error: both sides may close at once.
      if (auto sender = TakeChannel(channel_id)) {
        uint32_t code = frame.close().code() == 0 ? 1000 : frame.close().code();
        sender->CloseFromListener(code, frame.close().reason());
      }
      return;
    }
    case proto::RelayFrame::kRenewToken:
      HandleRenewToken(frame.renew_token().token());
      return;
    case proto::RelayFrame::kPing: {
      proto::RelayFrame pong;
      pong.mutable_pong()->set_nonce(frame.ping().nonce());
      pong.mutable_pong()->set_ping_sent_at_unix_ms(frame.ping().sent_at_unix_ms());
      Send(0, pong);
      return;
    }
    case proto::RelayFrame::kPong:
      return;
    case proto::RelayFrame::kOpen:
    case proto::RelayFrame::KIND_NOT_SET:
      break;
  }
  // Open is relay → listener only; a frame without a kind is meaningless.
  context_->metrics.invalid_frames.fetch_add(1, std::memory_order_relaxed);
  Close(proto::RELAY_CLOSE_CODE_INVALID_FRAME, "invalid frame");
}

void ListenerCore::HandleRenewToken(const std::string& token) {
  auto parsed = crypto::ParseSasToken(token);
  absl::Status status = parsed.status();
  if (parsed.ok()) {
    status = context_->options.keys
                 ->Authorize(token, absl::StrCat("/$hc/", entity_), crypto::kSasListen,
                             context_->NowUnix())
                 .status();
  }
  if (!status.ok()) {
    context_->metrics.CountAuthFailure(crypto::SasFailureOf(status));
    SendClose(0, kCloseTokenExpired, absl::StrCat("token renewal refused: ", status.message()));
    return;
  }
  absl::MutexLock lock(&mu_);
  if (parsed->expiry_unix > token_expiry_unix_) token_expiry_unix_ = parsed->expiry_unix;
}

void ListenerCore::Close(uint32_t code, std::string reason) { CloseTransport(code, reason); }

void ListenerCore::OnTransportClosed() {
  absl::flat_hash_map<uint64_t, Channel> channels;
  {
    absl::MutexLock lock(&mu_);
    if (closed_) return;
    closed_ = true;
    channels.swap(channels_);
  }
  context_->registry.Remove(this);
  context_->metrics.channels.fetch_sub(static_cast<int64_t>(channels.size()),
                                       std::memory_order_relaxed);
  (transport_ == ListenerTransport::kWebSocket ? context_->metrics.websocket_listeners
                                               : context_->metrics.longpoll_listeners)
      .fetch_sub(1, std::memory_order_relaxed);
  for (auto& [id, channel] : channels) {
    channel.sender->CloseFromListener(kCloseListenerGone, "listener gone");
  }
  LogInfo("listener_disconnected", {{"entity", entity_}, {"listener_id", id_}});
}

absl::StatusOr<std::shared_ptr<ListenerCore>> ListenerRegistry::Add(
    std::shared_ptr<ListenerCore> listener) {
  absl::MutexLock lock(&mu_);
  Entity& entity = entities_[listener->entity()];
  for (auto& existing : entity.listeners) {
    if (existing->id() == listener->id()) {
      std::shared_ptr<ListenerCore> replaced = std::move(existing);
      existing = std::move(listener);
      return replaced;
    }
  }
  if (entity.listeners.size() >= max_per_entity_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("entity already has ", max_per_entity_, " listeners"));
  }
  entity.listeners.push_back(std::move(listener));
  return std::shared_ptr<ListenerCore>();
}

void ListenerRegistry::Remove(const ListenerCore* listener) {
  absl::MutexLock lock(&mu_);
  auto it = entities_.find(listener->entity());
  if (it == entities_.end()) return;
  auto& list = it->second.listeners;
  for (auto l = list.begin(); l != list.end(); ++l) {
    if (l->get() == listener) {
      list.erase(l);
      break;
    }
  }
  if (list.empty()) entities_.erase(it);
}

std::shared_ptr<ListenerCore> ListenerRegistry::Find(const std::string& entity,
                                                     const std::string& id) const {
  absl::MutexLock lock(&mu_);
  auto it = entities_.find(entity);
  if (it == entities_.end()) return nullptr;
  for (const auto& l : it->second.listeners) {
    if (l->id() == id) return l;
  }
  return nullptr;
}

std::shared_ptr<ListenerCore> ListenerRegistry::Pick(const std::string& entity) {
  absl::MutexLock lock(&mu_);
  auto it = entities_.find(entity);
  if (it == entities_.end() || it->second.listeners.empty()) return nullptr;
  Entity& e = it->second;
  e.next = e.next % e.listeners.size();
  return e.listeners[e.next++];
}

std::vector<std::string> ListenerRegistry::ListenerIds(const std::string& entity) const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> ids;
  auto it = entities_.find(entity);
  if (it == entities_.end()) return ids;
  for (const auto& l : it->second.listeners) ids.push_back(l->id());
  return ids;
}

std::vector<std::shared_ptr<ListenerCore>> ListenerRegistry::All() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::shared_ptr<ListenerCore>> all;
  for (const auto& [name, entity] : entities_) {
    all.insert(all.end(), entity.listeners.begin(), entity.listeners.end());
  }
  return all;
}

}  // namespace tether::relay
