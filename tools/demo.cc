// `prosody demo`: the main job, on the embedded mock cluster, with nothing
// to set up. It produces a stream of numbered events over many keys, then
// consumes them with per-key ordering and cross-key concurrency, prints a
// per-key ordered log of a few keys as they are handled, and ends with a
// summary: counts, throughput, concurrency reached and order violations
// (which must be 0). Each key's first event schedules a durable follow-up
// timer a few seconds later; the log shows the timers firing, each after
// its key's earlier events.
#include <atomic>
#include <chrono>
#include <iostream>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>

#include <fmt/format.h>

#include "commands.h"
#include "prosody/prosody.h"

namespace prosody::cli {
namespace {

struct DemoOptions {
  int events = 20000;
  int keys = 500;
  int partitions = 8;
  int concurrency = 32;
  int work_us = 1000;
  int show_keys = 3;
  int timer_delay_s = 3;  // 0: no timers
  double fail_rate = 0;   // chance that one handler attempt fails (transient)
  std::string mode = "pipeline";
  std::string topic = "demo-events";
};

class OrderCheckingHandler final : public EventHandler {
 public:
  OrderCheckingHandler(const DemoOptions& o, Mode mode) : opts_(o), mode_(mode) {}

  HandlerResult on_message(Context& ctx, const Message& m) override {
    std::call_once(first_once_, [&] { first_ = std::chrono::steady_clock::now(); });
    const int now = ++running_;
    int prev = peak_.load();
    while (now > prev && !peak_.compare_exchange_weak(prev, now)) {
    }
    if (opts_.fail_rate > 0) {
      thread_local std::mt19937 rng{std::random_device{}()};
      if (std::uniform_real_distribution<double>(0, 1)(rng) < opts_.fail_rate) {
        --running_;
        return Error::transient(fmt::format("simulated failure (attempt {})", ctx.attempt() + 1));
      }
    }
    const auto& p = m.payload();
    const int seq = p.value("seq", -1);
    {
      std::lock_guard l(mutex_);
      auto& last = last_seq_.try_emplace(m.key(), -1).first->second;
      // A gap is fine where an earlier event of the key was dead-lettered
      // or given up on (low_latency / best_effort); going backwards never is.
      if (seq <= last || (mode_ == Mode::pipeline && seq != last + 1)) ++violations_;
      last = seq;
      if (shown(m.key())) {
        std::cout << fmt::format("  key {:<8} seq {:>4}  partition {} offset {:>6}  type {}\n", m.key(), seq,
                                 m.partition().value(), m.offset().value(), p.value("type", "?"));
      }
    }
    if (seq == 0 && opts_.timer_delay_s > 0) {
      // A follow-up for this key, e.g. "remind the user if nothing happened".
      if (auto t = ctx.schedule(std::chrono::system_clock::now() + std::chrono::seconds(opts_.timer_delay_s)); !t) {
        --running_;
        return t.error();  // a store error is transient: the event is retried
      }
      ++timers_scheduled_;
    }
    if (opts_.work_us > 0) {
      // Simulated I/O that gives up early if the engine asks us to stop.
      if (ctx.wait_for_cancel(std::chrono::microseconds(opts_.work_us))) {
        --running_;
        return Error::transient("cancelled: " + std::string(to_string(ctx.cancel_reason())), ErrorCode::cancelled);
      }
    }
    --running_;
    ++handled_;
    last_handled_ = std::chrono::steady_clock::now().time_since_epoch().count();
    return ok_status();
  }

  HandlerResult on_timer(Context&, const Timer& t) override {
    const auto late = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now() -
                                                                           std::chrono::system_clock::time_point(t.time()));
    {
      std::lock_guard l(mutex_);
      max_late_ms_ = std::max<long>(max_late_ms_, late.count());
      if (shown(t.key())) {
        std::cout << fmt::format("  key {:<8} TIMER fired {} ms after its due time (after {} events of the key)\n",
                                 t.key(), late.count(), last_seq_[t.key()] + 1);
      }
    }
    ++timers_fired_;
    return ok_status();
  }

