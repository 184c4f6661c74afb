// Deduplication benchmark: what the dedup layer costs per message in each
// store, measured as the layer uses a store (contains() then record() for
// a new id) from several handler threads at once.
//
//   memory            : MemoryDedupStore (mock mode)
//   sqlite-write-thru : SqliteDedupStore with flush_interval 0 (a transaction
//                       per record(), the design before group commit)
//   sqlite-group      : SqliteDedupStore with the default group commit
//   id                : computing ids alone (dedup_id + scan_json_event_id
//                       on a ~100 B payload), the per-message cost the layer
//                       adds before any store
//
// Writes one JSON document (--out). Timings are wall-clock on a shared
// 2-core machine: compare within one run.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "middleware/dedup_id.h"
#include "store/memory/memory_dedup_store.h"
#include "store/sqlite/sqlite_dedup_store.h"

namespace {

using namespace std::chrono;
using prosody::middleware::DedupFields;
using prosody::store::DedupId;
using prosody::store::DedupStore;

double seconds_since(steady_clock::time_point t) { return duration<double>(steady_clock::now() - t).count(); }

DedupId id_of(long i) {
  return prosody::middleware::dedup_id(
      DedupFields{"1", "bench", "events", static_cast<std::int32_t>(i % 8), "key", std::nullopt, i});
}

// `ids` new ids split over `threads`, each checked then recorded; every
// call must succeed and no new id may be reported as seen.
// Ids first .. first + ids - 1. `rate_limit` > 0 paces the callers to that many ids per second in total (the
// offered load of a consumer below the store's capacity).
nlohmann::json run_store(const std::string& name, DedupStore& store, long ids, int threads, double rate_limit = 0,
                         long first = 0) {
  std::atomic<long> errors{0}, false_hits{0};
  std::vector<std::vector<double>> lookup_us(threads), record_us(threads);
  const auto start = steady_clock::now();
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      lookup_us[t].reserve(static_cast<std::size_t>(ids / threads + 1));
      record_us[t].reserve(static_cast<std::size_t>(ids / threads + 1));
      for (long i = t; i < ids; i += threads) {
        if (rate_limit > 0) {
          std::this_thread::sleep_until(start + duration_cast<steady_clock::duration>(
                                                    duration<double>(static_cast<double>(i) / rate_limit)));
        }
        const auto id = id_of(first + i);
        const auto asked = steady_clock::now();
        auto seen = store.contains(id);
        lookup_us[t].push_back(duration<double, std::micro>(steady_clock::now() - asked).count());
        if (!seen) {
          ++errors;
          continue;
        }
        if (*seen) ++false_hits;
        const auto recording = steady_clock::now();
        if (!store.record(id)) ++errors;
        record_us[t].push_back(duration<double, std::micro>(steady_clock::now() - recording).count());
      }
    });
  }
  for (auto& w : workers) w.join();
  const double secs = seconds_since(start);
  // Every id must now be seen.
  long missing = 0;
  for (long i = 0; i < ids; i += std::max(1L, ids / 1000)) {
    auto seen = store.contains(id_of(first + i));
    if (!seen || !*seen) ++missing;
  }
  const double rate = static_cast<double>(ids) / secs;
  // How long a handler waited: the layer calls contains() before every new
  // message and record() after it, so their tails add to its latency (a
  // record() that fills the queue writes it).
  auto percentiles = [](std::vector<std::vector<double>>& per_thread) {
    std::vector<double> all;
    for (auto& v : per_thread) all.insert(all.end(), v.begin(), v.end());
    std::sort(all.begin(), all.end());
    auto at = [&](double q) {
      return all.empty() ? 0.0 : all[std::min(all.size() - 1, static_cast<std::size_t>(q * static_cast<double>(all.size())))];
    };
    return nlohmann::json{{"p50", at(0.5)}, {"p99", at(0.99)}, {"p999", at(0.999)}, {"max", all.empty() ? 0.0 : all.back()}};
  };
  const auto lookup = percentiles(lookup_us);
  const auto recording = percentiles(record_us);
  std::cerr << fmt::format(
      "{:18} {:>9} ids in {:6.2f} s: {:>10.0f} ids/s ({:.2f} µs/id), lookup p50/p99/max {:.1f}/{:.1f}/{:.0f} µs, "
      "record p99/p999/max {:.1f}/{:.0f}/{:.0f} µs, errors {}, missing {}\n",
      name, ids, secs, rate, 1e6 / rate, lookup["p50"].get<double>(), lookup["p99"].get<double>(),
      lookup["max"].get<double>(), recording["p99"].get<double>(), recording["p999"].get<double>(),
      recording["max"].get<double>(), errors.load(), missing);
  return {{"store", name},
          {"ids", ids},
          {"threads", threads},
          {"seconds", secs},
          {"ids_per_sec", rate},
          {"us_per_id", 1e6 / rate},
          {"lookup_us", lookup},
          {"record_us", recording},
          {"errors", errors.load()},
          {"false_hits", false_hits.load()},
          {"missing_after", missing}};
}

