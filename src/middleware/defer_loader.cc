#include "middleware/defer_loader.h"

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "kafka/client_config.h"
#include "kafka/handles.h"
#include "middleware/lru_map.h"
#include "prosody/logging.h"

namespace prosody::middleware {

ReadPlan plan_read(std::optional<std::int64_t> position, std::int64_t lowest_pending,
                   std::int64_t discard_threshold) noexcept {
  if (!position || *position > lowest_pending) return ReadPlan::seek;
  // Written as a subtraction: position + threshold could overflow.
  if (lowest_pending - *position > discard_threshold) return ReadPlan::seek;
  return ReadPlan::read_forward;
}

std::optional<std::pair<std::int64_t, std::int64_t>> missing_offsets(std::int64_t expected_next,
                                                                     std::int64_t arrived) noexcept {
  if (arrived <= expected_next) return std::nullopt;
  return std::make_pair(expected_next, arrived);
}

DeferLoaderSettings DeferLoaderSettings::from(const Config& c, const std::string& bootstrap_servers) {
  DeferLoaderSettings s;
  s.bootstrap_servers = bootstrap_servers;
  s.group_id = c.group_id().value_or("");
  s.client_id = c.client_id();
  for (const auto& [k, v] : c.kafka_properties()) s.kafka_properties.emplace_back(k, v);
  s.cache_size = static_cast<std::size_t>(std::max(0, c.defer_cache_size()));
  s.seek_timeout = c.defer_seek_timeout();
  s.discard_threshold = c.defer_discard_threshold();
  s.max_pending = static_cast<std::size_t>(std::max(1, c.max_uncommitted()));
  return s;
}

namespace {

struct TopicPartition {
  Topic topic;
  std::int32_t partition = 0;
  bool operator==(const TopicPartition&) const = default;
};

struct TopicPartitionHash {
  std::size_t operator()(const TopicPartition& tp) const noexcept {
    return std::hash<std::string>{}(tp.topic) * 31 + std::hash<std::int32_t>{}(tp.partition);
  }
};

struct RecordKey {
  TopicPartition tp;
  std::int64_t offset = 0;
  bool operator==(const RecordKey&) const = default;
};

struct RecordKeyHash {
  std::size_t operator()(const RecordKey& k) const noexcept {
    return TopicPartitionHash{}(k.tp) ^ (std::hash<std::int64_t>{}(k.offset) * 0x9e3779b97f4a7c15ULL);
  }
};

using RecordPtr = std::shared_ptr<const LoadedRecord>;

// One offset being fetched, shared by every load() waiting for it.
struct Pending {
  std::optional<Result<RecordPtr>> result;
  int waiters = 0;
  Clock::steady_time deadline;
};
using PendingPtr = std::shared_ptr<Pending>;

std::string where(const TopicPartition& tp) { return fmt::format("{}[{}]", tp.topic, tp.partition); }

RecordPtr to_record(const TopicPartition& tp, const rd_kafka_message_t* m, const Clock& clock) {
  auto r = std::make_shared<LoadedRecord>();
  r->topic = tp.topic;
  r->partition = Partition{tp.partition};
  r->offset = Offset{m->offset};
  if (m->key) {
    r->key.assign(static_cast<const char*>(m->key), m->key_len);
    r->has_key = true;
  }
  if (m->payload) r->payload.assign(static_cast<const char*>(m->payload), m->len);
  rd_kafka_headers_t* hdrs = nullptr;
  // rd_kafka_message_headers wants a non-const message but does not change it.
  auto* mutable_m = const_cast<rd_kafka_message_t*>(m);
  if (rd_kafka_message_headers(mutable_m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR && hdrs) {
    const char* name;
    const void* value;
    size_t size;
    for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; ++i) {
      r->headers.push_back(Header{name, value ? std::string(static_cast<const char*>(value), size) : std::string()});
    }
  }
  rd_kafka_timestamp_type_t type;
  const std::int64_t ts = rd_kafka_message_timestamp(m, &type);
  r->timestamp = ts >= 0 ? std::chrono::system_clock::time_point{std::chrono::milliseconds{ts}} : clock.system_now();
  return r;
}

bool is_missing_topic_error(rd_kafka_resp_err_t e) {
  return e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || e == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
         e == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION;
}

}  // namespace

struct DeferLoader::Impl {
  Impl(DeferLoaderSettings s, std::shared_ptr<Clock> c)
      : settings(std::move(s)), clock(std::move(c)), log(prosody::logger()), cache(std::max<std::size_t>(1, settings.cache_size)) {}

