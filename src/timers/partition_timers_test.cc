#include "timers/partition_timers.h"

#include <gtest/gtest.h>

#include "store/memory/memory_timer_store.h"

namespace prosody::timers {
namespace {

using store::MemoryTimerStore;
using store::TimerSegment;

constexpr EpochSeconds kSlab = 3600;
constexpr EpochSeconds kT0 = 1'800'000'000 - (1'800'000'000 % kSlab);  // a slab boundary

class PartitionTimersTest : public ::testing::Test {
 protected:
  std::shared_ptr<MemoryTimerStore> store_ = std::make_shared<MemoryTimerStore>();
  TimerSegment seg_{"g", "t", Partition{0}, kSlab};
  PartitionTimers timers_{seg_, store_, 64};

  std::vector<EpochSeconds> stored(const Key& k) { return *store_->times(seg_, k, TimerType::application); }
};

TEST_F(PartitionTimersTest, FirstLoadTakesEveryOlderSlabAndTheCurrentOneOnly) {
  ASSERT_TRUE(store_->upsert(seg_, {"old", TimerType::application, kT0 - 5 * kSlab, {}}).ok());
  ASSERT_TRUE(store_->upsert(seg_, {"now", TimerType::application, kT0 + 10, {}}).ok());
  ASSERT_TRUE(store_->upsert(seg_, {"next", TimerType::application, kT0 + kSlab + 1, {}}).ok());
  ASSERT_TRUE(timers_.load_through(kT0 + 5).ok());
  EXPECT_EQ(timers_.owned_until(), kT0 + kSlab);
  EXPECT_EQ(timers_.in_memory(), 2u);
  ASSERT_TRUE(timers_.load_through(kT0 + kSlab).ok());
  EXPECT_EQ(timers_.in_memory(), 3u);
  EXPECT_EQ(timers_.owned_until(), kT0 + 2 * kSlab);
}

TEST_F(PartitionTimersTest, ScheduleInsideTheWindowIsInMemoryOutsideOnlyStored) {
  ASSERT_TRUE(timers_.load_through(kT0).ok());
  ASSERT_TRUE(timers_.schedule("k", TimerType::application, kT0 + 100).ok());
  ASSERT_TRUE(timers_.schedule("k", TimerType::application, kT0 + 3 * kSlab).ok());
  EXPECT_EQ(timers_.in_memory(), 1u);
  EXPECT_EQ(stored("k"), (std::vector<EpochSeconds>{kT0 + 100, kT0 + 3 * kSlab}));
  EXPECT_EQ(timers_.next_due(), kT0 + 100);
}

TEST_F(PartitionTimersTest, DueTimersFireOnceInTimeOrderAndCompleteRemovesThem) {
  ASSERT_TRUE(timers_.load_through(kT0).ok());
  ASSERT_TRUE(timers_.schedule("b", TimerType::application, kT0 + 2).ok());
  ASSERT_TRUE(timers_.schedule("a", TimerType::application, kT0 + 1).ok());
  ASSERT_TRUE(timers_.schedule("c", TimerType::application, kT0 + 9).ok());
  auto due = timers_.take_due(kT0 + 5);
  ASSERT_EQ(due.size(), 2u);
  EXPECT_EQ(due[0].key, "a");
  EXPECT_EQ(due[1].key, "b");
  EXPECT_TRUE(timers_.take_due(kT0 + 5).empty()) << "fired timers are not handed out twice";
  EXPECT_EQ(timers_.next_due(), kT0 + 9);
  ASSERT_TRUE(timers_.begin(due[0]));
  ASSERT_TRUE(timers_.complete(due[0]).ok());
  EXPECT_TRUE(stored("a").empty());
  EXPECT_EQ(stored("b"), std::vector<EpochSeconds>{kT0 + 2}) << "not completed yet: still stored";
  EXPECT_EQ(timers_.outstanding(), 1u);
}

TEST_F(PartitionTimersTest, UnscheduledBeforeItRunsIsSkipped) {
  ASSERT_TRUE(timers_.load_through(kT0).ok());
  ASSERT_TRUE(timers_.schedule("k", TimerType::application, kT0).ok());
  auto due = timers_.take_due(kT0);
  ASSERT_EQ(due.size(), 1u);
  ASSERT_TRUE(timers_.unschedule("k", TimerType::application, kT0).ok());
  EXPECT_FALSE(timers_.begin(due[0]));
  EXPECT_EQ(timers_.outstanding(), 0u);
}

TEST_F(PartitionTimersTest, RescheduledWhileFiringFiresAgain) {
  ASSERT_TRUE(timers_.load_through(kT0).ok());
  ASSERT_TRUE(timers_.schedule("k", TimerType::application, kT0).ok());
  auto due = timers_.take_due(kT0);
  ASSERT_TRUE(timers_.begin(due[0]));
  ASSERT_TRUE(timers_.schedule("k", TimerType::application, kT0).ok());  // from inside on_timer
  ASSERT_TRUE(timers_.complete(due[0]).ok());
  EXPECT_EQ(stored("k"), std::vector<EpochSeconds>{kT0});
  EXPECT_EQ(timers_.take_due(kT0).size(), 1u);
}

TEST_F(PartitionTimersTest, ClearAndScheduleKeepsOnlyTheNewTime) {
  ASSERT_TRUE(timers_.load_through(kT0).ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(timers_.schedule("k", TimerType::application, kT0 + i).ok());
  ASSERT_TRUE(timers_.schedule("k", TimerType::deferred_message, kT0).ok());
  ASSERT_TRUE(timers_.clear_and_schedule("k", TimerType::application, kT0 + 50).ok());
  EXPECT_EQ(stored("k"), std::vector<EpochSeconds>{kT0 + 50});
  EXPECT_EQ(*timers_.scheduled("k", TimerType::deferred_message), std::vector<EpochSeconds>{kT0})
      << "other timer types are untouched";
  ASSERT_TRUE(timers_.clear("k", TimerType::application).ok());
  EXPECT_TRUE(stored("k").empty());
  EXPECT_EQ(timers_.in_memory(), 1u);
}

TEST_F(PartitionTimersTest, BackpressureCapsOutstandingFirings) {
  PartitionTimers capped(seg_, store_, 3);
  ASSERT_TRUE(capped.load_through(kT0).ok());
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(capped.schedule("k" + std::to_string(i), TimerType::application, kT0).ok());
  auto first = capped.take_due(kT0);
  EXPECT_EQ(first.size(), 3u);
  EXPECT_TRUE(capped.take_due(kT0).empty());
  ASSERT_TRUE(capped.begin(first[0]));
  ASSERT_TRUE(capped.complete(first[0]).ok());
  EXPECT_EQ(capped.take_due(kT0).size(), 1u);
}

TEST_F(PartitionTimersTest, AbandonForgetsInMemoryButKeepsTheStoredRow) {
  ASSERT_TRUE(timers_.load_through(kT0).ok());
  ASSERT_TRUE(timers_.schedule("k", TimerType::application, kT0).ok());
  auto due = timers_.take_due(kT0);
  timers_.abandon(due[0]);
  EXPECT_EQ(timers_.in_memory(), 0u);
  EXPECT_EQ(stored("k"), std::vector<EpochSeconds>{kT0}) << "the next owner reloads it";
}

// A store whose slab load can be paused, to interleave a handler's
// unschedule with a load in progress.
class PausingStore final : public MemoryTimerStore {
 public:
  std::function<void()> during_load;
  Result<std::vector<store::StoredTimer>> load_slabs(const TimerSegment& s, store::SlabId a, store::SlabId b) override {
    auto rows = MemoryTimerStore::load_slabs(s, a, b);
    if (during_load) during_load();
    return rows;
  }
};

TEST(PartitionTimersRace, UnscheduleDuringALoadIsNotUndoneByTheLoad) {
  auto store = std::make_shared<PausingStore>();
  TimerSegment seg{"g", "t", Partition{0}, kSlab};
  PartitionTimers timers(seg, store, 64);
  ASSERT_TRUE(store->upsert(seg, {"k", TimerType::application, kT0 + 1, {}}).ok());
  store->during_load = [&] { ASSERT_TRUE(timers.unschedule("k", TimerType::application, kT0 + 1).ok()); };
  ASSERT_TRUE(timers.load_through(kT0).ok());
  EXPECT_EQ(timers.in_memory(), 0u);
  EXPECT_TRUE(timers.take_due(kT0 + 10).empty());
}

TEST(PartitionTimersRace, ScheduleDuringALoadLandsInMemory) {
  auto store = std::make_shared<PausingStore>();
  TimerSegment seg{"g", "t", Partition{0}, kSlab};
  PartitionTimers timers(seg, store, 64);
  store->during_load = [&] { ASSERT_TRUE(timers.schedule("k", TimerType::application, kT0 + 1).ok()); };
  ASSERT_TRUE(timers.load_through(kT0).ok());
  EXPECT_EQ(timers.take_due(kT0 + 10).size(), 1u);
}

// A store that fails on demand.
class FlakyStore final : public MemoryTimerStore {
 public:
  bool fail = false;
  Status remove(const TimerSegment& s, const Key& k, TimerType t, EpochSeconds time) override {
    if (fail) return Error::transient("store down", ErrorCode::store);
    return MemoryTimerStore::remove(s, k, t, time);
  }
  Result<std::vector<store::StoredTimer>> load_slabs(const TimerSegment& s, store::SlabId a, store::SlabId b) override {
    if (fail) return Error::transient("store down", ErrorCode::store);
    return MemoryTimerStore::load_slabs(s, a, b);
  }
};

TEST(PartitionTimersFailures, FailedLoadLeavesTheWindowAndFailedDeleteIsRetried) {
  auto store = std::make_shared<FlakyStore>();
  TimerSegment seg{"g", "t", Partition{0}, kSlab};
  PartitionTimers timers(seg, store, 64);
  store->fail = true;
  EXPECT_FALSE(timers.load_through(kT0).ok());
  EXPECT_FALSE(timers.owned_until().has_value());
  store->fail = false;
  ASSERT_TRUE(timers.load_through(kT0).ok());
  ASSERT_TRUE(timers.schedule("k", TimerType::application, kT0).ok());
  auto due = timers.take_due(kT0);
  ASSERT_TRUE(timers.begin(due[0]));
  store->fail = true;
  EXPECT_FALSE(timers.complete(due[0]).ok());
  EXPECT_EQ(timers.retry_deletes(), 1u);
  store->fail = false;
  EXPECT_EQ(timers.retry_deletes(), 0u);
  EXPECT_TRUE(store->times(seg, "k", TimerType::application)->empty());
}

}  // namespace
}  // namespace prosody::timers
