// Error handling per mode on the mock cluster: retries driven by the
// injected clock, permanent errors, the failure topic of low-latency mode,
// terminal errors stopping a partition, handler timeouts and exceptions.
#include <gtest/gtest.h>

#include "kafka/mock_cluster.h"
#include "support/test_support.h"
#include "util/manual_clock.h"

namespace prosody {
namespace {

using namespace std::chrono_literals;
using testing::unique_name;
using testing::wait_until;

Config config_for(const std::string& topic, const std::string& group) {
  return testing::mock_consumer_config(topic, group).with_shutdown_timeout(5s);
}

std::shared_ptr<Client> sender() { return testing::mock_producer_client("failure-test-producer"); }

// Fails each record `failures` times with `error`, then succeeds.
class FlakyHandler final : public EventHandler {
 public:
  FlakyHandler(int failures, Error error) : failures_(failures), error_(std::move(error)) {}
  HandlerResult on_message(Context& ctx, const Message&) override {
    {
      std::lock_guard l(mutex_);
      attempts_seen_.push_back(ctx.attempt());
    }
    if (++calls_ <= failures_) return error_;
    ++successes_;
    return ok_status();
  }
  std::atomic<int> calls_{0}, successes_{0};
  std::mutex mutex_;
  std::vector<int> attempts_seen_;  // guarded by mutex_ (read after unsubscribe)

