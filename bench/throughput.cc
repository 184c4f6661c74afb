// prosody-bench-throughput: produce and consume throughput of prosody-cpp
// against raw librdkafka, in one process, on the in-process librdkafka mock
// cluster (see bench/README.md for what each scenario measures and the
// caveats).
//
//   prosody-bench-throughput --records 1000000 --keys 10000 --out bench/results/throughput.json
//
// Exit status: 0 when every scenario saw every record, 1 otherwise, 2 on a
// setup error.
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <librdkafka/rdkafka.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "kafka/mock_cluster.h"
#include "prosody/prosody.h"

#ifndef PROSODY_BENCH_BUILD_TYPE
#define PROSODY_BENCH_BUILD_TYPE "unknown"
#endif

namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr int kPartitions = 8;

// ------------------------------------------------------------------ settings

struct Params {
  std::int64_t records = 1'000'000;
  int keys = 10'000;
  std::string out = "bench/results/throughput.json";
  int max_concurrency = 0;  // 0 = the library default
  double timeout_s = 600;   // per scenario
  std::string linger_ms = "5";
  std::string batch_num_messages = "10000";
  std::string batch_size = "1000000";
  std::string queue_buffering_max_messages = "100000";
  // Consumer prefetch limits, applied to the raw consumer and (as kafka
  // pass-through properties) to prosody; the defaults are prosody's.
  std::string queued_min_messages = "10000";
  std::string queued_max_kbytes = "4096";
  // Scenarios to run besides the preload (raw produce), which always runs.
  std::vector<std::string> only;
  bool wants(const std::string& name) const {
    return only.empty() || std::find(only.begin(), only.end(), name) != only.end();
  }
};

// Producer settings shared by the raw producer and prosody's (prosody's
// defaults are in src/kafka/client_config.cc: idempotence, lz4, murmur2).
std::vector<std::pair<std::string, std::string>> producer_tuning(const Params& p) {
  return {{"linger.ms", p.linger_ms},
          {"batch.num.messages", p.batch_num_messages},
          {"batch.size", p.batch_size},
          {"queue.buffering.max.messages", p.queue_buffering_max_messages}};
}

// ------------------------------------------------------------- measurement

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto tv = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return tv(ru.ru_utime) + tv(ru.ru_stime);
}

// A field of /proc/self/status in kB (VmHWM, VmRSS), or -1.
long proc_status_kb(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) {
      long kb = -1;
      std::sscanf(line.c_str() + field.size() + 1, "%ld", &kb);
      return kb;
    }
  }
  return -1;
}

// Resets VmHWM to the current RSS (Linux >= 4.0), so each scenario reports
// its own peak. Returns false if the kernel refused.
bool reset_peak_rss() {
  std::ofstream out("/proc/self/clear_refs");
  if (!out) return false;
  out << "5";
  out.flush();
  return static_cast<bool>(out);
}

std::int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Everything a consumer scenario records. Written concurrently by handler
// threads; read by the main thread once `done` is set (or on timeout).
class Recorder {
 public:
  // `partition_sizes[p]` = records preloaded in partition p, at offsets
  // [base[p], base[p] + size[p]).
  Recorder(std::int64_t expected, const std::vector<std::int64_t>& base, const std::vector<std::int64_t>& size)
      : expected_(expected), base_(base), latency_us_(static_cast<std::size_t>(expected)) {
    for (auto s : size) seen_.emplace_back(std::make_unique<std::atomic<bool>[]>(static_cast<std::size_t>(s)));
    size_ = size;
  }

