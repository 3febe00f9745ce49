#include "common/net/backoff.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "absl/random/random.h"

namespace tether::net {

Backoff::Backoff(BackoffOptions options, UniformRandom random)
    : options_(options), random_(std::move(random)) {
  options_.initial = std::max(options_.initial, absl::Milliseconds(1));
  options_.cap = std::max(options_.cap, options_.initial);
  if (!random_) {
    auto gen = std::make_shared<absl::BitGen>();
    random_ = [gen] { return absl::Uniform(*gen, 0.0, 1.0); };
  }
}

absl::Duration Backoff::Ceiling() const {
  absl::Duration ceiling = options_.initial;
  for (int i = 0; i < failures_ && ceiling < options_.cap; ++i) ceiling *= 2;
  return std::min(ceiling, options_.cap);
}

absl::Duration Backoff::NextDelay() {
  absl::Duration ceiling = Ceiling();
  double r = std::clamp(random_(), 0.0, 1.0);
  if (failures_ < 1000) ++failures_;
  return ceiling * r;
}

}  // namespace tether::net