 private:
  const int failures_;
  const Error error_;
};

TEST(FailureModes, PipelineRetriesTransientErrorsOnTheInjectedClock) {
  auto clock = std::make_shared<testing::ManualClock>();
  const auto topic = unique_name("retry"), group = unique_name("g");
  auto consumer = Client::create(config_for(topic, group).with_retry_base(10s).with_max_retry_delay(60s), clock);
  auto handler = std::make_shared<FlakyHandler>(3, Error::transient("database unavailable"));
  ASSERT_TRUE(consumer->subscribe(handler));
  ASSERT_TRUE(sender()->send(topic, "k", R"({"n":1})"));
  ASSERT_TRUE(wait_until([&] { return handler->calls_ == 1; }, 30s));
  // Backoff waits on the simulated clock: without advancing it, no retry.
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(handler->calls_, 1);
  ASSERT_TRUE(wait_until(
      [&] {
        clock->advance(5s);
        return handler->successes_ == 1;
      },
      30s));
  ASSERT_TRUE(consumer->unsubscribe());
  EXPECT_EQ(handler->calls_, 4);
  EXPECT_EQ(handler->attempts_seen_, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(consumer->stats().retries, 3u);
}

TEST(FailureModes, PermanentErrorIsNotRetriedAndIsCommitted) {
  const auto topic = unique_name("perm"), group = unique_name("g");
  auto consumer = Client::create(config_for(topic, group));
  auto handler = std::make_shared<FlakyHandler>(1, Error::permanent("order has no amount"));
  ASSERT_TRUE(consumer->subscribe(handler));
  auto s = sender();
  ASSERT_TRUE(s->send(topic, "k", R"({"n":1})"));
  ASSERT_TRUE(s->send(topic, "k", R"({"n":2})"));
  ASSERT_TRUE(wait_until([&] { return handler->calls_ == 2; }, 30s));
  std::this_thread::sleep_for(200ms);
  ASSERT_TRUE(consumer->unsubscribe());
  EXPECT_EQ(handler->calls_, 2);
  EXPECT_EQ(consumer->stats().skipped_permanent, 1u);
}

TEST(FailureModes, ExceptionsAreCaughtAndRetriedAsTransient) {
  struct Throwing final : EventHandler {
    std::atomic<int> calls{0};
    HandlerResult on_message(Context&, const Message&) override {
      if (++calls == 1) throw std::runtime_error("boom");
      return ok_status();
    }
  };
  const auto topic = unique_name("throw"), group = unique_name("g");
  auto consumer = Client::create(config_for(topic, group).with_retry_base(1ms));
  auto handler = std::make_shared<Throwing>();
  ASSERT_TRUE(consumer->subscribe(handler));
  ASSERT_TRUE(sender()->send(topic, "k", R"({})"));
  ASSERT_TRUE(wait_until([&] { return handler->calls == 2; }, 30s));
  ASSERT_TRUE(consumer->unsubscribe());
  EXPECT_EQ(consumer->stats().failed, 1u);
}

// Reads everything on `topic` with a separate group.
class Collector final : public EventHandler {
 public:
  HandlerResult on_message(Context&, const Message& m) override {
    std::lock_guard l(mutex);
    records.push_back({m.key(), std::string(m.raw_payload()), m.headers()});
    return ok_status();
  }
  struct Got {
    std::string key, payload;
    Headers headers;
  };
  std::mutex mutex;
  std::vector<Got> records;
  std::size_t size() {
    std::lock_guard l(mutex);
    return records.size();
  }
};

// Every record of the failure topic `dlq`, once `n` have arrived (the
// payloads raw: dead letters need not be JSON).
std::vector<Collector::Got> read_dead_letters(const std::string& dlq, std::size_t n) {
  auto reader = Client::create(config_for(dlq, unique_name("dlq-reader")).with_payload_codec(PayloadCodec::raw));
  auto collector = std::make_shared<Collector>();
  EXPECT_TRUE(reader->subscribe(collector));
  EXPECT_TRUE(wait_until([&] { return collector->size() == n; }, 30s)) << collector->size();
  EXPECT_TRUE(reader->unsubscribe());
  std::lock_guard l(collector->mutex);
  return collector->records;
}

std::string header(const Headers& hs, const std::string& name) {
  for (auto& h : hs) {
    if (h.name == name) return h.value;
  }
  return "<missing>";
}

TEST(FailureModes, LowLatencySendsExhaustedRecordsToTheFailureTopicWithSourceHeaders) {
  const auto topic = unique_name("ll"), dlq = unique_name("dlq"), group = unique_name("g");
  auto consumer = Client::create(config_for(topic, group)
                                     .with_mode(Mode::low_latency)
                                     .with_failure_topic(dlq)
                                     .with_max_retries(2)
                                     .with_retry_base(1ms));
  auto handler = std::make_shared<FlakyHandler>(1000, Error::transient("always failing"));
  ASSERT_TRUE(consumer->subscribe(handler));
  ASSERT_TRUE(sender()->send(topic, "key-1", R"({"n":1})", {{"x-trace", "abc"}}));
  ASSERT_TRUE(sender()->send(topic, "key-2", "not json at all"));

  auto dead_letters = read_dead_letters(dlq, 2);
  ASSERT_EQ(dead_letters.size(), 2u);
  ASSERT_TRUE(consumer->unsubscribe());
  EXPECT_EQ(handler->calls_, 3);  // 1 try + 2 retries; the undecodable one never reaches the handler
  std::sort(dead_letters.begin(), dead_letters.end(), [](auto& a, auto& b) { return a.key < b.key; });
  const auto& first = dead_letters[0];
  EXPECT_EQ(first.key, "key-1");
  EXPECT_EQ(first.payload, R"({"n":1})");
  EXPECT_EQ(header(first.headers, "x-trace"), "abc");
  EXPECT_EQ(header(first.headers, "source-kind"), "message");
  EXPECT_EQ(header(first.headers, "source-topic"), topic);
  EXPECT_EQ(header(first.headers, "source-partition"), "0");
  EXPECT_EQ(header(first.headers, "source-offset"), "0");
  EXPECT_EQ(header(first.headers, "source-group-id"), group);
  EXPECT_EQ(header(first.headers, "source-error"), "always failing");
  EXPECT_EQ(header(first.headers, "prosody-attempts"), "3");
  const auto& second = dead_letters[1];
  EXPECT_EQ(second.payload, "not json at all");
  EXPECT_EQ(header(second.headers, "prosody-error-class"), "permanent");
  EXPECT_EQ(consumer->stats().dead_lettered, 2u);
}

TEST(FailureModes, TwoFailedMessagesOfOneKeyAndEventIdAreTwoDeadLetters) {
  // The producer skips resends of a delivered (topic, key, id), but dead
  // letters never: these are two records (offsets 0 and 1) that both failed.
  const auto topic = unique_name("ll-same-id"), dlq = unique_name("dlq-same-id"), group = unique_name("g");
  auto consumer = Client::create(config_for(topic, group)
                                     .with_mode(Mode::low_latency)
                                     .with_failure_topic(dlq)
                                     .with_max_retries(0));
  auto handler = std::make_shared<FlakyHandler>(1000, Error::permanent("rejected"));
  ASSERT_TRUE(consumer->subscribe(handler));
  auto s = testing::mock_producer_client_sending_every_record("failure-test-producer");
  ASSERT_TRUE(s->send(topic, "key-1", R"({"id":"e1","n":1})"));
  ASSERT_TRUE(s->send(topic, "key-1", R"({"id":"e1","n":2})"));

  auto dead_letters = read_dead_letters(dlq, 2);
  ASSERT_EQ(dead_letters.size(), 2u);
  ASSERT_TRUE(consumer->unsubscribe());
  std::vector<std::string> offsets;
  for (const auto& r : dead_letters) offsets.push_back(header(r.headers, "source-offset"));
  std::sort(offsets.begin(), offsets.end());
  EXPECT_EQ(offsets, (std::vector<std::string>{"0", "1"}));
  EXPECT_EQ(consumer->stats().dead_lettered, 2u);
}

TEST(FailureModes, BestEffortLogsAndMovesOn) {
  const auto topic = unique_name("be"), group = unique_name("g");
  auto consumer = Client::create(config_for(topic, group).with_mode(Mode::best_effort));
  auto handler = std::make_shared<FlakyHandler>(1, Error::transient("flaky"));
  ASSERT_TRUE(consumer->subscribe(handler));
  auto s = sender();
  ASSERT_TRUE(s->send(topic, "k", R"({})"));
  ASSERT_TRUE(s->send(topic, "k", R"({})"));
  ASSERT_TRUE(wait_until([&] { return handler->calls_ == 2; }, 30s));
  ASSERT_TRUE(consumer->unsubscribe());
  EXPECT_EQ(consumer->stats().retries, 0u);
}

TEST(FailureModes, TerminalErrorStopsThePartitionAndReportsStalled) {
  const auto topic = unique_name("term"), group = unique_name("g");
  auto consumer = Client::create(config_for(topic, group));
  auto handler = std::make_shared<FlakyHandler>(1, Error::terminal("ledger corrupted"));
  ASSERT_TRUE(consumer->subscribe(handler));
  auto s = sender();
  ASSERT_TRUE(s->send(topic, "a", R"({})"));
  ASSERT_TRUE(wait_until([&] { return consumer->is_stalled(); }, 30s));
  // Nothing sent after the terminal error runs on that partition.
  ASSERT_TRUE(s->send(topic, "b", R"({})"));
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(handler->calls_, 1);
  ASSERT_TRUE(consumer->unsubscribe());
  // The failed record was not committed: a new consumer sees it again.
  auto again = Client::create(config_for(topic, group));
  auto h2 = std::make_shared<FlakyHandler>(0, Error::transient("unused"));
  ASSERT_TRUE(again->subscribe(h2));
  ASSERT_TRUE(wait_until([&] { return h2->successes_ == 2; }, 30s)) << h2->successes_;
  ASSERT_TRUE(again->unsubscribe());
}

TEST(FailureModes, SlowHandlerIsCancelledWithReasonTimeout) {
  struct Slow final : EventHandler {
    std::atomic<int> reason{-1};
    std::atomic<int> calls{0};
    HandlerResult on_message(Context& ctx, const Message&) override {
      if (++calls == 1) {
        if (ctx.wait_for_cancel(30s)) reason = static_cast<int>(ctx.cancel_reason());
        return Error::transient("gave up");
      }
      return ok_status();
    }
  };
  const auto topic = unique_name("timeout"), group = unique_name("g");
  auto consumer = Client::create(config_for(topic, group).with_timeout(200ms).with_retry_base(1ms));
  auto handler = std::make_shared<Slow>();
  ASSERT_TRUE(consumer->subscribe(handler));
  ASSERT_TRUE(sender()->send(topic, "k", R"({})"));
  ASSERT_TRUE(wait_until([&] { return handler->calls == 2; }, 30s));
  ASSERT_TRUE(consumer->unsubscribe());
  EXPECT_EQ(handler->reason, static_cast<int>(CancelReason::timeout));
}

// A cooperative handler stops when its timeout fires and returns normally:
// that counts as success (no retry), and the key's next message proceeds.
TEST(FailureModes, ACooperativeHandlerStoppedByTimeoutSucceedsAndTheKeysNextMessageRuns) {
  struct Cooperative final : EventHandler {
    std::mutex mutex;
    std::vector<std::pair<int, int>> calls;  // (n, cancel reason), guarded by mutex
    HandlerResult on_message(Context& ctx, const Message& m) override {
      const int n = m.payload().value("n", -1);
      int reason = -1;
      if (n == 1 && ctx.wait_for_cancel(30s)) reason = static_cast<int>(ctx.cancel_reason());
      std::lock_guard l(mutex);
      calls.emplace_back(n, reason);
      return ok_status();  // swallowed the cancellation
    }
    std::size_t size() {
      std::lock_guard l(mutex);
      return calls.size();
    }
  };
  const auto topic = unique_name("coop"), group = unique_name("g");
  auto consumer = Client::create(config_for(topic, group).with_timeout(200ms));
  auto handler = std::make_shared<Cooperative>();
  ASSERT_TRUE(consumer->subscribe(handler));
  ASSERT_TRUE(sender()->send(topic, "k", R"({"n":1})"));
  ASSERT_TRUE(sender()->send(topic, "k", R"({"n":2})"));
  ASSERT_TRUE(wait_until([&] { return handler->size() == 2; }, 30s));
  ASSERT_TRUE(consumer->unsubscribe());
  EXPECT_EQ(handler->calls, (std::vector<std::pair<int, int>>{{1, static_cast<int>(CancelReason::timeout)}, {2, -1}}));
  const auto stats = consumer->stats();
  EXPECT_EQ(stats.timeouts, 1u);
  EXPECT_EQ(stats.retries, 0u) << "returning normally after cancellation is a success";
  EXPECT_EQ(stats.failed, 0u);
}

TEST(FailureModes, ShutdownCancelsLongHandlersNearTheEndOfTheBudget) {
  struct Stubborn final : EventHandler {
    std::atomic<int> reason{-1};
    std::atomic<bool> started{false};
    HandlerResult on_message(Context& ctx, const Message&) override {
      started = true;
      if (ctx.wait_for_cancel(60s)) reason = static_cast<int>(ctx.cancel_reason());
      return Error::transient("interrupted");
    }
  };
  const auto topic = unique_name("shutdown"), group = unique_name("g");
  auto consumer = Client::create(config_for(topic, group).with_shutdown_timeout(1s));
  auto handler = std::make_shared<Stubborn>();
  ASSERT_TRUE(consumer->subscribe(handler));
  ASSERT_TRUE(sender()->send(topic, "k", R"({})"));
  ASSERT_TRUE(wait_until([&] { return handler->started.load(); }, 30s));
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(consumer->unsubscribe());
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(handler->reason, static_cast<int>(CancelReason::shutdown));
  EXPECT_GE(took, 700ms) << "cancellation must not fire before 4/5 of the budget";
  EXPECT_LT(took, 5s);
}

TEST(FailureModes, ARecordOlderThanTheStallThresholdMakesTheConsumerStalledUntilItCompletes) {
  struct Blocking final : EventHandler {
    std::atomic<bool> release{false}, started{false};
    HandlerResult on_message(Context&, const Message&) override {
      started = true;
      while (!release) std::this_thread::sleep_for(5ms);
      return ok_status();
    }
  };
  const auto topic = unique_name("stall"), group = unique_name("g");
  auto consumer = Client::create(config_for(topic, group).with_stall_threshold(300ms).with_timeout(60s));
  auto handler = std::make_shared<Blocking>();
  ASSERT_TRUE(consumer->subscribe(handler));
  ASSERT_TRUE(sender()->send(topic, "k", R"({})"));
  ASSERT_TRUE(wait_until([&] { return handler->started.load(); }, 30s));
  EXPECT_FALSE(consumer->is_stalled());
  ASSERT_TRUE(wait_until([&] { return consumer->is_stalled(); }, 5s));
  handler->release = true;
  ASSERT_TRUE(wait_until([&] { return !consumer->is_stalled(); }, 5s));
  ASSERT_TRUE(consumer->unsubscribe());
}

}  // namespace
}  // namespace prosody
