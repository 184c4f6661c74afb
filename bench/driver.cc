// prosody-bench: one benchmark run per process, against a broker that lives
// in another process (prosody-mock-broker or a real Kafka), so the numbers
// (CPU, peak RSS) are the client's alone. bench/run orchestrates many of
// these; each prints one JSON object on stdout.
//
//   prosody-bench topics  --bootstrap B --topic noop:8 --topic dlq:1      create topics (real Kafka)
//   prosody-bench preload --bootstrap B --topic noop --records 1000000 --keys 10000
//   prosody-bench consume --bootstrap B --topic noop --system cpp --mode pipeline [--wait fixed:10000]
//   prosody-bench produce --bootstrap B --topic out --system raw --records 1000000 [--rate 20000]
//   prosody-bench smoke                                                  in-process mock, tiny sizes (CTest)
//
// Systems: `raw` is librdkafka used directly (the physical limit of this
// machine), `cpp` is prosody-cpp's Client. Prosody's Rust core is driven by
// bench/rust-prosody with the same flags and JSON shape.
//
// Exit status: 0 when the run saw everything it expected, 1 when it did not
// (the JSON is still printed), 2 on a setup error.
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <librdkafka/rdkafka.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "kafka/mock_cluster.h"
#include "latency_histogram.h"
#include "prosody/prosody.h"

namespace {

using SteadyClock = std::chrono::steady_clock;
using json = nlohmann::json;
using prosody::bench::LatencyHistogram;
using namespace std::chrono_literals;

// ------------------------------------------------------------------ options

struct Options {
  std::string bootstrap;
  std::vector<std::string> topics;  // `topics`: name:partitions
  std::string topic;
  std::string system = "cpp";  // raw | cpp
  std::string mode = "pipeline";
  std::string group;
  std::int64_t records = 0;  // consume: 0 = the topic's current size
  int keys = 10'000;
  std::string wait = "none";  // none | fixed:US | uniform:LO-HI (microseconds)
  int concurrency = 0;        // 0 = library default
  int max_uncommitted = 0;    // 0 = library default
  int idempotence_cache_size = -1;  // -1 = library default (8192; 0 turns deduplication off)
  double duration_s = 0;      // consume: stop this long after the first record (0 = run to completion)
  double timeout_s = 600;
  double rate = 0;  // produce: records/s (0 = as fast as possible)
  std::string ready_file;
  double rss_sample_ms = 250;
  // Consumer prefetch, identical for raw and cpp when set.
  std::string queued_min_messages;
  std::string queued_max_kbytes;
  // Producer settings shared by every producer we build.
  std::string linger_ms = "5";
  std::string batch_num_messages = "10000";
  std::string batch_size = "1000000";
  std::string queue_buffering_max_messages = "100000";
  std::string compression = "lz4";  // raw producer; prosody-cpp always uses lz4
  // produce --system raw: also send `source-system: <value>` on every record,
  // built per record as a raw librdkafka user would (prosody-cpp always sends
  // it), so the two producers write the same bytes.
  std::string source_system_header;
  // produce: send one acknowledged, untimed record first (as produce_cpp
  // does). Off for preloads, whose topics must hold exactly --records, and
  // for paced (live) runs, whose consumers count the records they expect.
  bool warmup = true;
  // consume: extra librdkafka properties (K=V), identical for raw and cpp.
  std::vector<std::string> consumer_properties;
  // produce --system cpp: send_async without a delivery callback.
  bool fire_and_forget = false;
};

std::vector<std::pair<std::string, std::string>> producer_tuning(const Options& o) {
  return {{"linger.ms", o.linger_ms},
          {"batch.num.messages", o.batch_num_messages},
          {"batch.size", o.batch_size},
          {"queue.buffering.max.messages", o.queue_buffering_max_messages}};
}

std::vector<std::pair<std::string, std::string>> prefetch_tuning(const Options& o) {
  std::vector<std::pair<std::string, std::string>> v;
  if (!o.queued_min_messages.empty()) v.emplace_back("queued.min.messages", o.queued_min_messages);
  if (!o.queued_max_kbytes.empty()) v.emplace_back("queued.max.messages.kbytes", o.queued_max_kbytes);
  for (const auto& kv : o.consumer_properties) {
    const auto eq = kv.find('=');
    if (eq != std::string::npos && eq > 0) v.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
  }
  return v;
}

// ------------------------------------------------------------- measurement

double seconds(SteadyClock::duration d) { return std::chrono::duration<double>(d).count(); }

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto tv = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return tv(ru.ru_utime) + tv(ru.ru_stime);
}

// A field of /proc/self/status in kB (VmHWM, VmRSS), or -1.
long proc_status_kb(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::string prefix = std::string(field) + ":";
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) == 0) {
      long kb = -1;
      std::sscanf(line.c_str() + prefix.size(), "%ld", &kb);
      return kb;
    }
  }
  return -1;
}

