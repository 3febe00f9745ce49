// What the relay knows about one listener and its channels, whatever its transport.
//
// A ListenerCore is one listener's control channel (WebSocket or long-poll session) for one
// entity. It routes frames between the listener and the senders of its channels, enforces the
// per-channel and per-connection queue bounds, and checks token renewals. The transport
// (WebSocketListener, LongPollListener) supplies EnqueueFrame and CloseTransport.
//
// Thread-safety: every public method may be called from any thread; channel state is guarded by
// a mutex, and callbacks into senders are made without holding it.
#ifndef TETHER_RELAY_LISTENER_CORE_H_
#define TETHER_RELAY_LISTENER_CORE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "common/proto/relay.pb.h"
#include "relay/relay_context.h"

namespace tether::relay {

// The sender's side of a channel (a SenderSession). Methods are thread-safe and must not call
// back into the ListenerCore synchronously.
class SenderEndpoint {
 public:
  virtual ~SenderEndpoint() = default;
  virtual void OnAccepted() = 0;
  virtual void OnRejected(uint32_t http_status, std::string reason) = 0;
  virtual void DeliverData(std::string payload) = 0;
  virtual void CloseFromListener(uint32_t code, std::string reason) = 0;
};

enum class ListenerTransport { kWebSocket, kLongPoll };

class ListenerCore : public std::enable_shared_from_this<ListenerCore> {
 public:
  ListenerCore(RelayContext* context, std::string entity, std::string id,
               ListenerTransport transport, int64_t token_expiry_unix);
  virtual ~ListenerCore();

  const std::string& entity() const { return entity_; }
  const std::string& id() const { return id_; }
  ListenerTransport transport() const { return transport_; }
  int64_t token_expiry_unix() const;

  // --- Called by the transport ---
  // A frame from the listener (already parsed). Routes Accept/Reject/Data/Close to senders,
  // answers Ping, applies RenewToken.
  void HandleFrame(const proto::RelayFrame& frame);
  // The transport finished writing `bytes` of frames for `channel_id` (0 = control frames).
  void OnWritten(uint64_t channel_id, std::size_t bytes);
  // The transport is gone: unregisters the listener and closes its channels (4001).
  void OnTransportClosed();

  // --- Called by senders ---
  // Registers a channel for `sender` and sends Open to the listener. Returns the channel id, or
  // 0 when the listener is closing.
  uint64_t OpenChannel(std::shared_ptr<SenderEndpoint> sender, proto::RelayFrame::SenderMeta meta);
  // Data from the sender. A channel over its queue bound is closed with 4000 (both sides).
  void SenderData(uint64_t channel_id, std::string payload);
  // The sender closed (or gave up waiting for Accept): drops the channel and tells the listener.
  void SenderClosed(uint64_t channel_id, uint32_t code, std::string reason);

  // Closes the control channel (and so all channels). Idempotent.
  void Close(uint32_t code, std::string reason);

  std::size_t channel_count() const;

 protected:
  // Queues serialized frame bytes for the wire. Returns false when the connection queue is over
  // its bound (the caller closes the listener). Thread-safe.
  virtual bool EnqueueFrame(uint64_t channel_id, std::string bytes) = 0;
  // Closes the transport with a close code and reason; must end in OnTransportClosed(). Idempotent.
  virtual void CloseTransport(uint32_t code, std::string reason) = 0;

  RelayContext* context() const { return context_; }

 private:
  struct Channel {
    std::shared_ptr<SenderEndpoint> sender;
    bool accepted = false;
    std::size_t bytes_queued = 0;  // toward the listener, not yet written
  };

  void Send(uint64_t channel_id, const proto::RelayFrame& frame);
  void SendClose(uint64_t channel_id, uint32_t code, absl::string_view reason);
  std::shared_ptr<SenderEndpoint> TakeChannel(uint64_t channel_id);
  void HandleRenewToken(const std::string& token);

  RelayContext* const context_;
  const std::string entity_;
  const std::string id_;
  const ListenerTransport transport_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<uint64_t, Channel> channels_ ABSL_GUARDED_BY(mu_);
  int64_t token_expiry_unix_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace tether::relay

#endif  // TETHER_RELAY_LISTENER_CORE_H_