  DeferLoaderSettings settings;
  std::shared_ptr<Clock> clock;
  std::shared_ptr<spdlog::logger> log;
  kafka::KafkaHandle rk;
  kafka::QueueHandle consumer_queue;  // released before rk (declared after it)

  mutable std::mutex mutex;
  std::condition_variable_any cv;  // load() callers: results and free slots
  std::condition_variable wake;    // the poll thread, when idle
  // guarded by mutex:
  bool stopping = false;
  std::unordered_map<TopicPartition, std::map<std::int64_t, PendingPtr>, TopicPartitionHash> requests;
  std::size_t in_flight = 0;  // entries in `requests`
  LruMap<RecordKey, RecordPtr, RecordKeyHash> cache;
  Stats stats;

  // poll thread only:
  std::unordered_map<TopicPartition, std::optional<std::int64_t>, TopicPartitionHash> assigned;  // -> next offset
  std::unordered_map<Topic, int> partition_counts;  // topics known to exist
  std::thread thread;
  std::once_flag stop_once;

  void run();
  void reconcile(const std::vector<std::pair<TopicPartition, std::int64_t>>& active);
  Status check_partition(const TopicPartition& tp);
  void handle(kafka::MessageHandle m);

  // Caller holds mutex.
  void complete_locked(std::map<std::int64_t, PendingPtr>& offsets, std::map<std::int64_t, PendingPtr>::iterator it,
                       Result<RecordPtr> result) {
    it->second->result.emplace(std::move(result));
    offsets.erase(it);
    --in_flight;
    cv.notify_all();
  }
  void fail_partition_locked(const TopicPartition& tp, const Error& e) {
    auto it = requests.find(tp);
    if (it == requests.end()) return;
    while (!it->second.empty()) complete_locked(it->second, it->second.begin(), e);
    requests.erase(it);
  }
  void fail_partition(const TopicPartition& tp, const Error& e) {
    std::lock_guard l(mutex);
    fail_partition_locked(tp, e);
  }
  void expire_locked(Clock::steady_time now) {
    for (auto rit = requests.begin(); rit != requests.end();) {
      auto& offsets = rit->second;
      for (auto it = offsets.begin(); it != offsets.end();) {
        auto next = std::next(it);
        if (it->second->deadline <= now) {
          complete_locked(offsets, it,
                          Error::transient(fmt::format("offset {} of {} was not read within {} ms (defer_seek_timeout)",
                                                       it->first, where(rit->first), settings.seek_timeout.count()),
                                           ErrorCode::timed_out));
        }
        it = next;
      }
      rit = offsets.empty() ? requests.erase(rit) : std::next(rit);
    }
  }
  void yield() {
    if (consumer_queue) rd_kafka_queue_yield(consumer_queue.get());
  }
};

void DeferLoader::Impl::run() {
  for (;;) {
    std::vector<std::pair<TopicPartition, std::int64_t>> active;  // partition, lowest pending offset
    {
      std::unique_lock l(mutex);
      expire_locked(clock->now());
      if (requests.empty() && assigned.empty()) wake.wait(l, [&] { return stopping || !requests.empty(); });
      if (stopping) return;
      for (const auto& [tp, offsets] : requests) active.emplace_back(tp, offsets.begin()->first);
    }
    reconcile(active);
    if (active.empty()) continue;
    kafka::MessageHandle m(rd_kafka_consumer_poll(rk.get(), static_cast<int>(settings.poll_interval.count())));
    if (m) handle(std::move(m));
  }
}

Status DeferLoader::Impl::check_partition(const TopicPartition& tp) {
  auto known = partition_counts.find(tp.topic);
  if (known == partition_counts.end()) {
    // All topics, not just this one: asked for a single unknown topic,
    // librdkafka keeps retrying until the timeout instead of answering.
    const rd_kafka_metadata_t* md = nullptr;
    const auto err = rd_kafka_metadata(rk.get(), 1, nullptr, &md, static_cast<int>(settings.seek_timeout.count()));
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return Error::transient(fmt::format("cannot read metadata of topic '{}': {}", tp.topic, rd_kafka_err2str(err)),
                              ErrorCode::kafka);
    }
    rd_kafka_resp_err_t topic_err = RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
    int count = 0;
    for (int i = 0; i < md->topic_cnt; ++i) {
      if (tp.topic == md->topics[i].topic) {
        topic_err = md->topics[i].err;
        count = md->topics[i].partition_cnt;
      }
    }
    rd_kafka_metadata_destroy(md);
    if (is_missing_topic_error(topic_err)) {
      return Error::permanent(fmt::format("topic '{}' does not exist, so its deferred messages cannot be loaded",
                                          tp.topic),
                              ErrorCode::topic_missing);
    }
    if (topic_err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return Error::transient(fmt::format("metadata of topic '{}': {}", tp.topic, rd_kafka_err2str(topic_err)),
                              ErrorCode::kafka);
    }
    known = partition_counts.emplace(tp.topic, count).first;
  }
  if (tp.partition < 0 || tp.partition >= known->second) {
    return Error::permanent(fmt::format("partition {} does not exist in topic '{}' ({} partitions)", tp.partition,
                                        tp.topic, known->second),
                            ErrorCode::topic_missing);
  }
  return ok_status();
}