std::int64_t wall_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Samples VmRSS every `period` on a thread of its own until destroyed. The
// series is reserved up front so sampling does not allocate as it goes.
class RssSampler {
 public:
  explicit RssSampler(std::chrono::milliseconds period) : t0_(SteadyClock::now()) {
    samples_.reserve(20'000);
    thread_ = std::thread([this, period] {
      std::unique_lock l(mutex_);
      while (!stop_) {
        const double t = seconds(SteadyClock::now() - t0_);
        const double mb = static_cast<double>(proc_status_kb("VmRSS")) / 1024.0;
        if (samples_.size() < samples_.capacity()) samples_.emplace_back(t, mb);
        cv_.wait_for(l, period, [this] { return stop_; });
      }
    });
  }
  ~RssSampler() { stop(); }
  void stop() {
    {
      std::lock_guard l(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  json series() {
    stop();
    json a = json::array();
    for (const auto& [t, mb] : samples_) a.push_back({std::round(t * 1000) / 1000, std::round(mb * 10) / 10});
    return a;
  }

 private:
  SteadyClock::time_point t0_;
  std::vector<std::pair<double, double>> samples_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

// Per-record handler wait, derived from (partition, offset) so every system
// waits exactly as long for the same record (bench/rust-prosody computes the
// same function).
std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

struct WaitSpec {
  std::int64_t lo_us = 0;
  std::int64_t hi_us = 0;
  bool any() const { return hi_us > 0; }
  std::int64_t for_record(int partition, std::int64_t offset) const {
    if (hi_us <= lo_us) return lo_us;
    const auto h = splitmix64((static_cast<std::uint64_t>(partition) << 40) ^ static_cast<std::uint64_t>(offset));
    return lo_us + static_cast<std::int64_t>(h % static_cast<std::uint64_t>(hi_us - lo_us + 1));
  }
  double mean_us() const { return static_cast<double>(lo_us + hi_us) / 2.0; }
};

std::optional<WaitSpec> parse_wait(const std::string& s) {
  WaitSpec w;
  if (s == "none") return w;
  long long a = 0, b = 0;
  if (std::sscanf(s.c_str(), "fixed:%lld", &a) == 1 && a >= 0) {
    w.lo_us = w.hi_us = a;
    return w;
  }
  if (std::sscanf(s.c_str(), "uniform:%lld-%lld", &a, &b) == 2 && a >= 0 && b >= a) {
    w.lo_us = a;
    w.hi_us = b;
    return w;
  }
  return std::nullopt;
}

// What a consumer run records. on_start/on_done are called from handler
// threads (raw: the poll thread); the main thread reads after wait().
class Recorder {
 public:
  // capacity[p]: offsets [0, capacity[p]) of partition p are tracked.
  Recorder(std::int64_t expected, const std::vector<std::int64_t>& capacity) : expected_(expected) {
    for (auto c : capacity) {
      const auto words = static_cast<std::size_t>((c + 63) / 64);
      seen_.emplace_back(words);
      capacity_.push_back(c);
    }
  }

  // The handler started on a record; returns false for a duplicate.
  bool on_start(int partition, std::int64_t offset, std::int64_t ts_ms) {
    const std::int64_t now = wall_us();
    if (!started_.load(std::memory_order_acquire)) mark_first();
    if (partition < 0 || static_cast<std::size_t>(partition) >= seen_.size() || offset < 0 ||
        offset >= capacity_[static_cast<std::size_t>(partition)]) {
      unexpected_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    auto& word = seen_[static_cast<std::size_t>(partition)][static_cast<std::size_t>(offset / 64)];
    const std::uint64_t bit = std::uint64_t{1} << (offset % 64);
    if (word.fetch_or(bit, std::memory_order_relaxed) & bit) {
      duplicates_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    const std::int64_t lat_us = now - ts_ms * 1000;
    latency_.record(lat_us);
    // Worst latency per second of the run (by the wall clock of the first
    // record): shows whether a tail is a startup stall or spread out.
    const auto second = static_cast<std::size_t>((now - first_wall_us_.load(std::memory_order_relaxed)) / 1'000'000);
    if (second < max_per_second_.size()) {
      auto& slot = max_per_second_[second];
      std::int64_t cur = slot.load(std::memory_order_relaxed);
      while (lat_us > cur && !slot.compare_exchange_weak(cur, lat_us, std::memory_order_relaxed)) {
      }
    }
    return true;
  }

  // The concurrency the run can reach (min(max_concurrency, keys)); set
  // before the run starts: ramp_s is the time until it is first reached.
  void set_full_concurrency(std::int64_t n) { full_ = n; }

  // Handler concurrency as the handler itself sees it (high-water mark).
  // enter() returns the wall clock it read; leave() takes it back to add the
  // handler's time to the busy total (busy / wall = mean handlers in flight,
  // which tells a slow ramp-up or tail from slow dispatch in between).
  std::int64_t enter() {
    const std::int64_t t = wall_us();
    const std::int64_t now = in_flight_.fetch_add(1, std::memory_order_relaxed) + 1;
    std::int64_t m = max_in_flight_.load(std::memory_order_relaxed);
    while (now > m && !max_in_flight_.compare_exchange_weak(m, now, std::memory_order_relaxed)) {
    }
    if (full_ > 0 && now >= full_ && first_full_us_.load(std::memory_order_relaxed) == 0) {
      std::int64_t unset = 0;
      first_full_us_.compare_exchange_strong(unset, t, std::memory_order_relaxed);
    }
    last_enter_us_.store(t, std::memory_order_relaxed);
    return t;
  }
  void leave(std::int64_t entered_us) {
    in_flight_.fetch_sub(1, std::memory_order_relaxed);
    busy_us_.fetch_add(wall_us() - entered_us, std::memory_order_relaxed);
  }

  // The handler finished a first delivery.
  void on_done() {
    const std::int64_t k = done_.fetch_add(1, std::memory_order_acq_rel) + 1;
    if (k == expected_) {
      std::lock_guard l(mutex_);
      last_at_ = SteadyClock::now();
      last_cpu_ = cpu_seconds();
      finished_ = true;
      cv_.notify_all();
    }
  }

  // Until every expected record is done, or `duration` after the first one,
  // or `timeout` from now. Returns true when all expected records are done.
  bool wait(double duration_s, double timeout_s) {
    const auto deadline = SteadyClock::now() + std::chrono::duration_cast<SteadyClock::duration>(
                                                   std::chrono::duration<double>(timeout_s));
    std::unique_lock l(mutex_);
    for (;;) {
      if (finished_) return true;
      auto until = deadline;
      if (duration_s > 0 && first_set_) {
        until = std::min(until, first_at_ + std::chrono::duration_cast<SteadyClock::duration>(
                                                std::chrono::duration<double>(duration_s)));
      }
      if (SteadyClock::now() >= until) break;
      cv_.wait_until(l, std::min(until, SteadyClock::now() + 100ms));
    }
    last_at_ = SteadyClock::now();
    last_cpu_ = cpu_seconds();
    return false;
  }

  void fill(json& r, SteadyClock::time_point t0, double cpu0) {
    std::lock_guard l(mutex_);
    const std::int64_t done = done_.load();
    r["expected"] = expected_;
    r["handled"] = done;
    r["duplicates"] = duplicates_.load();
    r["unexpected"] = unexpected_.load();
    r["max_in_flight_seen"] = max_in_flight_.load();
    r["handler_busy_s"] = static_cast<double>(busy_us_.load()) / 1e6;
    if (first_set_) {
      const double wall = seconds(last_at_ - first_at_);
      r["startup_s"] = seconds(first_at_ - t0);
      r["wall_s"] = wall;
      r["records_per_s"] = wall > 0 ? static_cast<double>(done) / wall : 0.0;
      if (wall > 0) r["mean_in_flight"] = static_cast<double>(busy_us_.load()) / 1e6 / wall;
      const std::int64_t first_us = first_wall_us_.load();
      // First start -> the full concurrency first reached; last handler
      // start -> the end: the ramp-up and the tail of the run.
      if (const auto full = first_full_us_.load(); full > 0) r["ramp_s"] = static_cast<double>(full - first_us) / 1e6;
      if (const auto last = last_enter_us_.load(); last > 0) r["tail_s"] = wall - static_cast<double>(last - first_us) / 1e6;
      r["cpu_s"] = last_cpu_ - first_cpu_;
      if (done > 0) r["cpu_us_per_record"] = (last_cpu_ - first_cpu_) * 1e6 / static_cast<double>(done);
    }
    r["startup_cpu_s"] = first_set_ ? first_cpu_ - cpu0 : 0.0;
    json lat;
    lat["p50"] = latency_.percentile_us(0.50) / 1000.0;
    lat["p99"] = latency_.percentile_us(0.99) / 1000.0;
    lat["p999"] = latency_.percentile_us(0.999) / 1000.0;
    lat["max"] = static_cast<double>(latency_.max_us()) / 1000.0;
    lat["samples"] = latency_.count();
    lat["negative_clamped"] = latency_.negative();
    r["latency_ms"] = lat;
    if (first_set_) {
      json per_second = json::array();
      const auto secs = std::min<std::size_t>(max_per_second_.size(),
                                              static_cast<std::size_t>(seconds(last_at_ - first_at_)) + 1);
      for (std::size_t i = 0; i < secs; ++i) {
        per_second.push_back(std::round(static_cast<double>(max_per_second_[i].load()) / 100.0) / 10.0);
      }
      r["latency_max_ms_per_second"] = per_second;
    }
  }

 private:
  void mark_first() {
    std::lock_guard l(mutex_);
    if (first_set_) return;
    first_at_ = SteadyClock::now();
    first_wall_us_.store(wall_us(), std::memory_order_relaxed);
    first_cpu_ = cpu_seconds();
    first_set_ = true;
    started_.store(true, std::memory_order_release);
  }

  const std::int64_t expected_;
  std::vector<std::vector<std::atomic<std::uint64_t>>> seen_;
  std::vector<std::int64_t> capacity_;
  LatencyHistogram latency_;
  std::atomic<std::int64_t> done_{0};
  std::atomic<std::int64_t> duplicates_{0};
  std::atomic<std::int64_t> unexpected_{0};
  std::atomic<std::int64_t> in_flight_{0};
  std::atomic<std::int64_t> max_in_flight_{0};
  std::atomic<std::int64_t> busy_us_{0};
  std::int64_t full_ = 0;  // the concurrency the run aims at (0: unknown)
  std::atomic<std::int64_t> first_full_us_{0};
  std::atomic<std::int64_t> last_enter_us_{0};
  std::atomic<bool> started_{false};
  std::atomic<std::int64_t> first_wall_us_{0};
  std::array<std::atomic<std::int64_t>, 3600> max_per_second_{};
  std::mutex mutex_;
  std::condition_variable cv_;
  bool first_set_ = false;
  bool finished_ = false;
  SteadyClock::time_point first_at_{}, last_at_{};
  double first_cpu_ = 0, last_cpu_ = 0;
};

// ------------------------------------------------------------- librdkafka

struct RkDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
using Rk = std::unique_ptr<rd_kafka_t, RkDeleter>;

bool set(rd_kafka_conf_t* conf, const std::string& k, const std::string& v, std::string& error) {
  char err[512];
  if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
    error = "librdkafka property " + k + "=" + v + ": " + err;
    return false;
  }
  return true;
}

void quiet_log(const rd_kafka_t*, int level, const char* fac, const char* buf) {
  if (level <= 3) std::fprintf(stderr, "librdkafka %s: %s\n", fac, buf);
}

Rk make_handle(rd_kafka_type_t type, const std::vector<std::pair<std::string, std::string>>& props,
               std::string& error, void (*dr)(rd_kafka_t*, const rd_kafka_message_t*, void*) = nullptr,
               void* opaque = nullptr) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (const auto& [k, v] : props) {
    if (!set(conf, k, v, error)) {
      rd_kafka_conf_destroy(conf);
      return nullptr;
    }
  }
  rd_kafka_conf_set_log_cb(conf, &quiet_log);
  if (dr) rd_kafka_conf_set_dr_msg_cb(conf, dr);
  if (opaque) rd_kafka_conf_set_opaque(conf, opaque);
  char err[512];
  Rk rk(rd_kafka_new(type, conf, err, sizeof err));  // takes conf on success
  if (!rk) {
    error = std::string("rd_kafka_new: ") + err;
    rd_kafka_conf_destroy(conf);
  }
  return rk;
}

// Partition count and high watermarks of `topic`, via a throwaway producer
// handle (no group, no side effects).
struct Layout {
  int partitions = 0;
  std::vector<std::int64_t> high;
  std::int64_t total() const {
    std::int64_t t = 0;
    for (auto h : high) t += h;
    return t;
  }
};

std::optional<Layout> topic_layout(const std::string& bootstrap, const std::string& topic, std::string& error) {
  Rk rk = make_handle(RD_KAFKA_PRODUCER, {{"bootstrap.servers", bootstrap}, {"client.id", "bench-layout"}}, error);
  if (!rk) return std::nullopt;
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk.get(), topic.c_str(), nullptr);
  const rd_kafka_metadata_t* md = nullptr;
  Layout l;
  for (int attempt = 0; attempt < 50 && l.partitions == 0; ++attempt) {
    if (rd_kafka_metadata(rk.get(), 0, rkt, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR && md) {
      if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR) l.partitions = md->topics[0].partition_cnt;
      rd_kafka_metadata_destroy(md);
      md = nullptr;
    }
    if (l.partitions == 0) std::this_thread::sleep_for(200ms);
  }
  rd_kafka_topic_destroy(rkt);
  if (l.partitions == 0) {
    error = "topic " + topic + " not found on " + bootstrap;
    return std::nullopt;
  }
  for (int p = 0; p < l.partitions; ++p) {
    std::int64_t lo = 0, hi = 0;
    // A topic made a moment ago may still be electing leaders (real Kafka
    // answers "Not leader for partition" for a while): ask again.
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int attempt = 0; attempt < 50; ++attempt) {
      e = rd_kafka_query_watermark_offsets(rk.get(), topic.c_str(), p, &lo, &hi, 10000);
      if (e != RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION && e != RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE &&
          e != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
        break;
      }
      std::this_thread::sleep_for(200ms);
    }
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      error = std::string("watermarks: ") + rd_kafka_err2str(e);
      return std::nullopt;
    }
    l.high.push_back(hi);
  }
  return l;
}

// ---------------------------------------------------------------- payloads

std::string key_for(std::int64_t i, int keys) { return "key-" + std::to_string(i % keys); }

// ~100 bytes of JSON.
std::string payload_for(std::int64_t i) {
  std::string s = R"({"id":")" + std::to_string(i) + R"(","type":"bench.event","seq":)" + std::to_string(i) +
                  R"(,"pad":")";
  const std::size_t target = 100 - 2;
  if (s.size() < target) s.append(target - s.size(), 'x');
  s += "\"}";
  return s;
}

json base_result(const Options& o, const std::string& kind) {
  json r;
  r["kind"] = kind;
  r["system"] = o.system;
  r["topic"] = o.topic;
  r["bootstrap"] = o.bootstrap;
  r["librdkafka_version"] = rd_kafka_version_str();
  r["pid"] = ::getpid();
  return r;
}

void finish(json& r, SteadyClock::time_point t0, double cpu0) {
  r["total_wall_s"] = seconds(SteadyClock::now() - t0);
  r["total_cpu_s"] = cpu_seconds() - cpu0;
  r["peak_rss_mb"] = static_cast<double>(proc_status_kb("VmHWM")) / 1024.0;
}

void touch(const std::string& path) {
  if (path.empty()) return;
  std::ofstream(path) << "ready\n";
}

// ------------------------------------------------------------------ topics

int cmd_topics(const Options& o) {
  std::string error;
  Rk rk = make_handle(RD_KAFKA_PRODUCER, {{"bootstrap.servers", o.bootstrap}, {"client.id", "bench-admin"}}, error);
  if (!rk) {
    std::cerr << error << "\n";
    return 2;
  }
  std::vector<rd_kafka_NewTopic_t*> nts;
  for (const auto& spec : o.topics) {
    const auto colon = spec.rfind(':');
    const std::string name = spec.substr(0, colon);
    const int parts = colon == std::string::npos ? 1 : std::atoi(spec.c_str() + colon + 1);
    char err[256];
    nts.push_back(rd_kafka_NewTopic_new(name.c_str(), parts, 1, err, sizeof err));
    if (!nts.back()) {
      std::cerr << "topic " << spec << ": " << err << "\n";
      return 2;
    }
  }
  rd_kafka_queue_t* q = rd_kafka_queue_new(rk.get());
  rd_kafka_CreateTopics(rk.get(), nts.data(), nts.size(), nullptr, q);
  rd_kafka_event_t* ev = rd_kafka_queue_poll(q, 60000);
  int rc = 0;
  if (!ev || rd_kafka_event_error(ev)) {
    std::cerr << "CreateTopics: " << (ev ? rd_kafka_event_error_string(ev) : "timeout") << "\n";
    rc = 2;
  } else if (const auto* res = rd_kafka_event_CreateTopics_result(ev)) {
    size_t n = 0;
    const rd_kafka_topic_result_t** tr = rd_kafka_CreateTopics_result_topics(res, &n);
    for (size_t i = 0; i < n; ++i) {
      const auto e = rd_kafka_topic_result_error(tr[i]);
      if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        std::cerr << "topic " << rd_kafka_topic_result_name(tr[i]) << ": " << rd_kafka_err2str(e) << "\n";
        rc = 2;
      }
    }
  }
  if (ev) rd_kafka_event_destroy(ev);
  rd_kafka_queue_destroy(q);
  for (auto* t : nts) rd_kafka_NewTopic_destroy(t);
  return rc;
}

