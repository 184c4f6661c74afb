// The consumer-wide failure-rate gate for deferred retry (Prosody's
// FailureTracker, internals §2c). MessageDefer asks `deferral_allowed(now)`
// before deferring a key for the first time: while most recent outcomes are
// failures (rate >= defer_failure_threshold over defer_failure_window) the
// failure is systemic - a database is down, not one bad message - and
// deferring everything would just fill the defer store. Refusing deferral
// lets the error reach the pipeline's infinite Retry, which blocks the key:
// intended backpressure.
//
// Outcomes are counted in time buckets of `resolution` (default window/300,
// 1 s for the 5 min default) instead of one instant each, so memory is
// bounded by window/resolution whatever the message rate. An outcome counts
// while its bucket overlaps [now - window, now]: at most `resolution` longer
// than an exact per-instant window. resolution = 1 ns gives exact instants.
//
// Thread safety: all methods are safe from any thread (one internal mutex,
// O(1) amortised work under it). No threads, no clock: callers pass instants
// taken from the injected prosody::Clock.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>

#include "prosody/clock.h"
#include "prosody/config.h"

namespace prosody::middleware {

struct FailureTrackerOptions {
  std::chrono::nanoseconds window = std::chrono::minutes(5);  // defer_failure_window
  double threshold = 0.9;                                     // defer_failure_threshold
  std::chrono::nanoseconds resolution{0};  // 0 = window / 300, at least 1 ns

  static FailureTrackerOptions from_config(const Config& config);
};

class FailureTracker {
 public:
  using time_point = Clock::steady_time;

  struct Counts {
    std::uint64_t successes = 0;
    std::uint64_t failures = 0;
    // failures / (failures + successes); 0 when nothing was recorded.
    double failure_rate() const noexcept;
  };

  explicit FailureTracker(FailureTrackerOptions options);

  void record_success(time_point t);
  void record_failure(time_point t);

  // True while the failure rate over the window is below the threshold. An
  // empty window allows deferral (no evidence of a systemic failure).
  bool deferral_allowed(time_point now);

  // Outcomes inside the window ending at `now` (drops older buckets).
  Counts counts(time_point now);

  // Drops buckets that left the window; called by the above, and by the
  // owner's heartbeat so an idle consumer forgets old failures.
  void prune(time_point now);

  const FailureTrackerOptions& options() const noexcept { return options_; }

 private:
  struct Bucket {
    std::int64_t index;  // floor(time / resolution)
    std::uint64_t successes = 0;
    std::uint64_t failures = 0;
  };

  void record(time_point t, bool failure);
  std::int64_t bucket_of(time_point t) const noexcept;
  void prune_locked(time_point now);

  FailureTrackerOptions options_;
  std::int64_t resolution_ns_;
  mutable std::mutex mutex_;
  std::deque<Bucket> buckets_;  // ascending index; guarded by mutex_
  Counts totals_;               // sums over buckets_; guarded by mutex_
};

}  // namespace prosody::middleware
