// Quality of service through the whole engine on the mock cluster:
//   - fair scheduling: with both demand classes saturated (keys retrying
//     transient errors vs a backlog of fresh records), retries get
//     `scheduler_failure_weight` of handler time, fresh work the rest;
//   - monopolization: a key whose handler time exceeds the threshold of the
//     window is refused before its handler runs and, in pipeline mode,
//     deferred, while the other keys keep flowing.
#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <thread>

#include "support/test_support.h"

namespace prosody {
namespace {

using namespace std::chrono_literals;
using testing::unique_name;
using testing::wait_until;

std::shared_ptr<Client> sender() { return testing::mock_producer_client("qos-test-producer"); }

// Every call works for `work`; keys starting with "bad" always fail
// transiently. Handler time is summed per demand class: a call with
// attempt() > 0 is a retry, which the scheduler admits as Failure class.
class ClassTimingHandler final : public EventHandler {
 public:
  explicit ClassTimingHandler(std::chrono::milliseconds work) : work_(work) {}
  HandlerResult on_message(Context& ctx, const Message& m) override {
    const auto start = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(work_);
    const auto spent = std::chrono::steady_clock::now() - start;
    {
      std::lock_guard l(mutex_);
      if (measuring_) (ctx.attempt() > 0 ? failure_time_ : normal_time_) += spent;
    }
    if (m.key().rfind("bad", 0) == 0) return Error::transient("downstream unavailable");
    return ok_status();
  }
  void measure(bool on) {
    std::lock_guard l(mutex_);
    measuring_ = on;
  }
  // Failure share of handler time while measuring.
  double failure_share() {
    std::lock_guard l(mutex_);
    const double f = std::chrono::duration<double>(failure_time_).count();
    const double n = std::chrono::duration<double>(normal_time_).count();
    return f + n > 0 ? f / (f + n) : 0;
  }
  double measured_seconds() {
    std::lock_guard l(mutex_);
    return std::chrono::duration<double>(failure_time_ + normal_time_).count();
  }

 private:
  const std::chrono::milliseconds work_;
  std::mutex mutex_;
  bool measuring_ = false;
  std::chrono::steady_clock::duration failure_time_{}, normal_time_{};
};

TEST(QosMock, WithBothClassesSaturatedRetriesGetTheFailureWeightOfHandlerTime) {
  const auto topic = unique_name("fair"), group = unique_name("fair-g");
  // 2 permits, 8 workers: 4 keys retrying for ever (Failure demand) and a
  // deep backlog of fresh records (Normal demand) both queue for permits.
  // Deferral is off so the failing keys retry in place, continuously.
  auto consumer = Client::create(testing::mock_consumer_config(topic, group, 4)
                                     .with_max_concurrency(2)
                                     .with_scheduler_failure_weight(0.3)
                                     .with_defer_enabled(false)
                                     .with_monopolization_enabled(false)
                                     .with_retry_base(1ms)
                                     .with_max_retry_delay(2ms));
  auto handler = std::make_shared<ClassTimingHandler>(10ms);
  auto s = sender();
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(s->send(topic, "bad-" + std::to_string(i), "{}"));
  for (int i = 0; i < 2000; ++i) ASSERT_TRUE(s->send(topic, "fresh-" + std::to_string(i), "{}"));
  ASSERT_TRUE(consumer->subscribe(handler));
  // Let both classes fill up, then measure ~4 s of handler time (~400 calls).
  ASSERT_TRUE(wait_until([&] { return consumer->stats().retries >= 10; }, 30s));
  handler->measure(true);
  std::this_thread::sleep_for(2s);
  handler->measure(false);
  const double share = handler->failure_share();
  ASSERT_TRUE(consumer->unsubscribe());
  std::printf("failure share of handler time: %.3f over %.2f s of handler time\n", share,
              handler->measured_seconds());
  ASSERT_GT(handler->measured_seconds(), 2.0) << "both permits should have been busy";
  EXPECT_NEAR(share, 0.30, 0.05);
}

// Each message of "hog" works 400 ms; the window is 1 s at threshold 0.5.
class HogHandler final : public EventHandler {
 public:
  HandlerResult on_message(Context&, const Message& m) override {
    if (m.key() == "hog") std::this_thread::sleep_for(400ms);
    std::lock_guard l(mutex);
    done[m.key()]++;
    return ok_status();
  }
  int count(const std::string& key) {
    std::lock_guard l(mutex);
    return done[key];
  }
  std::mutex mutex;
  std::map<std::string, int> done;  // guarded by mutex
};

TEST(QosMock, AMonopolizingKeyIsRefusedDeferredAndCompletesLaterWhileOthersFlow) {
  const auto topic = unique_name("mono"), group = unique_name("mono-g");
  auto consumer = Client::create(testing::mock_consumer_config(topic, group)
                                     .with_monopolization_window(1s)
                                     .with_monopolization_threshold(0.5)
                                     .with_defer_base(1s)
                                     .with_defer_max_delay(1s));
  auto handler = std::make_shared<HogHandler>();
  ASSERT_TRUE(consumer->subscribe(handler));
  auto s = sender();
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(s->send(topic, "hog", "{}"));
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(s->send(topic, "other-" + std::to_string(i), "{}"));
  ASSERT_TRUE(wait_until([&] { return handler->count("hog") == 6; }, 60s)) << handler->count("hog");
  const auto stats = consumer->stats();
  EXPECT_GE(stats.monopolized, 1u) << "the hog exceeded 50 % of the 1 s window";
  EXPECT_GE(stats.deferred, 1u) << "a refused key is deferred in pipeline mode";
  int others = 0;
  for (int i = 0; i < 50; ++i) others += handler->count("other-" + std::to_string(i));
  EXPECT_EQ(others, 50);
  ASSERT_TRUE(consumer->unsubscribe());
}

}  // namespace
}  // namespace prosody