// ----------------------------------------------------------------- produce

struct DeliveryCount {
  std::atomic<std::int64_t> ok{0};
  std::atomic<std::int64_t> failed{0};
  // produce() call -> delivery report, the producer's share of a live
  // latency (linger, produce round trip, retries): the latency scenario's
  // consumers cannot be faster than the records reach the broker.
  LatencyHistogram ack_latency;
};

void raw_dr(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto* d = static_cast<DeliveryCount*>(opaque);
  if (m->err) {
    if (d->failed.fetch_add(1) < 5) std::cerr << "delivery failed: " << rd_kafka_err2str(m->err) << "\n";
  } else {
    d->ok.fetch_add(1, std::memory_order_relaxed);
    // The opaque is the produce() time (0 for records sent without one).
    if (m->_private) d->ack_latency.record(wall_us() - static_cast<std::int64_t>(reinterpret_cast<std::intptr_t>(m->_private)));
  }
}

// Paces a producer loop at `rate` records/s (0 = no pacing): returns how
// many records may be sent by now, sleeping briefly when ahead.
class Pacer {
 public:
  Pacer(double rate, std::int64_t total) : rate_(rate), total_(total), t0_(SteadyClock::now()) {}
  std::int64_t allowed() {
    if (rate_ <= 0) return total_;
    for (;;) {
      const auto n = std::min<std::int64_t>(total_, static_cast<std::int64_t>(seconds(SteadyClock::now() - t0_) * rate_) + 1);
      if (n > sent_) return n;
      // A millisecond's worth per wake-up (20 records at 20k/s): the same
      // offered load with a fifth of the wake-ups of the 200 µs step this
      // replaced, which cost the load generator CPU the consumers need.
      std::this_thread::sleep_for(1ms);
    }
  }
  void sent(std::int64_t n) { sent_ = n; }

