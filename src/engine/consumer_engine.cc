#include "engine/consumer_engine.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <random>
#include <shared_mutex>
#include <thread>

#include <spdlog/spdlog.h>

#include "engine/invocation_slot.h"
#include "engine/partition_state.h"
#include "engine/ready_queue.h"
#include "engine/stats.h"
#include "kafka/client_config.h"
#include "kafka/handles.h"
#include "prosody/logging.h"

namespace prosody::engine {
namespace {

using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;

// What became of one record.
enum class Outcome {
  complete,  // done (handled, skipped or dead-lettered): may be committed
  abandon,   // not done (revoked or shutting down): the next owner redoes it
  halt,      // terminal error: the partition stops here
};

struct TopicPartitionLess {
  bool operator()(const std::pair<std::string, int>& a, const std::pair<std::string, int>& b) const { return a < b; }
};

// Erases through an iterator: erasing by a reference to the node's own key
// would read the key after the node is freed.
void erase_key(PartitionState& p, KeyQueue* kq) {
  auto it = p.keys.find(kq->key);
  if (it != p.keys.end() && it->second.get() == kq) p.keys.erase(it);
}

// Drops every record not yet started (left uncommitted, so whoever owns the
// partition next reads them again). Caller holds p.mutex.
void drop_queued_locked(PartitionState& p) {
  p.drop_queued = true;
  for (auto& [k, kq] : p.keys) kq->pending.clear();
  p.parked.clear();
  p.queued = 0;
}

// The key's queue, created on first use. Caller holds p.mutex.
KeyQueue& key_queue(PartitionState& p, const Key& key) {
  auto it = p.keys.find(key);
  if (it == p.keys.end()) {
    auto kq = std::make_unique<KeyQueue>();
    kq->key = key;
    it = p.keys.emplace(kq->key, std::move(kq)).first;
  }
  return *it->second;
}

bool type_allowed(const std::vector<std::string>& prefixes, const nlohmann::json& payload) {
  if (prefixes.empty() || !payload.is_object()) return true;
  auto it = payload.find("type");
  if (it == payload.end() || !it->is_string()) return true;  // no type: always processed
  const auto& type = it->get_ref<const std::string&>();
  return std::any_of(prefixes.begin(), prefixes.end(),
                     [&](const std::string& p) { return type.compare(0, p.size(), p) == 0; });
}

class Engine final : public ConsumerEngine {
 public:
  Engine(EngineSettings s, std::shared_ptr<EventHandler> h, std::shared_ptr<Clock> c, Producer* dl)
      : settings_(std::move(s)), handler_(std::move(h)), clock_(std::move(c)), dead_letters_(dl),
        log_(prosody::logger()), slots_(static_cast<std::size_t>(settings_.max_concurrency)) {}

  ~Engine() override {
    if (!shut_down_) (void)shutdown();
  }

  Status init();
  Status shutdown() override;
  std::size_t assigned_partition_count() const override {
    std::shared_lock l(partitions_mutex_);
    return partitions_.size();
  }
  bool is_stalled() const override;
  ConsumerStats stats() const override { return stats_.snapshot(); }

 private:
  using PartitionKey = std::pair<std::string, int>;

  // Poll thread.
  void poll_loop();
  void drain_main_queue();
  bool read_partitions();
  void apply_backpressure(PartitionState& p);
  void store_offsets();
  void fire_timeouts();
  void wait_for_work();
  void wake();
  static void on_queue_event(rd_kafka_t*, void* opaque) { static_cast<Engine*>(opaque)->wake(); }
  static void on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts, void* opaque);
  void assign(rd_kafka_topic_partition_list_t* parts, bool cooperative);
  void revoke(rd_kafka_topic_partition_list_t* parts, bool cooperative);
  bool ingest(PartitionState& p, const std::shared_ptr<PartitionState>& self, detail::RecordPtr rec,
              std::vector<ReadyItem>& ready);

