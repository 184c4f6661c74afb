#include "middleware/failure_tracker.h"

#include <algorithm>

namespace prosody::middleware {

FailureTrackerOptions FailureTrackerOptions::from_config(const Config& config) {
  FailureTrackerOptions o;
  o.window = config.defer_failure_window();
  o.threshold = config.defer_failure_threshold();
  return o;
}

double FailureTracker::Counts::failure_rate() const noexcept {
  const std::uint64_t total = successes + failures;
  return total == 0 ? 0.0 : static_cast<double>(failures) / static_cast<double>(total);
}

FailureTracker::FailureTracker(FailureTrackerOptions options) : options_(options) {
  if (options_.window < std::chrono::nanoseconds{1}) options_.window = std::chrono::nanoseconds{1};
  if (options_.resolution <= std::chrono::nanoseconds{0}) options_.resolution = options_.window / 300;
  resolution_ns_ = std::max<std::int64_t>(options_.resolution.count(), 1);
  options_.resolution = std::chrono::nanoseconds{resolution_ns_};
}

std::int64_t FailureTracker::bucket_of(time_point t) const noexcept {
  const std::int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  // Floor division, correct for negative epochs too.
  std::int64_t q = ns / resolution_ns_;
  if (ns % resolution_ns_ != 0 && ns < 0) --q;
  return q;
}

void FailureTracker::record_success(time_point t) { record(t, false); }
void FailureTracker::record_failure(time_point t) { record(t, true); }

void FailureTracker::record(time_point t, bool failure) {
  const std::int64_t b = bucket_of(t);
  std::lock_guard lock(mutex_);
  // Outcomes arrive from many worker threads, so one may be slightly older
  // than the newest bucket: walk back to its place (almost always the back).
  auto it = buckets_.end();
  while (it != buckets_.begin() && std::prev(it)->index > b) --it;
  if (it != buckets_.begin() && std::prev(it)->index == b) {
    --it;
  } else {
    it = buckets_.insert(it, Bucket{b});
  }
  if (failure) {
    ++it->failures;
    ++totals_.failures;
  } else {
    ++it->successes;
    ++totals_.successes;
  }
  // Keep memory bounded even if nobody asks: prune against the newest bucket.
  prune_locked(time_point{std::chrono::duration_cast<time_point::duration>(
      std::chrono::nanoseconds{(buckets_.back().index + 1) * resolution_ns_ - 1})});
}

void FailureTracker::prune_locked(time_point now) {
  const time_point horizon = now - std::chrono::duration_cast<time_point::duration>(options_.window);
  const std::int64_t horizon_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(horizon.time_since_epoch()).count();
  // A bucket [i*r, (i+1)*r) still overlaps the window while (i+1)*r > horizon.
  while (!buckets_.empty() && (buckets_.front().index + 1) * resolution_ns_ <= horizon_ns) {
    totals_.successes -= buckets_.front().successes;
    totals_.failures -= buckets_.front().failures;
    buckets_.pop_front();
  }
}

void FailureTracker::prune(time_point now) {
  std::lock_guard lock(mutex_);
  prune_locked(now);
}

FailureTracker::Counts FailureTracker::counts(time_point now) {
  std::lock_guard lock(mutex_);
  prune_locked(now);
  return totals_;
}

bool FailureTracker::deferral_allowed(time_point now) {
  return counts(now).failure_rate() < options_.threshold;
}

}  // namespace prosody::middleware