 private:
  double rate_;
  std::int64_t total_;
  SteadyClock::time_point t0_;
  std::int64_t sent_ = 0;
};

json produce_raw(const Options& o) {
  json r = base_result(o, "produce");
  DeliveryCount d;
  std::vector<std::pair<std::string, std::string>> props = {
      {"bootstrap.servers", o.bootstrap}, {"client.id", "bench-raw-producer"}, {"enable.idempotence", "true"},
      {"compression.codec", o.compression}, {"partitioner", "murmur2_random"}};
  for (const auto& kv : producer_tuning(o)) props.push_back(kv);
  std::string error;
  const auto t0 = SteadyClock::now();
  const double cpu0 = cpu_seconds();
  Rk rk = make_handle(RD_KAFKA_PRODUCER, props, error, &raw_dr, &d);
  if (!rk) {
    r["error"] = error;
    return r;
  }
  // The topic handle is kept for the loop (the fastest way to produce: no
  // per-record lookup of the name), as prosody-cpp's producer does.
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk.get(), o.topic.c_str(), nullptr);
  // Released before the handle (also on the early error returns below).
  struct TopicRelease {
    void operator()(rd_kafka_topic_t* p) const { rd_kafka_topic_destroy(p); }
  };
  std::unique_ptr<rd_kafka_topic_t, TopicRelease> topic_owner(rkt);
  const std::string& header = o.source_system_header;
  r["source_system_header"] = !header.empty();
  auto make_headers = [&header]() -> rd_kafka_headers_t* {
    if (header.empty()) return nullptr;
    rd_kafka_headers_t* h = rd_kafka_headers_new(1);
    rd_kafka_header_add(h, "source-system", -1, header.data(), static_cast<ssize_t>(header.size()));
    return h;
  };
  // Warm-up, not timed: the same acknowledged record produce_cpp sends first
  // (metadata, the idempotent producer id), so both leave the same records in
  // the topic and neither times its first metadata and PID round trips.
  if (o.warmup && o.rate <= 0) {
    const std::string wkey = "warmup", wvalue = R"({"warmup":true})";
    rd_kafka_headers_t* wh = make_headers();
    const auto e = rd_kafka_producev(rk.get(), RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                     RD_KAFKA_V_KEY(wkey.data(), wkey.size()),
                                     RD_KAFKA_V_VALUE(const_cast<char*>(wvalue.data()), wvalue.size()),
                                     RD_KAFKA_V_HEADERS(wh), RD_KAFKA_V_END);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (wh) rd_kafka_headers_destroy(wh);
      r["error"] = std::string("warm-up producev: ") + rd_kafka_err2str(e);
      return r;
    }
    if (rd_kafka_flush(rk.get(), 30000) != RD_KAFKA_RESP_ERR_NO_ERROR || d.ok.load() != 1) {
      r["error"] = "warm-up record not acknowledged";
      return r;
    }
    d.ok.store(0);
  }

  const auto s0 = SteadyClock::now();
  const double c0 = cpu_seconds();
  Pacer pacer(o.rate, o.records);
  std::int64_t queue_full = 0;
  std::int64_t i = 0;
  while (i < o.records) {
    const std::int64_t until = pacer.allowed();
    for (; i < until; ++i) {
      const std::string key = key_for(i, o.keys);
      const std::string value = payload_for(i);
      // Built per record, as a raw librdkafka user would.
      rd_kafka_headers_t* hdrs = make_headers();
      // When it was handed to librdkafka (for ack_latency_ms). Paced runs
      // only: the unpaced `produce` baseline must not pay two clock reads
      // per record that prosody-cpp's run does not.
      void* const stamp = o.rate > 0 ? reinterpret_cast<void*>(static_cast<std::intptr_t>(wall_us())) : nullptr;
      for (;;) {
        // librdkafka takes the headers only when the call succeeds.
        const auto e = rd_kafka_producev(rk.get(), RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                         RD_KAFKA_V_KEY(key.data(), key.size()),
                                         RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                                         RD_KAFKA_V_HEADERS(hdrs),
                                         RD_KAFKA_V_OPAQUE(stamp), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) break;
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
          if (hdrs) rd_kafka_headers_destroy(hdrs);
          r["error"] = std::string("producev: ") + rd_kafka_err2str(e);
          return r;
        }
        ++queue_full;
        rd_kafka_poll(rk.get(), 5);
      }
      if ((i & 1023) == 0) rd_kafka_poll(rk.get(), 0);
    }
    // Paced: serve delivery reports every round (once a millisecond), so
    // ack_latency_ms is not the 1024-record poll interval (~50 ms at 20k/s).
    if (o.rate > 0) rd_kafka_poll(rk.get(), 0);
    pacer.sent(i);
  }
  const auto fe = rd_kafka_flush(rk.get(), 300000);
  const double wall = seconds(SteadyClock::now() - s0);
  r["wall_s"] = wall;
  r["cpu_s"] = cpu_seconds() - c0;
  r["records_per_s"] = static_cast<double>(o.records) / wall;
  r["cpu_us_per_record"] = (cpu_seconds() - c0) * 1e6 / static_cast<double>(o.records);
  r["queue_full_retries"] = queue_full;
  if (o.rate > 0) {  // only paced runs stamp their records
    r["ack_latency_ms"] = {{"p50", d.ack_latency.percentile_us(0.50) / 1000.0},
                           {"p99", d.ack_latency.percentile_us(0.99) / 1000.0},
                           {"max", static_cast<double>(d.ack_latency.max_us()) / 1000.0}};
  }
  r["linger_ms"] = o.linger_ms;
  r["compression"] = o.compression;
  r["delivered"] = d.ok.load();
  r["failed"] = d.failed.load();
  r["complete"] = fe == RD_KAFKA_RESP_ERR_NO_ERROR && d.ok.load() == o.records;
  topic_owner.reset();
  rk.reset();
  finish(r, t0, cpu0);
  return r;
}