  // Workers.
  void worker_loop(std::size_t index);
  bool unpark(PartitionState& p, const std::shared_ptr<PartitionState>& self, std::vector<ReadyItem>& ready);
  Outcome process(detail::Record& rec, PartitionState& p, detail::InvocationSlot& slot);
  enum class Next { retry, complete, abandon, halt, dead_letter };
  Next on_failure(detail::Record& rec, PartitionState& p, const Error& error, int attempt, std::mt19937_64& rng);
  Outcome dead_letter(detail::Record& rec, PartitionState& p, const Error& error, int attempts);
  bool backoff(PartitionState& p, int attempt, std::mt19937_64& rng);

  const EngineSettings settings_;
  const std::shared_ptr<EventHandler> handler_;
  const std::shared_ptr<Clock> clock_;
  Producer* const dead_letters_;
  const std::shared_ptr<spdlog::logger> log_;

  kafka::KafkaHandle consumer_;
  kafka::QueueHandle consumer_queue_;
  std::thread poll_thread_;
  std::vector<std::thread> workers_;
  ReadyQueue ready_;
  std::vector<detail::InvocationSlot> slots_;
  EngineStats stats_;

  mutable std::shared_mutex partitions_mutex_;
  std::map<PartitionKey, std::shared_ptr<PartitionState>> partitions_;  // written by the poll thread only

  std::atomic<bool> stopping_{false};
  std::atomic<bool> shut_down_{false};
  std::atomic<steady::rep> shutdown_started_{0};
  std::atomic<steady::rep> last_poll_beat_{0};
  std::atomic<int> in_flight_total_{0};

  std::mutex wake_mutex_;
  std::condition_variable wake_cv_;
  std::atomic<bool> wake_pending_{false};
  std::mutex shutdown_mutex_;
};

// ---------------------------------------------------------------- startup

Status Engine::init() {
  auto conf = kafka::consumer_conf(settings_);
  if (!conf) return std::move(conf).error();
  rd_kafka_conf_set_opaque(conf->get(), this);
  rd_kafka_conf_set_rebalance_cb(conf->get(), &Engine::on_rebalance);
  char err[512];
  consumer_.reset(rd_kafka_new(RD_KAFKA_CONSUMER, conf->release(), err, sizeof err));
  if (!consumer_) return Error::permanent(std::string("cannot create Kafka consumer: ") + err, ErrorCode::invalid_config);
  rd_kafka_poll_set_consumer(consumer_.get());
  consumer_queue_.reset(rd_kafka_queue_get_consumer(consumer_.get()));
  rd_kafka_queue_cb_event_enable(consumer_queue_.get(), &Engine::on_queue_event, this);

  auto topics = kafka::make_partition_list(static_cast<int>(settings_.topics.size()));
  for (const auto& t : settings_.topics) rd_kafka_topic_partition_list_add(topics.get(), t.c_str(), RD_KAFKA_PARTITION_UA);
  if (auto e = rd_kafka_subscribe(consumer_.get(), topics.get()); e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Error::permanent("cannot subscribe to topics: " + kafka::err_text(e), ErrorCode::kafka);
  }
  last_poll_beat_ = clock_->now().time_since_epoch().count();
  for (std::size_t i = 0; i < slots_.size(); ++i) workers_.emplace_back([this, i] { worker_loop(i); });
  poll_thread_ = std::thread([this] { poll_loop(); });
  log_->info("consumer started: group '{}', topics [{}], mode {}, max_concurrency {}, max_uncommitted {}",
             settings_.group_id, fmt::join(settings_.topics, ", "), to_string(settings_.mode),
             settings_.max_concurrency, settings_.max_uncommitted);
  return {};
}

// ---------------------------------------------------------------- poll thread

void Engine::wake() {
  if (!wake_pending_.exchange(true)) {
    { std::lock_guard l(wake_mutex_); }
    wake_cv_.notify_one();
  }
}

void Engine::wait_for_work() {
  std::unique_lock l(wake_mutex_);
  wake_cv_.wait_for(l, settings_.poll_interval, [&] { return wake_pending_.load() || stopping_.load(); });
  wake_pending_ = false;
}

void Engine::poll_loop() {
  while (!stopping_) {
    last_poll_beat_ = clock_->now().time_since_epoch().count();
    drain_main_queue();
    const bool got = read_partitions();
    store_offsets();
    fire_timeouts();
    if (!got) wait_for_work();
  }
  // Close: librdkafka revokes every partition through on_rebalance (which
  // drains and commits each), then leaves the group.
  store_offsets();
  if (auto e = rd_kafka_consumer_close(consumer_.get()); e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    log_->warn("consumer close: {}", kafka::err_text(e));
  }
}

void Engine::drain_main_queue() {
  // Rebalances and errors arrive here (partition queues are read directly).
  while (rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer_.get(), 0)) {
    kafka::MessageHandle msg(m);
    if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      // A record on the main queue means its partition queue was not split
      // off (should not happen); process it anyway rather than drop it.
      const char* topic = rd_kafka_topic_name(msg->rkt);
      std::shared_ptr<PartitionState> p;
      {
        std::shared_lock l(partitions_mutex_);
        auto it = partitions_.find({topic, msg->partition});
        if (it != partitions_.end()) p = it->second;
      }
      if (p) {
        std::vector<ReadyItem> ready;
        ingest(*p, p, detail::make_record(std::move(msg), &p->topic), ready);
        ready_.push_all(ready);
      } else {
        log_->warn("record {}[{}]@{} arrived for an unassigned partition; it will be re-read by its owner", topic,
                   msg->partition, msg->offset);
      }
    } else if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      const bool fatal = msg->err == RD_KAFKA_RESP_ERR__FATAL;
      log_->log(fatal ? spdlog::level::err : spdlog::level::warn, "consumer error: {}: {}",
                kafka::err_text(msg->err), rd_kafka_message_errstr(msg.get()));
      if (msg->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || msg->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC) {
        stats_.topic_errors++;
      }
    }
  }
}