void DeferLoader::Impl::reconcile(const std::vector<std::pair<TopicPartition, std::int64_t>>& active) {
  // Idle partitions first: nothing pending, no fetching.
  std::unordered_set<TopicPartition, TopicPartitionHash> wanted;
  for (const auto& [tp, lowest] : active) wanted.insert(tp);
  auto idle = kafka::make_partition_list(0);
  for (auto it = assigned.begin(); it != assigned.end();) {
    if (wanted.count(it->first)) {
      ++it;
      continue;
    }
    rd_kafka_topic_partition_list_add(idle.get(), it->first.topic.c_str(), it->first.partition);
    it = assigned.erase(it);
  }
  if (idle->cnt > 0) {
    if (rd_kafka_error_t* e = rd_kafka_incremental_unassign(rk.get(), idle.get())) {
      log->warn("defer loader: unassigning idle partitions failed: {}", rd_kafka_error_string(e));
      rd_kafka_error_destroy(e);
    }
    std::lock_guard l(mutex);
    stats.unassigns += static_cast<std::uint64_t>(idle->cnt);
  }

  for (const auto& [tp, lowest] : active) {
    auto it = assigned.find(tp);
    if (it == assigned.end()) {
      if (auto s = check_partition(tp); !s) {
        fail_partition(tp, s.error());
        continue;
      }
      // Assigning at the target offset is the first seek.
      auto list = kafka::make_partition_list(1);
      rd_kafka_topic_partition_list_add(list.get(), tp.topic.c_str(), tp.partition)->offset = lowest;
      if (rd_kafka_error_t* e = rd_kafka_incremental_assign(rk.get(), list.get())) {
        const std::string text = rd_kafka_error_string(e);
        rd_kafka_error_destroy(e);
        fail_partition(tp, Error::transient(fmt::format("cannot assign {}: {}", where(tp), text), ErrorCode::kafka));
        continue;
      }
      assigned.emplace(tp, lowest);
      std::lock_guard l(mutex);
      ++stats.assigns;
      continue;
    }
    if (plan_read(it->second, lowest, settings.discard_threshold) == ReadPlan::read_forward) continue;
    auto list = kafka::make_partition_list(1);
    rd_kafka_topic_partition_list_add(list.get(), tp.topic.c_str(), tp.partition)->offset = lowest;
    rd_kafka_error_t* e = rd_kafka_seek_partitions(rk.get(), list.get(), static_cast<int>(settings.seek_timeout.count()));
    if (!e && list->elems[0].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      e = rd_kafka_error_new(list->elems[0].err, "%s", rd_kafka_err2str(list->elems[0].err));
    }
    if (e) {
      // Try again on the next turn; the loads' deadlines bound the retries.
      log->warn("defer loader: seeking {} to {} failed: {}", where(tp), lowest, rd_kafka_error_string(e));
      rd_kafka_error_destroy(e);
      it->second.reset();
      continue;
    }
    it->second = lowest;
    std::lock_guard l(mutex);
    ++stats.seeks;
  }
}

