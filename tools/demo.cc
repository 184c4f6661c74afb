// `prosody demo`: the main job, on the embedded mock cluster, with nothing
// to set up. It produces a stream of numbered events over many keys, then
// consumes them with per-key ordering and cross-key concurrency, prints a
// per-key ordered log of a few keys as they are handled, and ends with a
// summary: counts, throughput, concurrency reached and order violations
// (which must be 0).
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
  std::string topic = "demo-events";
};

class OrderCheckingHandler final : public EventHandler {
 public:
  explicit OrderCheckingHandler(const DemoOptions& o) : opts_(o) {}

  HandlerResult on_message(Context& ctx, const Message& m) override {
    std::call_once(first_once_, [&] { first_ = std::chrono::steady_clock::now(); });
    const int now = ++running_;
    int prev = peak_.load();
    while (now > prev && !peak_.compare_exchange_weak(prev, now)) {
    }
    const auto& p = m.payload();
    const int seq = p.value("seq", -1);
    {
      std::lock_guard l(mutex_);
      auto& last = last_seq_.try_emplace(m.key(), -1).first->second;
      if (seq != last + 1) ++violations_;
      last = seq;
      if (shown(m.key())) {
        std::cout << fmt::format("  key {:<8} seq {:>4}  partition {} offset {:>6}  type {}\n", m.key(), seq,
                                 m.partition().value(), m.offset().value(), p.value("type", "?"));
      }
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
    return ok_status();
  }

  int handled() const { return handled_; }
  int violations() const {
    std::lock_guard l(mutex_);
    return violations_;
  }
  int peak() const { return peak_; }
  std::chrono::steady_clock::time_point first_handled() const { return first_; }

 private:
  bool shown(const std::string& key) const {
    for (int i = 0; i < opts_.show_keys; ++i) {
      if (key == "user-" + std::to_string(i)) return true;
    }
    return false;
  }
  const DemoOptions opts_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, int> last_seq_;
  int violations_ = 0;
  std::atomic<int> handled_{0}, running_{0}, peak_{0};
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
                    .with_probe_port(std::nullopt);
  // The producer tags records with a source system different from the
  // consumer's group id, so the consumer does not skip them as its own.
  config.with_source_system("prosody-demo-producer");
  auto client = Client::create(config);

  std::cout << fmt::format("prosody demo: {} events over {} keys, {} partitions, mock cluster, max_concurrency {}\n",
                           o.events, o.keys, o.partitions, o.concurrency);
  auto handler = std::make_shared<OrderCheckingHandler>(o);
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
  while (handler->handled() < o.events - send_errors.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (std::chrono::steady_clock::now() - last_report > std::chrono::seconds(1)) {
      last_report = std::chrono::steady_clock::now();
      std::cout << fmt::format("  ... {} / {} handled, {} partitions assigned\n", handler->handled(), o.events,
                               client->assigned_partition_count());
    }
    if (std::chrono::steady_clock::now() - start > std::chrono::minutes(5)) {
      std::cerr << "demo: timed out waiting for events\n";
      break;
    }
  }
  const auto end = std::chrono::steady_clock::now();
  const double secs = std::chrono::duration<double>(end - start).count();
  const double consume_secs = std::chrono::duration<double>(end - handler->first_handled()).count();
  (void)client->unsubscribe();
  const auto stats = client->stats();
  std::cout << fmt::format(
      "\nsummary\n  handled            {}\n  keys               {}\n  elapsed            {:.2f} s "
      "(includes joining the group)\n"
      "  throughput         {:.0f} events/s (first to last handled event)\n  peak concurrency   {}\n"
      "  partitions paused  {} times (backpressure)\n  order violations   {}\n",
      handler->handled(), o.keys, secs, handler->handled() / consume_secs, handler->peak(), stats.pauses,
      handler->violations());
  return handler->violations() == 0 && handler->handled() == o.events ? 0 : 1;
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
  return [o] { return run_demo(*o); };
}

}  // namespace prosody::cli