bool Engine::read_partitions() {
  std::vector<std::shared_ptr<PartitionState>> parts;
  {
    std::shared_lock l(partitions_mutex_);
    parts.reserve(partitions_.size());
    for (auto& [k, p] : partitions_) parts.push_back(p);
  }
  bool got_any = false;
  constexpr int kBatch = 512;
  rd_kafka_message_t* batch[kBatch];
  std::vector<ReadyItem> ready;
  for (auto& p : parts) {
    int capacity;
    {
      std::lock_guard l(p->mutex);
      const bool blocked = !p->parked.empty() || p->halted || p->revoked;
      capacity = blocked ? 0 : settings_.max_uncommitted - static_cast<int>(p->tracker.uncommitted());
    }
    if (capacity > 0) {
      const int n = static_cast<int>(
          rd_kafka_consume_batch_queue(p->queue.get(), 0, batch, static_cast<size_t>(std::min(capacity, kBatch))));
      for (int i = 0; i < n; ++i) {
        kafka::MessageHandle msg(batch[i]);
        if (msg->err) {
          if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            log_->warn("fetch error on {}[{}]: {}", p->topic, p->partition.value(), rd_kafka_message_errstr(msg.get()));
          }
          continue;
        }
        got_any = true;
        ingest(*p, p, detail::make_record(std::move(msg), &p->topic), ready);
      }
      ready_.push_all(ready);
    }
    apply_backpressure(*p);
  }
  return got_any;
}

bool Engine::ingest(PartitionState& p, const std::shared_ptr<PartitionState>& self, detail::RecordPtr rec,
                    std::vector<ReadyItem>& ready) {
  std::lock_guard l(p.mutex);
  if (p.revoked) return false;
  if (!p.tracker.take(rec->offset, clock_->now())) {
    // Already seen (a re-fetch after pause/seek): keep the first copy.
    log_->debug("dropping re-delivered record {}[{}]@{}", p.topic, p.partition.value(), rec->offset.value());
    return false;
  }
  stats_.received++;
  stats_.note_uncommitted(p.tracker.uncommitted());
  // Loop prevention: our own output comes back committed and skipped.
  if (auto src = rec->find_header("source-system"); src && *src == settings_.group_id) {
    stats_.filtered_loop++;
    if (p.tracker.complete(rec->offset)) p.commit_dirty = true;
    return true;
  }
  KeyQueue& kq = key_queue(p, rec->key);
  ++p.queued;
  if (!p.parked.empty() || static_cast<int>(kq.pending.size()) >= settings_.max_enqueued_per_key) {
    p.parked.push_back(std::move(rec));  // the partition stops being read until this drains
    return true;
  }
  kq.pending.push_back(std::move(rec));
  stats_.note_enqueued(kq.pending.size());
  if (!kq.scheduled) {
    kq.scheduled = true;
    ready.push_back(ReadyItem{self, &kq});
  }
  return true;
}