  // One record delivered to user code. `ts_ms` is the record timestamp.
  void on_record(int partition, std::int64_t offset, std::int64_t ts_ms) {
    const std::int64_t now = now_us();
    if (!started_.load(std::memory_order_acquire)) {
      std::lock_guard l(mutex_);
      if (!started_.load(std::memory_order_relaxed)) {
        first_at_ = Clock::now();
        first_cpu_ = cpu_seconds();
        started_.store(true, std::memory_order_release);
      }
    }
    if (partition < 0 || partition >= static_cast<int>(seen_.size())) {
      unexpected_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    const auto p = static_cast<std::size_t>(partition);
    const std::int64_t i = offset - base_[p];
    if (i < 0 || i >= size_[p]) {
      unexpected_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    if (seen_[p][static_cast<std::size_t>(i)].exchange(true, std::memory_order_relaxed)) {
      duplicates_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    const std::int64_t k = distinct_.fetch_add(1, std::memory_order_acq_rel);
    latency_us_[static_cast<std::size_t>(k)] = now - ts_ms * 1000;
    if (k + 1 == expected_) {
      std::lock_guard l(mutex_);
      last_at_ = Clock::now();
      last_cpu_ = cpu_seconds();
      done_ = true;
      cv_.notify_all();
    }
  }

  bool wait(std::chrono::duration<double> timeout) {
    std::unique_lock l(mutex_);
    return cv_.wait_for(l, timeout, [&] { return done_; });
  }

  std::int64_t distinct() const { return distinct_.load(); }
  std::int64_t duplicates() const { return duplicates_.load(); }
  std::int64_t unexpected() const { return unexpected_.load(); }
  bool started() const { return started_.load(); }
  Clock::time_point first_at() const { return first_at_; }
  Clock::time_point last_at() const { return last_at_; }
  double first_cpu() const { return first_cpu_; }
  double last_cpu() const { return last_cpu_; }

  // p50/p99/p999/max in milliseconds over the recorded latencies. Call
  // only once no more records can arrive (the consumer is closed).
  json latency_ms() {
    const auto n = std::min<std::int64_t>(distinct_.load(), expected_);
    if (n <= 0) return json::object();
    std::vector<std::int64_t> v(latency_us_.begin(), latency_us_.begin() + n);
    auto pct = [&](double q) {
      const auto k = std::min<std::size_t>(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size())));
      std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
      return static_cast<double>(v[k]) / 1000.0;
    };
    json j;
    j["p50"] = pct(0.50);
    j["p99"] = pct(0.99);
    j["p999"] = pct(0.999);
    j["max"] = static_cast<double>(*std::max_element(v.begin(), v.end())) / 1000.0;
    j["samples"] = n;
    return j;
  }

 private:
  const std::int64_t expected_;
  const std::vector<std::int64_t> base_;
  std::vector<std::int64_t> size_;
  std::vector<std::unique_ptr<std::atomic<bool>[]>> seen_;
  std::vector<std::int64_t> latency_us_;
  std::atomic<std::int64_t> distinct_{0};
  std::atomic<std::int64_t> duplicates_{0};
  std::atomic<std::int64_t> unexpected_{0};
  std::atomic<bool> started_{false};
  std::mutex mutex_;
  // Written once under mutex_ (first_*: before started_ is released;
  // last_*: before done_), read by the main thread after wait().
  Clock::time_point first_at_{};
  Clock::time_point last_at_{};
  double first_cpu_ = 0;
  double last_cpu_ = 0;
  std::condition_variable cv_;
  bool done_ = false;
};

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Wall, CPU and memory of one scenario, around everything it does.
struct Span {
  bool rss_reset = reset_peak_rss();
  Clock::time_point t0 = Clock::now();
  double cpu0 = cpu_seconds();
};

void finish_common(json& r, const Span& span, std::int64_t n) {
  const double wall = seconds(Clock::now() - span.t0);
  const double cpu = cpu_seconds() - span.cpu0;
  r["total_wall_s"] = wall;
  r["total_cpu_s"] = cpu;
  r["peak_rss_mb"] = static_cast<double>(proc_status_kb("VmHWM")) / 1024.0;
  r["peak_rss_is_per_scenario"] = span.rss_reset;
  r["rss_after_mb"] = static_cast<double>(proc_status_kb("VmRSS")) / 1024.0;
  if (!r.contains("records_per_s") && r.value("wall_s", 0.0) > 0) {
    r["records_per_s"] = static_cast<double>(n) / r["wall_s"].get<double>();
  }
}

// -------------------------------------------------------------- payloads

std::string key_for(std::int64_t i, int keys) { return "key-" + std::to_string(i % keys); }

// ~100 bytes of JSON.
std::string payload_for(std::int64_t i) {
  std::string s = R"({"id":")" + std::to_string(i) + R"(","type":"bench.event","seq":)" + std::to_string(i) +
                  R"(,"pad":")";
  const std::size_t target = 100 - 2;  // room for the closing `"}`
  if (s.size() < target) s.append(target - s.size(), 'x');
  s += "\"}";
  return s;
}

