// The per-mode stacks on a simulated clock with a scripted handler: layer
// order, retry counts and backoff bounds, failure-topic writes (and their
// retries without re-running the handler), best-effort logging, and the
// cancellation short-circuit.
#include <gtest/gtest.h>

#include <deque>
#include <thread>

#include "engine/invocation_slot.h"
#include "engine/partition_state.h"
#include "middleware/stack_builder.h"
#include "support/test_support.h"
#include "util/manual_clock.h"

namespace prosody::middleware {
namespace {

using namespace std::chrono_literals;
using ::prosody::testing::ManualClock;

// Returns the scripted results in order (ok once the script runs out).
class ScriptedHandler final : public Innermost {
 public:
  explicit ScriptedHandler(std::deque<Status> script) : script_(std::move(script)) {}
  Status invoke(Invocation& inv) const override {
    std::lock_guard l(mutex_);
    calls_++;
    demands_.push_back(inv.demand);
    if (script_.empty()) return ok_status();
    auto s = std::move(script_.front());
    script_.pop_front();
    return s;
  }
  int calls() const {
    std::lock_guard l(mutex_);
    return calls_;
  }
  std::vector<DemandClass> demands() const {
    std::lock_guard l(mutex_);
    return demands_;
  }

 private:
  mutable std::mutex mutex_;
  mutable std::deque<Status> script_;
  mutable int calls_ = 0;
  mutable std::vector<DemandClass> demands_;
};

class FakeProducer final : public Producer {
 public:
  int failures_left = 0;
  std::vector<std::pair<std::string, Headers>> sent;
  Result<Delivery> send(std::string_view topic, std::string_view key, std::string_view, const Headers& headers,
                        std::stop_token) override {
    if (failures_left > 0) {
      --failures_left;
      return Error::transient("broker unavailable", ErrorCode::kafka);
    }
    sent.emplace_back(std::string(key), headers);
    return Delivery{std::string(topic), Partition{0}, Offset{static_cast<std::int64_t>(sent.size())}};
  }
  Status send_async(std::string_view, std::string_view, std::string_view, const Headers&, DeliveryCallback) override {
    return ok_status();
  }
  Status flush(std::chrono::milliseconds) override { return ok_status(); }
  const std::string& source_system() const override { return name_; }

 private:
  std::string name_ = "test";
};

std::optional<std::string_view> header(const Headers& h, std::string_view name) {
  for (const auto& x : h) {
    if (x.name == name) return x.value;
  }
  return std::nullopt;
}

class StackTest : public ::testing::Test {
 protected:
  std::unique_ptr<Stack> build(Mode mode, std::deque<Status> script, int max_retries = 3) {
    handler_ = std::make_shared<ScriptedHandler>(std::move(script));
    StackParts parts;
    parts.mode = mode;
    parts.retry = engine::BackoffPolicy{100ms, 1s};
    parts.max_retries = max_retries;
    parts.clock = clock_;
    parts.scheduler = &scheduler_;
    parts.monopolization = mode == Mode::pipeline ? &detector_ : nullptr;
    parts.failures = &failures_;
    parts.failure_producer = &producer_;
    parts.failure_topic = "dead-letters";
    parts.group_id = "g";
    parts.innermost = handler_;
    auto stack = build_stack(std::move(parts));
    EXPECT_TRUE(stack.ok());
    return std::move(*stack);
  }
  Invocation timer_invocation() {
    Invocation inv;
    inv.kind = EventKind::timer;
    inv.tpk = TopicPartitionKey{"orders", Partition{0}, "k"};
    inv.partition = &partition_;
    inv.timer = &timer_;
    inv.slot = &slot_;
    inv.stop = stop_.get_token();
    inv.abandon = stop_.get_token();
    return inv;
  }
  // Runs the stack on another thread, advancing the simulated clock until it returns.
  Status run_advancing(const Stack& stack, Invocation& inv) {
    std::atomic<bool> done{false};
    Status result;
    std::thread t([&] {
      result = stack.run(inv);
      done = true;
    });
    while (!done) {
      clock_->advance(10ms);
      std::this_thread::sleep_for(200us);
    }
    t.join();
    return result;
  }