// Lookups alone, of ids the store does not hold (a new message's lookup),
// on a store already holding the ids of run_store.
nlohmann::json run_lookups(const std::string& name, DedupStore& store, long ids, int threads) {
  std::atomic<long> errors{0}, false_hits{0};
  const auto start = steady_clock::now();
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (long i = t; i < ids; i += threads) {
        auto seen = store.contains(id_of(ids + i));
        if (!seen) ++errors;
        else if (*seen) ++false_hits;
      }
    });
  }
  for (auto& w : workers) w.join();
  const double secs = seconds_since(start);
  const double rate = static_cast<double>(ids) / secs;
  std::cerr << fmt::format("{:18} {:>9} ids in {:6.2f} s: {:>10.0f} ids/s ({:.2f} µs/id), errors {}\n", name, ids,
                           secs, rate, 1e6 / rate, errors.load());
  return {{"store", name},   {"ids", ids},           {"threads", threads},       {"seconds", secs},
          {"ids_per_sec", rate}, {"us_per_id", 1e6 / rate}, {"errors", errors.load()}, {"false_hits", false_hits.load()}};
}

nlohmann::json run_ids(long ids) {
  const std::string payload = R"({"id":"evt-0000000001","type":"order.created","amount":1234,"currency":"EUR","x":1})";
  const auto start = steady_clock::now();
  unsigned char sink = 0;
  for (long i = 0; i < ids; ++i) {
    const auto event_id = prosody::middleware::scan_json_event_id(payload);
    sink ^= prosody::middleware::dedup_id(DedupFields{"1", "bench", "events", 3, "key", event_id, i}).bytes[0];
  }
  const double secs = seconds_since(start);
  const double rate = static_cast<double>(ids) / secs;
  std::cerr << fmt::format("{:18} {:>9} ids in {:6.2f} s: {:>10.0f} ids/s ({:.2f} µs/id) [{}]\n", "id", ids, secs,
                           rate, 1e6 / rate, sink & 1);
  return {{"store", "id"}, {"ids", ids}, {"threads", 1}, {"seconds", secs}, {"ids_per_sec", rate},
          {"us_per_id", 1e6 / rate}};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"prosody-cpp deduplication benchmark"};
  long ids = 1'000'000, sqlite_ids = 200'000, write_through_ids = 5'000;
  int threads = 4;
  long flush_ms = 50;
  double paced_rate = 20000, paced_seconds = 5;
  std::string out = "dedup.json";
  app.add_option("--ids", ids, "ids for the memory store and the id computation");
  app.add_option("--sqlite-ids", sqlite_ids, "ids for the SQLite store with group commit");
  app.add_option("--write-through-ids", write_through_ids, "ids for the SQLite store without group commit");
  app.add_option("--flush-ms", flush_ms, "the group-commit store's flush_interval");
  app.add_option("--paced-rate", paced_rate, "ids/s offered in the paced SQLite run");
  app.add_option("--paced-seconds", paced_seconds, "length of the paced SQLite run");
  app.add_option("--threads", threads, "concurrent callers (handler threads)")->check(CLI::Range(1, 256));
  app.add_option("--out", out, "JSON output file");
  CLI11_PARSE(app, argc, argv);

  nlohmann::json results = nlohmann::json::array();
  results.push_back(run_ids(ids));
  {
    prosody::store::MemoryDedupStore store(hours(24));
    results.push_back(run_store("memory", store, ids, threads));
  }
  const auto dir = std::filesystem::temp_directory_path() / fmt::format("prosody-bench-dedup-{}", ::getpid());
  std::filesystem::create_directories(dir);
  struct RemoveAfter {
    std::filesystem::path path;
    ~RemoveAfter() { std::filesystem::remove_all(path); }
  } remove_after{dir};
  for (const auto& [name, interval, n] :
       {std::tuple{"sqlite-write-thru", milliseconds(0), write_through_ids},
        std::tuple{"sqlite-group", milliseconds(flush_ms), sqlite_ids}}) {
    prosody::store::SqliteDedupStore::Options options;
    options.flush_interval = interval;
    auto store = prosody::store::SqliteDedupStore::open((dir / fmt::format("{}.sqlite", name)).string(), options);
    if (!store) {
      std::cerr << "cannot open the SQLite dedup store: " << store.error().message() << "\n";
      return 1;
    }
    results.push_back(run_store(name, **store, n, threads));
    if (auto flushed = (*store)->flush(); flushed) {
      // Disk per id: the file and its WAL over the rows in them.
      const auto path = dir / fmt::format("{}.sqlite", name);
      std::error_code main_error, wal_error;
      const auto main_bytes = std::filesystem::file_size(path, main_error);
      const auto wal_bytes = std::filesystem::file_size(path.string() + "-wal", wal_error);
      const auto bytes = (main_error ? 0 : main_bytes) + (wal_error ? 0 : wal_bytes);
      if (auto rows = (*store)->size(); rows && *rows > 0 && !main_error) {
        results.back()["file_bytes_per_id"] = static_cast<double>(bytes) / static_cast<double>(*rows);
      }
    }
    if (interval.count() > 0) {
      results.push_back(run_lookups("sqlite-lookup-miss", **store, n, threads));
      results.push_back(run_store(fmt::format("sqlite-group@{}/s", paced_rate), **store,
                                  static_cast<long>(paced_rate * paced_seconds), threads, paced_rate, 10 * n));
    }
  }
  bool clean = true;
  for (const auto& r : results) {
    clean = clean && r.value("errors", 0L) == 0 && r.value("false_hits", 0L) == 0 && r.value("missing_after", 0L) == 0;
  }
  std::ofstream(out) << nlohmann::json{{"scenario", "dedup"}, {"threads", threads}, {"results", results}}.dump(2)
                     << "\n";
  std::cerr << "wrote " << out << "\n";
  return clean ? 0 : 1;
}