// ------------------------------------------------------------- librdkafka

struct RkDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
using Rk = std::unique_ptr<rd_kafka_t, RkDeleter>;

bool set(rd_kafka_conf_t* conf, const std::string& k, const std::string& v) {
  char err[512];
  if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
    std::cerr << "librdkafka property " << k << "=" << v << ": " << err << "\n";
    return false;
  }
  return true;
}

void quiet_log(const rd_kafka_t*, int level, const char* fac, const char* buf) {
  if (level <= 3) std::fprintf(stderr, "librdkafka %s: %s\n", fac, buf);
}

// Delivery bookkeeping of the raw producer: per-partition offset range.
struct RawDelivery {
  std::atomic<std::int64_t> ok{0};
  std::atomic<std::int64_t> failed{0};
  std::vector<std::int64_t> low = std::vector<std::int64_t>(kPartitions, INT64_MAX);
  std::vector<std::int64_t> high = std::vector<std::int64_t>(kPartitions, -1);  // last offset
};

void raw_dr(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto* d = static_cast<RawDelivery*>(opaque);
  if (m->err) {
    if (d->failed.fetch_add(1) < 5) std::cerr << "delivery failed: " << rd_kafka_err2str(m->err) << "\n";
    return;
  }
  d->ok.fetch_add(1, std::memory_order_relaxed);
  if (m->partition >= 0 && m->partition < kPartitions) {
    auto p = static_cast<std::size_t>(m->partition);
    d->low[p] = std::min(d->low[p], m->offset);
    d->high[p] = std::max(d->high[p], m->offset);
  }
}

// Scenario: raw rd_kafka_producev into `topic`. Fills `delivery` (used to
// know where every preloaded record landed).
json produce_raw(const Params& prm, const std::string& bootstrap, const std::string& topic, RawDelivery& delivery) {
  json r;
  r["name"] = "produce_raw_librdkafka";
  r["kind"] = "produce";
  r["topic"] = topic;
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  bool ok = set(conf, "bootstrap.servers", bootstrap) && set(conf, "client.id", "bench-raw-producer") &&
            set(conf, "enable.idempotence", "true") && set(conf, "compression.codec", "lz4") &&
            set(conf, "partitioner", "murmur2_random");
  for (const auto& [k, v] : producer_tuning(prm)) ok = ok && set(conf, k, v);
  if (!ok) {
    rd_kafka_conf_destroy(conf);
    r["error"] = "bad producer configuration";
    return r;
  }
  rd_kafka_conf_set_log_cb(conf, &quiet_log);
  rd_kafka_conf_set_dr_msg_cb(conf, &raw_dr);
  rd_kafka_conf_set_opaque(conf, &delivery);
  char err[512];
  Rk rk(rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err));
  if (!rk) {
    r["error"] = std::string("rd_kafka_new: ") + err;
    return r;
  }
  // Warm up metadata so the timed loop does not include the first lookup.
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk.get(), topic.c_str(), nullptr);
  (void)rd_kafka_metadata(rk.get(), 0, rkt, &md, 10000);
  if (md) rd_kafka_metadata_destroy(md);
  rd_kafka_topic_destroy(rkt);

  Span span;
  std::int64_t queue_full = 0;
  for (std::int64_t i = 0; i < prm.records; ++i) {
    const std::string key = key_for(i, prm.keys);
    const std::string value = payload_for(i);
    for (;;) {
      const auto e = rd_kafka_producev(rk.get(), RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                       RD_KAFKA_V_KEY(key.data(), key.size()),
                                       RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()), RD_KAFKA_V_END);
      if (e == RD_KAFKA_RESP_ERR_NO_ERROR) break;
      if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        r["error"] = std::string("producev: ") + rd_kafka_err2str(e);
        return r;
      }
      ++queue_full;
      rd_kafka_poll(rk.get(), 5);
    }
    if ((i & 1023) == 0) rd_kafka_poll(rk.get(), 0);
  }
  const double enqueue_s = seconds(Clock::now() - span.t0);
  const auto fe = rd_kafka_flush(rk.get(), 120000);
  const double wall = seconds(Clock::now() - span.t0);
  r["wall_s"] = wall;
  r["cpu_s"] = cpu_seconds() - span.cpu0;
  r["enqueue_s"] = enqueue_s;
  r["queue_full_retries"] = queue_full;
  r["delivered"] = delivery.ok.load();
  r["failed"] = delivery.failed.load();
  r["flush_ok"] = fe == RD_KAFKA_RESP_ERR_NO_ERROR;
  r["complete"] = fe == RD_KAFKA_RESP_ERR_NO_ERROR && delivery.ok.load() == prm.records;
  r["records_per_s"] = static_cast<double>(prm.records) / wall;
  rk.reset();
  finish_common(r, span, prm.records);
  return r;
}