void Engine::apply_backpressure(PartitionState& p) {
  bool full, can_resume, halted;
  {
    std::lock_guard l(p.mutex);
    if (p.revoked) return;
    const auto unc = static_cast<int>(p.tracker.uncommitted());
    halted = p.halted;
    full = !p.parked.empty() || halted || unc >= settings_.max_uncommitted;
    // Hysteresis: resume once half the window is free, so a partition does
    // not flap between paused and resumed on every completion.
    can_resume = p.parked.empty() && !halted && unc <= settings_.max_uncommitted / 2;
  }
  // The engine pauses by not reading the partition's queue: what librdkafka
  // already fetched stays queued (bounded by queued.max.messages.kbytes and
  // queued.min.messages, after which librdkafka stops fetching by itself),
  // and reading resumes exactly where it stopped. librdkafka's own
  // pause/resume would discard the prefetched records and re-fetch them,
  // costing a broker round trip per cycle; it is used only for a halted
  // partition, which will not be read again.
  if (full && !p.paused) {
    p.paused = true;
    stats_.pauses++;
  } else if (!full && p.paused && can_resume) {
    p.paused = false;
    stats_.resumes++;
  }
  if (halted && !p.fetch_paused) {
    auto list = kafka::make_partition_list();
    rd_kafka_topic_partition_list_add(list.get(), p.topic.c_str(), p.partition.value());
    rd_kafka_pause_partitions(consumer_.get(), list.get());
    p.fetch_paused = true;
  }
}

void Engine::store_offsets() {
  std::vector<std::shared_ptr<PartitionState>> dirty;
  {
    std::shared_lock l(partitions_mutex_);
    for (auto& [k, p] : partitions_) {
      if (p->commit_dirty.exchange(false)) dirty.push_back(p);
    }
  }
  if (dirty.empty()) return;
  auto list = kafka::make_partition_list(static_cast<int>(dirty.size()));
  for (auto& p : dirty) {
    std::optional<Offset> pos;
    {
      std::lock_guard l(p->mutex);
      pos = p->tracker.commit_position();
    }
    if (!pos || pos->value() <= p->stored_position) continue;
    p->stored_position = pos->value();
    rd_kafka_topic_partition_list_add(list.get(), p->topic.c_str(), p->partition.value())->offset = pos->value();
  }
  if (list->cnt == 0) return;
  if (auto e = rd_kafka_offsets_store(consumer_.get(), list.get()); e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    log_->debug("offsets_store: {}", kafka::err_text(e));
  }
}

void Engine::fire_timeouts() {
  const auto now = clock_->now();
  for (auto& slot : slots_) {
    bool expired;
    {
      std::lock_guard l(slot.mutex);
      expired = slot.active && !slot.stop.stop_requested() && now - slot.started >= settings_.timeout;
    }
    if (expired && slot.cancel(CancelReason::timeout)) {
      log_->warn("handler exceeded timeout of {} ms; cancellation requested", settings_.timeout.count());
    }
  }
}

// ---------------------------------------------------------------- rebalance

void Engine::on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts,
                          void* opaque) {
  auto* self = static_cast<Engine*>(opaque);
  const bool cooperative = std::string_view(rd_kafka_rebalance_protocol(rk)) == "COOPERATIVE";
  self->stats_.rebalances++;
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    self->assign(parts, cooperative);
  } else {
    self->revoke(parts, cooperative);
  }
}