  std::shared_ptr<ManualClock> clock_ = std::make_shared<ManualClock>();
  FairScheduler scheduler_{SchedulerOptions{}, clock_};
  MonopolizationDetector detector_{MonopolizationOptions{}};
  FailureTracker failures_{FailureTrackerOptions{}};
  FakeProducer producer_;
  engine::PartitionState partition_{"orders", Partition{0}};
  detail::InvocationSlot slot_;
  timers::DueTimer timer_{"k", 1'800'000'000, TimerType::application, {}};
  std::stop_source stop_;
  std::shared_ptr<ScriptedHandler> handler_;
};

TEST_F(StackTest, EachModeStacksItsLayersInProsodysOrder) {
  using V = std::vector<std::string_view>;
  EXPECT_EQ(build(Mode::pipeline, {})->names(),
            (V{"retry", "monopolization", "cancellation", "scheduler", "timeout", "telemetry"}));
  EXPECT_EQ(build(Mode::low_latency, {})->names(), (V{"retry(failure-topic)", "failure_topic", "retry(capped)",
                                                      "cancellation", "scheduler", "timeout", "telemetry"}));
  EXPECT_EQ(build(Mode::best_effort, {})->names(), (V{"log", "cancellation", "scheduler", "timeout", "telemetry"}));
}

TEST_F(StackTest, PipelineRetriesTransientErrorsUntilSuccessAsFailureClass) {
  auto stack = build(Mode::pipeline, {Error::transient("a"), Error::transient("b"), Error::transient("c")});
  auto inv = timer_invocation();
  const auto start = clock_->now();
  EXPECT_TRUE(run_advancing(*stack, inv).ok());
  EXPECT_EQ(handler_->calls(), 4);
  EXPECT_EQ(handler_->demands(),
            (std::vector<DemandClass>{DemandClass::normal, DemandClass::failure, DemandClass::failure,
                                      DemandClass::failure}));
  // Full jitter: each wait is in [0, min(base * 2^n, max)) -> at most 100+200+400 ms.
  EXPECT_LE(clock_->now() - start, 700ms + 50ms);
}

TEST_F(StackTest, PermanentAndTerminalErrorsAreNotRetried) {
  auto stack = build(Mode::pipeline, {Error::permanent("bad input")});
  auto inv = timer_invocation();
  auto r = stack->run(inv);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.error().is_permanent());
  EXPECT_EQ(handler_->calls(), 1);
  auto stack2 = build(Mode::pipeline, {Error::terminal("corrupt")});
  auto inv2 = timer_invocation();
  EXPECT_TRUE(stack2->run(inv2).error().is_terminal());
}

TEST_F(StackTest, LowLatencyCapsRetriesThenWritesTheFailureTopicWithHeaders) {
  auto stack = build(Mode::low_latency, {Error::transient("1"), Error::transient("2"), Error::transient("3")}, 2);
  auto inv = timer_invocation();
  EXPECT_TRUE(run_advancing(*stack, inv).ok()) << "dead-lettered counts as done";
  EXPECT_EQ(handler_->calls(), 3) << "1 attempt + max_retries 2";
  ASSERT_EQ(producer_.sent.size(), 1u);
  const auto& [key, headers] = producer_.sent[0];
  EXPECT_EQ(key, "k");
  EXPECT_EQ(header(headers, "source-kind"), "timer");
  EXPECT_EQ(header(headers, "source-topic"), "orders");
  EXPECT_EQ(header(headers, "source-partition"), "0");
  EXPECT_EQ(header(headers, "source-timer-time"), "1800000000");
  EXPECT_EQ(header(headers, "source-group-id"), "g");
  EXPECT_EQ(header(headers, "source-error"), "3");
  EXPECT_EQ(header(headers, "prosody-attempts"), "3");
  EXPECT_EQ(header(headers, "prosody-error-class"), "transient");
}

TEST_F(StackTest, AFailedFailureTopicWriteIsRetriedWithoutRerunningTheHandler) {
  producer_.failures_left = 3;
  auto stack = build(Mode::low_latency, {Error::permanent("no")});
  auto inv = timer_invocation();
  EXPECT_TRUE(run_advancing(*stack, inv).ok());
  EXPECT_EQ(handler_->calls(), 1);
  EXPECT_EQ(producer_.sent.size(), 1u);
}

TEST_F(StackTest, BestEffortLogsFailuresAndMovesOnButTerminalStillStops) {
  auto stack = build(Mode::best_effort, {Error::transient("x"), Error::permanent("y"), Error::terminal("z")});
  for (int i = 0; i < 2; ++i) {
    auto inv = timer_invocation();
    EXPECT_TRUE(stack->run(inv).ok());
  }
  auto inv = timer_invocation();
  EXPECT_TRUE(stack->run(inv).error().is_terminal());
  EXPECT_EQ(handler_->calls(), 3);
}

TEST_F(StackTest, ARevokedPartitionsEventIsNotStartedAndStaysTransient) {
  auto stack = build(Mode::pipeline, {});
  stop_.request_stop();
  auto inv = timer_invocation();
  auto r = stack->run(inv);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.error().is_transient());
  EXPECT_EQ(r.error().code(), ErrorCode::shut_down);
  EXPECT_EQ(handler_->calls(), 0);
}

TEST_F(StackTest, AMonopolizingKeyIsRefusedBeforeItsHandlerRuns) {
  MonopolizationOptions opts;
  opts.window = 10s;
  opts.threshold = 0.5;
  MonopolizationDetector detector(opts);
  const TopicPartitionKey tpk{"orders", Partition{0}, "k"};
  detector.on_invoked(tpk, clock_->now());
  clock_->advance(8s);
  detector.on_completed(tpk, clock_->now());
  handler_ = std::make_shared<ScriptedHandler>(std::deque<Status>{});
  StackParts parts;
  parts.mode = Mode::pipeline;
  parts.retry = engine::BackoffPolicy{100ms, 1s};
  parts.clock = clock_;
  parts.scheduler = &scheduler_;
  parts.monopolization = &detector;
  parts.failures = &failures_;
  parts.innermost = handler_;
  auto built = build_stack(std::move(parts));
  ASSERT_TRUE(built.ok());
  auto stack = std::move(*built);
  auto inv = timer_invocation();
  // Refused (transient) and retried with backoff until the window slides
  // past the busy period; only then does the handler run.
  EXPECT_TRUE(run_advancing(*stack, inv).ok());
  EXPECT_EQ(handler_->calls(), 1);
}

}  // namespace
}  // namespace prosody::middleware
