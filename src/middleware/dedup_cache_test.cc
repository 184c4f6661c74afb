#include "middleware/dedup_cache.h"

#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "middleware/dedup_id.h"

namespace prosody::middleware {
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

TEST(DedupCache, StaysWithinItsCapacityAndKeepsTheRecentIds) {
  DedupCache cache(1024);
  for (std::int64_t i = 0; i < 100'000; ++i) cache.insert(id_for(i));
  EXPECT_LE(cache.size(), 1024u);
  EXPECT_GE(cache.size(), 1024u - 16u) << "shards fill evenly (ids are uniform hashes)";
  // The newest ids are all held; the oldest are gone.
  for (std::int64_t i = 100'000 - 32; i < 100'000; ++i) EXPECT_TRUE(cache.contains(id_for(i))) << i;
  EXPECT_FALSE(cache.contains(id_for(0)));
}

TEST(DedupCache, ALookupRefreshesAnId) {
  DedupCache cache(32);  // two ids per shard; the cache shards by the last byte
  std::vector<store::DedupId> same_shard;
  for (std::int64_t i = 0; same_shard.size() < 3; ++i) {
    const auto id = id_for(i);
    if (id.bytes[15] % 16 == 0) same_shard.push_back(id);
  }
  cache.insert(same_shard[0]);
  cache.insert(same_shard[1]);
  ASSERT_TRUE(cache.contains(same_shard[0]));  // now the most recent
  cache.insert(same_shard[2]);                 // evicts the least recent: [1]
  EXPECT_TRUE(cache.contains(same_shard[0]));
  EXPECT_FALSE(cache.contains(same_shard[1]));
  EXPECT_TRUE(cache.contains(same_shard[2]));
}

TEST(DedupCache, EvictionsInOtherShardsLeaveAnIdAlone) {
  DedupCache cache(16);  // one id per shard
  const auto kept = id_for(0);
  cache.insert(kept);
  // Insert ids of other shards only, and of the same shard after a lookup.
  for (std::int64_t i = 1; i < 1000; ++i) {
    const auto id = id_for(i);
    if (id.bytes[15] % 16 == kept.bytes[15] % 16) continue;
    cache.insert(id);
  }
  EXPECT_TRUE(cache.contains(kept)) << "other shards' evictions do not touch it";
}

TEST(DedupCache, ACapacityBelowTheShardCountStillHoldsOneIdPerShard) {
  DedupCache cache(1);
  EXPECT_EQ(cache.capacity(), 16u);
  cache.insert(id_for(1));
  EXPECT_TRUE(cache.contains(id_for(1)));
}

TEST(DedupCache, ConcurrentUseKeepsEveryRecentIdOfEveryThread) {
  DedupCache cache(16 * 1024);
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

}  // namespace
}  // namespace prosody::middleware
