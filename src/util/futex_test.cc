#include "util/futex.h"

#include <chrono>
#include <thread>

#include <gtest/gtest.h>

namespace prosody::util {
namespace {

using namespace std::chrono_literals;

TEST(Futex, WaitReturnsAtOnceWhenTheWordAlreadyChanged) {
  std::atomic<std::uint32_t> word{1};
  futex_wait(word, 0);  // would block forever if it slept
  EXPECT_EQ(word.load(), 1U);
}

TEST(Futex, WakeOneWakesASleeper) {
  std::atomic<std::uint32_t> word{0};
  std::atomic<bool> woke{false};
  std::thread sleeper([&] {
    while (word.load(std::memory_order_acquire) == 0) futex_wait(word, 0);
    woke.store(true);
  });
  std::this_thread::sleep_for(20ms);  // most likely asleep by now; correct either way
  EXPECT_FALSE(woke.load());
  word.store(1, std::memory_order_release);
  futex_wake_one(word);
  sleeper.join();
  EXPECT_TRUE(woke.load());
}

}  // namespace
}  // namespace prosody::util