void DeferLoader::Impl::handle(kafka::MessageHandle m) {
  if (m->err) {
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) return;
    if (!m->rkt) {
      log->debug("defer loader: {}", rd_kafka_message_errstr(m.get()));
      return;
    }
    TopicPartition tp{rd_kafka_topic_name(m->rkt), m->partition};
    if (is_missing_topic_error(m->err) || m->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) {
      partition_counts.erase(tp.topic);
      fail_partition(tp, Error::permanent(fmt::format("cannot read {}: {}", where(tp), rd_kafka_message_errstr(m.get())),
                                          ErrorCode::topic_missing));
      return;
    }
    log->warn("defer loader: fetching {}: {}", where(tp), rd_kafka_message_errstr(m.get()));
    if (auto it = assigned.find(tp); it != assigned.end()) it->second.reset();  // re-seek before trusting gaps
    return;
  }
  TopicPartition tp{rd_kafka_topic_name(m->rkt), m->partition};
  auto pos = assigned.find(tp);
  if (pos == assigned.end()) return;  // unassigned meanwhile
  const std::optional<std::int64_t> expected = pos->second;
  const std::int64_t arrived = m->offset;
  pos->second = arrived + 1;

  std::lock_guard l(mutex);
  auto req = requests.find(tp);
  if (req == requests.end()) {
    ++stats.discarded;
    return;
  }
  auto& offsets = req->second;
  // Only offsets at or after the expected one are proven missing: a lower
  // one was requested after this read began and gets its own seek.
  if (auto gap = expected ? missing_offsets(*expected, arrived) : std::nullopt) {
    for (auto it = offsets.lower_bound(gap->first); it != offsets.end() && it->first < gap->second;) {
      auto next = std::next(it);
      complete_locked(offsets, it,
                      Error::permanent(fmt::format("offset {} no longer exists in {}", it->first, where(tp)),
                                       ErrorCode::kafka));
      it = next;
    }
  }
  if (auto it = offsets.find(arrived); it != offsets.end()) {
    auto record = to_record(tp, m.get(), *clock);
    cache.get_or_create(RecordKey{tp, arrived}) = record;
    ++stats.fetched;
    complete_locked(offsets, it, record);
  } else {
    ++stats.discarded;
  }
  if (offsets.empty()) requests.erase(req);
}

Result<std::unique_ptr<DeferLoader>> DeferLoader::start(DeferLoaderSettings settings, std::shared_ptr<Clock> clock) {
  if (settings.group_id.empty()) {
    return Error::permanent("the defer loader needs the consumer's group_id", ErrorCode::invalid_config);
  }
  if (settings.max_pending == 0) settings.max_pending = 1;
  kafka::ProducerSettings connection{settings.bootstrap_servers, settings.client_id, settings.kafka_properties, false};
  auto conf = kafka::defer_loader_conf(connection, settings.group_id + ".defer-loader");
  if (!conf) return std::move(conf).error();
  auto impl = std::make_unique<Impl>(std::move(settings), std::move(clock));
  char err[512];
  impl->rk.reset(rd_kafka_new(RD_KAFKA_CONSUMER, conf->release(), err, sizeof err));
  if (!impl->rk) {
    return Error::permanent(std::string("cannot create the defer loader's Kafka consumer: ") + err,
                            ErrorCode::invalid_config);
  }
  // Errors and logs of the main queue are served by consumer_poll too.
  rd_kafka_poll_set_consumer(impl->rk.get());
  impl->consumer_queue.reset(rd_kafka_queue_get_consumer(impl->rk.get()));
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->run(); });
  return std::unique_ptr<DeferLoader>(new DeferLoader(std::move(impl)));
}

