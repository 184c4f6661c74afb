#include "middleware/monopolization_detector.h"

#include <gtest/gtest.h>

#include "util/manual_clock.h"

namespace prosody::middleware {
namespace {

using namespace std::chrono_literals;
using testing::ManualClock;

const TopicPartitionKey kKey{"orders", Partition{0}, "k1"};

// Runs one handler call of `busy` on `key`, then leaves `idle` before the next.
void run(MonopolizationDetector& d, ManualClock& clock, const TopicPartitionKey& key,
         std::chrono::nanoseconds busy, std::chrono::nanoseconds idle = 0ns) {
  d.on_invoked(key, clock.now());
  clock.advance(busy);
  d.on_completed(key, clock.now());
  clock.advance(idle);
}

TEST(MonopolizationDetector, ShortCallsPass) {
  ManualClock clock;
  MonopolizationDetector d({});
  for (int i = 0; i < 100; ++i) run(d, clock, kKey, 100ms, 100ms);
  EXPECT_EQ(d.busy_time(kKey, clock.now()), 10s);
  EXPECT_TRUE(d.check(kKey, clock.now()).ok());
}

TEST(MonopolizationDetector, BusyAboveThresholdIsTransientWithBothTimes) {
  ManualClock clock;
  MonopolizationDetector d({});  // 90 % of 5 min = 270 s
  run(d, clock, kKey, 140s, 10s);
  run(d, clock, kKey, 140s);
  EXPECT_EQ(d.busy_time(kKey, clock.now()), 280s);
  const Status s = d.check(kKey, clock.now());
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(s.error().is_transient());
  EXPECT_EQ(s.error().message(), "key monopolized: 280.0 s of 300.0 s window");
}

TEST(MonopolizationDetector, ExactlyAtThresholdPasses) {
  ManualClock clock;
  MonopolizationDetector d({});
  run(d, clock, kKey, 270s);
  EXPECT_TRUE(d.check(kKey, clock.now()).ok());
  run(d, clock, kKey, 1ms);
  EXPECT_FALSE(d.check(kKey, clock.now()).ok());
}

TEST(MonopolizationDetector, RunningCallCountsUpToNow) {
  ManualClock clock;
  MonopolizationDetector d({});
  d.on_invoked(kKey, clock.now());
  clock.advance(200s);
  EXPECT_EQ(d.busy_time(kKey, clock.now()), 200s);
  EXPECT_TRUE(d.check(kKey, clock.now()).ok());
  clock.advance(71s);
  EXPECT_FALSE(d.check(kKey, clock.now()).ok());
  // A call longer than the window saturates at the window.
  clock.advance(10min);
  EXPECT_EQ(d.busy_time(kKey, clock.now()), 5min);
}

TEST(MonopolizationDetector, HistorySlidesOutOfTheWindow) {
  ManualClock clock;
  MonopolizationDetector d({});
  run(d, clock, kKey, 280s);
  ASSERT_FALSE(d.check(kKey, clock.now()).ok());
  clock.advance(20s);  // the window [now - 5 min, now] still holds all of it
  EXPECT_EQ(d.busy_time(kKey, clock.now()), 280s);
  clock.advance(20s);  // now it covers only the call's last 260 s
  EXPECT_EQ(d.busy_time(kKey, clock.now()), 260s);
  EXPECT_TRUE(d.check(kKey, clock.now()).ok());
  clock.advance(5min);
  EXPECT_EQ(d.busy_time(kKey, clock.now()), 0ns);
  // Completion clips the stored set to the window ending at completion.
  run(d, clock, kKey, 1s);
  EXPECT_EQ(d.busy_time(kKey, clock.now()), 1s);
}

TEST(MonopolizationDetector, KeysAreTrackedPerTopicAndPartition) {
  ManualClock clock;
  MonopolizationDetector d({});
  const TopicPartitionKey other_partition{"orders", Partition{1}, "k1"};
  const TopicPartitionKey other_topic{"refunds", Partition{0}, "k1"};
  run(d, clock, kKey, 290s);
  EXPECT_FALSE(d.check(kKey, clock.now()).ok());
  EXPECT_TRUE(d.check(other_partition, clock.now()).ok());
  EXPECT_TRUE(d.check(other_topic, clock.now()).ok());
  EXPECT_EQ(d.busy_time(other_partition, clock.now()), 0ns);
}

TEST(MonopolizationDetector, DisabledNeverRejects) {
  ManualClock clock;
  MonopolizationOptions o;
  o.enabled = false;
  MonopolizationDetector d(o);
  run(d, clock, kKey, 299s);
  EXPECT_TRUE(d.check(kKey, clock.now()).ok());
  EXPECT_EQ(d.tracked_keys(), 0u);
}

TEST(MonopolizationDetector, ThresholdAndWindowAreConfigurable) {
  ManualClock clock;
  MonopolizationOptions o;
  o.threshold = 0.5;
  o.window = 10s;
  MonopolizationDetector d(o);
  run(d, clock, kKey, 5s, 1s);
  EXPECT_TRUE(d.check(kKey, clock.now()).ok());  // 5 of 10: not above 0.5
  run(d, clock, kKey, 1s);
  const Status s = d.check(kKey, clock.now());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message(), "key monopolized: 6.0 s of 10.0 s window");
}

TEST(MonopolizationDetector, LeastRecentlyUsedKeysAreForgotten) {
  ManualClock clock;
  MonopolizationOptions o;
  o.cache_size = 2;
  MonopolizationDetector d(o);
  const TopicPartitionKey a{"t", Partition{0}, "a"}, b{"t", Partition{0}, "b"}, c{"t", Partition{0}, "c"};
  run(d, clock, a, 280s);
  run(d, clock, b, 1s);
  run(d, clock, c, 1s);  // evicts a
  EXPECT_EQ(d.tracked_keys(), 2u);
  EXPECT_EQ(d.busy_time(a, clock.now()), 0ns);
  EXPECT_EQ(d.busy_time(b, clock.now()), 1s);
  EXPECT_EQ(d.busy_time(c, clock.now()), 1s);
}

TEST(MonopolizationDetector, CompletionWithoutStartIsHarmless) {
  ManualClock clock;
  MonopolizationDetector d({});
  d.on_completed(kKey, clock.now());
  EXPECT_EQ(d.busy_time(kKey, clock.now()), 0ns);
  EXPECT_TRUE(d.check(kKey, clock.now()).ok());
}

// Many short calls exceed kMaxIntervals and get merged into chunks; the sum
// must stay exact inside the window and within one chunk's share at its edge.
TEST(MonopolizationDetector, ManyShortCallsStayAccurate) {
  ManualClock clock;
  MonopolizationDetector d({});
  // 3 calls of 60 ms per 100 ms: 60 % busy, 3000 calls per 300 s window.
  for (int i = 0; i < 6000; ++i) run(d, clock, kKey, 60ms, 40ms);
  const double busy_s = std::chrono::duration<double>(d.busy_time(kKey, clock.now())).count();
  EXPECT_NEAR(busy_s, 180.0, 300.0 / MonopolizationDetector::kMaxIntervals);
  EXPECT_TRUE(d.check(kKey, clock.now()).ok());
  // Back-to-back calls (no idle) merge into one exact interval.
  MonopolizationDetector e({});
  for (int i = 0; i < 3000; ++i) run(e, clock, kKey, 100ms);
  EXPECT_EQ(e.busy_time(kKey, clock.now()), 300s);
  EXPECT_FALSE(e.check(kKey, clock.now()).ok());
}

TEST(MonopolizationDetector, FromConfig) {
  Config c;
  c.with_monopolization_enabled(false)
      .with_monopolization_threshold(0.5)
      .with_monopolization_window(1min)
      .with_monopolization_cache_size(10);
  auto o = MonopolizationOptions::from_config(c);
  EXPECT_FALSE(o.enabled);
  EXPECT_DOUBLE_EQ(o.threshold, 0.5);
  EXPECT_EQ(o.window, 1min);
  EXPECT_EQ(o.cache_size, 10u);
}

}  // namespace
}  // namespace prosody::middleware
