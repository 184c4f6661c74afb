#include "middleware/monopolization_detector.h"

#include <algorithm>
#include <cstdio>
#include <limits>

namespace prosody::middleware {

MonopolizationOptions MonopolizationOptions::from_config(const Config& config) {
  MonopolizationOptions o;
  o.enabled = config.monopolization_enabled();
  o.threshold = config.monopolization_threshold();
  o.window = config.monopolization_window();
  o.cache_size = static_cast<std::size_t>(std::max(config.monopolization_cache_size(), 1));
  return o;
}

MonopolizationDetector::MonopolizationDetector(MonopolizationOptions options)
    : options_(options),
      window_ns_(std::max<std::int64_t>(options.window.count(), 1)),
      keys_(options.cache_size) {}

std::int64_t MonopolizationDetector::ns(time_point t) noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

void MonopolizationDetector::on_invoked(const TopicPartitionKey& key, time_point t) {
  if (!options_.enabled) return;
  std::lock_guard lock(mutex_);
  KeyHistory& h = keys_.get_or_create(digest(key));
  // A key runs one call at a time; a second start while one is open means a
  // lost completion, and the earlier start already covers the time.
  if (h.open) return;
  std::int64_t start = ns(t);
  // Completions and starts come from different threads; never let a start
  // reach back into time already counted.
  if (!h.closed.empty()) start = std::max(start, h.closed.back().end);
  h.open = start;
}

void MonopolizationDetector::on_completed(const TopicPartitionKey& key, time_point t) {
  if (!options_.enabled) return;
  std::lock_guard lock(mutex_);
  KeyHistory& h = keys_.get_or_create(digest(key));
  const std::int64_t end = ns(t);
  if (h.open) {
    const std::int64_t start = std::min(*h.open, end);
    h.open.reset();
    if (end > start) {
      // Touching the previous interval (back-to-back calls): extend it.
      if (!h.closed.empty() && h.closed.back().end >= start) {
        Interval& last = h.closed.back();
        last.busy += end - std::max(start, last.end);
        last.end = std::max(last.end, end);
      } else {
        h.closed.push_back({start, end, end - start});
      }
    }
  }
  clip(h, end - window_ns_);
  if (h.closed.size() > kMaxIntervals) compact(h);
}

void MonopolizationDetector::clip(KeyHistory& h, std::int64_t lo) const {
  auto first_kept = std::find_if(h.closed.begin(), h.closed.end(), [&](const Interval& i) { return i.end > lo; });
  h.closed.erase(h.closed.begin(), first_kept);
  if (!h.closed.empty() && h.closed.front().start < lo) {
    Interval& i = h.closed.front();
    const double kept = static_cast<double>(i.end - lo) / static_cast<double>(i.end - i.start);
    i.busy = static_cast<std::int64_t>(static_cast<double>(i.busy) * kept);
    i.start = lo;
  }
}

void MonopolizationDetector::compact(KeyHistory& h) {
  while (h.closed.size() > kMaxIntervals) {
    std::size_t best = 0;
    std::int64_t best_span = std::numeric_limits<std::int64_t>::max();
    for (std::size_t i = 0; i + 1 < h.closed.size(); ++i) {
      const std::int64_t span = h.closed[i + 1].end - h.closed[i].start;
      if (span < best_span) {
        best_span = span;
        best = i;
      }
    }
    Interval& a = h.closed[best];
    const Interval& b = h.closed[best + 1];
    a.end = b.end;
    a.busy += b.busy;
    h.closed.erase(h.closed.begin() + static_cast<std::ptrdiff_t>(best) + 1);
  }
}

std::int64_t MonopolizationDetector::busy_ns(const KeyHistory& h, std::int64_t now) const noexcept {
  const std::int64_t lo = now - window_ns_;
  std::int64_t sum = 0;
  for (const Interval& i : h.closed) {
    const std::int64_t s = std::max(i.start, lo);
    const std::int64_t e = std::min(i.end, now);
    if (e <= s) continue;
    if (s == i.start && e == i.end) {
      sum += i.busy;
    } else {
      sum += static_cast<std::int64_t>(static_cast<double>(i.busy) * static_cast<double>(e - s) /
                                       static_cast<double>(i.end - i.start));
    }
  }
  if (h.open && now > *h.open) sum += now - std::max(*h.open, lo);
  return std::min(sum, window_ns_);
}

std::chrono::nanoseconds MonopolizationDetector::busy_time(const TopicPartitionKey& key, time_point now) const {
  if (!options_.enabled) return std::chrono::nanoseconds{0};
  std::lock_guard lock(mutex_);
  const KeyHistory* h = keys_.peek(digest(key));
  return std::chrono::nanoseconds{h == nullptr ? 0 : busy_ns(*h, ns(now))};
}

Status MonopolizationDetector::check(const TopicPartitionKey& key, time_point now) const {
  if (!options_.enabled) return ok_status();
  const std::int64_t busy = busy_time(key, now).count();
  const double share = static_cast<double>(busy) / static_cast<double>(window_ns_);
  if (share <= options_.threshold) return ok_status();
  char text[96];
  std::snprintf(text, sizeof text, "key monopolized: %.1f s of %.1f s window", static_cast<double>(busy) / 1e9,
                static_cast<double>(window_ns_) / 1e9);
  return Error::transient(text);
}

std::size_t MonopolizationDetector::tracked_keys() const {
  std::lock_guard lock(mutex_);
  return keys_.size();
}

}  // namespace prosody::middleware