void Engine::assign(rd_kafka_topic_partition_list_t* parts, bool cooperative) {
  for (int i = 0; i < parts->cnt; ++i) {
    const auto& tp = parts->elems[i];
    auto p = std::make_shared<PartitionState>(tp.topic, Partition{tp.partition});
    // Split the partition's records off the shared consumer queue so each
    // partition can be read exactly up to its free capacity.
    p->queue.reset(rd_kafka_queue_get_partition(consumer_.get(), tp.topic, tp.partition));
    rd_kafka_queue_forward(p->queue.get(), nullptr);
    rd_kafka_queue_cb_event_enable(p->queue.get(), &Engine::on_queue_event, this);
    std::unique_lock l(partitions_mutex_);
    partitions_[{tp.topic, tp.partition}] = std::move(p);
  }
  rd_kafka_error_t* error = nullptr;
  if (cooperative) {
    error = rd_kafka_incremental_assign(consumer_.get(), parts);
  } else if (auto e = rd_kafka_assign(consumer_.get(), parts); e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    log_->error("assign failed: {}", kafka::err_text(e));
  }
  if (error) {
    log_->error("incremental assign failed: {}", rd_kafka_error_string(error));
    rd_kafka_error_destroy(error);
  }
  log_->info("assigned {} partition(s); {} now owned", parts->cnt, assigned_partition_count());
}

void Engine::revoke(rd_kafka_topic_partition_list_t* parts, bool cooperative) {
  const bool lost = rd_kafka_assignment_lost(consumer_.get());
  std::vector<std::shared_ptr<PartitionState>> revoked;
  {
    std::shared_lock l(partitions_mutex_);
    for (int i = 0; i < parts->cnt; ++i) {
      auto it = partitions_.find({parts->elems[i].topic, parts->elems[i].partition});
      if (it != partitions_.end()) revoked.push_back(it->second);
    }
  }
  // 1. Stop reading. Records already taken keep being dispatched, so that
  //    everything handled lies in the contiguous committed prefix and the
  //    next owner redoes nothing; the work is bounded by max_uncommitted.
  for (auto& p : revoked) {
    std::lock_guard l(p->mutex);
    p->revoked = true;
    if (p->halted) drop_queued_locked(*p);  // a halted partition never drains
    p->revoke_source.request_stop();        // cut retry backoffs short
  }
  // 2. Wait for the drain, within the shutdown budget (during shutdown the
  //    budget started when shutdown() was called). At 4/5 of it, queued
  //    records are dropped (uncommitted: the next owner reads them again)
  //    and running handlers are asked to cancel.
  const auto now = clock_->now();
  auto start = now;
  if (stopping_) start = steady::time_point(steady::duration(shutdown_started_.load()));
  const auto budget = settings_.shutdown_timeout;
  const auto cancel_at = start + budget * 4 / 5;
  const auto give_up_at = start + budget;
  const CancelReason why = stopping_ ? CancelReason::shutdown : CancelReason::revoked;
  for (auto& p : revoked) {
    std::unique_lock l(p->mutex);
    bool cancelled = false;
    while (p->in_flight > 0 || (p->queued > 0 && !p->drop_queued)) {
      const auto t = clock_->now();
      if (t >= give_up_at) {
        log_->error("{}[{}]: {} handler(s) still running after shutdown_timeout ({} ms); committing what finished",
                    p->topic, p->partition.value(), p->in_flight, budget.count());
        break;
      }
      if (!cancelled && t >= cancel_at) {
        drop_queued_locked(*p);
        l.unlock();
        for (auto& slot : slots_) slot.cancel(why, p.get());
        l.lock();
        cancelled = true;
        continue;
      }
      // Real-time wait slices: handlers finishing notify `idle`.
      p->idle.wait_for(l, milliseconds(20));
    }
    drop_queued_locked(*p);
  }
  // 3. Commit what finished, synchronously, unless the partitions were lost
  //    (someone else owns them already; a commit would be rejected anyway).
  if (!lost) {
    auto list = kafka::make_partition_list(static_cast<int>(revoked.size()));
    for (auto& p : revoked) {
      std::lock_guard l(p->mutex);
      if (auto pos = p->tracker.commit_position()) {
        rd_kafka_topic_partition_list_add(list.get(), p->topic.c_str(), p->partition.value())->offset = pos->value();
      }
    }
    if (list->cnt > 0) {
      // Store first: librdkafka auto-commits the *stored* offsets when the
      // partitions are unassigned, and an older stored value would
      // overwrite the commit made here.
      if (auto e = rd_kafka_offsets_store(consumer_.get(), list.get()); e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        log_->debug("offsets_store on revoke: {}", kafka::err_text(e));
      }
      if (auto e = rd_kafka_commit(consumer_.get(), list.get(), 0); e != RD_KAFKA_RESP_ERR_NO_ERROR &&
                                                                    e != RD_KAFKA_RESP_ERR__NO_OFFSET) {
        log_->warn("commit on revoke failed: {}", kafka::err_text(e));
      } else {
        stats_.committed_on_revoke += static_cast<std::uint64_t>(list->cnt);
      }
    }
  } else {
    log_->warn("{} partition(s) lost (session timed out?): not committing", parts->cnt);
  }
  {
    std::unique_lock l(partitions_mutex_);
    for (auto& p : revoked) partitions_.erase({p->topic, p->partition.value()});
  }
  for (auto& p : revoked) {
    // Re-attach the queue to the consumer queue before dropping our handle so
    // librdkafka's own bookkeeping for the partition stays consistent.
    rd_kafka_queue_cb_event_enable(p->queue.get(), nullptr, nullptr);
    p->queue.reset();
  }
  if (cooperative) {
    if (rd_kafka_error_t* error = rd_kafka_incremental_unassign(consumer_.get(), parts)) {
      log_->error("incremental unassign failed: {}", rd_kafka_error_string(error));
      rd_kafka_error_destroy(error);
    }
  } else {
    rd_kafka_assign(consumer_.get(), nullptr);
  }
  log_->info("revoked {} partition(s); {} still owned", parts->cnt, assigned_partition_count());
}

