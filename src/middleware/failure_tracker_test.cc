#include "middleware/failure_tracker.h"

#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "util/manual_clock.h"

namespace prosody::middleware {
namespace {

using namespace std::chrono_literals;
using testing::ManualClock;

FailureTrackerOptions exact(std::chrono::nanoseconds window, double threshold) {
  FailureTrackerOptions o;
  o.window = window;
  o.threshold = threshold;
  o.resolution = 1ns;
  return o;
}

TEST(FailureTracker, EmptyWindowAllowsDeferral) {
  ManualClock clock;
  FailureTracker t(exact(5min, 0.9));
  EXPECT_TRUE(t.deferral_allowed(clock.now()));
  EXPECT_EQ(t.counts(clock.now()).failure_rate(), 0.0);
}

TEST(FailureTracker, RateAtThresholdRefusesDeferral) {
  ManualClock clock;
  FailureTracker t(exact(5min, 0.9));
  for (int i = 0; i < 8; ++i) t.record_failure(clock.now());
  for (int i = 0; i < 2; ++i) t.record_success(clock.now());
  EXPECT_DOUBLE_EQ(t.counts(clock.now()).failure_rate(), 0.8);
  EXPECT_TRUE(t.deferral_allowed(clock.now()));
  t.record_failure(clock.now());  // 9 / 11
  EXPECT_TRUE(t.deferral_allowed(clock.now()));
  for (int i = 0; i < 9; ++i) t.record_failure(clock.now());  // 18 / 20 = 0.9: not below
  EXPECT_DOUBLE_EQ(t.counts(clock.now()).failure_rate(), 0.9);
  EXPECT_FALSE(t.deferral_allowed(clock.now()));
  t.record_success(clock.now());  // 18 / 21
  EXPECT_TRUE(t.deferral_allowed(clock.now()));
}

TEST(FailureTracker, OldFailuresSlideOutOfTheWindow) {
  ManualClock clock;
  FailureTracker t(exact(5min, 0.5));
  const auto start = clock.now();
  for (int i = 0; i < 10; ++i) t.record_failure(start);
  clock.advance(2min);
  t.record_success(clock.now());
  EXPECT_FALSE(t.deferral_allowed(clock.now()));
  // The failures are exactly window old: still inside [now - window, now].
  clock.advance(3min);
  EXPECT_EQ(t.counts(clock.now()).failures, 10u);
  clock.advance(1ns);
  auto c = t.counts(clock.now());
  EXPECT_EQ(c.failures, 0u);
  EXPECT_EQ(c.successes, 1u);
  EXPECT_TRUE(t.deferral_allowed(clock.now()));
  // And the success leaves too after its own window.
  clock.advance(2min);
  EXPECT_EQ(t.counts(clock.now()).successes, 0u);
}

TEST(FailureTracker, DefaultResolutionKeepsOutcomesAtMostOneBucketLonger) {
  ManualClock clock;
  FailureTrackerOptions o;  // 5 min window, 1 s buckets
  FailureTracker t(o);
  EXPECT_EQ(t.options().resolution, 1s);
  const auto start = clock.now();
  t.record_failure(start + 300ms);
  clock.advance(5min);
  EXPECT_EQ(t.counts(clock.now()).failures, 1u);
  clock.advance(1s);
  EXPECT_EQ(t.counts(clock.now()).failures, 0u);
}

TEST(FailureTracker, OutOfOrderOutcomesAreCounted) {
  ManualClock clock;
  FailureTracker t(exact(1min, 0.9));
  const auto now = clock.now();
  t.record_success(now);
  t.record_failure(now - 10s);  // a slower worker reports late
  t.record_failure(now - 5s);
  t.record_success(now - 2min);  // already outside the window: ignored
  auto c = t.counts(now);
  EXPECT_EQ(c.successes, 1u);
  EXPECT_EQ(c.failures, 2u);
  clock.advance(50s + 1ns);  // the failure at -10s leaves first
  c = t.counts(clock.now());
  EXPECT_EQ(c.failures, 1u);
  EXPECT_EQ(c.successes, 1u);
}

TEST(FailureTracker, PruneForgetsWithoutNewEvents) {
  ManualClock clock;
  FailureTracker t(exact(1min, 0.9));
  for (int i = 0; i < 100; ++i) t.record_failure(clock.now());
  EXPECT_FALSE(t.deferral_allowed(clock.now()));
  clock.advance(61s);
  t.prune(clock.now());
  EXPECT_EQ(t.counts(clock.now()).failures, 0u);
  EXPECT_TRUE(t.deferral_allowed(clock.now()));
}

TEST(FailureTracker, FromConfigUsesDeferOptions) {
  Config c;
  c.with_defer_failure_window(2min).with_defer_failure_threshold(0.5);
  auto o = FailureTrackerOptions::from_config(c);
  EXPECT_EQ(o.window, 2min);
  EXPECT_DOUBLE_EQ(o.threshold, 0.5);
}

TEST(FailureTracker, ConcurrentRecordersLoseNothing) {
  ManualClock clock;
  FailureTracker t(exact(5min, 0.9));
  const auto now = clock.now();
  std::vector<std::thread> threads;
  for (int w = 0; w < 4; ++w) {
    threads.emplace_back([&, w] {
      for (int i = 0; i < 1000; ++i) {
        // Slightly different instants per thread, interleaved.
        if (i % 2 == 0) {
          t.record_failure(now + std::chrono::microseconds(i * 4 + w));
        } else {
          t.record_success(now + std::chrono::microseconds(i * 4 + w));
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  auto c = t.counts(now + 1s);
  EXPECT_EQ(c.failures, 2000u);
  EXPECT_EQ(c.successes, 2000u);
}

}  // namespace
}  // namespace prosody::middleware
