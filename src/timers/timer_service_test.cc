// TimerService on the simulated clock: timers fire when the clock reaches
// them, never before; later slabs are loaded ahead of time.
#include "timers/timer_service.h"

#include <atomic>

#include <gtest/gtest.h>

#include "store/memory/memory_timer_store.h"
#include "support/test_support.h"
#include "util/manual_clock.h"

namespace prosody::timers {
namespace {

using namespace std::chrono_literals;
using ::prosody::testing::wait_until;

// A store that can be switched off, like a Cassandra node restarting: every
// call fails transiently while it is down.
class SwitchableStore final : public store::TimerStore {
 public:
  explicit SwitchableStore(std::shared_ptr<store::TimerStore> inner) : inner_(std::move(inner)) {}
  std::atomic<bool> down{false};

  Status upsert(const store::TimerSegment& s, const store::StoredTimer& t) override {
    return down ? outage() : inner_->upsert(s, t);
  }
  Status remove(const store::TimerSegment& s, const Key& k, TimerType type, EpochSeconds t) override {
    return down ? outage() : inner_->remove(s, k, type, t);
  }
  Status remove_all(const store::TimerSegment& s, const Key& k, TimerType type) override {
    return down ? outage() : inner_->remove_all(s, k, type);
  }
  Result<std::vector<EpochSeconds>> times(const store::TimerSegment& s, const Key& k, TimerType type) override {
    if (down) return outage();
    return inner_->times(s, k, type);
  }
  Result<std::vector<store::StoredTimer>> load_slabs(const store::TimerSegment& s, store::SlabId first,
                                                     store::SlabId last) override {
    if (down) return outage();
    return inner_->load_slabs(s, first, last);
  }
  std::string describe() const override { return "switchable"; }

 private:
  static Error outage() { return Error::transient("store down", ErrorCode::store); }
  std::shared_ptr<store::TimerStore> inner_;
};

class TimerServiceTest : public ::testing::Test {
 protected:
  void SetUp() override { service_.start(); }
  void TearDown() override { service_.stop(); }

  EpochSeconds now() const {
    return std::chrono::duration_cast<std::chrono::seconds>(clock_->system_now().time_since_epoch()).count();
  }
  std::shared_ptr<PartitionTimers> add_partition(int partition) {
    auto t = std::make_shared<PartitionTimers>(
        store::TimerSegment{"g", "t", Partition{partition}, kSlab.count()}, switchable_, 64);
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
  // Advances the clock once the service sleeps, then waits until it has run
  // a whole pass at the new time: it started one (beat) and sleeps again.
  void step(std::chrono::seconds d) {
    clock_->await_sleepers(1);
    clock_->advance(d);
    ASSERT_TRUE(wait_until([&] { return service_.last_beat() >= clock_->now(); }, 5s));
    clock_->await_sleepers(1);
  }

  static constexpr std::chrono::seconds kSlab{600};
  std::shared_ptr<testing::ManualClock> clock_ = std::make_shared<testing::ManualClock>();
  std::shared_ptr<store::MemoryTimerStore> store_ = std::make_shared<store::MemoryTimerStore>();
  std::shared_ptr<SwitchableStore> switchable_ = std::make_shared<SwitchableStore>(store_);
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

// A store outage (a Cassandra restart): a partition assigned meanwhile
// cannot load, a timer that fires meanwhile cannot be deleted. Nothing is
// lost: once the store answers, the load is retried within
// kMaxLoadRetryDelay and the delete on the next beat.
TEST_F(TimerServiceTest, AfterAStoreOutageLoadsAndDeletesAreRetriedPromptlyAndNothingIsLost) {
  auto before = add_partition(5);
  ASSERT_TRUE(wait_until([&] { return before->owned_until().has_value(); }, 5s));
  const auto t0 = now();
  ASSERT_TRUE(before->schedule("in-memory", TimerType::application, t0 + 10).ok());
  store::TimerSegment seg{"g", "t", Partition{6}, kSlab.count()};
  ASSERT_TRUE(store_->upsert(seg, {"stored", TimerType::application, t0 + 10, {}}).ok());

  switchable_->down = true;
  auto during = add_partition(6);
  // A minute of outage, a second at a time: the loaded timer fires on time
  // (its delete fails), the other partition's first load keeps failing.
  // (63 s: with the old 2-4-8-16-30 s backoff the last failed attempt falls
  // at 60 or 61 s, depending on whether the pass that add() asked for ran
  // before the first step, and the next one 30 s later.)
  for (int i = 0; i < 63; ++i) step(1s);
  ASSERT_TRUE(wait_until([&] { return fired() == 1; }, 5s));
  EXPECT_FALSE(during->owned_until().has_value());
  EXPECT_EQ(store_->size(), 2u) << "the fired timer's delete failed; the other was never loaded";

  switchable_->down = false;
  const auto back = now();
  while (fired() < 2 && now() - back < TimerService::kMaxLoadRetryDelay.count()) {
    step(1s);
    (void)wait_until([&] { return fired() == 2; }, 100ms);
  }
  ASSERT_EQ(fired(), 2u) << "not loaded within " << TimerService::kMaxLoadRetryDelay.count() << " s of recovery";
  step(1s);
  ASSERT_TRUE(wait_until([&] { return store_->size() == 0; }, 5s)) << "the failed delete was not retried";
  std::lock_guard l(mutex_);
  EXPECT_EQ(fired_[0].key, "in-memory");
  EXPECT_EQ(fired_at_[0], t0 + 10);
  EXPECT_EQ(fired_[1].key, "stored");
}

}  // namespace
}  // namespace prosody::timers
