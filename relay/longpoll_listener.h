// A listener that reaches the relay with HTTP long-polling instead of a WebSocket (DESIGN §3).
//
// Frames for the listener wait in a bounded queue until a poll takes them; a poll with nothing
// to take is parked for up to `wait`. A listener that stops polling for longpoll_idle_timeout
// is dropped and its channels closed, exactly as a WebSocket listener that goes silent.
// Thread-safe: state lives on the listener's own strand.
#ifndef TETHER_RELAY_LONGPOLL_LISTENER_H_
#define TETHER_RELAY_LONGPOLL_LISTENER_H_

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include "absl/time/time.h"
#include "relay/listener_core.h"

namespace tether::relay {

class LongPollListener : public ListenerCore {
 public:
  // Serialized frames for one poll response, in order.
  using PollCallback = std::function<void(std::vector<std::string> frames)>;

  static std::shared_ptr<LongPollListener> Create(RelayContext* context,
                                                  boost::asio::any_io_executor executor,
                                                  std::string entity, std::string id,
                                                  int64_t token_expiry_unix);

  // Starts the idle timer; call once after registration.
  void Start();
  // Takes queued frames, or parks until frames arrive or `wait` passes. `done` runs exactly
  // once, on the listener's strand. A newer poll completes a parked one with no frames.
  void Poll(absl::Duration wait, PollCallback done);
  // Puts frames whose response could not be written back at the front of the queue.
  void Requeue(std::vector<std::string> frames);

 protected:
  bool EnqueueFrame(uint64_t channel_id, std::string bytes) override;
  void CloseTransport(uint32_t code, std::string reason) override;

 private:
  struct Item {
    uint64_t channel_id;
    std::string bytes;
  };
  LongPollListener(RelayContext* context, boost::asio::any_io_executor executor,
                   std::string entity, std::string id, int64_t token_expiry_unix);
  std::shared_ptr<LongPollListener> self() {
    return std::static_pointer_cast<LongPollListener>(shared_from_this());
  }
  void CompleteParked();
  void ArmIdleTimer();
  void OnIdleTimer();

  boost::asio::strand<boost::asio::any_io_executor> strand_;
  boost::asio::steady_timer wait_timer_;
  boost::asio::steady_timer idle_timer_;
  std::atomic<std::size_t> queued_bytes_{0};
  // Strand-only state:
  std::deque<Item> queue_;
  PollCallback parked_;
  uint64_t poll_generation_ = 0;
  absl::Time last_activity_;
  bool closed_ = false;
};

}  // namespace tether::relay

#endif  // TETHER_RELAY_LONGPOLL_LISTENER_H_
