// TimerDefer on its own (a one-layer stack over a scripted handler, memory
// stores, a simulated clock): deferring a failing application timer, later
// timers of the key queueing behind it, the DeferredTimer retry of the head
// (Failure class, original time, backoff on failure), orphans, and the gate.
#include <gtest/gtest.h>

#include <deque>

#include "engine/invocation_slot.h"
#include "engine/partition_state.h"
#include "middleware/timer_defer_layer.h"
#include "store/memory/memory_defer_store.h"
#include "store/memory/memory_timer_store.h"
#include "timers/partition_timers.h"
#include "util/manual_clock.h"

namespace prosody::middleware {
namespace {

using namespace std::chrono_literals;
using store::EpochSeconds;

// Returns the scripted results in order (ok once the script runs out) and
// records what each call ran.
class ScriptedTimerHandler final : public Innermost {
 public:
  struct Call {
    EpochSeconds time;
    TimerType type;
    DemandClass demand;
    int attempts;
  };
  Status invoke(Invocation& inv) const override {
    calls.push_back({inv.timer->time, inv.timer->type, inv.demand, inv.handler_attempts});
    if (script.empty()) return ok_status();
    auto s = std::move(script.front());
    script.pop_front();
    return s;
  }
  mutable std::deque<Status> script;
  mutable std::vector<Call> calls;
};

class TimerDeferLayerTest : public ::testing::Test {
 protected:
  TimerDeferLayerTest() {
    partition_.timers = std::make_shared<timers::PartitionTimers>(
        store::TimerSegment{"g", "orders", Partition{0}, 3600}, timer_store_, 64);
    std::vector<std::unique_ptr<Layer>> layers;
    const DeferBackoff backoff{1s, 60s};
    layers.push_back(std::make_unique<TimerDeferLayer>(TimerDeferLayer::Options{true, backoff, "g"}, defer_store_,
                                                       failures_, clock_, [this] { ++deferred_; }));
    stack_ = std::make_unique<Stack>(std::move(layers), handler_);
  }

  Status fire(EpochSeconds time, TimerType type = TimerType::application) {
    const timers::DueTimer timer{"k", time, type, {}};
    Invocation inv;
    inv.kind = EventKind::timer;
    inv.tpk = TopicPartitionKey{"orders", Partition{0}, "k"};
    inv.partition = &partition_;
    inv.timer = &timer;
    inv.slot = &slot_;
    inv.stop = stop_.get_token();
    inv.abandon = stop_.get_token();
    return stack_->run(inv);
  }
  std::vector<EpochSeconds> queued() {
    auto e = defer_store_->entries(segment_, "k");
    EXPECT_TRUE(e.ok());
    std::vector<EpochSeconds> out;
    for (const auto& x : *e) out.push_back(x.time);
    return out;
  }
  std::vector<EpochSeconds> retry_timers() {
    auto t = timer_store_->times(partition_.timers->segment(), "k", TimerType::deferred_timer);
    EXPECT_TRUE(t.ok());
    return *t;
  }
  EpochSeconds now_s() const {
    return std::chrono::ceil<std::chrono::seconds>(clock_->system_now().time_since_epoch()).count();
  }