// Scenario: prosody Producer::send_async into `topic`.
json produce_prosody(const Params& prm, const std::string& topic) {
  json r;
  r["name"] = "produce_prosody_send_async";
  r["kind"] = "produce";
  r["topic"] = topic;
  prosody::Config c;
  c.with_mock(true).with_probe_port(std::nullopt).with_source_system("bench-producer").with_client_id("bench-prosody-producer");
  for (const auto& [k, v] : producer_tuning(prm)) c.with_kafka_property(k, v);
  auto client = prosody::Client::create(c);
  auto producer = client->producer();
  if (!producer) {
    r["error"] = producer.error().message();
    return r;
  }
  // Warm-up: one acknowledged send (metadata lookup, producer id).
  if (auto w = (*producer)->send(topic, "warmup", R"({"warmup":true})"); !w) {
    r["error"] = "warm-up send: " + w.error().message();
    return r;
  }
  std::atomic<std::int64_t> ok{0}, failed{0};
  Span span;
  std::int64_t enqueue_errors = 0;
  const prosody::Headers no_headers;
  for (std::int64_t i = 0; i < prm.records; ++i) {
    auto s = (*producer)->send_async(topic, key_for(i, prm.keys), payload_for(i), no_headers,
                                     [&ok, &failed](prosody::Result<prosody::Delivery> d) {
                                       if (d) ok.fetch_add(1, std::memory_order_relaxed);
                                       else failed.fetch_add(1, std::memory_order_relaxed);
                                     });
    if (!s) {
      if (++enqueue_errors <= 5) std::cerr << "send_async: " << s.error().message() << "\n";
    }
  }
  const double enqueue_s = seconds(Clock::now() - span.t0);
  const auto fs = (*producer)->flush(120s);
  const double wall = seconds(Clock::now() - span.t0);
  r["wall_s"] = wall;
  r["cpu_s"] = cpu_seconds() - span.cpu0;
  r["enqueue_s"] = enqueue_s;
  r["enqueue_errors"] = enqueue_errors;
  r["delivered"] = ok.load();
  r["failed"] = failed.load();
  r["flush_ok"] = static_cast<bool>(fs);
  r["complete"] = static_cast<bool>(fs) && ok.load() == prm.records;
  r["records_per_s"] = static_cast<double>(prm.records) / wall;
  client.reset();  // flushes and joins the delivery thread
  finish_common(r, span, prm.records);
  return r;
}

void fill_consume_result(json& r, Recorder& rec, const Span& span, Clock::time_point ready_at, bool done,
                         std::int64_t n) {
  r["complete"] = done && rec.distinct() == n;
  r["seen"] = rec.distinct();
  r["duplicates"] = rec.duplicates();
  r["unexpected"] = rec.unexpected();
  if (rec.started()) r["startup_s"] = seconds(rec.first_at() - span.t0);
  if (ready_at != Clock::time_point{}) r["subscribe_s"] = seconds(ready_at - span.t0);
  if (done) {
    const double wall = seconds(rec.last_at() - rec.first_at());
    r["wall_s"] = wall;
    r["cpu_s"] = rec.last_cpu() - rec.first_cpu();
    r["records_per_s"] = wall > 0 ? static_cast<double>(n) / wall : 0.0;
    r["cpu_us_per_record"] = (rec.last_cpu() - rec.first_cpu()) * 1e6 / static_cast<double>(n);
  }
  r["latency_ms"] = rec.latency_ms();
}

