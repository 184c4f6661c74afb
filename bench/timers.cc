// Timer benchmark: how many timers the stores take per second, how much
// memory a pending timer costs in the memory store, and how late timers
// fire under load.
//
//   store-memory  : 1M timers over 100k keys into MemoryTimerStore
//                   (schedule rate; heap bytes per pending timer via mallinfo2)
//   store-sqlite  : N timers into the SQLite store in a temp dir (schedule rate)
//   service       : 1M timers due over the next few seconds in 8 partitions,
//                   fired by the TimerService on the real clock; lateness =
//                   delivery time - due time
//   engine        : timers scheduled by handlers through a mock-mode Client and
//                   fired through on_timer; lateness = on_timer start - due
//
// Writes one JSON document (--out). Timings are wall-clock on a shared
// 2-core machine: compare within one run.
#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <thread>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "prosody/prosody.h"
#include "store/memory/memory_timer_store.h"
#include "store/sqlite/sqlite_timer_store.h"
#include "timers/timer_service.h"

namespace {

using namespace std::chrono;
using prosody::store::StoredTimer;
using prosody::store::TimerSegment;

double seconds_since(steady_clock::time_point t) { return duration<double>(steady_clock::now() - t).count(); }
long now_epoch_s() { return duration_cast<seconds>(system_clock::now().time_since_epoch()).count(); }

nlohmann::json percentiles(std::vector<double> ms) {
  if (ms.empty()) return nullptr;
  std::sort(ms.begin(), ms.end());
  auto at = [&](double q) { return ms[std::min(ms.size() - 1, static_cast<std::size_t>(q * static_cast<double>(ms.size())))]; };
  return {{"count", ms.size()}, {"p50_ms", at(0.5)}, {"p99_ms", at(0.99)}, {"p999_ms", at(0.999)}, {"max_ms", ms.back()}};
}

nlohmann::json bench_memory_store(long timers, long keys) {
  const auto heap_before = mallinfo2().uordblks;
  auto store = std::make_unique<prosody::store::MemoryTimerStore>();
  TimerSegment seg{"bench", "timers", prosody::Partition{0}, 3600};
  const long base = now_epoch_s() + 3600;
  const auto start = steady_clock::now();
  for (long i = 0; i < timers; ++i) {
    (void)store->upsert(seg, StoredTimer{"key-" + std::to_string(i % keys), prosody::TimerType::application,
                                         base + i / keys, {}});
  }
  const double secs = seconds_since(start);
  const auto heap_after = mallinfo2().uordblks;
  const double per_timer = static_cast<double>(heap_after - heap_before) / static_cast<double>(timers);
  std::cout << fmt::format("memory store: {} timers over {} keys in {:.2f} s = {:.0f}/s; {:.1f} heap bytes per timer\n",
                           timers, keys, secs, timers / secs, per_timer);
  return {{"timers", timers}, {"keys", keys}, {"seconds", secs}, {"schedule_per_s", timers / secs},
          {"heap_bytes_per_timer", per_timer}, {"size", store->size()}};
}

nlohmann::json bench_sqlite_store(long timers, long keys) {
  const auto dir = std::filesystem::temp_directory_path() / fmt::format("prosody-bench-timers-{}", ::getpid());
  std::filesystem::create_directories(dir);
  auto store = prosody::store::SqliteTimerStore::open((dir / "timers.sqlite").string());
  if (!store) {
    std::cerr << store.error().message() << "\n";
    return nullptr;
  }
  TimerSegment seg{"bench", "timers", prosody::Partition{0}, 3600};
  const long base = now_epoch_s() + 3600;
  // Several writers, as handlers on worker threads would be.
  constexpr int kThreads = 4;
  std::atomic<long> next{0}, errors{0};
  const auto start = steady_clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (long i; (i = next++) < timers;) {
        if (!(*store)->upsert(seg, StoredTimer{"key-" + std::to_string(i % keys), prosody::TimerType::application,
                                               base + i / keys, {}})) {
          errors++;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  const double secs = seconds_since(start);
  std::filesystem::remove_all(dir);
  std::cout << fmt::format("sqlite store: {} timers ({} writer threads) in {:.2f} s = {:.0f}/s, {} errors\n", timers,
                           kThreads, secs, timers / secs, errors.load());
  return {{"timers", timers}, {"keys", keys}, {"writers", kThreads}, {"seconds", secs},
          {"schedule_per_s", timers / secs}, {"errors", errors.load()}};
}

nlohmann::json bench_service(long timers, long keys, int spread_s) {
  auto store = std::make_shared<prosody::store::MemoryTimerStore>();
  prosody::timers::TimerService service(prosody::system_clock(), seconds(3600), milliseconds(1000));
  constexpr int kPartitions = 8;
  std::vector<std::shared_ptr<prosody::timers::PartitionTimers>> parts;
  std::mutex m;
  std::vector<double> lateness;
  lateness.reserve(static_cast<std::size_t>(timers));
  std::atomic<long> fired{0};
  for (int p = 0; p < kPartitions; ++p) {
    parts.push_back(std::make_shared<prosody::timers::PartitionTimers>(
        TimerSegment{"bench", "timers", prosody::Partition{p}, 3600}, store, 4096));
  }
  service.start();
  for (auto& p : parts) {
    service.add(p, [&](const std::shared_ptr<prosody::timers::PartitionTimers>& pt, prosody::timers::DueTimer d) {
      const double late = duration<double, std::milli>(system_clock::now() - system_clock::time_point(seconds(d.time))).count();
      {
        std::lock_guard l(m);
        lateness.push_back(late);
      }
      if (pt->begin(d)) (void)pt->complete(d);
      fired++;
      return true;
    });
  }
  while (!parts[0]->owned_until()) std::this_thread::sleep_for(milliseconds(10));
  const long base = now_epoch_s() + 3;
  const auto start = steady_clock::now();
  for (long i = 0; i < timers; ++i) {
    auto& p = parts[static_cast<std::size_t>(i % kPartitions)];
    (void)p->schedule("key-" + std::to_string(i % keys), prosody::TimerType::application,
                      base + (i / keys) % spread_s);
  }
  // (key, time) pairs are unique up to `spread_s` timers per key.
  const long expected = keys * std::min<long>(spread_s, std::max<long>(1, timers / keys));
  const double schedule_secs = seconds_since(start);
  service.wake();
  while (fired < expected && seconds_since(start) < 120) std::this_thread::sleep_for(milliseconds(50));
  service.stop();
  std::cout << fmt::format("service: {} timers ({} distinct) scheduled in {:.2f} s ({:.0f}/s), {} fired\n", timers,
                           expected, schedule_secs, timers / schedule_secs, fired.load());
  auto pct = percentiles(lateness);
  std::cout << "service lateness: " << pct.dump() << "\n";
  return {{"timers", expected}, {"partitions", kPartitions}, {"spread_s", spread_s},
          {"schedule_per_s", timers / schedule_secs}, {"fired", fired.load()}, {"lateness", pct}};
}

class TimerLatenessHandler final : public prosody::EventHandler {
 public:
  prosody::HandlerResult on_message(prosody::Context& ctx, const prosody::Message& m) override {
    return ctx.schedule(system_clock::time_point(seconds(m.payload().value("due", 0L))));
  }
  prosody::HandlerResult on_timer(prosody::Context&, const prosody::Timer& t) override {
    const double late = duration<double, std::milli>(system_clock::now() - system_clock::time_point(t.time())).count();
    std::lock_guard l(mutex);
    lateness.push_back(late);
    return prosody::ok_status();
  }
  std::mutex mutex;
  std::vector<double> lateness;
};

nlohmann::json bench_engine(long timers, long keys) {
  const std::string topic = fmt::format("bench-timers-{}", ::getpid());
  auto config = prosody::Config()
                    .with_mock(true)
                    .with_mock_partitions(8)
                    .with_group_id("bench-timers")
                    .with_source_system("bench-timers-producer")
                    .with_subscribed_topics(std::vector<std::string>{topic})
                    .with_probe_port(std::nullopt);
  auto client = prosody::Client::create(config);
  auto handler = std::make_shared<TimerLatenessHandler>();
  if (auto s = client->subscribe(handler); !s) {
    std::cerr << s.error().message() << "\n";
    return nullptr;
  }
  while (client->assigned_partition_count() == 0) std::this_thread::sleep_for(milliseconds(20));
  auto producer = client->producer();
  const long base = now_epoch_s() + 8;  // after every message is handled
  const long spread_s = std::max(1L, timers / 10'000);  // ~10k timers due per second
  for (long i = 0; i < timers; ++i) {
    nlohmann::json payload{{"due", base + i % spread_s}};
    while (!(*producer)->send_async(topic, "key-" + std::to_string(i % keys), payload.dump(), {}, {})) {
      std::this_thread::sleep_for(milliseconds(1));
    }
  }
  (void)(*producer)->flush(seconds(60));
  const auto start = steady_clock::now();
  for (;;) {
    {
      std::lock_guard l(handler->mutex);
      if (static_cast<long>(handler->lateness.size()) >= timers) break;
    }
    if (seconds_since(start) > 120) break;
    std::this_thread::sleep_for(milliseconds(50));
  }
  (void)client->unsubscribe();
  std::lock_guard l(handler->mutex);
  auto pct = percentiles(handler->lateness);
  std::cout << "engine (on_timer) lateness: " << pct.dump() << "\n";
  return {{"timers", timers}, {"keys", keys}, {"lateness", pct}};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"prosody-cpp timer benchmark"};
  long timers = 1'000'000, keys = 100'000, sqlite_timers = 100'000, engine_timers = 100'000;
  int spread = 100;
  std::string out = "bench/results/timers.json";
  app.add_option("--timers", timers, "timers for the memory store and service runs");
  app.add_option("--keys", keys, "distinct keys");
  app.add_option("--sqlite-timers", sqlite_timers, "timers for the SQLite run");
  app.add_option("--engine-timers", engine_timers, "timers scheduled through the engine (0: skip)");
  app.add_option("--spread", spread, "seconds the service run's due times are spread over");
  app.add_option("--out", out, "JSON output");
  CLI11_PARSE(app, argc, argv);
  prosody::logger()->set_level(spdlog::level::warn);
  nlohmann::json doc;
  doc["memory_store"] = bench_memory_store(timers, keys);
  doc["sqlite_store"] = bench_sqlite_store(sqlite_timers, keys);
  doc["service"] = bench_service(timers, keys, spread);
  if (engine_timers > 0) doc["engine"] = bench_engine(engine_timers, std::min(keys, engine_timers));
  doc["machine"] = {{"cores", std::thread::hardware_concurrency()}};
  std::ofstream(out) << doc.dump(2) << "\n";
  std::cout << "wrote " << out << "\n";
  return 0;
}