  std::shared_ptr<testing::ManualClock> clock_ = std::make_shared<testing::ManualClock>();
  std::shared_ptr<store::MemoryTimerStore> timer_store_ = std::make_shared<store::MemoryTimerStore>();
  std::shared_ptr<store::MemoryDeferStore<store::DeferredTimer>> defer_store_ =
      std::make_shared<store::MemoryDeferStore<store::DeferredTimer>>();
  store::DeferSegment segment_{"g", "orders", Partition{0}};
  FailureTracker failures_{FailureTrackerOptions{}};
  engine::PartitionState partition_{"orders", Partition{0}};
  detail::InvocationSlot slot_;
  std::stop_source stop_;
  std::shared_ptr<ScriptedTimerHandler> handler_ = std::make_shared<ScriptedTimerHandler>();
  std::unique_ptr<Stack> stack_;
  int deferred_ = 0;
};

TEST_F(TimerDeferLayerTest, ASucceedingTimerIsNotDeferred) {
  EXPECT_TRUE(fire(1000).ok());
  EXPECT_EQ(handler_->calls.size(), 1u);
  EXPECT_TRUE(queued().empty());
  EXPECT_TRUE(retry_timers().empty());
  EXPECT_EQ(deferred_, 0);
}

TEST_F(TimerDeferLayerTest, ATransientFailureParksTheTimerAndLaterTimersQueueBehindIt) {
  handler_->script = {Error::transient("downstream down")};
  ASSERT_TRUE(fire(1000).ok()) << "a deferred timer counts as done";
  EXPECT_EQ(queued(), (std::vector<EpochSeconds>{1000}));
  // The retry timer is due at once (count 0 backs off 0 s, rounded up).
  EXPECT_EQ(retry_timers(), (std::vector<EpochSeconds>{now_s()}));
  // A later timer of the key does not run: it queues behind the first.
  ASSERT_TRUE(fire(1005).ok());
  EXPECT_EQ(handler_->calls.size(), 1u);
  EXPECT_EQ(queued(), (std::vector<EpochSeconds>{1000, 1005}));
  EXPECT_EQ(deferred_, 2);
}

TEST_F(TimerDeferLayerTest, TheRetryRunsTheHeadAsAFailureClassApplicationTimerThenTheNext) {
  handler_->script = {Error::transient("down")};
  ASSERT_TRUE(fire(1000).ok());
  ASSERT_TRUE(fire(1005).ok());
  // The retry timer fires: the head runs with its original time.
  ASSERT_TRUE(fire(now_s(), TimerType::deferred_timer).ok());
  ASSERT_EQ(handler_->calls.size(), 2u);
  EXPECT_EQ(handler_->calls[1].time, 1000);
  EXPECT_EQ(handler_->calls[1].type, TimerType::application);
  EXPECT_EQ(handler_->calls[1].demand, DemandClass::failure);
  EXPECT_EQ(handler_->calls[1].attempts, 1) << "one failed try before this one";
  EXPECT_EQ(queued(), (std::vector<EpochSeconds>{1005}));
  EXPECT_FALSE(retry_timers().empty()) << "the next head is scheduled at once";
  ASSERT_TRUE(fire(now_s(), TimerType::deferred_timer).ok());
  EXPECT_EQ(handler_->calls.back().time, 1005);
  EXPECT_TRUE(queued().empty());
}

TEST_F(TimerDeferLayerTest, AFailedRetryBacksOffWithinTheDeferBounds) {
  handler_->script = {Error::transient("down"), Error::transient("still down"), Error::transient("and again")};
  ASSERT_TRUE(fire(1000).ok());
  const auto start = now_s();
  // First retry fails: retry count 1, next try uniform in [1 s, base] = 1 s.
  ASSERT_TRUE(fire(start, TimerType::deferred_timer).ok());
  auto head = defer_store_->head(segment_, "k");
  ASSERT_TRUE(head.ok() && *head);
  EXPECT_EQ((*head)->retry_count, 1u);
  auto times = retry_timers();
  ASSERT_FALSE(times.empty());
  EXPECT_GE(times.back(), start + 1);
  EXPECT_LE(times.back(), start + 1);
  // Second retry fails: count 2, delay in [1 s, 2 s] (rounded up to whole seconds).
  ASSERT_TRUE(fire(times.back(), TimerType::deferred_timer).ok());
  head = defer_store_->head(segment_, "k");
  EXPECT_EQ((*head)->retry_count, 2u);
  EXPECT_EQ(handler_->calls.back().attempts, 2);
  times = retry_timers();
  EXPECT_GE(times.back(), start + 1);
  EXPECT_LE(times.back(), start + 2);
}

TEST_F(TimerDeferLayerTest, APermanentFailureOfTheHeadDropsItAndMovesOn) {
  handler_->script = {Error::transient("down"), Error::permanent("bad data")};
  ASSERT_TRUE(fire(1000).ok());
  EXPECT_TRUE(fire(now_s(), TimerType::deferred_timer).ok());
  EXPECT_TRUE(queued().empty());
}

TEST_F(TimerDeferLayerTest, AKnownDeferredKeyCountFollowsTheQueueAndGatesTheStoreLookups) {
  partition_.deferred_timer_keys = 0;  // as counted at assignment
  handler_->script = {Error::transient("down")};
  ASSERT_TRUE(fire(1000).ok());
  EXPECT_EQ(partition_.deferred_timer_keys.load(), 1) << "counted when the key was first deferred";
  ASSERT_TRUE(fire(1005).ok());
  EXPECT_EQ(handler_->calls.size(), 1u) << "with a count above 0 the store is asked, and 1005 queues behind";
  EXPECT_EQ(partition_.deferred_timer_keys.load(), 1) << "appending behind does not count again";
  ASSERT_TRUE(fire(now_s(), TimerType::deferred_timer).ok());
  ASSERT_TRUE(fire(now_s(), TimerType::deferred_timer).ok());
  EXPECT_TRUE(queued().empty());
  EXPECT_EQ(partition_.deferred_timer_keys.load(), 0) << "the drained queue is no longer counted";
}

TEST_F(TimerDeferLayerTest, AnOrphanRetryTimerRunsNothing) {
  EXPECT_TRUE(fire(now_s(), TimerType::deferred_timer).ok());
  EXPECT_TRUE(handler_->calls.empty());
}

TEST_F(TimerDeferLayerTest, PermanentErrorsAndMessageRetryTimersPassThrough) {
  handler_->script = {Error::permanent("bad")};
  auto r = fire(1000);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.error().is_permanent());
  EXPECT_TRUE(queued().empty());
  EXPECT_TRUE(fire(1000, TimerType::deferred_message).ok());
  EXPECT_EQ(handler_->calls.back().type, TimerType::deferred_message) << "MessageDefer's, not ours";
}

TEST_F(TimerDeferLayerTest, AboveTheFailureRateThresholdTheErrorGoesToTheOuterRetry) {
  for (int i = 0; i < 100; ++i) failures_.record_failure(clock_->now());
  handler_->script = {Error::transient("down")};
  auto r = fire(1000);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.error().is_transient());
  EXPECT_TRUE(queued().empty());
}

}  // namespace
}  // namespace prosody::middleware
