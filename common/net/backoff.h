// Reconnect delays: exponential backoff with "full jitter" (AWS architecture blog, "Exponential
// Backoff And Jitter"): the n-th consecutive failure waits a uniformly random time in
// [0, min(cap, initial * 2^n)], so clients that lost the same relay at the same moment spread
// their reconnects instead of arriving together. Not thread-safe (owned by one connection).
#ifndef TETHER_COMMON_NET_BACKOFF_H_
#define TETHER_COMMON_NET_BACKOFF_H_

#include <functional>

#include "absl/time/time.h"

namespace tether::net {

struct BackoffOptions {
  absl::Duration initial = absl::Milliseconds(500);
  absl::Duration cap = absl::Seconds(30);
};

class Backoff {
 public:
  // Returns a uniformly distributed number in [0, 1).
  using UniformRandom = std::function<double()>;

  // `random` may be null: a default source (absl::BitGen) is used then. initial <= 0 or
  // cap < initial are clamped (initial to 1 ms, cap to initial).
  explicit Backoff(BackoffOptions options, UniformRandom random = nullptr);

  // The delay before the next attempt, then counts one more failure.
  absl::Duration NextDelay();
  // The upper bound NextDelay() draws from now: min(cap, initial * 2^failures).
  absl::Duration Ceiling() const;
  // Back to the first step (after a connection that proved healthy).
  void Reset() { failures_ = 0; }
  int failures() const { return failures_; }

 private:
  BackoffOptions options_;
  UniformRandom random_;
  int failures_ = 0;
};

}  // namespace tether::net

#endif  // TETHER_COMMON_NET_BACKOFF_H_
