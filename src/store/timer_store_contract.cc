// The TimerStore contract tests (see timer_store_contract.h).
#include "store/timer_store_contract.h"

#include <atomic>
#include <chrono>
#include <thread>

namespace prosody::store::testing {
namespace {

std::string unique_group() {
  static std::atomic<int> counter{0};
  const auto now = std::chrono::system_clock::now().time_since_epoch().count();
  return "contract-" + std::to_string(now) + "-" + std::to_string(counter++);
}

std::vector<EpochSeconds> times_of(TimerStore& s, const TimerSegment& seg, const Key& key,
                                   TimerType type = TimerType::application) {
  auto r = s.times(seg, key, type);
  EXPECT_TRUE(r.ok()) << (r ? "" : r.error().message());
  return r ? *r : std::vector<EpochSeconds>{};
}

constexpr EpochSeconds kBase = 1'800'000'000;  // 2027-01-15, slab-aligned below

}  // namespace

TimerSegment TimerStoreContract::segment(std::int64_t slab_size) const {
  return TimerSegment{unique_group(), "orders", Partition{3}, slab_size};
}

TEST_P(TimerStoreContract, UpsertIsIdempotentAndTimesAreSorted) {
  auto seg = segment();
  ASSERT_TRUE(store_->upsert(seg, {"k", TimerType::application, kBase + 30, {}}).ok());
  ASSERT_TRUE(store_->upsert(seg, {"k", TimerType::application, kBase + 10, {}}).ok());
  ASSERT_TRUE(store_->upsert(seg, {"k", TimerType::application, kBase + 30, {}}).ok());
  EXPECT_EQ(times_of(*store_, seg, "k"), (std::vector<EpochSeconds>{kBase + 10, kBase + 30}));
  EXPECT_TRUE(times_of(*store_, seg, "other").empty());
}

TEST_P(TimerStoreContract, TypesAreIndependent) {
  auto seg = segment();
  ASSERT_TRUE(store_->upsert(seg, {"k", TimerType::application, kBase, {}}).ok());
  ASSERT_TRUE(store_->upsert(seg, {"k", TimerType::deferred_message, kBase, {}}).ok());
  ASSERT_TRUE(store_->remove_all(seg, "k", TimerType::application).ok());
  EXPECT_TRUE(times_of(*store_, seg, "k").empty());
  EXPECT_EQ(times_of(*store_, seg, "k", TimerType::deferred_message), std::vector<EpochSeconds>{kBase});
}

TEST_P(TimerStoreContract, RemoveOneAndRemoveMissingSucceeds) {
  auto seg = segment();
  ASSERT_TRUE(store_->upsert(seg, {"k", TimerType::application, kBase, {}}).ok());
  ASSERT_TRUE(store_->upsert(seg, {"k", TimerType::application, kBase + 1, {}}).ok());
  ASSERT_TRUE(store_->remove(seg, "k", TimerType::application, kBase).ok());
  ASSERT_TRUE(store_->remove(seg, "k", TimerType::application, kBase).ok());
  ASSERT_TRUE(store_->remove(seg, "nobody", TimerType::application, kBase).ok());
  EXPECT_EQ(times_of(*store_, seg, "k"), std::vector<EpochSeconds>{kBase + 1});
}

TEST_P(TimerStoreContract, SegmentsAreIsolated) {
  auto a = segment();
  auto b = a;
  b.partition = Partition{4};
  ASSERT_TRUE(store_->upsert(a, {"k", TimerType::application, kBase, {}}).ok());
  EXPECT_TRUE(times_of(*store_, b, "k").empty());
  auto loaded = store_->load_slabs(b, std::numeric_limits<SlabId>::min(), b.slab_of(kBase) + 10);
  ASSERT_TRUE(loaded.ok());
  EXPECT_TRUE(loaded->empty());
}

TEST_P(TimerStoreContract, LoadSlabsReturnsExactlyTheRangeInTimeOrder) {
  auto seg = segment(60);
  const SlabId s0 = seg.slab_of(kBase);
  // Two timers in the slab before, three in s0 (incl. both edges), one after.
  for (auto [key, t] : std::vector<std::pair<std::string, EpochSeconds>>{
           {"a", kBase - 61}, {"b", kBase - 1}, {"c", seg.slab_start(s0)}, {"a", seg.slab_start(s0) + 59},
           {"b", seg.slab_start(s0) + 7}, {"c", seg.slab_start(s0 + 1)}}) {
    ASSERT_TRUE(store_->upsert(seg, {key, TimerType::application, t, {}}).ok());
  }
  auto only = store_->load_slabs(seg, s0, s0);
  ASSERT_TRUE(only.ok()) << only.error().message();
  ASSERT_EQ(only->size(), 3u);
  EXPECT_EQ((*only)[0].time, seg.slab_start(s0));
  EXPECT_EQ((*only)[1].time, seg.slab_start(s0) + 7);
  EXPECT_EQ((*only)[2].time, seg.slab_start(s0) + 59);
  EXPECT_EQ((*only)[2].key, "a");

  auto older = store_->load_slabs(seg, std::numeric_limits<SlabId>::min(), s0 - 1);
  ASSERT_TRUE(older.ok());
  EXPECT_EQ(older->size(), 2u);
  auto all = store_->load_slabs(seg, std::numeric_limits<SlabId>::min(), std::numeric_limits<SlabId>::max());
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 6u);
}

