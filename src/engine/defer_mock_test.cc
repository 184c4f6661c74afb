// Deferral on the mock cluster (pipeline mode): a key that keeps failing is
// parked — its later messages queue behind it — while the partition's other
// keys flow and are committed; when it recovers, its parked messages run in
// order.
#include <gtest/gtest.h>

#include <map>

#include "kafka/mock_cluster.h"
#include "support/kafka_admin.h"
#include "support/test_support.h"

namespace prosody {
namespace {

using namespace std::chrono_literals;
using testing::unique_name;
using testing::wait_until;

// Fails every message of `bad_key` until `healed` is set.
class FlakyKeyHandler final : public testing::RecordingHandler {
 public:
  explicit FlakyKeyHandler(std::string bad_key) : bad_key_(std::move(bad_key)) {}
  HandlerResult on_message(Context& ctx, const Message& m) override {
    if (m.key() == bad_key_ && !healed) {
      bad_attempts++;
      return Error::transient("downstream for " + bad_key_ + " is down");
    }
    return RecordingHandler::on_message(ctx, m);
  }
  std::atomic<bool> healed{false};
  std::atomic<int> bad_attempts{0};

 private:
  std::string bad_key_;
};

TEST(DeferMock, AFailingKeyIsParkedWhileAThousandOtherKeysComplete) {
  const auto topic = unique_name("defer");
  const auto group = unique_name("defer-g");
  auto handler = std::make_shared<FlakyKeyHandler>("k0");
  auto consumer = Client::create(testing::mock_consumer_config(topic, group, 2)
                                     .with_defer_base(1s)
                                     .with_defer_max_delay(2s)
                                     .with_retry_base(5ms)
                                     .with_max_retry_delay(50ms));
  ASSERT_TRUE(consumer->subscribe(handler));
  ASSERT_TRUE(wait_until([&] { return consumer->assigned_partition_count() > 0; }, 30s));
  auto producer_client = testing::mock_producer_client("defer-producer");
  auto producer = producer_client->producer();
  ASSERT_TRUE(producer);
  // 1,001 keys x 3 messages; k0 fails until healed.
  constexpr int kKeys = 1001, kPerKey = 3;
  ASSERT_EQ(testing::produce_sequenced(**producer, topic, kKeys * kPerKey, kKeys), kKeys * kPerKey);
  const std::size_t others = (kKeys - 1) * kPerKey;
  ASSERT_TRUE(wait_until([&] { return handler->unique_count() >= others; }, 60s))
      << "other keys were blocked by the failing one: " << handler->unique_count() << " of " << others;
  EXPECT_EQ(handler->unique_count(), others) << "nothing of k0 may run while it fails";
  const auto stats = consumer->stats();
  EXPECT_GE(stats.deferred, static_cast<std::uint64_t>(kPerKey)) << "k0's first message and the two behind it";
  // Everything was committed, including k0's parked messages (they live in
  // the defer store now): the partitions' committed offsets reach the end.
  ASSERT_TRUE(wait_until(
      [&] {
        return testing::total_committed(kafka::MockCluster::instance().bootstrap_servers(), topic, group, 2) ==
               kKeys * kPerKey;
      },
      20s))
      << "deferred messages must not hold back the commit position";
  // k0 recovers: its deferred messages run, in order, behind each other.
  handler->healed = true;
  ASSERT_TRUE(wait_until([&] { return handler->unique_count() == static_cast<std::size_t>(kKeys * kPerKey); }, 60s))
      << handler->unique_count();
  EXPECT_GE(handler->bad_attempts.load(), 1);
  EXPECT_EQ(handler->violations(), 0) << "a deferred key's messages ran out of order";
  EXPECT_EQ(handler->overlaps(), 0);
  ASSERT_TRUE(consumer->unsubscribe());
}

// Timers (pipeline mode, TimerDefer): a key whose timer keeps failing is
// parked while the other keys' timers fire; to the handler the parked timer
// is still scheduled; once the key recovers it runs with its original time.
class FlakyTimerHandler final : public EventHandler {
 public:
  HandlerResult on_message(Context& ctx, const Message& m) override {
    if (m.payload().value("schedule", false)) {
      const auto at = std::chrono::system_clock::now() + 1s;
      auto t = to_timer_time(at);
      if (!t) return t.error();
      {
        std::lock_guard l(mutex);
        scheduled_at[m.key()] = t->time_since_epoch().count();
      }
      return ctx.schedule(at);
    }
    auto times = ctx.scheduled();
    if (!times) return times.error();
    std::lock_guard l(mutex);
    for (auto t : *times) seen_scheduled[m.key()].push_back(t.time_since_epoch().count());
    return ok_status();
  }
  HandlerResult on_timer(Context& ctx, const Timer& t) override {
    if (ctx.key() == "k0" && !healed) {
      bad_attempts++;
      return Error::transient("downstream for k0 is down");
    }
    std::lock_guard l(mutex);
    fired[ctx.key()].push_back(t.time().time_since_epoch().count());
    return ok_status();
  }
  std::size_t fired_keys() {
    std::lock_guard l(mutex);
    return fired.size();
  }
  std::atomic<bool> healed{false};
  std::atomic<int> bad_attempts{0};
  std::mutex mutex;
  std::map<std::string, std::int64_t> scheduled_at;               // guarded by mutex
  std::map<std::string, std::vector<std::int64_t>> fired;         // guarded by mutex
  std::map<std::string, std::vector<std::int64_t>> seen_scheduled;  // guarded by mutex
};

TEST(DeferMock, AFailingKeysTimerIsParkedWhileOtherKeysTimersFireAndRunsLaterWithItsOriginalTime) {
  const auto topic = unique_name("tdefer");
  const auto group = unique_name("tdefer-g");
  auto handler = std::make_shared<FlakyTimerHandler>();
  auto consumer = Client::create(testing::mock_consumer_config(topic, group)
                                     .with_defer_base(1s)
                                     .with_defer_max_delay(2s)
                                     .with_retry_base(5ms)
                                     .with_max_retry_delay(50ms));
  ASSERT_TRUE(consumer->subscribe(handler));
  auto producer = testing::mock_producer_client("tdefer-producer");
  constexpr int kKeys = 10;
  for (int k = 0; k < kKeys; ++k) {
    ASSERT_TRUE(producer->send(topic, "k" + std::to_string(k), R"({"schedule":true})"));
  }
  ASSERT_TRUE(wait_until([&] { return handler->fired_keys() == kKeys - 1 && handler->bad_attempts >= 2; }, 60s))
      << "other keys' timers were blocked: " << handler->fired_keys() << " keys fired, k0 tried "
      << handler->bad_attempts;
  EXPECT_GE(consumer->stats().deferred, 1u);
  // The parked timer is still scheduled as far as the handler can tell.
  ASSERT_TRUE(producer->send(topic, "k0", R"({"schedule":false})"));
  ASSERT_TRUE(wait_until(
      [&] {
        std::lock_guard l(handler->mutex);
        return handler->seen_scheduled.count("k0") > 0;
      },
      30s));
  std::int64_t original;
  {
    std::lock_guard l(handler->mutex);
    original = handler->scheduled_at.at("k0");
    EXPECT_EQ(handler->seen_scheduled.at("k0"), std::vector<std::int64_t>{original});
    EXPECT_EQ(handler->fired.count("k0"), 0u);
  }
  handler->healed = true;
  ASSERT_TRUE(wait_until([&] { return handler->fired_keys() == kKeys; }, 30s)) << "k0's timer never ran";
  {
    std::lock_guard l(handler->mutex);
    EXPECT_EQ(handler->fired.at("k0"), std::vector<std::int64_t>{original}) << "once, with its original time";
    for (const auto& [key, times] : handler->fired) EXPECT_EQ(times.size(), 1u) << key;
  }
  ASSERT_TRUE(consumer->unsubscribe());
}

}  // namespace
}  // namespace prosody
