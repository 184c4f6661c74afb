// Backoff for deferred retry (internals §2c): how long the DeferredMessage /
// DeferredTimer timer waits before retrying a deferred key again.
//
//   retry_count 0      -> 0 (the first retry of a freshly deferred key is
//                         near-immediate: often the cause was brief)
//   retry_count n >= 1 -> uniform in [1 s, max(min(base * 2^(n-1), max), 1 s)]
//
// The jitter is "full" above the 1 s floor so keys that failed together do
// not retry in lockstep. `base` is at least 1 s (defer_base's documented
// minimum) and `max` at least `base`; smaller values are raised, never
// rejected, because Config::validate() already reports them to the user.
// Delays are whole milliseconds.
//
// Thread safety: a value type; delay() is const and uses only the random
// source passed in (one per thread, or the caller locks it).
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

#include "prosody/config.h"

namespace prosody::middleware {

struct DeferBackoff {
  std::chrono::milliseconds base{std::chrono::seconds(1)};  // defer_base
  std::chrono::milliseconds max{std::chrono::hours(24)};    // defer_max_delay

  static DeferBackoff from_config(const Config& config);

  // Inclusive bounds of delay(retry_count).
  struct Range {
    std::chrono::milliseconds lower;
    std::chrono::milliseconds upper;
  };
  Range range(std::uint32_t retry_count) const noexcept;

  // A draw from range(retry_count). `rng` is any UniformRandomBitGenerator;
  // tests inject a seeded engine, production a per-thread std::mt19937_64.
  template <typename Rng>
  std::chrono::milliseconds delay(std::uint32_t retry_count, Rng& rng) const {
    const Range r = range(retry_count);
    if (r.upper <= r.lower) return r.lower;
    std::uniform_int_distribution<std::int64_t> dist(r.lower.count(), r.upper.count());
    return std::chrono::milliseconds{dist(rng)};
  }
};

}  // namespace prosody::middleware
