// TimerService on the simulated clock: timers fire when the clock reaches
// them, never before; later slabs are loaded ahead of time.
#include "timers/timer_service.h"

#include <gtest/gtest.h>

#include "store/memory/memory_timer_store.h"
#include "support/test_support.h"
#include "util/manual_clock.h"

namespace prosody::timers {
namespace {

using namespace std::chrono_literals;
using ::prosody::testing::wait_until;

class TimerServiceTest : public ::testing::Test {
 protected:
  void SetUp() override { service_.start(); }
  void TearDown() override { service_.stop(); }

  EpochSeconds now() const {
    return std::chrono::duration_cast<std::chrono::seconds>(clock_->system_now().time_since_epoch()).count();
  }
  std::shared_ptr<PartitionTimers> add_partition(int partition) {
    auto t = std::make_shared<PartitionTimers>(
        store::TimerSegment{"g", "t", Partition{partition}, kSlab.count()}, store_, 64);
    service_.add(t, [this](const std::shared_ptr<PartitionTimers>& p, DueTimer d) {
      EXPECT_TRUE(p->begin(d));
      std::lock_guard l(mutex_);
      fired_.push_back(d);
      fired_at_.push_back(now());
      (void)p->complete(d);
      return true;
    });
    return t;
  }
  std::size_t fired() {
    std::lock_guard l(mutex_);
    return fired_.size();
  }

  static constexpr std::chrono::seconds kSlab{600};
  std::shared_ptr<testing::ManualClock> clock_ = std::make_shared<testing::ManualClock>();
  std::shared_ptr<store::MemoryTimerStore> store_ = std::make_shared<store::MemoryTimerStore>();
  TimerService service_{clock_, kSlab, 1000ms};
  std::mutex mutex_;
  std::vector<DueTimer> fired_;
  std::vector<EpochSeconds> fired_at_;
};

TEST_F(TimerServiceTest, FiresWhenTheClockReachesTheTimeAndNotBefore) {
  auto p = add_partition(0);
  ASSERT_TRUE(wait_until([&] { return p->owned_until().has_value(); }, 5s));
  const auto t0 = now();
  ASSERT_TRUE(p->schedule("a", TimerType::application, t0 + 9).ok());
  ASSERT_TRUE(p->schedule("b", TimerType::application, t0 + 10).ok());
  service_.wake();
  clock_->await_sleepers(1);
  clock_->advance(9s);
  ASSERT_TRUE(wait_until([&] { return fired() == 1; }, 5s));
  EXPECT_EQ(fired(), 1u) << "b is due one second later";
  clock_->advance(1s);
  ASSERT_TRUE(wait_until([&] { return fired() == 2; }, 5s));
  std::lock_guard l(mutex_);
  EXPECT_EQ(fired_[0].key, "a");
  EXPECT_EQ(fired_at_[0], t0 + 9);
  EXPECT_EQ(fired_[1].key, "b");
  EXPECT_EQ(fired_at_[1], t0 + 10);
  EXPECT_TRUE(store_->size() == 0) << "completed timers are removed from the store";
}

TEST_F(TimerServiceTest, PastTimersStoredBeforeAssignmentFireAtOnce) {
  const auto t0 = now();
  store::TimerSegment seg{"g", "t", Partition{1}, kSlab.count()};
  ASSERT_TRUE(store_->upsert(seg, {"late", TimerType::application, t0 - 86400, {}}).ok());
  ASSERT_TRUE(store_->upsert(seg, {"later", TimerType::application, t0 - 5, {}}).ok());
  add_partition(1);
  ASSERT_TRUE(wait_until([&] { return fired() == 2; }, 5s));
  std::lock_guard l(mutex_);
  EXPECT_EQ(fired_[0].key, "late");
  EXPECT_EQ(fired_at_[0], t0) << "no simulated time passed";
}

TEST_F(TimerServiceTest, TimersInLaterSlabsAreLoadedAheadAndFireOnTime) {
  auto p = add_partition(2);
  ASSERT_TRUE(wait_until([&] { return p->owned_until().has_value(); }, 5s));
  const auto t0 = now();
  const auto owned = *p->owned_until();
  // Beyond the owned window: only stored now; the service must load it.
  const auto target = owned + kSlab.count() + 30;
  ASSERT_TRUE(p->schedule("far", TimerType::application, target).ok());
  EXPECT_EQ(p->in_memory(), 0u);
  // Walk the clock forward a minute at a time, as real time would.
  while (now() < target) {
    clock_->await_sleepers(1);
    clock_->advance(60s);
    if (now() < target) {
      ASSERT_EQ(fired(), 0u) << "fired early at " << now() - t0 << " s";
    }
  }
  ASSERT_TRUE(wait_until([&] { return fired() == 1; }, 5s));
  std::lock_guard l(mutex_);
  EXPECT_EQ(fired_[0].key, "far");
  EXPECT_LT(fired_at_[0] - target, 60) << "fired within one clock step of its time";
}

TEST_F(TimerServiceTest, RemovedPartitionsStopFiring) {
  auto p = add_partition(3);
  ASSERT_TRUE(wait_until([&] { return p->owned_until().has_value(); }, 5s));
  const auto t0 = now();
  ASSERT_TRUE(p->schedule("k", TimerType::application, t0 + 5).ok());
  service_.remove(p);
  auto q = add_partition(4);
  ASSERT_TRUE(q->schedule("q", TimerType::application, t0 + 6).ok());
  clock_->await_sleepers(1);
  clock_->advance(10s);
  ASSERT_TRUE(wait_until([&] { return fired() == 1; }, 5s));
  std::lock_guard l(mutex_);
  EXPECT_EQ(fired_[0].key, "q");
}

}  // namespace
}  // namespace prosody::timers
