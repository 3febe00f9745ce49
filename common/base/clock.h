// The wall clock, read from the kernel (CLOCK_REALTIME) on every call.
//
// absl::Now() extrapolates from the CPU cycle counter between kernel samples. On this project's
// virtual machines under heavy load it was seen running seconds behind the kernel, while token
// expiries (`se`) are checked against time(2) by the relay: a client that computes expiries or
// renewal times with absl::Now() then sends tokens that are already expired. Code that compares
// times with other processes, or logs them, uses WallNow(). Thread-safe.
#ifndef TETHER_COMMON_BASE_CLOCK_H_
#define TETHER_COMMON_BASE_CLOCK_H_

#include <time.h>

#include "absl/time/time.h"

namespace tether {

inline absl::Time WallNow() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return absl::TimeFromTimespec(ts);
}

}  // namespace tether

#endif  // TETHER_COMMON_BASE_CLOCK_H_