DeferLoader::DeferLoader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

DeferLoader::~DeferLoader() {
  stop();
  // The consumer never joined a group, so closing it only drops the
  // assignment; it must happen before the handle is destroyed.
  if (impl_->rk) rd_kafka_consumer_close(impl_->rk.get());
}

void DeferLoader::stop() {
  std::call_once(impl_->stop_once, [this] { stop_once(); });
}

void DeferLoader::stop_once() {
  {
    std::lock_guard l(impl_->mutex);
    impl_->stopping = true;
    for (auto& [tp, offsets] : impl_->requests) {
      while (!offsets.empty()) {
        impl_->complete_locked(offsets, offsets.begin(),
                               Error::transient("the defer loader is shutting down", ErrorCode::shut_down));
      }
    }
    impl_->requests.clear();
    impl_->wake.notify_all();
    impl_->cv.notify_all();
  }
  impl_->yield();
  if (impl_->thread.joinable()) impl_->thread.join();
}

DeferLoader::Stats DeferLoader::stats() const {
  std::lock_guard l(impl_->mutex);
  Stats out = impl_->stats;
  out.pending = impl_->in_flight;
  return out;
}

Result<LoadedRecord> DeferLoader::load(const Topic& topic, Partition partition, Offset offset,
                                       std::stop_token stop) {
  Impl& d = *impl_;
  const TopicPartition tp{topic, partition.value()};
  const RecordKey key{tp, offset.value()};
  auto cancelled = [&] {
    return Error::transient(fmt::format("loading offset {} of {} was cancelled", offset.value(), where(tp)),
                            ErrorCode::cancelled);
  };
  std::unique_lock l(d.mutex);
  PendingPtr p;
  for (;;) {
    if (d.stopping) return Error::transient("the defer loader is shutting down", ErrorCode::shut_down);
    if (stop.stop_requested()) return cancelled();
    if (const RecordPtr* hit = d.cache.peek(key); hit && *hit) {
      RecordPtr record = d.cache.get_or_create(key);  // marks it recently used
      ++d.stats.cache_hits;
      return LoadedRecord(*record);
    }
    if (auto rit = d.requests.find(tp); rit != d.requests.end()) {
      if (auto oit = rit->second.find(offset.value()); oit != rit->second.end()) {
        p = oit->second;
        ++d.stats.coalesced;
        break;
      }
    }
    if (d.in_flight < d.settings.max_pending) {
      p = std::make_shared<Pending>();
      p->deadline = d.clock->now() + d.settings.seek_timeout;
      d.requests[tp][offset.value()] = p;
      ++d.in_flight;
      d.wake.notify_one();
      d.yield();  // a poll waiting on other partitions returns now
      break;
    }
    d.cv.wait(l, stop, [&] { return d.stopping || d.in_flight < d.settings.max_pending; });
  }
  ++p->waiters;
  d.cv.wait(l, stop, [&] { return p->result.has_value() || d.stopping; });
  --p->waiters;
  if (p->result) {
    if (!*p->result) return p->result->error();
    return LoadedRecord(***p->result);
  }
  if (d.stopping) return Error::transient("the defer loader is shutting down", ErrorCode::shut_down);
  // Stopped by the caller: withdraw the fetch unless someone else waits too.
  if (p->waiters == 0) {
    if (auto rit = d.requests.find(tp); rit != d.requests.end()) {
      if (auto oit = rit->second.find(offset.value()); oit != rit->second.end() && oit->second == p) {
        rit->second.erase(oit);
        --d.in_flight;
        if (rit->second.empty()) d.requests.erase(rit);
        d.cv.notify_all();
      }
    }
  }
  return cancelled();
}

}  // namespace prosody::middleware
