// LatencyHistogram: a fixed-size, lock-free, log-linear histogram of
// microsecond latencies (the HDR-histogram layout, written for the bench).
//
// Why buckets and not every sample: the backlog scenario reads 10M records
// and measures the consumer's peak RSS, so the recorder itself must not grow
// with the record count (10M samples would be 80 MB of our own memory in the
// number we are judging). 64 sub-buckets per power of two keep every reported
// percentile within 1/128 (< 0.8 %) of the true sample, far below the 1 ms
// resolution of the record timestamps we subtract from.
//
// Values below 128 us are exact; above, a value v with most significant bit
// m lands in bucket 128 + (m - 7) * 64 + ((v >> (m - 6)) - 64).
//
// Thread safety: record() is safe from any number of threads (relaxed atomic
// increments); percentile() and friends read a snapshot and may run
// concurrently with record() (the result is then approximate).
#pragma once

#include <array>
#include <atomic>
#include <bit>
#include <cstdint>

namespace prosody::bench {

class LatencyHistogram {
 public:
  static constexpr int kSubBuckets = 64;
  static constexpr int kExact = 2 * kSubBuckets;  // 0..127 us stored exactly
  static constexpr int kMaxShift = 40;            // up to ~2^46 us, i.e. years
  static constexpr int kBuckets = kExact + kMaxShift * kSubBuckets;

  void record(std::int64_t us) {
    if (us < 0) {
      negative_.fetch_add(1, std::memory_order_relaxed);
      us = 0;
    }
    buckets_[static_cast<std::size_t>(index_of(static_cast<std::uint64_t>(us)))].fetch_add(1, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
    std::int64_t m = max_.load(std::memory_order_relaxed);
    while (us > m && !max_.compare_exchange_weak(m, us, std::memory_order_relaxed)) {
    }
  }

  std::uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  std::uint64_t negative() const { return negative_.load(std::memory_order_relaxed); }
  std::int64_t max_us() const { return max_.load(std::memory_order_relaxed); }

  // The q-quantile (0 < q <= 1) in microseconds: the midpoint of the bucket
  // holding the ceil(q * count)-th smallest sample; 0 when empty.
  double percentile_us(double q) const {
    const std::uint64_t n = count();
    if (n == 0) return 0;
    auto rank = static_cast<std::uint64_t>(q * static_cast<double>(n));
    if (rank < 1) rank = 1;
    if (rank > n) rank = n;
    std::uint64_t seen = 0;
    for (int i = 0; i < kBuckets; ++i) {
      seen += buckets_[static_cast<std::size_t>(i)].load(std::memory_order_relaxed);
      if (seen >= rank) return midpoint(i);
    }
    return static_cast<double>(max_us());
  }

  static int index_of(std::uint64_t v) {
    if (v < static_cast<std::uint64_t>(kExact)) return static_cast<int>(v);
    const int msb = std::bit_width(v) - 1;  // >= 7
    int shift = msb - 6;                    // >= 1
    if (shift > kMaxShift) return kBuckets - 1;
    const auto top = static_cast<int>(v >> shift);  // in [64, 128)
    return kExact + (shift - 1) * kSubBuckets + (top - kSubBuckets);
  }

  static double midpoint(int index) {
    if (index < kExact) return index;
    const int shift = (index - kExact) / kSubBuckets + 1;
    const int top = (index - kExact) % kSubBuckets + kSubBuckets;
    const double lo = static_cast<double>(static_cast<std::uint64_t>(top) << shift);
    const double width = static_cast<double>(std::uint64_t{1} << shift);
    return lo + (width - 1) / 2;
  }

 private:
  std::array<std::atomic<std::uint64_t>, kBuckets> buckets_{};
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::uint64_t> negative_{0};
  std::atomic<std::int64_t> max_{0};
};

}  // namespace prosody::bench