// Scenario: raw high-level consumer with the fetch settings of
// src/kafka/client_config.cc, storing each message's offset itself.
json consume_raw(const Params& prm, const std::string& bootstrap, const std::string& topic,
                 const std::vector<std::int64_t>& base, const std::vector<std::int64_t>& size) {
  json r;
  r["name"] = "consume_raw_librdkafka";
  r["kind"] = "consume";
  const std::string group = "bench-raw-" + std::to_string(::getpid());
  r["group_id"] = group;
  Recorder rec(prm.records, base, size);
  Span span;
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  const std::vector<std::pair<std::string, std::string>> props = {
      {"bootstrap.servers", bootstrap},
      {"group.id", group},
      {"client.id", "bench-raw-consumer"},
      {"enable.auto.commit", "true"},
      {"auto.commit.interval.ms", "1000"},  // prosody's commit_interval default
      {"enable.auto.offset.store", "false"},
      {"auto.offset.reset", "earliest"},
      {"partition.assignment.strategy", "cooperative-sticky"},
      {"enable.partition.eof", "false"},
      {"queued.max.messages.kbytes", prm.queued_max_kbytes},
      {"queued.min.messages", prm.queued_min_messages},
  };
  bool ok = true;
  for (const auto& [k, v] : props) ok = ok && set(conf, k, v);
  if (!ok) {
    rd_kafka_conf_destroy(conf);
    r["error"] = "bad consumer configuration";
    return r;
  }
  rd_kafka_conf_set_log_cb(conf, &quiet_log);
  char err[512];
  Rk rk(rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err));
  if (!rk) {
    r["error"] = std::string("rd_kafka_new: ") + err;
    return r;
  }
  rd_kafka_poll_set_consumer(rk.get());
  rd_kafka_topic_partition_list_t* sub = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(sub, topic.c_str(), RD_KAFKA_PARTITION_UA);
  const auto se = rd_kafka_subscribe(rk.get(), sub);
  rd_kafka_topic_partition_list_destroy(sub);
  if (se) {
    r["error"] = std::string("subscribe: ") + rd_kafka_err2str(se);
    return r;
  }
  const auto ready_at = Clock::now();
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(prm.timeout_s));
  bool done = false;
  std::int64_t store_errors = 0;
  while (!done && Clock::now() < deadline) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk.get(), 100);
    if (!m) continue;
    if (m->err) {
      std::cerr << "consumer error: " << rd_kafka_message_errstr(m) << "\n";
      rd_kafka_message_destroy(m);
      continue;
    }
    rec.on_record(m->partition, m->offset, rd_kafka_message_timestamp(m, nullptr));
    rd_kafka_topic_partition_list_t* off = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(off, rd_kafka_topic_name(m->rkt), m->partition)->offset = m->offset + 1;
    if (rd_kafka_offsets_store(rk.get(), off) != RD_KAFKA_RESP_ERR_NO_ERROR) ++store_errors;
    rd_kafka_topic_partition_list_destroy(off);
    rd_kafka_message_destroy(m);
    done = rec.distinct() == prm.records;
  }
  const auto close_t0 = Clock::now();
  rd_kafka_consumer_close(rk.get());
  rk.reset();
  r["shutdown_s"] = seconds(Clock::now() - close_t0);
  fill_consume_result(r, rec, span, ready_at, done, prm.records);
  r["offset_store_errors"] = store_errors;
  finish_common(r, span, prm.records);
  return r;
}

class NoopHandler final : public prosody::EventHandler {
 public:
  explicit NoopHandler(Recorder& rec) : rec_(rec) {}
  prosody::HandlerResult on_message(prosody::Context&, const prosody::Message& m) override {
    rec_.on_record(m.partition().value(), m.offset().value(),
                   std::chrono::duration_cast<std::chrono::milliseconds>(m.timestamp().time_since_epoch()).count());
    return prosody::ok_status();
  }

 private:
  Recorder& rec_;
};