// ---------------------------------------------------------------- workers

// Moves parked records (in arrival order) into their key queues while they
// fit. Caller holds p.mutex. Returns true if anything moved.
bool Engine::unpark(PartitionState& p, const std::shared_ptr<PartitionState>& self, std::vector<ReadyItem>& ready) {
  bool moved = false;
  while (!p.parked.empty()) {
    auto& rec = p.parked.front();
    KeyQueue& kq = key_queue(p, rec->key);
    if (static_cast<int>(kq.pending.size()) >= settings_.max_enqueued_per_key) break;
    kq.pending.push_back(std::move(rec));
    p.parked.pop_front();
    stats_.note_enqueued(kq.pending.size());
    if (!kq.scheduled) {
      kq.scheduled = true;
      ready.push_back(ReadyItem{self, &kq});
    }
    moved = true;
  }
  return moved;
}

void Engine::worker_loop(std::size_t index) {
  auto& slot = slots_[index];
  while (auto item = ready_.pop()) {
    PartitionState& p = *item->partition;
    KeyQueue* kq = item->key;
    detail::RecordPtr rec;
    bool unblocked = false;
    std::vector<ReadyItem> newly_ready;
    {
      std::lock_guard l(p.mutex);
      if (p.drop_queued || p.halted || kq->pending.empty()) {
        kq->scheduled = false;
        if (kq->pending.empty()) erase_key(p, kq);
        if (p.revoked && p.in_flight == 0) p.idle.notify_all();
        continue;
      }
      rec = std::move(kq->pending.front());
      kq->pending.pop_front();
      --p.queued;
      unblocked = unpark(p, item->partition, newly_ready);
      ++p.in_flight;
    }
    ready_.push_all(newly_ready);
    const int now_in_flight = ++in_flight_total_;
    stats_.note_in_flight(static_cast<std::uint64_t>(now_in_flight));
    if (unblocked) wake();

    const Outcome outcome = process(*rec, p, slot);

    --in_flight_total_;
    bool reschedule = false;
    bool freed_capacity = false;
    {
      std::lock_guard l(p.mutex);
      --p.in_flight;
      if (outcome == Outcome::complete && p.tracker.complete(rec->offset)) {
        p.commit_dirty = true;
        freed_capacity = p.paused.load(std::memory_order_relaxed);
      }
      if (outcome == Outcome::halt) p.halted = true;
      // After an abandoned record nothing later may run: the abandoned one
      // is redelivered to the next owner and must come first.
      if (outcome == Outcome::abandon || (outcome == Outcome::halt && p.revoked)) drop_queued_locked(p);
      if (!kq->pending.empty() && !p.drop_queued && !p.halted) {
        reschedule = true;
      } else {
        kq->scheduled = false;
        if (kq->pending.empty()) erase_key(p, kq);  // kq is gone after this
      }
      if (p.revoked) p.idle.notify_all();
    }
    if (reschedule) ready_.push(std::move(*item));
    if (freed_capacity) wake();
  }
}

