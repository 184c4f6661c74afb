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

TEST(TimerTime, AcceptsTimesPast2038AndRejectsOutOfRange) {
  const system_clock::time_point y2100{seconds{4'102'444'800}};
  ASSERT_TRUE(to_timer_time(y2100).ok());
  auto before = to_timer_time(system_clock::time_point{seconds{-1}});
  ASSERT_FALSE(before.ok());
  EXPECT_NE(before.error().message().find("before the Unix epoch"), std::string::npos);
  EXPECT_EQ(before.error().code(), ErrorCode::invalid_argument);
  auto beyond = to_timer_time(system_clock::time_point{seconds{253402300800}});
  ASSERT_FALSE(beyond.ok());
  EXPECT_NE(beyond.error().message().find("9999-12-31"), std::string::npos);
}

TEST(TimerType, NamesMatchProsodyTelemetry) {
  EXPECT_EQ(to_string(TimerType::application), "application");
  EXPECT_EQ(to_string(TimerType::deferred_message), "deferredMessage");
  EXPECT_EQ(to_string(TimerType::deferred_timer), "deferredTimer");
}

}  // namespace
}  // namespace prosody
