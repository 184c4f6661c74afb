#include "engine/backoff.h"

#include <random>

#include <gtest/gtest.h>

namespace prosody::engine {
namespace {

using std::chrono::milliseconds;

TEST(Backoff, CapDoublesAndSaturates) {
  BackoffPolicy p{milliseconds{20}, milliseconds{1000}};
  EXPECT_EQ(p.cap(0), milliseconds{20});
  EXPECT_EQ(p.cap(1), milliseconds{40});
  EXPECT_EQ(p.cap(5), milliseconds{640});
  EXPECT_EQ(p.cap(6), milliseconds{1000});
  EXPECT_EQ(p.cap(1000), milliseconds{1000});
}

TEST(Backoff, DelayIsWithinFullJitterRange) {
  BackoffPolicy p{milliseconds{20}, milliseconds{300'000}};
  std::mt19937_64 rng(7);
  for (int attempt = 0; attempt < 30; ++attempt) {
    long long max_seen = 0;
    for (int i = 0; i < 200; ++i) {
      auto d = p.delay(attempt, rng);
      ASSERT_GE(d.count(), 0);
      ASSERT_LT(d, p.cap(attempt));
      max_seen = std::max<long long>(max_seen, d.count());
    }
    // Jitter really spreads: the largest of 200 draws is in the top half.
    EXPECT_GE(max_seen * 2, p.cap(attempt).count() - 1);
  }
}

TEST(Backoff, ZeroBaseMeansNoWait) {
  BackoffPolicy p{milliseconds{0}, milliseconds{100}};
  std::mt19937_64 rng(1);
  EXPECT_EQ(p.delay(3, rng), milliseconds{0});
}

}  // namespace
}  // namespace prosody::engine