// Scenario: a prosody Client in `mode` with a no-op handler.
json consume_prosody(const Params& prm, const std::string& topic, prosody::Mode mode,
                     const std::vector<std::int64_t>& base, const std::vector<std::int64_t>& size) {
  json r;
  r["name"] = "consume_prosody_" + std::string(prosody::to_string(mode));
  r["kind"] = "consume";
  r["mode"] = prosody::to_string(mode);
  const std::string group = "bench-" + std::string(prosody::to_string(mode)) + "-" + std::to_string(::getpid());
  r["group_id"] = group;
  Recorder rec(prm.records, base, size);
  Span span;
  prosody::Config c;
  c.with_mock(true)
      .with_mock_partitions(kPartitions)
      .with_group_id(group)
      .with_subscribed_topics(std::vector<std::string>{topic})
      .with_mode(mode)
      .with_probe_port(std::nullopt)
      .with_source_system("bench-consumer-" + std::string(prosody::to_string(mode)))
      .with_client_id("bench-prosody-consumer");
  if (mode == prosody::Mode::low_latency) c.with_failure_topic("bench-failures");
  if (prm.max_concurrency > 0) c.with_max_concurrency(prm.max_concurrency);
  // Only when overridden: prosody's low_latency dead-letter producer is built
  // from the same pass-through properties and warns about consumer-only ones.
  if (prm.queued_min_messages != Params{}.queued_min_messages) {
    c.with_kafka_property("queued.min.messages", prm.queued_min_messages);
  }
  if (prm.queued_max_kbytes != Params{}.queued_max_kbytes) {
    c.with_kafka_property("queued.max.messages.kbytes", prm.queued_max_kbytes);
  }
  r["max_concurrency"] = c.max_concurrency();
  r["max_uncommitted"] = c.max_uncommitted();
  r["max_enqueued_per_key"] = c.max_enqueued_per_key();
  auto client = prosody::Client::create(c);
  if (auto s = client->subscribe(std::make_shared<NoopHandler>(rec)); !s) {
    r["error"] = "subscribe: " + s.error().message();
    r["complete"] = false;
    return r;
  }
  const auto ready_at = Clock::now();
  const bool done = rec.wait(std::chrono::duration<double>(prm.timeout_s));
  const auto st = client->stats();
  const auto close_t0 = Clock::now();
  if (auto s = client->unsubscribe(); !s) r["shutdown_error"] = s.error().message();
  client.reset();  // no handler runs after this
  r["shutdown_s"] = seconds(Clock::now() - close_t0);
  fill_consume_result(r, rec, span, ready_at, done, prm.records);
  r["stats"] = {{"received", st.received},
                {"handled", st.handled},
                {"failed", st.failed},
                {"decode_failures", st.decode_failures},
                {"pauses", st.pauses},
                {"resumes", st.resumes},
                {"rebalances", st.rebalances},
                {"max_uncommitted_seen", st.max_uncommitted_seen},
                {"max_in_flight_seen", st.max_in_flight_seen}};
  finish_common(r, span, prm.records);
  return r;
}

// ----------------------------------------------------------------- report

std::string read_first_line_with(const std::string& path, const std::string& prefix) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) == 0) {
      auto pos = line.find(':');
      if (pos == std::string::npos) return line;
      auto v = line.substr(pos + 1);
      v.erase(0, v.find_first_not_of(" \t"));
      return v;
    }
  }
  return "";
}

json machine_info() {
  json m;
  m["nproc"] = sysconf(_SC_NPROCESSORS_ONLN);
  m["hardware_concurrency"] = std::thread::hardware_concurrency();
  m["cpu_model"] = read_first_line_with("/proc/cpuinfo", "model name");
  m["mem_total"] = read_first_line_with("/proc/meminfo", "MemTotal");
  utsname u{};
  if (uname(&u) == 0) m["kernel"] = std::string(u.sysname) + " " + u.release + " " + u.machine;
  m["librdkafka_version"] = rd_kafka_version_str();
  m["build_type"] = PROSODY_BENCH_BUILD_TYPE;
#if defined(__clang__)
  m["compiler"] = "clang " __clang_version__;
#elif defined(__GNUC__)
  m["compiler"] = "gcc " __VERSION__;
#endif
#ifdef NDEBUG
  m["ndebug"] = true;
#else
  m["ndebug"] = false;
#endif
  return m;
}