TEST_P(TimerStoreContract, SpanContextRoundTrips) {
  auto seg = segment();
  SpanContext span{{"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}, {"tracestate", "x=1"}};
  ASSERT_TRUE(store_->upsert(seg, {"k", TimerType::deferred_timer, kBase, span}).ok());
  auto loaded = store_->load_slabs(seg, seg.slab_of(kBase), seg.slab_of(kBase));
  ASSERT_TRUE(loaded.ok());
  ASSERT_EQ(loaded->size(), 1u);
  EXPECT_EQ((*loaded)[0], (StoredTimer{"k", TimerType::deferred_timer, kBase, span}));
}

TEST_P(TimerStoreContract, BeyondTheYear2038) {
  auto seg = segment();
  const EpochSeconds y2040 = 2'208'988'800;  // 2040-01-01: past Prosody's i32 wrap
  const EpochSeconds y2100 = 4'102'444'800;  // past u32 as well
  ASSERT_TRUE(store_->upsert(seg, {"k", TimerType::application, y2100, {}}).ok());
  ASSERT_TRUE(store_->upsert(seg, {"k", TimerType::application, y2040, {}}).ok());
  ASSERT_TRUE(store_->upsert(seg, {"k", TimerType::application, kBase, {}}).ok());
  EXPECT_EQ(times_of(*store_, seg, "k"), (std::vector<EpochSeconds>{kBase, y2040, y2100}));
  auto loaded = store_->load_slabs(seg, seg.slab_of(y2040), seg.slab_of(y2100));
  ASSERT_TRUE(loaded.ok());
  ASSERT_EQ(loaded->size(), 2u);
  EXPECT_EQ((*loaded)[0].time, y2040);
}

TEST_P(TimerStoreContract, UnicodeAndBinaryLookingKeys) {
  auto seg = segment();
  const Key keys[] = {"ключ", "key with spaces", "a/b:c", std::string(200, 'x')};
  for (const auto& k : keys) ASSERT_TRUE(store_->upsert(seg, {k, TimerType::application, kBase, {}}).ok());
  for (const auto& k : keys) EXPECT_EQ(times_of(*store_, seg, k), std::vector<EpochSeconds>{kBase}) << k;
}

TEST_P(TimerStoreContract, ConcurrentWritersLoseNothing) {
  auto seg = segment();
  constexpr int kThreads = 4, kPerThread = 200;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        if (!store_->upsert(seg, {"key-" + std::to_string(i % 10), TimerType::application, kBase + t * 1000 + i, {}}))
          failures++;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  auto all = store_->load_slabs(seg, std::numeric_limits<SlabId>::min(), std::numeric_limits<SlabId>::max());
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), static_cast<std::size_t>(kThreads * kPerThread));
}

}  // namespace prosody::store::testing
