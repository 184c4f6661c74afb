#include "util/manual_clock.h"

#include <thread>

#include <gtest/gtest.h>

namespace prosody::testing {
namespace {

TEST(ManualClock, SleeperWakesWhenTimeAdvances) {
  ManualClock clock;
  const auto deadline = clock.now() + std::chrono::seconds(10);
  bool reached = false;
  std::jthread sleeper([&](std::stop_token st) { reached = clock.sleep_until(deadline, st); });
  clock.await_sleepers(1);
  clock.advance(std::chrono::seconds(5));
  clock.advance(std::chrono::seconds(5));
  sleeper.join();
  EXPECT_TRUE(reached);
}

TEST(ManualClock, StopInterruptsSleep) {
  ManualClock clock;
  bool reached = true;
  std::jthread sleeper([&](std::stop_token st) { reached = clock.sleep_until(clock.now() + std::chrono::hours(1), st); });
  clock.await_sleepers(1);
  sleeper.request_stop();
  sleeper.join();
  EXPECT_FALSE(reached);
}

}  // namespace
}  // namespace prosody::testing
