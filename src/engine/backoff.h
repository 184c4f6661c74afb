// Exponential backoff with full jitter: attempt n (0-based) waits a uniform
// random time in [0, min(base * 2^n, max)). Full jitter spreads retries of
// many keys that failed together, instead of having them retry in lockstep.
//
// Thread safety: pure function; the caller supplies the random source.
#pragma once

#include <chrono>
#include <random>

namespace prosody::engine {

struct BackoffPolicy {
  std::chrono::milliseconds base{20};
  std::chrono::milliseconds max{std::chrono::minutes(5)};

  // The cap for attempt `attempt` (before jitter), saturating at `max`.
  std::chrono::milliseconds cap(int attempt) const;

  template <typename Rng>
  std::chrono::milliseconds delay(int attempt, Rng& rng) const {
    const auto c = cap(attempt).count();
    if (c <= 0) return std::chrono::milliseconds{0};
    std::uniform_int_distribution<long long> dist(0, c - 1);
    return std::chrono::milliseconds{dist(rng)};
  }
};

}  // namespace prosody::engine
