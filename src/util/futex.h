// One thread sleeping on a 32-bit word until another changes it: the Linux
// futex, without the spinning std::atomic<T>::wait does first.
//
// libstdc++'s atomic wait spins and then calls sched_yield a few times
// before it sleeps. For a waiter that sleeps for milliseconds (a worker
// waiting for a scheduler permit while 100 handlers run) that is pure cost:
// 6 % of the CPU of the keyspace benchmark, with hundreds of threads
// yielding to each other on two cores. The word itself stays a std::atomic:
// publication is its release/acquire, the futex only blocks and wakes.
//
// Thread safety: any thread may call either function on the same word.
#pragma once

#include <atomic>
#include <cstdint>

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace prosody::util {

static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t) &&
                  std::atomic<std::uint32_t>::is_always_lock_free,
              "the futex word must be a plain 32-bit word");

// Sleeps while `word` holds `expected`; returns at once if it does not. May
// return spuriously (a signal, a stale wake-up): callers re-check in a loop.
inline void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected) noexcept {
  (void)syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr,
                0);
}

// Wakes one thread sleeping on `word` (none: a cheap no-op syscall).
inline void futex_wake_one(std::atomic<std::uint32_t>& word) noexcept {
  (void)syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
}

}  // namespace prosody::util
