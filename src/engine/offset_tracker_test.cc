#include "engine/offset_tracker.h"

#include <algorithm>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include <gtest/gtest.h>

namespace prosody::engine {
namespace {

using Clock = std::chrono::steady_clock;

TEST(OffsetTracker, CommitsContiguousPrefixOnly) {
  OffsetTracker t;
  auto now = Clock::now();
  for (int o = 10; o < 15; ++o) ASSERT_TRUE(t.take(Offset{o}, now));
  EXPECT_FALSE(t.commit_position());
  EXPECT_FALSE(t.complete(Offset{12}));  // not the head: position unchanged
  EXPECT_FALSE(t.commit_position());
  EXPECT_TRUE(t.complete(Offset{10}));
  EXPECT_EQ(t.commit_position(), Offset{11});
  EXPECT_TRUE(t.complete(Offset{11}));  // 11 and the already-done 12
  EXPECT_EQ(t.commit_position(), Offset{13});
  EXPECT_EQ(t.uncommitted(), 2u);
}

TEST(OffsetTracker, HandlesGapsInOffsets) {
  OffsetTracker t;
  auto now = Clock::now();
  ASSERT_TRUE(t.take(Offset{5}, now));
  ASSERT_TRUE(t.take(Offset{7}, now));  // 6 was a transaction marker
  t.complete(Offset{7});
  t.complete(Offset{5});
  EXPECT_EQ(t.commit_position(), Offset{8});
  EXPECT_EQ(t.uncommitted(), 0u);
}

TEST(OffsetTracker, RejectsOutOfOrderTakeAndDoubleComplete) {
  OffsetTracker t;
  auto now = Clock::now();
  ASSERT_TRUE(t.take(Offset{3}, now));
  EXPECT_FALSE(t.take(Offset{3}, now));
  EXPECT_FALSE(t.take(Offset{2}, now));
  EXPECT_TRUE(t.complete(Offset{3}));
  EXPECT_FALSE(t.complete(Offset{3}));
  EXPECT_FALSE(t.complete(Offset{99}));
}

TEST(OffsetTracker, NeverCompletedRecordFreezesPosition) {
  OffsetTracker t;
  auto now = Clock::now();
  for (int o = 0; o < 4; ++o) ASSERT_TRUE(t.take(Offset{o}, now));
  t.complete(Offset{0});
  t.complete(Offset{2});
  t.complete(Offset{3});
  EXPECT_EQ(t.commit_position(), Offset{1});  // 1 never finished
  EXPECT_EQ(t.oldest_uncommitted_since(), now);
}

// Property: for any completion order, the commit position is always exactly
// one past the longest completed prefix.
TEST(OffsetTracker, RandomCompletionOrdersCommitTheContiguousPrefix) {
  std::mt19937 rng(12345);
  for (int round = 0; round < 200; ++round) {
    OffsetTracker t;
    std::vector<std::int64_t> offsets;
    std::int64_t o = std::uniform_int_distribution<std::int64_t>(0, 1000)(rng);
    const int n = std::uniform_int_distribution<int>(1, 300)(rng);
    for (int i = 0; i < n; ++i) {
      o += std::uniform_int_distribution<int>(1, 3)(rng);  // gaps allowed
      offsets.push_back(o);
      ASSERT_TRUE(t.take(Offset{o}, Clock::now()));
    }
    std::vector<std::int64_t> order = offsets;
    std::shuffle(order.begin(), order.end(), rng);
    std::set<std::int64_t> done;
    for (auto c : order) {
      t.complete(Offset{c});
      done.insert(c);
      std::size_t prefix = 0;
      while (prefix < offsets.size() && done.count(offsets[prefix])) ++prefix;
      if (prefix == 0) {
        EXPECT_FALSE(t.commit_position());
      } else {
        ASSERT_TRUE(t.commit_position());
        EXPECT_EQ(t.commit_position()->value(), offsets[prefix - 1] + 1);
      }
      EXPECT_EQ(t.uncommitted(), offsets.size() - prefix);
    }
  }
}

}  // namespace
}  // namespace prosody::engine
