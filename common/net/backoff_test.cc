#include "common/net/backoff.h"

#include <deque>
#include <vector>

#include "gtest/gtest.h"

namespace tether::net {
namespace {

// Always returns the same fraction, so the delay equals fraction * ceiling.
Backoff::UniformRandom Constant(double fraction) {
  return [fraction] { return fraction; };
}

TEST(BackoffTest, CeilingDoublesFromInitialUpToTheCap) {
  Backoff backoff({absl::Milliseconds(500), absl::Seconds(30)}, Constant(0.5));
  const std::vector<absl::Duration> expected = {
      absl::Milliseconds(500), absl::Seconds(1),  absl::Seconds(2),  absl::Seconds(4),
      absl::Seconds(8),        absl::Seconds(16), absl::Seconds(30), absl::Seconds(30),
  };
  for (std::size_t i = 0; i < expected.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(backoff.Ceiling(), expected[i]);
    EXPECT_EQ(backoff.NextDelay(), expected[i] / 2);
  }
}

TEST(BackoffTest, FullJitterSpansZeroToTheCeiling) {
  // The extremes of the random source give the extremes of the range [0, ceiling].
  for (int failures = 0; failures < 12; ++failures) {
    SCOPED_TRACE(failures);
    Backoff low({absl::Milliseconds(500), absl::Seconds(30)}, Constant(0.0));
    Backoff high({absl::Milliseconds(500), absl::Seconds(30)}, Constant(0.999999));
    for (int i = 0; i < failures; ++i) {
      low.NextDelay();
      high.NextDelay();
    }
    const absl::Duration ceiling = high.Ceiling();
    EXPECT_EQ(ceiling, std::min(absl::Milliseconds(500) * (1 << failures), absl::Seconds(30)));
    EXPECT_EQ(low.NextDelay(), absl::ZeroDuration());
    const absl::Duration top = high.NextDelay();
    EXPECT_LE(top, ceiling);
    EXPECT_GT(top, ceiling * 0.99);
  }
}

TEST(BackoffTest, DelaysFollowTheInjectedRandomSource) {
  std::deque<double> draws = {0.25, 0.75, 0.1};
  Backoff backoff({absl::Seconds(1), absl::Seconds(30)}, [&draws] {
    double d = draws.front();
    draws.pop_front();
    return d;
  });
  EXPECT_EQ(backoff.NextDelay(), absl::Milliseconds(250));   // 0.25 * 1 s
  EXPECT_EQ(backoff.NextDelay(), absl::Milliseconds(1500));  // 0.75 * 2 s
  EXPECT_EQ(backoff.NextDelay(), absl::Milliseconds(400));   // 0.1 * 4 s
}

TEST(BackoffTest, ResetStartsOverAtInitial) {
  Backoff backoff({absl::Milliseconds(500), absl::Seconds(30)}, Constant(0.5));
  for (int i = 0; i < 5; ++i) backoff.NextDelay();
  EXPECT_EQ(backoff.failures(), 5);
  backoff.Reset();
  EXPECT_EQ(backoff.failures(), 0);
  EXPECT_EQ(backoff.Ceiling(), absl::Milliseconds(500));
}

TEST(BackoffTest, OutOfRangeRandomIsClampedIntoTheRange) {
  Backoff above({absl::Seconds(1), absl::Seconds(30)}, Constant(7.0));
  EXPECT_EQ(above.NextDelay(), absl::Seconds(1));
  Backoff below({absl::Seconds(1), absl::Seconds(30)}, Constant(-1.0));
  EXPECT_EQ(below.NextDelay(), absl::ZeroDuration());
}

TEST(BackoffTest, ManyFailuresStayAtTheCapWithoutOverflow) {
  Backoff backoff({absl::Milliseconds(500), absl::Seconds(30)}, Constant(0.5));
  for (int i = 0; i < 5000; ++i) backoff.NextDelay();
  EXPECT_EQ(backoff.Ceiling(), absl::Seconds(30));
  EXPECT_EQ(backoff.NextDelay(), absl::Seconds(15));
}

TEST(BackoffTest, DefaultRandomSourceStaysWithinTheCeiling) {
  Backoff backoff({absl::Milliseconds(500), absl::Seconds(30)});
  for (int i = 0; i < 200; ++i) {
    const absl::Duration ceiling = backoff.Ceiling();
    const absl::Duration delay = backoff.NextDelay();
    EXPECT_GE(delay, absl::ZeroDuration());
    EXPECT_LE(delay, ceiling);
  }
}

}  // namespace
}  // namespace tether::net
