#include "middleware/defer_backoff.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include <gtest/gtest.h>

namespace prosody::middleware {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;

TEST(DeferBackoff, FirstRetryIsImmediate) {
  DeferBackoff b;
  std::mt19937_64 rng(1);
  EXPECT_EQ(b.range(0).lower, 0ms);
  EXPECT_EQ(b.range(0).upper, 0ms);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(b.delay(0, rng), 0ms);
}

TEST(DeferBackoff, UpperBoundDoublesFromBaseAndSaturatesAtMax) {
  DeferBackoff b{2s, 60s};
  EXPECT_EQ(b.range(1).upper, 2s);
  EXPECT_EQ(b.range(2).upper, 4s);
  EXPECT_EQ(b.range(3).upper, 8s);
  EXPECT_EQ(b.range(5).upper, 32s);
  EXPECT_EQ(b.range(6).upper, 60s);
  EXPECT_EQ(b.range(7).upper, 60s);
  for (std::uint32_t n : {1u, 2u, 6u, 100u}) EXPECT_EQ(b.range(n).lower, 1s);
}

TEST(DeferBackoff, HugeRetryCountsDoNotOverflow) {
  DeferBackoff b;  // 1 s .. 24 h
  for (std::uint32_t n : {40u, 63u, 64u, 65u, 1000u, std::numeric_limits<std::uint32_t>::max()}) {
    EXPECT_EQ(b.range(n).upper, milliseconds{24h}) << n;
  }
}

TEST(DeferBackoff, BaseBelowOneSecondAndMaxBelowBaseAreRaised) {
  DeferBackoff tiny{100ms, 200ms};
  EXPECT_EQ(tiny.range(1).lower, 1s);
  EXPECT_EQ(tiny.range(1).upper, 1s);
  EXPECT_EQ(tiny.range(10).upper, 1s);
  DeferBackoff inverted{10s, 5s};
  EXPECT_EQ(inverted.range(1).upper, 10s);
  EXPECT_EQ(inverted.range(4).upper, 10s);
}

// Property: for many configurations, retry counts and seeds, every draw lies
// in [1 s, max(min(base * 2^(n-1), max), 1 s)], and the draws really spread
// over the range rather than clustering at one end.
TEST(DeferBackoff, DrawsStayWithinBoundsAndSpread) {
  const DeferBackoff configs[] = {{1s, 24h}, {1s, 10s}, {3s, 1h}, {1500ms, 7s}, {5s, 5s}};
  for (const auto& b : configs) {
    for (std::uint32_t n = 1; n <= 40; ++n) {
      // The formula, computed independently in floating point.
      const double want_upper =
          std::max(std::min(static_cast<double>(std::max(b.base, milliseconds{1s}).count()) *
                                std::pow(2.0, static_cast<double>(n - 1)),
                            static_cast<double>(std::max(b.max, std::max(b.base, milliseconds{1s})).count())),
                   1000.0);
      const auto r = b.range(n);
      ASSERT_EQ(r.lower, 1s);
      ASSERT_EQ(static_cast<double>(r.upper.count()), want_upper) << "n=" << n;

      std::mt19937_64 rng(n * 7919 + static_cast<std::uint64_t>(b.base.count()));
      milliseconds lo = milliseconds::max(), hi = milliseconds::min();
      double sum = 0;
      constexpr int kDraws = 2000;
      for (int i = 0; i < kDraws; ++i) {
        const milliseconds d = b.delay(n, rng);
        ASSERT_GE(d, r.lower);
        ASSERT_LE(d, r.upper);
        lo = std::min(lo, d);
        hi = std::max(hi, d);
        sum += static_cast<double>(d.count());
      }
      const double width = static_cast<double>((r.upper - r.lower).count());
      if (width > 0) {
        // 2000 uniform draws: extremes within 1 % of the ends, mean within 5 %.
        EXPECT_LE(static_cast<double>((lo - r.lower).count()), width * 0.01 + 1);
        EXPECT_LE(static_cast<double>((r.upper - hi).count()), width * 0.01 + 1);
        const double mid = static_cast<double>(r.lower.count()) + width / 2;
        EXPECT_NEAR(sum / kDraws, mid, width * 0.05 + 1);
      } else {
        EXPECT_EQ(lo, r.lower);
        EXPECT_EQ(hi, r.lower);
      }
    }
  }
}

TEST(DeferBackoff, SameSeedSameDelays) {
  DeferBackoff b;
  std::mt19937_64 a(42), c(42);
  for (std::uint32_t n = 0; n < 30; ++n) EXPECT_EQ(b.delay(n, a), b.delay(n, c));
}

TEST(DeferBackoff, FromConfig) {
  Config config;
  config.with_defer_base(2s).with_defer_max_delay(1h);
  auto b = DeferBackoff::from_config(config);
  EXPECT_EQ(b.base, 2s);
  EXPECT_EQ(b.max, milliseconds{1h});
}

}  // namespace
}  // namespace prosody::middleware