  int handled() const { return handled_; }
  int timers_scheduled() const { return timers_scheduled_; }
  int timers_fired() const { return timers_fired_; }
  long max_late_ms() const {
    std::lock_guard l(mutex_);
    return max_late_ms_;
  }
  int violations() const {
    std::lock_guard l(mutex_);
    return violations_;
  }
  int peak() const { return peak_; }
  std::chrono::steady_clock::time_point first_handled() const { return first_; }
  std::chrono::steady_clock::time_point last_handled() const {
    return std::chrono::steady_clock::time_point(std::chrono::steady_clock::duration(last_handled_.load()));
  }

 private:
  bool shown(const std::string& key) const {
    for (int i = 0; i < opts_.show_keys; ++i) {
      if (key == "user-" + std::to_string(i)) return true;
    }
    return false;
  }
  const DemoOptions opts_;
  const Mode mode_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, int> last_seq_;
  int violations_ = 0;
  std::atomic<int> handled_{0}, running_{0}, peak_{0}, timers_scheduled_{0}, timers_fired_{0};
  long max_late_ms_ = 0;
  std::atomic<std::chrono::steady_clock::rep> last_handled_{0};
  std::once_flag first_once_;
  std::chrono::steady_clock::time_point first_{};
};

int run_demo(const DemoOptions& o) {
  auto config = Config::from_env()
                    .with_mock(true)
                    .with_group_id("prosody-demo")
                    .with_subscribed_topics(std::vector<std::string>{o.topic})
                    .with_mock_partitions(o.partitions)
                    .with_max_concurrency(o.concurrency)
                    .with_probe_port(std::nullopt)
                    .with_retry_base(std::chrono::milliseconds(5))
                    .with_max_retry_delay(std::chrono::milliseconds(200));
  auto mode = parse_mode(o.mode);
  if (!mode) {
    std::cerr << mode.error().message() << "\n";
    return 2;
  }
  config.with_mode(*mode);
  if (*mode == Mode::low_latency) config.with_failure_topic(o.topic + "-failures");
  // The producer tags records with a source system different from the
  // consumer's group id, so the consumer does not skip them as its own.
  config.with_source_system("prosody-demo-producer");
  auto client = Client::create(config);

  std::cout << fmt::format(
      "prosody demo: {} events over {} keys, {} partitions, mock cluster, max_concurrency {}, mode {}, fail rate {}\n",
      o.events, o.keys, o.partitions, o.concurrency, o.mode, o.fail_rate);
  auto handler = std::make_shared<OrderCheckingHandler>(o, *mode);
  if (auto s = client->subscribe(handler); !s) {
    std::cerr << "subscribe failed: " << s.error().message() << "\n";
    return 1;
  }
  auto producer = client->producer();
  if (!producer) {
    std::cerr << "producer: " << producer.error().message() << "\n";
    return 1;
  }
  const auto start = std::chrono::steady_clock::now();
  std::vector<int> next_seq(static_cast<std::size_t>(o.keys), 0);
  std::atomic<int> send_errors{0};
  const char* types[] = {"user.created", "user.updated", "order.placed", "order.shipped"};
  std::mt19937 rng(42);
  for (int i = 0; i < o.events; ++i) {
    const int k = static_cast<int>(rng() % static_cast<unsigned>(o.keys));
    const int seq = next_seq[static_cast<std::size_t>(k)]++;
    nlohmann::json payload = {{"id", fmt::format("evt-{}", i)}, {"type", types[i % 4]}, {"seq", seq}, {"key", k}};
    auto s = (*producer)->send_async(o.topic, "user-" + std::to_string(k), payload.dump(), {},
                                     [&](Result<Delivery> r) { if (!r) ++send_errors; });
    if (!s) ++send_errors;
  }
  (void)(*producer)->flush(std::chrono::seconds(30));
  std::cout << fmt::format("produced {} events ({} send errors); handling (per-key log for user-0..user-{}):\n",
                           o.events, send_errors.load(), o.show_keys - 1);
  auto last_report = std::chrono::steady_clock::now();
  // Every event ends handled, dead-lettered (low_latency) or given up on
  // (best_effort).
  auto settled = [&] {
    const auto st = client->stats();
    return static_cast<long>(handler->handled()) + static_cast<long>(st.dead_lettered) +
           (*mode == Mode::best_effort ? static_cast<long>(st.failed) : 0L);
  };
  auto done = [&] {
    return settled() >= o.events - send_errors.load() &&
           handler->timers_fired() >= handler->timers_scheduled();
  };
  while (!done()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (std::chrono::steady_clock::now() - last_report > std::chrono::seconds(1)) {
      last_report = std::chrono::steady_clock::now();
      const auto st = client->stats();
      std::cout << fmt::format(
          "  ... {} / {} handled, {} failed attempts, {} retried, {} dead-lettered, timers {} / {} fired\n",
          handler->handled(), o.events, st.failed, st.retries, st.dead_lettered, handler->timers_fired(),
          handler->timers_scheduled());
    }
    if (std::chrono::steady_clock::now() - start > std::chrono::minutes(5)) {
      std::cerr << "demo: timed out waiting for events\n";
      break;
    }
  }
  const auto end = std::chrono::steady_clock::now();
  const double secs = std::chrono::duration<double>(end - start).count();
  const double consume_secs =
      std::chrono::duration<double>(handler->last_handled() - handler->first_handled()).count();
  (void)client->unsubscribe();
  const auto stats = client->stats();
  std::cout << fmt::format(
      "\nsummary\n  handled            {}\n  keys               {}\n  elapsed            {:.2f} s "
      "(includes joining the group)\n"
      "  throughput         {:.0f} events/s (first to last handled event)\n  peak concurrency   {}\n"
      "  partitions paused  {} times (backpressure)\n  order violations   {}\n"
      "  timers             {} scheduled, {} fired, worst lateness {} ms\n"
      "  failures           {} failed attempts, {} events retried, {} dead-lettered\n",
      handler->handled(), o.keys, secs, handler->handled() / consume_secs, handler->peak(), stats.pauses,
      handler->violations(), handler->timers_scheduled(), handler->timers_fired(), handler->max_late_ms(),
      stats.failed, stats.retries, stats.dead_lettered);
  // Order holds for the events that were handled; with failures in
  // low_latency/best_effort mode some are (correctly) not handled.
  const bool all_accounted = *mode == Mode::pipeline ? handler->handled() == o.events : settled() >= o.events;
  return handler->violations() == 0 && all_accounted &&
                 handler->timers_fired() == handler->timers_scheduled()
             ? 0
             : 1;
}

}  // namespace

