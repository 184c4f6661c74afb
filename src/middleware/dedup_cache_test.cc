#include "middleware/dedup_cache.h"

#include <limits>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "middleware/dedup_id.h"

namespace prosody::middleware {

struct IdCacheTestAccess {
  template <typename V>
  static void set_clock(IdCache<V>& cache, std::size_t set, std::uint32_t clock) {
    cache.table_[set].clock = clock;
  }
};

namespace {

store::DedupId id_for(std::int64_t offset) {
  return dedup_id(DedupFields{"1", "g", "t", 0, "k", std::nullopt, offset});
}

TEST(DedupCache, HoldsWhatWasInsertedAndNothingElse) {
  DedupCache cache(64);
  cache.insert(id_for(1));
  EXPECT_TRUE(cache.contains(id_for(1)));
  EXPECT_FALSE(cache.contains(id_for(2)));
  cache.insert(id_for(1));
  EXPECT_EQ(cache.size(), 1u);
}

TEST(DedupCache, StaysWithinItsSlotsAndKeepsTheRecentIds) {
  DedupCache cache(1024);
  for (std::int64_t i = 0; i < 100'000; ++i) cache.insert(id_for(i));
  EXPECT_EQ(cache.size(), cache.slots()) << "every set fills (ids are uniform hashes)";
  // The newest ids are all held; the oldest are gone.
  for (std::int64_t i = 100'000 - 32; i < 100'000; ++i) EXPECT_TRUE(cache.contains(id_for(i))) << i;
  EXPECT_FALSE(cache.contains(id_for(0)));
}

// Ids of one set: `count` of them, all hashing to set 0 of `cache`.
template <typename Cache>
std::vector<store::DedupId> ids_of_set_zero(const Cache& cache, std::size_t count) {
  std::vector<store::DedupId> out;
  for (std::int64_t i = 0; out.size() < count; ++i) {
    const auto id = id_for(i);
    if (cache.set_of(id) == 0) out.push_back(id);
  }
  return out;
}

TEST(DedupCache, AFullSetForgetsItsLeastRecentlyUsedIdAndALookupRefreshesOne) {
  DedupCache cache(DedupCache::kWays);  // two sets
  const auto same_set = ids_of_set_zero(cache, DedupCache::kWays + 1);
  for (std::size_t i = 0; i < DedupCache::kWays; ++i) cache.insert(same_set[i]);
  ASSERT_TRUE(cache.contains(same_set[0]));  // now the most recent; [1] is the oldest
  cache.insert(same_set[DedupCache::kWays]);
  EXPECT_TRUE(cache.contains(same_set[0]));
  EXPECT_FALSE(cache.contains(same_set[1]));
  for (std::size_t i = 2; i <= DedupCache::kWays; ++i) EXPECT_TRUE(cache.contains(same_set[i])) << i;
}

TEST(DedupCache, EvictionsInOtherSetsLeaveAnIdAlone) {
  DedupCache cache(DedupCache::kWays);  // two sets
  const auto kept = ids_of_set_zero(cache, 1).front();
  cache.insert(kept);
  for (std::int64_t i = 1; i < 1000; ++i) {
    const auto id = id_for(i);
    if (cache.set_of(id) != cache.set_of(kept)) cache.insert(id);
  }
  EXPECT_TRUE(cache.contains(kept)) << "other sets' evictions do not touch it";
}

TEST(DedupCache, HasTwoSlotsPerIdOfCapacityInWholeSets) {
  DedupCache one(1);
  EXPECT_EQ(one.capacity(), 1u);
  EXPECT_EQ(one.slots(), DedupCache::kWays);
  one.insert(id_for(1));
  EXPECT_TRUE(one.contains(id_for(1)));
  EXPECT_EQ(DedupCache(0).capacity(), 1u);
  EXPECT_EQ(DedupCache(1000).slots(), 2000u);
  EXPECT_EQ(DedupCache(1001).slots(), 2008u) << "rounded up to whole sets";
}

TEST(DedupCache, IdsWithinHalfTheCapacityAreAllHeld) {
  // P(Poisson(2) >= 8) per id is 0.1 %: with 1,000 such ids at most a few
  // may go, and the ids are fixed hashes, so this is deterministic.
  DedupCache cache(2000);
  for (std::int64_t i = 0; i < 50'000; ++i) cache.insert(id_for(i));
  int held = 0;
  for (std::int64_t i = 50'000 - 1000; i < 50'000; ++i) held += cache.contains(id_for(i));
  EXPECT_GE(held, 995);
  int held_at_capacity = 0;
  for (std::int64_t i = 50'000 - 2000; i < 50'000 - 1000; ++i) held_at_capacity += cache.contains(id_for(i));
  EXPECT_GE(held_at_capacity, 900) << "between capacity/2 and capacity: at most ~5 % forgotten";
}

TEST(DedupCache, ConcurrentUseKeepsEveryRecentIdOfEveryThread) {
  DedupCache cache(32 * 1024);  // roomy: no set overflows with these 8,000 ids
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&cache, t] {
      for (std::int64_t i = 0; i < 2000; ++i) {
        const auto id = id_for(t * 1'000'000 + i);
        cache.insert(id);
        ASSERT_TRUE(cache.contains(id));
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(cache.size(), 8000u);
}

TEST(DedupCache, ASetsRecencyClockWrapsWithoutLosingAnEntryOrTheNewestOne) {
  // 2^32 uses of one set wrap its 32-bit clock; the cache then forgets
  // the order of the older entries, never an entry.
  DedupCache cache(DedupCache::kWays);  // two sets
  const auto same_set = ids_of_set_zero(cache, DedupCache::kWays + 1);
  for (std::size_t i = 0; i < DedupCache::kWays; ++i) cache.insert(same_set[i]);
  IdCacheTestAccess::set_clock(cache, 0, std::numeric_limits<std::uint32_t>::max() - 1);
  ASSERT_TRUE(cache.contains(same_set[1]));  // stamped with the clock's last value
  ASSERT_TRUE(cache.contains(same_set[2]));  // wraps: the others are equally old, this one newest
  EXPECT_EQ(cache.size(), DedupCache::kWays) << "no entry lost to the wrap";
  cache.insert(same_set[DedupCache::kWays]);  // evicts one of the equally old, not the newest
  EXPECT_TRUE(cache.contains(same_set[2]));
  EXPECT_TRUE(cache.contains(same_set[DedupCache::kWays]));
  EXPECT_EQ(cache.size(), DedupCache::kWays);
}

TEST(IdCache, KeepsAValuePerIdAndALaterInsertReplacesIt) {
  struct Where {
    int partition = -1;
    long offset = -1;
  };
  IdCache<Where> cache(64);
  EXPECT_FALSE(cache.find(id_for(1)).has_value());
  cache.insert(id_for(1), Where{3, 42});
  auto found = cache.find(id_for(1));
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->partition, 3);
  EXPECT_EQ(found->offset, 42);
  cache.insert(id_for(1), Where{4, 7});
  EXPECT_EQ(cache.find(id_for(1))->offset, 7);
  EXPECT_EQ(cache.size(), 1u);
}

}  // namespace
}  // namespace prosody::middleware
