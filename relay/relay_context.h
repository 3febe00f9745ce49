// State shared by every connection of one relay process: options, keys, metrics and the listener
// registry. Thread-safe.
#ifndef TETHER_RELAY_RELAY_CONTEXT_H_
#define TETHER_RELAY_RELAY_CONTEXT_H_

#include <atomic>
#include <ctime>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "relay/metrics.h"
#include "relay/relay_options.h"

namespace tether::relay {

class ListenerCore;

// Entity → listeners, with round-robin choice and replacement by listener id.
class ListenerRegistry {
 public:
  explicit ListenerRegistry(std::size_t max_per_entity) : max_per_entity_(max_per_entity) {}

  // Registers `listener`. A listener already registered under the same entity and id is
  // returned so the caller can close it (replacement). A new id on an entity that already has
  // max_per_entity listeners is kResourceExhausted.
  absl::StatusOr<std::shared_ptr<ListenerCore>> Add(std::shared_ptr<ListenerCore> listener);
  // Unregisters `listener` if it is still the registered one for its id.
  void Remove(const ListenerCore* listener);
  std::shared_ptr<ListenerCore> Find(const std::string& entity, const std::string& id) const;
  // The next listener of `entity` in round-robin order, or null when none is online.
  std::shared_ptr<ListenerCore> Pick(const std::string& entity);
  std::vector<std::string> ListenerIds(const std::string& entity) const;
  std::vector<std::shared_ptr<ListenerCore>> All() const;

 private:
  struct Entity {
    std::vector<std::shared_ptr<ListenerCore>> listeners;
    std::size_t next = 0;
  };
  const std::size_t max_per_entity_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entity> entities_ ABSL_GUARDED_BY(mu_);
};

struct RelayContext {
  RelayContext(RelayOptions opts, boost::asio::any_io_executor io_executor)
      : options(std::move(opts)),
        executor(std::move(io_executor)),
        registry(options.max_listeners_per_entity) {}

  int64_t NowUnix() const { return clock ? clock() : static_cast<int64_t>(::time(nullptr)); }
  uint64_t NewChannelId() { return next_channel_id.fetch_add(1) + 1; }

  const RelayOptions options;
  // The io_context's executor, for objects that need a strand of their own.
  const boost::asio::any_io_executor executor;
  RelayMetrics metrics;
  ListenerRegistry registry;
  std::atomic<uint64_t> next_channel_id{0};
  std::atomic<bool> draining{false};
  std::function<int64_t()> clock;  // tests may inject; null = time(nullptr)
};

}  // namespace tether::relay

#endif  // TETHER_RELAY_RELAY_CONTEXT_H_
