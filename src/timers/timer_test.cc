#include "prosody/timer.h"

#include <gtest/gtest.h>

namespace prosody {
namespace {

using namespace std::chrono;

TEST(TimerTime, RoundsHalfUpToWholeSeconds) {
  const system_clock::time_point base{seconds{1'800'000'000}};
  EXPECT_EQ(to_timer_time(base + milliseconds(499))->time_since_epoch().count(), 1'800'000'000);
  EXPECT_EQ(to_timer_time(base + milliseconds(500))->time_since_epoch().count(), 1'800'000'001);
}

TEST(TimerTime, AcceptsTimesPast2038UpToTheLatestSystemClockTimeAndRejectsBeforeTheEpoch) {
  const system_clock::time_point y2100{seconds{4'102'444'800}};
  ASSERT_TRUE(to_timer_time(y2100).ok());
  auto before = to_timer_time(system_clock::time_point{seconds{-1}});
  ASSERT_FALSE(before.ok());
  EXPECT_NE(before.error().message().find("before the Unix epoch"), std::string::npos);
  EXPECT_EQ(before.error().code(), ErrorCode::invalid_argument);
  // system_clock counts nanoseconds in 64 bits: its latest time is in 2262,
  // long before kMaxTimerTime (9999-12-31), so every time it can hold past
  // the epoch is accepted. (This used to build a time_point of 9999-12-31
  // from seconds, which overflows the nanosecond count: UBSan reported it,
  // and the wrapped value only happened to be rejected.)
  const auto latest = system_clock::time_point::max();
  static_assert(floor<seconds>(system_clock::time_point::max()) < kMaxTimerTime);
  const auto at_latest = to_timer_time(latest);
  ASSERT_TRUE(at_latest.ok()) << at_latest.error().message();
  const auto latest_ms = duration_cast<milliseconds>(latest.time_since_epoch()).count();
  EXPECT_EQ(at_latest->time_since_epoch().count(), (latest_ms + 500) / 1000);  // half-up, no overflow
}

TEST(TimerType, NamesMatchProsodyTelemetry) {
  EXPECT_EQ(to_string(TimerType::application), "application");
  EXPECT_EQ(to_string(TimerType::deferred_message), "deferredMessage");
  EXPECT_EQ(to_string(TimerType::deferred_timer), "deferredTimer");
}

}  // namespace
}  // namespace prosody
