// A mutex in one 32-bit word, for critical sections of a few dozen
// instructions taken on every message (the id caches' sets).
//
// std::mutex is 40 bytes and an out-of-line pthread call each way; an
// IdCache set held one next to its tags, so a lookup touched two or three
// cache lines before comparing anything. This lock is the futex mutex of
// Drepper's "Futexes Are Tricky" (mutex 3): uncontended, lock is one
// compare-exchange and unlock one exchange, both inline; contended, the
// waiter sleeps in the kernel (no spinning: on two cores the holder may be
// the thread the spinner is keeping off the CPU).
//
// States: 0 free, 1 held, 2 held and someone may be sleeping.
//
// Thread safety: any thread; not recursive; satisfies Lockable, so
// std::lock_guard and std::unique_lock work.
#pragma once

#include <atomic>
#include <cstdint>

#include "util/futex.h"

namespace prosody::util {

class WordLock {
 public:
  WordLock() = default;
  WordLock(const WordLock&) = delete;
  WordLock& operator=(const WordLock&) = delete;

  void lock() noexcept {
    std::uint32_t seen = 0;
    if (word_.compare_exchange_strong(seen, 1, std::memory_order_acquire, std::memory_order_relaxed)) return;
    lock_contended(seen);
  }

  bool try_lock() noexcept {
    std::uint32_t seen = 0;
    return word_.compare_exchange_strong(seen, 1, std::memory_order_acquire, std::memory_order_relaxed);
  }

  void unlock() noexcept {
    if (word_.exchange(0, std::memory_order_release) == 2) futex_wake_one(word_);
  }

 private:
  void lock_contended(std::uint32_t seen) noexcept {
    // Mark the lock contended (2) before sleeping, so the holder's unlock
    // wakes us; whoever takes it from here takes it as contended too, since
    // it cannot know whether other sleepers remain.
    if (seen != 2) seen = word_.exchange(2, std::memory_order_acquire);
    while (seen != 0) {
      futex_wait(word_, 2);
      seen = word_.exchange(2, std::memory_order_acquire);
    }
  }

  std::atomic<std::uint32_t> word_{0};
};

}  // namespace prosody::util