std::string utc_now() {
  const auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

void add_ratios(json& r, const json& baseline) {
  if (!r.contains("records_per_s") || !baseline.contains("records_per_s")) return;
  const double base = baseline["records_per_s"].get<double>();
  json ratio;
  ratio["baseline"] = baseline["name"];
  if (base > 0) ratio["throughput"] = r["records_per_s"].get<double>() / base;
  if (r.contains("cpu_s") && baseline.contains("cpu_s") && baseline["cpu_s"].get<double>() > 0) {
    ratio["cpu"] = r["cpu_s"].get<double>() / baseline["cpu_s"].get<double>();
  }
  r["vs_raw_librdkafka"] = ratio;
}

void print_summary(const json& scenarios) {
  std::printf("%-30s %12s %9s %9s %9s %9s %10s %8s\n", "scenario", "records/s", "wall s", "cpu s", "p50 ms", "p99 ms",
              "p999 ms", "ratio");
  for (const auto& s : scenarios) {
    auto num = [&](const json& j, const char* k) { return j.contains(k) ? j[k].get<double>() : -1.0; };
    const json lat = s.value("latency_ms", json::object());
    const json ratio = s.value("vs_raw_librdkafka", json::object());
    std::printf("%-30s %12.0f %9.2f %9.2f %9.1f %9.1f %10.1f %8.3f%s\n", s["name"].get<std::string>().c_str(),
                num(s, "records_per_s"), num(s, "wall_s"), num(s, "cpu_s"), num(lat, "p50"), num(lat, "p99"),
                num(lat, "p999"), num(ratio, "throughput"), s.value("complete", false) ? "" : "  INCOMPLETE");
  }
}

}  // namespace