prosody::Config cpp_base_config(const Options& o) {
  prosody::Config c;
  c.with_bootstrap_servers(std::string_view(o.bootstrap)).with_probe_port(std::nullopt);
  return c;
}

json produce_cpp(const Options& o) {
  json r = base_result(o, "produce");
  const auto t0 = SteadyClock::now();
  const double cpu0 = cpu_seconds();
  prosody::Config c = cpp_base_config(o);
  c.with_source_system("bench-producer").with_client_id("bench-cpp-producer");
  if (o.idempotence_cache_size >= 0) c.with_idempotence_cache_size(o.idempotence_cache_size);
  for (const auto& [k, v] : producer_tuning(o)) c.with_kafka_property(k, v);
  auto client = prosody::Client::create(c);
  auto producer = client->producer();
  if (!producer) {
    r["error"] = producer.error().message();
    return r;
  }
  // One acknowledged send first (metadata, producer id), like the raw side's
  // metadata warm-up; it is not counted.
  if (auto w = (*producer)->send(o.topic, "warmup", R"({"warmup":true})"); !w) {
    r["error"] = "warm-up send: " + w.error().message();
    return r;
  }
  std::atomic<std::int64_t> ok{0}, failed{0};
  const prosody::Headers no_headers;
  const auto s0 = SteadyClock::now();
  const double c0 = cpu_seconds();
  Pacer pacer(o.rate, o.records);
  std::int64_t enqueue_errors = 0;
  std::int64_t i = 0;
  while (i < o.records) {
    const std::int64_t until = pacer.allowed();
    for (; i < until; ++i) {
      prosody::DeliveryCallback on_delivery;
      if (!o.fire_and_forget) {
        on_delivery = [&ok, &failed](prosody::Result<prosody::Delivery> d) {
          if (d) ok.fetch_add(1, std::memory_order_relaxed);
          else failed.fetch_add(1, std::memory_order_relaxed);
        };
      }
      auto s = (*producer)->send_async(o.topic, key_for(i, o.keys), payload_for(i), no_headers, std::move(on_delivery));
      if (!s && ++enqueue_errors <= 5) std::cerr << "send_async: " << s.error().message() << "\n";
    }
    pacer.sent(i);
  }
  const auto fs = (*producer)->flush(300s);
  const double wall = seconds(SteadyClock::now() - s0);
  r["wall_s"] = wall;
  r["cpu_s"] = cpu_seconds() - c0;
  r["records_per_s"] = static_cast<double>(o.records) / wall;
  r["cpu_us_per_record"] = (cpu_seconds() - c0) * 1e6 / static_cast<double>(o.records);
  r["enqueue_errors"] = enqueue_errors;
  r["fire_and_forget"] = o.fire_and_forget;
  r["idempotence_cache_size"] = c.idempotence_cache_size();
  // Without callbacks a flush that empties the queue is the only signal:
  // every record was either delivered or failed, and failures are not seen.
  if (o.fire_and_forget && fs) ok.store(o.records - enqueue_errors);
  r["linger_ms"] = o.linger_ms;
  r["delivered"] = ok.load();
  r["failed"] = failed.load();
  r["complete"] = static_cast<bool>(fs) && ok.load() == o.records;
  client.reset();
  finish(r, t0, cpu0);
  return r;
}

