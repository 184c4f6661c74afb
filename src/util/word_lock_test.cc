#include "util/word_lock.h"

#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace prosody::util {
namespace {

using namespace std::chrono_literals;

TEST(WordLock, TryLockFailsWhileHeldAndSucceedsAfterUnlock) {
  WordLock lock;
  ASSERT_TRUE(lock.try_lock());
  EXPECT_FALSE(lock.try_lock());
  lock.unlock();
  EXPECT_TRUE(lock.try_lock());
  lock.unlock();
}

TEST(WordLock, ExcludesEveryOtherThreadUnderContention) {
  // A non-atomic read-modify-write that loses updates unless the lock
  // excludes: more threads than cores, so holders are preempted and
  // waiters sleep in the kernel.
  WordLock lock;
  std::int64_t counter = 0;
  constexpr int kThreads = 6;
  constexpr int kRounds = 50'000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kRounds; ++i) {
        std::lock_guard l(lock);
        const std::int64_t read = counter;
        if (i % 1024 == 0) std::this_thread::yield();  // let a waiter queue up behind us
        counter = read + 1;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(counter, std::int64_t{kThreads} * kRounds);
}

TEST(WordLock, AWaiterSleepsUntilTheHolderUnlocks) {
  WordLock lock;
  lock.lock();
  std::atomic<bool> entered{false};
  std::thread waiter([&] {
    std::lock_guard l(lock);
    entered.store(true);
  });
  std::this_thread::sleep_for(20ms);  // most likely asleep in the kernel by now; correct either way
  EXPECT_FALSE(entered.load());
  lock.unlock();
  waiter.join();
  EXPECT_TRUE(entered.load());
}

}  // namespace
}  // namespace prosody::util