int main(int argc, char** argv) {
  Params prm;
  CLI::App app{"prosody-cpp vs raw librdkafka throughput on the in-process mock cluster"};
  app.add_option("--records", prm.records, "records to produce and consume per scenario")->check(CLI::PositiveNumber);
  app.add_option("--keys", prm.keys, "distinct record keys")->check(CLI::PositiveNumber);
  app.add_option("--out", prm.out, "JSON result path");
  app.add_option("--max-concurrency", prm.max_concurrency, "prosody max_concurrency (0 = library default)");
  app.add_option("--timeout", prm.timeout_s, "seconds each consume scenario may take before it counts as failed");
  app.add_option("--linger-ms", prm.linger_ms, "producer linger.ms (both producers)");
  app.add_option("--queued-min-messages", prm.queued_min_messages,
                 "consumer queued.min.messages, raw and prosody (default: prosody's)");
  app.add_option("--queued-max-kbytes", prm.queued_max_kbytes,
                 "consumer queued.max.messages.kbytes, raw and prosody (default: prosody's)");
  app.add_option("--only", prm.only,
                 "run only these scenarios (the raw-produce preload always runs): produce_prosody, consume_raw, "
                 "pipeline, low_latency, best_effort")
      ->delimiter(',')
      ->check(CLI::IsMember({"produce_prosody", "consume_raw", "pipeline", "low_latency", "best_effort"}));
  CLI11_PARSE(app, argc, argv);

  // Keep prosody's info logs (assignments, start/stop) out of the numbers.
  prosody::logger()->set_level(spdlog::level::warn);

  auto& cluster = prosody::kafka::MockCluster::instance();
  const std::string bootstrap = cluster.bootstrap_servers();
  if (bootstrap.empty()) {
    std::cerr << "the librdkafka mock cluster could not be created\n";
    return 2;
  }
  const std::string in_topic = "bench-in";
  const std::string out_topic = "bench-out-prosody";
  for (const auto& t : {in_topic, out_topic, std::string("bench-failures")}) {
    if (auto s = cluster.create_topic(t, kPartitions); !s) {
      std::cerr << s.error().message() << "\n";
      return 2;
    }
  }

  json params = {{"records", prm.records},
                 {"keys", prm.keys},
                 {"partitions", kPartitions},
                 {"payload_bytes", payload_for(prm.records - 1).size()},
                 {"mock_brokers", 3},
                 {"producer_settings", json::object()},
                 {"consumer_timeout_s", prm.timeout_s},
                 {"consumer_settings",
                  {{"queued.min.messages", prm.queued_min_messages},
                   {"queued.max.messages.kbytes", prm.queued_max_kbytes},
                   {"auto.commit.interval.ms", "1000"},
                   {"partition.assignment.strategy", "cooperative-sticky"}}},
                 {"prosody_max_concurrency", prm.max_concurrency > 0 ? prm.max_concurrency : prosody::Config().max_concurrency()}};
  for (const auto& [k, v] : producer_tuning(prm)) params["producer_settings"][k] = v;
  params["producer_settings"]["enable.idempotence"] = "true";
  params["producer_settings"]["compression.codec"] = "lz4";
  params["producer_settings"]["partitioner"] = "murmur2_random";

  json scenarios = json::array();
  auto run = [&](json r) {
    std::cerr << "  " << r["name"].get<std::string>() << ": "
              << (r.contains("records_per_s") ? std::to_string(static_cast<long>(r["records_per_s"].get<double>())) : "-")
              << " records/s" << (r.value("complete", false) ? "" : " (INCOMPLETE)") << "\n";
    scenarios.push_back(std::move(r));
  };

  std::cerr << "prosody-bench-throughput: " << prm.records << " records, " << prm.keys << " keys, librdkafka "
            << rd_kafka_version_str() << "\n";
  RawDelivery preload;
  run(produce_raw(prm, bootstrap, in_topic, preload));
  if (prm.wants("produce_prosody")) run(produce_prosody(prm, out_topic));

  std::vector<std::int64_t> base(kPartitions, 0), size(kPartitions, 0);
  for (std::size_t p = 0; p < kPartitions; ++p) {
    if (preload.high[p] >= 0) {
      base[p] = preload.low[p];
      size[p] = preload.high[p] - preload.low[p] + 1;
    }
  }
  params["records_per_partition"] = size;
  const auto preload_done = Clock::now();
  auto since_preload = [&] { return seconds(Clock::now() - preload_done); };

  if (prm.wants("consume_raw")) {
    const double t = since_preload();
    json r = consume_raw(prm, bootstrap, in_topic, base, size);
    r["started_after_preload_s"] = t;
    run(std::move(r));
  }
  for (auto mode : {prosody::Mode::pipeline, prosody::Mode::low_latency, prosody::Mode::best_effort}) {
    if (!prm.wants(std::string(prosody::to_string(mode)))) continue;
    const double t = since_preload();
    json r = consume_prosody(prm, in_topic, mode, base, size);
    r["started_after_preload_s"] = t;
    run(std::move(r));
  }

  // Ratios against the matching raw scenario.
  json raw_produce, raw_consume;
  for (const auto& s : scenarios) {
    if (s["name"] == "produce_raw_librdkafka") raw_produce = s;
    if (s["name"] == "consume_raw_librdkafka") raw_consume = s;
  }
  for (auto& s : scenarios) {
    const auto name = s["name"].get<std::string>();
    if (name == "produce_prosody_send_async" && !raw_produce.is_null()) add_ratios(s, raw_produce);
    if (name.rfind("consume_prosody_", 0) == 0 && !raw_consume.is_null()) add_ratios(s, raw_consume);
  }

  bool all_complete = true;
  for (const auto& s : scenarios) all_complete = all_complete && s.value("complete", false);

  json out;
  out["benchmark"] = "prosody-bench-throughput";
  out["timestamp_utc"] = utc_now();
  out["machine"] = machine_info();
  out["parameters"] = params;
  out["latency_note"] =
      "Latency is record timestamp (CreateTime, set when the preload produced it) to handler start (prosody) or "
      "rd_kafka_consumer_poll return (raw). Every topic is fully preloaded before any consumer starts and the "
      "consumers run one after another, so these numbers mostly measure how long the backlog took to drain plus "
      "started_after_preload_s of each scenario, not the latency of a live stream.";
  out["cpu_note"] =
      "CPU is getrusage(RUSAGE_SELF) of the whole process: it includes the in-process mock brokers' threads. "
      "Consume scenarios: cpu_s/wall_s cover first to last record; total_* include subscribe and shutdown.";
  out["throughput_note"] =
      "Consume records_per_s = records / (last record seen - first record seen); startup_s (group join, first "
      "fetch) is reported separately.";
  out["all_complete"] = all_complete;
  double peak = 0;
  for (const auto& sc : scenarios) peak = std::max(peak, sc.value("peak_rss_mb", 0.0));
  out["peak_rss_mb_max_over_scenarios"] = peak;
  out["scenarios"] = scenarios;

  std::error_code ec;
  const std::filesystem::path path(prm.out);
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), ec);
  std::ofstream f(prm.out);
  f << out.dump(2) << "\n";
  f.close();
  if (!f) {
    std::cerr << "cannot write " << prm.out << "\n";
    return 2;
  }
  print_summary(scenarios);
  std::printf("results: %s%s\n", prm.out.c_str(), all_complete ? "" : "  (some scenarios INCOMPLETE)");
  return all_complete ? 0 : 1;
}