// ----------------------------------------------------------------- consume

std::vector<std::int64_t> capacities(const Options& o, const Layout& l, bool live) {
  std::vector<std::int64_t> c;
  for (int p = 0; p < l.partitions; ++p) {
    c.push_back(live ? l.high[static_cast<std::size_t>(p)] + o.records : l.high[static_cast<std::size_t>(p)]);
  }
  return c;
}

// The handler's simulated I/O wait. Linux lets a sleeping thread oversleep
// by its timer slack (50 us by default) so wake-ups can be coalesced: a 2.5 ms
// sleep measured 69 us long on average here, 2.8 % of the wait, which the
// io and keyspace ideals (nominal wait x concurrency) would count against the
// consumer. Real I/O completes on an event, not a timer, and has no slack;
// 1 ns slack (18 us oversleep) brings the simulation close to that. Set once
// per thread, for raw and prosody-cpp alike (Prosody Rust waits on tokio's
// timer, which has 1 ms granularity).
void sleep_us(std::int64_t us) {
  if (us <= 0) return;
  thread_local const bool precise = prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL) == 0;
  (void)precise;
  std::this_thread::sleep_for(std::chrono::microseconds(us));
}

// The raw librdkafka consumer: one thread, batches of up to 512 from the
// consumer queue (prosody reads 512 at a time too) taken without waiting, the
// highest offset of
// each partition in the batch stored after it, librdkafka auto-committing
// the stored offsets every second (prosody's commit_interval).
json consume_raw(const Options& o, const Layout& layout, bool live, const WaitSpec& wait) {
  json r = base_result(o, "consume");
  r["mode"] = "raw";
  const auto t0 = SteadyClock::now();
  const double cpu0 = cpu_seconds();
  RssSampler rss(std::chrono::milliseconds(static_cast<int>(o.rss_sample_ms)));
  const std::int64_t expected = live ? o.records : (o.records > 0 ? std::min(o.records, layout.total()) : layout.total());
  Recorder rec(expected, capacities(o, layout, live));
  std::vector<std::pair<std::string, std::string>> props = {
      {"bootstrap.servers", o.bootstrap},
      {"group.id", o.group},
      {"client.id", "bench-raw-consumer"},
      {"enable.auto.commit", "true"},
      {"auto.commit.interval.ms", "1000"},
      {"enable.auto.offset.store", "false"},
      {"auto.offset.reset", "earliest"},
      {"partition.assignment.strategy", "cooperative-sticky"},
      {"enable.partition.eof", "false"},
  };
  // librdkafka applies queued.min.messages and queued.max.messages.kbytes
  // to the queue a partition's records land in. prosody-cpp reads each
  // partition's own queue, so each gets the full prefetch; raw reads the one
  // consumer queue all partitions are forwarded to, and would get 1/N of it.
  // Worse, librdkafka 2.0 stops fetching a partition for a fixed 1 s whenever
  // its queue is over the threshold (fetch.queue.backoff.ms arrives in 2.1),
  // and the shared queue crosses it all the time: raw's noop rate swung
  // 0.5-3.4M rec/s between runs on the mock, 0.5-0.9M whenever it stalled.
  // With the thresholds multiplied by the partition count both clients
  // prefetch the same (3.0M rec/s in 3 of 3 runs).
  for (auto [k, v] : prefetch_tuning(o)) {
    if (k == "queued.min.messages" || k == "queued.max.messages.kbytes") {
      std::int64_t n = 0;
      const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
      if (ec != std::errc() || end != v.data() + v.size() || n <= 0) {
        r["error"] = k + " must be a positive integer, got '" + v + "'";
        return r;
      }
      v = std::to_string(n * layout.partitions);
    }
    props.emplace_back(std::move(k), std::move(v));
  }
  r["extra_properties"] = o.consumer_properties;
  r["prefetch_scaled_by_partitions"] = layout.partitions;
  std::string error;
  Rk rk = make_handle(RD_KAFKA_CONSUMER, props, error);
  if (!rk) {
    r["error"] = error;
    return r;
  }
  rd_kafka_poll_set_consumer(rk.get());
  rd_kafka_topic_partition_list_t* sub = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(sub, o.topic.c_str(), RD_KAFKA_PARTITION_UA);
  const auto se = rd_kafka_subscribe(rk.get(), sub);
  rd_kafka_topic_partition_list_destroy(sub);
  if (se) {
    r["error"] = std::string("subscribe: ") + rd_kafka_err2str(se);
    return r;
  }
  rd_kafka_queue_t* q = rd_kafka_queue_get_consumer(rk.get());
  std::atomic<bool> stop{false};
  std::atomic<bool> ready{false};
  std::thread poller([&] {
    constexpr int kBatch = 512;
    rd_kafka_message_t* batch[kBatch];
    std::vector<std::int64_t> top(static_cast<std::size_t>(layout.partitions), -1);
    rd_kafka_topic_partition_list_t* store = rd_kafka_topic_partition_list_new(layout.partitions);
    for (int p = 0; p < layout.partitions; ++p) rd_kafka_topic_partition_list_add(store, o.topic.c_str(), p);
    while (!stop.load(std::memory_order_relaxed)) {
      // Take what is there without waiting; only when nothing is, block for
      // the next single record. (A blocking batch call waits until the batch
      // is full or the timeout passes, which would add up to 100 ms of
      // latency to a live stream.)
      auto n = rd_kafka_consume_batch_queue(q, 0, batch, kBatch);
      if (n == 0) n = rd_kafka_consume_batch_queue(q, 100, batch, 1);
      if (!ready.load(std::memory_order_relaxed)) {
        rd_kafka_topic_partition_list_t* a = nullptr;
        if (rd_kafka_assignment(rk.get(), &a) == RD_KAFKA_RESP_ERR_NO_ERROR && a) {
          if (a->cnt == layout.partitions) ready.store(true);
          rd_kafka_topic_partition_list_destroy(a);
        }
      }
      if (n <= 0) continue;
      bool any = false;
      for (ssize_t i = 0; i < n; ++i) {
        rd_kafka_message_t* m = batch[i];
        if (m->err) {
          if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) std::cerr << "consumer error: " << rd_kafka_message_errstr(m) << "\n";
        } else {
          const bool first = rec.on_start(m->partition, m->offset, rd_kafka_message_timestamp(m, nullptr));
          if (wait.any()) sleep_us(wait.for_record(m->partition, m->offset));
          if (first) rec.on_done();
          if (m->partition >= 0 && m->partition < layout.partitions) {
            top[static_cast<std::size_t>(m->partition)] = m->offset;
            any = true;
          }
        }
        rd_kafka_message_destroy(m);
      }
      if (any) {
        for (int p = 0; p < layout.partitions; ++p) {
          store->elems[p].offset = top[static_cast<std::size_t>(p)] >= 0 ? top[static_cast<std::size_t>(p)] + 1 : RD_KAFKA_OFFSET_INVALID;
        }
        (void)rd_kafka_offsets_store(rk.get(), store);
      }
    }
    rd_kafka_topic_partition_list_destroy(store);
  });
  while (!ready.load() && SteadyClock::now() - t0 < 120s) std::this_thread::sleep_for(20ms);
  touch(o.ready_file);
  const bool done = rec.wait(o.duration_s, o.timeout_s);
  stop.store(true);
  poller.join();
  rd_kafka_queue_destroy(q);
  const auto c0 = SteadyClock::now();
  rd_kafka_consumer_close(rk.get());
  rk.reset();
  r["shutdown_s"] = seconds(SteadyClock::now() - c0);
  rec.fill(r, t0, cpu0);
  r["complete"] = done || o.duration_s > 0;
  r["rss_mb_series"] = rss.series();
  finish(r, t0, cpu0);
  return r;
}