Outcome Engine::process(detail::Record& rec, PartitionState& p, detail::InvocationSlot& slot) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  if (!rec.key_is_valid_utf8) {
    stats_.decode_failures++;
    auto e = Error::permanent("record key is not valid UTF-8", ErrorCode::decode_failed);
    log_->error("{}[{}]@{}: undecodable record: {}", p.topic, p.partition.value(), rec.offset.value(), e.message());
    return settings_.mode == Mode::low_latency ? dead_letter(rec, p, e, 0) : Outcome::complete;
  }
  if (settings_.codec == PayloadCodec::json && !rec.raw_payload().empty()) {
    const auto raw = rec.raw_payload();
    rec.payload = nlohmann::json::parse(raw.begin(), raw.end(), nullptr, /*allow_exceptions=*/false);
    if (rec.payload.is_discarded()) {
      stats_.decode_failures++;
      auto e = Error::permanent("payload is not valid JSON (" + std::to_string(raw.size()) + " bytes)",
                                ErrorCode::decode_failed);
      log_->error("{}[{}]@{} key '{}': undecodable record: {}; {}", p.topic, p.partition.value(), rec.offset.value(),
                  rec.key, e.message(),
                  settings_.mode == Mode::low_latency ? "sending it to the failure topic" : "committed and skipped");
      rec.payload = nullptr;
      return settings_.mode == Mode::low_latency ? dead_letter(rec, p, e, 0) : Outcome::complete;
    }
  }
  if (!type_allowed(settings_.allowed_events, rec.payload)) {
    stats_.filtered_event_type++;
    return Outcome::complete;
  }
  int attempt = 0;
  for (;;) {
    slot.begin(rec, p, attempt, clock_->now());
    Status result;
    try {
      Context ctx(slot);
      Message msg(rec);
      result = handler_->on_message(ctx, msg);
    } catch (...) {
      result = handler_->classify_exception(std::current_exception());
    }
    slot.end();
    if (result.ok()) {
      stats_.handled++;
      return Outcome::complete;
    }
    stats_.failed++;
    switch (on_failure(rec, p, result.error(), attempt, rng)) {
      case Next::retry:
        ++attempt;
        stats_.retries++;
        continue;
      case Next::complete: return Outcome::complete;
      case Next::abandon: return Outcome::abandon;
      case Next::halt: return Outcome::halt;
      case Next::dead_letter: return dead_letter(rec, p, result.error(), attempt + 1);
    }
  }
}

// Decides what a failed attempt leads to, by mode and error class. When it
// answers `retry`, the backoff has already been waited.
Engine::Next Engine::on_failure(detail::Record& rec, PartitionState& p, const Error& error, int attempt,
                                std::mt19937_64& rng) {
  const bool permanent = error.is_permanent() || handler_->is_permanent(error);
  const auto where = fmt::format("{}[{}]@{} key '{}'", p.topic, p.partition.value(), rec.offset.value(), rec.key);
  if (error.is_terminal()) {
    log_->error("{}: terminal error, stopping the partition: {}", where, error.message());
    std::lock_guard l(p.mutex);
    p.halt_reason = error.message();
    return Next::halt;
  }
  bool revoked;
  {
    std::lock_guard l(p.mutex);
    revoked = p.revoked;
  }
  if (revoked || stopping_) {
    log_->info("{}: failed while {} ({}); leaving it uncommitted for redelivery", where,
               stopping_ ? "shutting down" : "revoking", error.message());
    return Next::abandon;
  }
  if (permanent) {
    if (settings_.mode == Mode::low_latency) return Next::dead_letter;
    log_->error("{}: permanent error, committing and moving on: {}", where, error.message());
    stats_.skipped_permanent++;
    return Next::complete;
  }
  if (settings_.mode == Mode::best_effort) {
    log_->warn("{}: transient error (best effort, not retried): {}", where, error.message());
    return Next::complete;
  }
  if (settings_.mode == Mode::low_latency && attempt >= settings_.max_retries) return Next::dead_letter;
  log_->warn("{}: transient error on attempt {}, retrying: {}", where, attempt + 1, error.message());
  return backoff(p, attempt, rng) ? Next::retry : Next::abandon;
}

