// Durable timers through the whole engine on the mock cluster: a handler
// schedules through its Context, on_timer runs for the same key, in the
// key's queue, and the Context's timer operations behave as documented.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "kafka/mock_cluster.h"
#include "support/test_support.h"

namespace prosody {
namespace {

using namespace std::chrono_literals;
using testing::unique_name;
using testing::wait_until;
using std::chrono::system_clock;

// Messages carry {"op": ..., "in": seconds}; the handler applies the op to
// the key's timers and logs every event per key.
class TimerScript : public EventHandler {
 public:
  struct Fired {
    Key key;
    TimerTime time;
    system_clock::time_point at;
    int partition;
  };

  HandlerResult on_message(Context& ctx, const Message& m) override {
    enter(m.key());
    const auto& p = m.payload();
    const std::string op = p.value("op", "");
    const auto base = system_clock::now();
    Status result = ok_status();
    if (op == "schedule") {
      result = ctx.schedule(base + std::chrono::seconds(p.value("in", 0)));
    } else if (op == "three-then-edit") {
      // t+5, t+6, t+7; unschedule t+6; then replace all by t+1.
      const auto t = to_timer_time(base).value();
      for (int i = 5; i <= 7; ++i) EXPECT_TRUE(ctx.schedule(t + std::chrono::seconds(i)));
      EXPECT_TRUE(ctx.unschedule(t + 6s));
      auto listed = ctx.scheduled();
      EXPECT_TRUE(listed.ok());
      if (listed) {
        EXPECT_EQ(*listed, (std::vector<TimerTime>{t + 5s, t + 7s}));
      }
      EXPECT_TRUE(ctx.clear_and_schedule(t + 1s));
      listed = ctx.scheduled();
      if (listed) {
        EXPECT_EQ(*listed, std::vector<TimerTime>{t + 1s});
      }
    } else if (op == "bad-time") {
      auto s = ctx.schedule(system_clock::time_point{std::chrono::seconds{-5}});
      std::lock_guard l(mutex_);
      bad_time_error_ = s ? "" : s.error().message();
    } else if (op == "count") {
      auto listed = ctx.scheduled();
      std::lock_guard l(mutex_);
      counted_[m.key()] = listed ? static_cast<int>(listed->size()) : -1;
    }
    if (p.contains("hold_ms")) std::this_thread::sleep_for(std::chrono::milliseconds(p.value("hold_ms", 0)));
    leave(m.key(), "m" + std::to_string(p.value("seq", -1)));
    return result;
  }

  HandlerResult on_timer(Context& ctx, const Timer& t) override {
    enter(t.key());
    EXPECT_EQ(ctx.key(), t.key());
    EXPECT_EQ(t.type(), TimerType::application);
    {
      std::lock_guard l(mutex_);
      fired_.push_back(Fired{t.key(), t.time(), system_clock::now(), t.partition().value()});
    }
    leave(t.key(), "t");
    return ok_status();
  }

  std::size_t fired_count() const {
    std::lock_guard l(mutex_);
    return fired_.size();
  }
  std::vector<Fired> fired() const {
    std::lock_guard l(mutex_);
    return fired_;
  }
  std::vector<std::string> log(const Key& k) const {
    std::lock_guard l(mutex_);
    auto it = log_.find(k);
    return it == log_.end() ? std::vector<std::string>{} : it->second;
  }
  int overlaps() const {
    std::lock_guard l(mutex_);
    return overlaps_;
  }
  std::optional<int> counted(const Key& k) const {
    std::lock_guard l(mutex_);
    auto it = counted_.find(k);
    return it == counted_.end() ? std::nullopt : std::optional<int>(it->second);
  }
  std::string bad_time_error() const {
    std::lock_guard l(mutex_);
    return bad_time_error_;
  }

 private:
  void enter(const Key& k) {
    std::lock_guard l(mutex_);
    if (++running_[k] > 1) ++overlaps_;
  }
  void leave(const Key& k, std::string what) {
    std::lock_guard l(mutex_);
    --running_[k];
    log_[k].push_back(std::move(what));
  }

  mutable std::mutex mutex_;
  std::vector<Fired> fired_;
  std::map<Key, std::vector<std::string>> log_;
  std::map<Key, int> running_;
  std::map<Key, int> counted_;
  int overlaps_ = 0;
  std::string bad_time_error_ = "unset";
};

class TimersMockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    topic_ = unique_name("timers");
    // Our own sends carry source-system = group id by default and would be
    // skipped as a loop; these tests feed the consumer through its client.
    client_ = Client::create(testing::mock_consumer_config(topic_, unique_name("g"), 4).with_source_system("feeder"));
    ASSERT_TRUE(client_->subscribe(handler_));
    ASSERT_TRUE(wait_until([&] { return client_->assigned_partition_count() > 0; }, 30s));
  }
  void TearDown() override { ASSERT_TRUE(client_->unsubscribe()); }

  void send(const Key& key, const nlohmann::json& payload) {
    auto r = client_->send(topic_, key, payload.dump());
    ASSERT_TRUE(r) << r.error().message();
  }

  std::string topic_;
  std::shared_ptr<TimerScript> handler_ = std::make_shared<TimerScript>();
  std::shared_ptr<Client> client_;
};