class BenchHandler final : public prosody::EventHandler {
 public:
  BenchHandler(Recorder& rec, WaitSpec wait) : rec_(rec), wait_(wait) {}
  prosody::HandlerResult on_message(prosody::Context&, const prosody::Message& m) override {
    const int p = m.partition().value();
    const std::int64_t off = m.offset().value();
    const bool first =
        rec_.on_start(p, off, std::chrono::duration_cast<std::chrono::milliseconds>(m.timestamp().time_since_epoch()).count());
    const std::int64_t entered = rec_.enter();
    if (wait_.any()) sleep_us(wait_.for_record(p, off));
    rec_.leave(entered);
    if (first) rec_.on_done();
    return prosody::ok_status();
  }

 private:
  Recorder& rec_;
  WaitSpec wait_;
};

json consume_cpp(const Options& o, const Layout& layout, bool live, const WaitSpec& wait) {
  json r = base_result(o, "consume");
  r["mode"] = o.mode;
  const auto t0 = SteadyClock::now();
  const double cpu0 = cpu_seconds();
  RssSampler rss(std::chrono::milliseconds(static_cast<int>(o.rss_sample_ms)));
  const std::int64_t expected = live ? o.records : (o.records > 0 ? std::min(o.records, layout.total()) : layout.total());
  Recorder rec(expected, capacities(o, layout, live));
  auto mode = prosody::Mode::pipeline;
  if (o.mode == "low_latency") mode = prosody::Mode::low_latency;
  else if (o.mode == "best_effort") mode = prosody::Mode::best_effort;
  prosody::Config c = cpp_base_config(o);
  c.with_group_id(o.group)
      .with_subscribed_topics(std::vector<std::string>{o.topic})
      .with_mode(mode)
      .with_source_system("bench-consumer")
      .with_client_id("bench-cpp-consumer");
  if (mode == prosody::Mode::low_latency) c.with_failure_topic("bench-failures");
  if (o.concurrency > 0) c.with_max_concurrency(o.concurrency);
  if (o.max_uncommitted > 0) c.with_max_uncommitted(o.max_uncommitted);
  if (o.idempotence_cache_size >= 0) c.with_idempotence_cache_size(o.idempotence_cache_size);
  // Timer, defer and dedup SQLite files in a state dir of the run's own,
  // removed afterwards: runs neither share nor accumulate ids.
  const auto state_dir = std::filesystem::temp_directory_path() /
                         ("prosody-bench-state-" + std::to_string(::getpid()) + "-" + o.group);
  c.with_state_dir(state_dir.string());
  struct RemoveAfter {
    std::filesystem::path dir;
    ~RemoveAfter() {
      std::error_code ignored;
      std::filesystem::remove_all(dir, ignored);
    }
  } remove_state_dir{state_dir};
  for (const auto& [k, v] : prefetch_tuning(o)) c.with_kafka_property(k, v);
  r["extra_properties"] = o.consumer_properties;
  r["max_concurrency"] = c.max_concurrency();
  rec.set_full_concurrency(c.max_concurrency());  // fewer keys never reach it: no ramp_s then
  r["max_uncommitted"] = c.max_uncommitted();
  r["idempotence_cache_size"] = c.idempotence_cache_size();
  r["max_enqueued_per_key"] = c.max_enqueued_per_key();
  auto client = prosody::Client::create(c);
  if (auto s = client->subscribe(std::make_shared<BenchHandler>(rec, wait)); !s) {
    r["error"] = "subscribe: " + s.error().message();
    return r;
  }
  while (client->assigned_partition_count() < static_cast<std::size_t>(layout.partitions) && SteadyClock::now() - t0 < 120s) {
    std::this_thread::sleep_for(20ms);
  }
  touch(o.ready_file);
  const bool done = rec.wait(o.duration_s, o.timeout_s);
  const auto st = client->stats();
  const auto c0 = SteadyClock::now();
  if (auto s = client->unsubscribe(); !s) r["shutdown_error"] = s.error().message();
  client.reset();
  r["shutdown_s"] = seconds(SteadyClock::now() - c0);
  rec.fill(r, t0, cpu0);
  r["complete"] = done || o.duration_s > 0;
  r["stats"] = {{"received", st.received},       {"handled", st.handled},
                {"failed", st.failed},           {"pauses", st.pauses},
                {"resumes", st.resumes},         {"rebalances", st.rebalances},
                {"max_uncommitted_seen", st.max_uncommitted_seen},
                {"max_in_flight_seen", st.max_in_flight_seen},
                {"deduplicated", st.deduplicated},
                {"dedup_store_errors", st.dedup_store_errors}};
  r["rss_mb_series"] = rss.series();
  finish(r, t0, cpu0);
  return r;
}

int emit(const json& r) {
  std::cout << r.dump() << std::endl;
  if (r.contains("error")) return 2;
  return r.value("complete", false) ? 0 : 1;
}

// ------------------------------------------------------------------- smoke