bool Engine::backoff(PartitionState& p, int attempt, std::mt19937_64& rng) {
  const auto delay = settings_.retry.delay(attempt, rng);
  clock_->sleep_for(delay, p.revoke_source.get_token());
  return !p.revoke_source.stop_requested() && !stopping_;
}

Outcome Engine::dead_letter(detail::Record& rec, PartitionState& p, const Error& error, int attempts) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  if (!dead_letters_ || !settings_.failure_topic) {
    log_->error("{}[{}]@{}: no failure topic configured; leaving the record uncommitted", p.topic,
                p.partition.value(), rec.offset.value());
    return Outcome::halt;
  }
  Headers headers = rec.all_headers();
  auto add = [&](std::string name, std::string value) { headers.push_back(Header{std::move(name), std::move(value)}); };
  add("source-kind", "message");
  add("source-topic", p.topic);
  add("source-partition", std::to_string(p.partition.value()));
  add("source-offset", std::to_string(rec.offset.value()));
  add("source-timestamp",
      std::to_string(std::chrono::duration_cast<milliseconds>(rec.timestamp.time_since_epoch()).count()));
  add("source-group-id", settings_.group_id);
  add("source-error", error.message());
  add("prosody-error-class", std::string(to_string(error.error_class())));
  add("prosody-attempts", std::to_string(attempts));
  // Writing to the failure topic retries until it works or we lose the
  // partition: a record is never dropped because the DLQ was unavailable.
  for (int i = 0;; ++i) {
    auto r = dead_letters_->send(*settings_.failure_topic, rec.key, rec.raw_payload(), headers,
                                 p.revoke_source.get_token());
    if (r) {
      stats_.dead_lettered++;
      log_->warn("{}[{}]@{} key '{}' sent to failure topic '{}' after {} attempt(s): {}", p.topic, p.partition.value(),
                 rec.offset.value(), rec.key, *settings_.failure_topic, attempts, error.message());
      return Outcome::complete;
    }
    log_->error("writing to failure topic '{}' failed (attempt {}): {}", *settings_.failure_topic, i + 1,
                r.error().message());
    if (!backoff(p, i, rng)) return Outcome::abandon;
  }
}

// ---------------------------------------------------------------- lifecycle

bool Engine::is_stalled() const {
  const auto now = clock_->now();
  const auto beat = steady::time_point(steady::duration(last_poll_beat_.load()));
  if (now - beat > settings_.stall_threshold) return true;
  std::shared_lock l(partitions_mutex_);
  for (auto& [k, p] : partitions_) {
    std::lock_guard pl(p->mutex);
    if (p->halted) return true;
    if (auto since = p->tracker.oldest_uncommitted_since(); since && now - *since > settings_.stall_threshold) {
      return true;
    }
  }
  return false;
}

Status Engine::shutdown() {
  std::lock_guard l(shutdown_mutex_);
  if (shut_down_.exchange(true)) return {};
  shutdown_started_ = clock_->now().time_since_epoch().count();
  stopping_ = true;
  wake();
  if (poll_thread_.joinable()) poll_thread_.join();
  ready_.close();
  for (auto& w : workers_) w.join();
  log_->info("consumer stopped: {} received, {} handled", stats_.received.load(), stats_.handled.load());
  return {};
}

}  // namespace

Result<std::unique_ptr<ConsumerEngine>> ConsumerEngine::start(EngineSettings settings,
                                                               std::shared_ptr<EventHandler> handler,
                                                               std::shared_ptr<Clock> clock, Producer* dead_letters) {
  auto engine = std::make_unique<Engine>(std::move(settings), std::move(handler), std::move(clock), dead_letters);
  if (auto s = engine->init(); !s) return std::move(s).error();
  return std::unique_ptr<ConsumerEngine>(std::move(engine));
}

}  // namespace prosody::engine
