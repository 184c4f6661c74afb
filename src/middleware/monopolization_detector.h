// Hot-key protection for pipeline mode (internals §2d). A key whose handler
// calls occupied more than `threshold` of the last `window` (default 90 % of
// 5 min) is refused with a Transient error *before* its handler runs; the
// MessageDefer layer outside then usually defers it, so one key cannot hold
// a worker (and its partition) for minutes on end.
//
// Per (topic, partition, key), for up to `cache_size` keys (key_table.h), the
// detector keeps the key's busy time as an ordered set of nanosecond
// intervals: on_invoked(t) opens [t, open); on_completed(t) closes it at t and
// clips the set to [t - window, t], dropping older history. check(now) sums
// the set inside [now - window, now]; a still-running call counts up to now.
//
// Memory per key is bounded: above kMaxIntervals closed intervals, the two
// neighbours with the smallest combined span merge into one chunk that keeps
// its exact busy sum. Sums stay exact except for a chunk straddling the
// window's trailing edge, whose busy time is pro-rated by overlap (exact for
// single intervals). Keys invoked fewer than kMaxIntervals times per window
// are therefore measured exactly.
//
// A forgotten key (evicted, or on_completed without on_invoked) just starts
// from no history. When disabled (monopolization_enabled=false) every call
// is a no-op and check() always passes.
//
// Thread safety: all methods are safe from any thread (one internal mutex,
// O(intervals of one key) under it). No threads and no clock inside: callers
// pass instants from the injected prosody::Clock.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <vector>

#include "middleware/key_table.h"
#include "middleware/topic_partition_key.h"
#include "prosody/clock.h"
#include "prosody/config.h"
#include "prosody/result.h"

namespace prosody::middleware {

struct MonopolizationOptions {
  bool enabled = true;                                        // monopolization_enabled
  double threshold = 0.9;                                     // monopolization_threshold
  std::chrono::nanoseconds window = std::chrono::minutes(5);  // monopolization_window
  std::size_t cache_size = 8192;                              // monopolization_cache_size

  static MonopolizationOptions from_config(const Config& config);
};

class MonopolizationDetector {
 public:
  using time_point = Clock::steady_time;
  static constexpr std::size_t kMaxIntervals = 64;

  explicit MonopolizationDetector(MonopolizationOptions options);

  // The handler for `key` started at `t` (telemetry HandlerInvoked).
  void on_invoked(const TopicPartitionKey& key, time_point t);
  // The handler for `key` finished at `t`, successfully or not.
  void on_completed(const TopicPartitionKey& key, time_point t);

  // ok, or Transient "key monopolized: X s of Y s window" (code
  // handler_failed) when busy/window > threshold. Call before invoking.
  Status check(const TopicPartitionKey& key, time_point now) const;

  // Busy time of `key` inside [now - window, now].
  std::chrono::nanoseconds busy_time(const TopicPartitionKey& key, time_point now) const;

  std::size_t tracked_keys() const;
  const MonopolizationOptions& options() const noexcept { return options_; }

 private:
  struct Interval {
    std::int64_t start;  // ns since the clock's epoch
    std::int64_t end;
    std::int64_t busy;  // <= end - start; less only for merged chunks
  };
  struct KeyHistory {
    std::vector<Interval> closed;       // ascending, disjoint
    std::optional<std::int64_t> open;   // start of the running call
    // The table reuses this slot for another key: forget, keep capacity.
    void recycle() noexcept {
      closed.clear();
      open.reset();
    }
  };

  static std::int64_t ns(time_point t) noexcept;
  std::int64_t busy_ns(const KeyHistory& h, std::int64_t now) const noexcept;
  void clip(KeyHistory& h, std::int64_t lo) const;
  static void compact(KeyHistory& h);

  MonopolizationOptions options_;
  std::int64_t window_ns_;
  mutable std::mutex mutex_;
  KeyTable<KeyHistory> keys_;  // guarded by mutex_, by digest()
};

}  // namespace prosody::middleware