// Every path above on the in-process mock cluster with tiny sizes: keeps the
// driver compiling and running in CI. No timing assertions.
int cmd_smoke() {
  auto& cluster = prosody::kafka::MockCluster::instance();
  Options o;
  o.bootstrap = cluster.bootstrap_servers();
  if (o.bootstrap.empty()) {
    std::cerr << "smoke: no mock cluster\n";
    return 2;
  }
  for (const auto& t : {"smoke-in", "smoke-out", "bench-failures"}) {
    if (auto s = cluster.create_topic(t, t == std::string("bench-failures") ? 1 : 4); !s) {
      std::cerr << s.error().message() << "\n";
      return 2;
    }
  }
  o.records = 600;
  o.keys = 50;
  o.topic = "smoke-in";
  o.system = "raw";
  o.linger_ms = "1";
  o.timeout_s = 60;
  int rc = 0;
  auto step = [&](const char* name, json r) {
    const bool ok = !r.contains("error") && r.value("complete", false);
    std::cerr << "smoke " << name << ": " << (ok ? "ok" : "FAILED") << " " << r.dump().substr(0, 300) << "\n";
    if (!ok) rc = 1;
  };
  o.warmup = false;
  step("preload", produce_raw(o));
  std::string error;
  auto layout = topic_layout(o.bootstrap, o.topic, error);
  if (!layout || layout->total() != o.records) {
    std::cerr << "smoke: layout " << error << "\n";
    return 1;
  }
  o.records = 0;
  o.group = "smoke-raw";
  step("consume raw", consume_raw(o, *layout, false, WaitSpec{}));
  o.system = "cpp";
  o.group = "smoke-cpp";
  o.concurrency = 8;
  step("consume cpp pipeline uniform:0-1000", consume_cpp(o, *layout, false, WaitSpec{0, 1000}));
  o.topic = "smoke-out";
  o.records = 300;
  step("produce cpp", produce_cpp(o));
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"prosody-cpp benchmark driver: one run per process (see bench/README.md)"};
  app.require_subcommand(1);
  auto add_common = [&](CLI::App* c) {
    c->add_option("--bootstrap", o.bootstrap, "bootstrap servers")->required();
    c->add_option("--topic", o.topic, "topic")->required();
  };
  auto* topics = app.add_subcommand("topics", "create topics (name:partitions), replication factor 1");
  topics->add_option("--bootstrap", o.bootstrap, "bootstrap servers")->required();
  topics->add_option("--topic", o.topics, "name:partitions (repeatable)")->required();

  auto add_producer = [&](CLI::App* c) {
    c->add_option("--records", o.records, "records to produce")->required()->check(CLI::PositiveNumber);
    c->add_option("--keys", o.keys, "distinct keys (key-<i mod K>)")->check(CLI::PositiveNumber);
    c->add_option("--linger-ms", o.linger_ms, "producer linger.ms");
    c->add_option("--rate", o.rate, "records/s (0 = as fast as possible)");
  };
  auto* preload = app.add_subcommand("preload", "fill a topic with the raw producer (= produce --system raw)");
  add_common(preload);
  add_producer(preload);
  auto* produce = app.add_subcommand("produce", "produce N records with one system");
  add_common(produce);
  add_producer(produce);
  produce->add_option("--system", o.system, "raw | cpp")->check(CLI::IsMember({"raw", "cpp"}));
  produce->add_option("--source-system-header", o.source_system_header,
                      "raw: send this `source-system` header on every record (prosody-cpp always sends one)");
  produce->add_option("--compression", o.compression, "raw: compression.codec (default lz4, as prosody-cpp)");
  produce->add_option("--idempotence-cache-size", o.idempotence_cache_size,
                      "cpp: idempotence_cache_size, the producer's memory of delivered ids (-1 = default 8192; 0 = "
                      "every send goes out)");
  produce->add_flag("--fire-and-forget", o.fire_and_forget,
                    "cpp: send_async without a delivery callback (delivery inferred from a successful flush)");

  auto* consume = app.add_subcommand("consume", "consume a topic with one system until done");
  add_common(consume);
  consume->add_option("--system", o.system, "raw | cpp")->check(CLI::IsMember({"raw", "cpp"}));
  consume->add_option("--mode", o.mode, "prosody mode")->check(CLI::IsMember({"pipeline", "low_latency", "best_effort"}));
  consume->add_option("--group", o.group, "consumer group (default: unique)");
  consume->add_option("--records", o.records,
                      "records to expect: with --live, records the producer will add; else 0 = the topic's size");
  bool live = false;
  consume->add_flag("--live", live, "records are produced while we consume (latency scenario)");
  consume->add_option("--wait", o.wait, "handler wait: none | fixed:US | uniform:LO-HI (microseconds)");
  consume->add_option("--concurrency", o.concurrency, "prosody max_concurrency (0 = default)");
  consume->add_option("--max-uncommitted", o.max_uncommitted, "prosody max_uncommitted (0 = default)");
  consume->add_option("--idempotence-cache-size", o.idempotence_cache_size,
                      "prosody idempotence_cache_size (-1 = default 8192; 0 = no deduplication)");
  consume->add_option("--duration", o.duration_s, "stop this many seconds after the first record (0 = until done)");
  consume->add_option("--timeout", o.timeout_s, "give up after this many seconds");
  consume->add_option("--ready-file", o.ready_file, "touched once all partitions are assigned");
  consume->add_option("--rss-sample-ms", o.rss_sample_ms, "VmRSS sampling period");
  consume->add_option("--queued-min-messages", o.queued_min_messages, "consumer queued.min.messages (raw and cpp)");
  consume->add_option("--queued-max-kbytes", o.queued_max_kbytes, "consumer queued.max.messages.kbytes (raw and cpp)");
  consume->add_option("--property", o.consumer_properties, "extra consumer property K=V (raw and cpp; repeatable)");
  auto* smoke = app.add_subcommand("smoke", "tiny run of every path on the in-process mock cluster (CTest)");
  CLI11_PARSE(app, argc, argv);

  prosody::logger()->set_level(spdlog::level::warn);

  if (*smoke) return cmd_smoke();
  if (*topics) return cmd_topics(o);
  if (*preload) {
    o.system = "raw";
    o.warmup = false;
    return emit(produce_raw(o));
  }
  if (*produce) return emit(o.system == "raw" ? produce_raw(o) : produce_cpp(o));

  const auto wait = parse_wait(o.wait);
  if (!wait) {
    std::cerr << "bad --wait '" << o.wait << "'\n";
    return 2;
  }
  if (o.group.empty()) o.group = "bench-" + o.system + "-" + o.mode + "-" + std::to_string(::getpid());
  if (live && o.records <= 0) {
    std::cerr << "--live needs --records\n";
    return 2;
  }
  std::string error;
  const auto layout = topic_layout(o.bootstrap, o.topic, error);
  if (!layout) {
    std::cerr << error << "\n";
    return 2;
  }
  json r = o.system == "raw" ? consume_raw(o, *layout, live, *wait) : consume_cpp(o, *layout, live, *wait);
  r["group"] = o.group;
  r["wait"] = o.wait;
  r["wait_mean_us"] = wait->mean_us();
  r["partitions"] = layout->partitions;
  return emit(r);
}