TEST_F(TimersMockTest, ScheduledTimersFireForTheirKeyAtTheirTimeAndAreThenGone) {
  constexpr int kKeys = 20;
  const auto before = system_clock::now();
  for (int k = 0; k < kKeys; ++k) send("key-" + std::to_string(k), {{"op", "schedule"}, {"in", 2}, {"seq", 0}});
  ASSERT_TRUE(wait_until([&] { return handler_->fired_count() == kKeys; }, 30s)) << handler_->fired_count();
  std::set<Key> keys;
  for (const auto& f : handler_->fired()) {
    keys.insert(f.key);
    EXPECT_GE(f.at, system_clock::time_point(f.time)) << "fired before its time";
    EXPECT_GE(f.time, std::chrono::floor<std::chrono::seconds>(before) + 2s);
    EXPECT_LT(f.at - system_clock::time_point(f.time), 1500ms) << "fired late";
  }
  EXPECT_EQ(keys.size(), static_cast<std::size_t>(kKeys));
  // Completed timers are removed: the key has nothing scheduled any more.
  send("key-0", {{"op", "count"}, {"seq", 1}});
  ASSERT_TRUE(wait_until([&] { return handler_->counted("key-0").has_value(); }, 10s));
  EXPECT_EQ(handler_->counted("key-0"), 0);
  EXPECT_EQ(client_->stats().timers_fired, static_cast<std::uint64_t>(kKeys));
  EXPECT_EQ(handler_->overlaps(), 0);
}

TEST_F(TimersMockTest, ATimerWaitsBehindItsKeysEarlierMessagesAndNeverOverlapsThem) {
  // m0 schedules a timer due in 1 s and holds the key for 2.5 s; m1 is
  // queued behind m0 well before the timer fires, so the timer waits for
  // both even though it is due while m0 still runs: m0, m1, t.
  send("k", {{"op", "schedule"}, {"in", 1}, {"seq", 0}, {"hold_ms", 2500}});
  send("k", {{"seq", 1}, {"hold_ms", 50}});
  ASSERT_TRUE(wait_until([&] { return handler_->log("k").size() == 3; }, 30s));
  EXPECT_EQ(handler_->log("k"), (std::vector<std::string>{"m0", "m1", "t"}));
  EXPECT_EQ(handler_->overlaps(), 0);
}

TEST_F(TimersMockTest, UnscheduleAndClearAndScheduleLeaveExactlyOneTimer) {
  send("edit", {{"op", "three-then-edit"}, {"seq", 0}});
  ASSERT_TRUE(wait_until([&] { return handler_->fired_count() == 1; }, 30s));
  // t+5 and t+7 were removed: nothing else fires in the next 7 s. Checked
  // by scheduling a marker timer at t+8 on another key and waiting for it.
  send("marker", {{"op", "schedule"}, {"in", 8}, {"seq", 0}});
  ASSERT_TRUE(wait_until([&] { return handler_->fired_count() == 2; }, 30s));
  const auto fired = handler_->fired();
  EXPECT_EQ(fired[0].key, "edit");
  EXPECT_EQ(fired[1].key, "marker");
}

TEST_F(TimersMockTest, ATimeBeforeTheEpochIsAClearErrorAndChangesNothing) {
  send("bad", {{"op", "bad-time"}, {"seq", 0}});
  ASSERT_TRUE(wait_until([&] { return handler_->bad_time_error() != "unset"; }, 30s));
  EXPECT_NE(handler_->bad_time_error().find("before the Unix epoch"), std::string::npos) << handler_->bad_time_error();
  send("bad", {{"op", "count"}, {"seq", 1}});
  ASSERT_TRUE(wait_until([&] { return handler_->counted("bad").has_value(); }, 10s));
  EXPECT_EQ(handler_->counted("bad"), 0);
}

// A handler that schedules but does not override on_timer: the timer fails
// permanently (logged) and is removed instead of firing forever.
class NoTimerHandler : public EventHandler {
 public:
  std::atomic<int> messages{0};
  std::atomic<int> remaining{-1};
  HandlerResult on_message(Context& ctx, const Message& m) override {
    if (m.payload().value("op", "") == "schedule") {
      messages++;
      return ctx.schedule(system_clock::now());
    }
    auto listed = ctx.scheduled();
    remaining = listed ? static_cast<int>(listed->size()) : -2;
    return ok_status();
  }
};

TEST(TimersMock, WithoutOnTimerTheTimerFailsPermanentlyAndIsRemoved) {
  const auto topic = unique_name("no-on-timer");
  auto handler = std::make_shared<NoTimerHandler>();
  auto client = Client::create(testing::mock_consumer_config(topic, unique_name("g")).with_source_system("feeder"));
  ASSERT_TRUE(client->subscribe(handler));
  ASSERT_TRUE(client->send(topic, "k", nlohmann::json{{"op", "schedule"}}.dump()));
  ASSERT_TRUE(wait_until([&] { return client->stats().timers_fired == 1; }, 30s));
  ASSERT_TRUE(wait_until([&] { return client->stats().skipped_permanent == 1; }, 10s));
  ASSERT_TRUE(client->send(topic, "k", nlohmann::json{{"op", "count"}}.dump()));
  ASSERT_TRUE(wait_until([&] { return handler->remaining.load() >= 0; }, 10s));
  EXPECT_EQ(handler->remaining.load(), 0);
  ASSERT_TRUE(client->unsubscribe());
}

}  // namespace
}  // namespace prosody