std::function<int()> add_demo(CLI::App& app) {
  auto* cmd = app.add_subcommand("demo", "process a generated event stream on the embedded mock cluster");
  auto o = std::make_shared<DemoOptions>();
  cmd->add_option("--events", o->events, "events to produce")->check(CLI::Range(1, 10'000'000));
  cmd->add_option("--keys", o->keys, "distinct keys")->check(CLI::Range(1, 1'000'000));
  cmd->add_option("--partitions", o->partitions, "partitions of the demo topic")->check(CLI::Range(1, 256));
  cmd->add_option("--concurrency", o->concurrency, "max_concurrency")->check(CLI::Range(1, 1024));
  cmd->add_option("--work-us", o->work_us, "simulated work per event, microseconds")->check(CLI::Range(0, 1'000'000));
  cmd->add_option("--show-keys", o->show_keys, "keys whose events are logged")->check(CLI::Range(0, 1000));
  cmd->add_option("--fail-rate", o->fail_rate, "chance that a handler attempt fails (transient), 0..1")
      ->check(CLI::Range(0.0, 0.99));
  cmd->add_option("--mode", o->mode, "pipeline, low_latency or best_effort");
  cmd->add_option("--timer-delay", o->timer_delay_s, "seconds until each key's follow-up timer (0: none)")
      ->check(CLI::Range(0, 3600));
  return [o] { return run_demo(*o); };
}

}  // namespace prosody::cli
