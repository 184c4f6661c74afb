// The consumer engine's implementation class, shared by its source files:
// consumer_engine.cc (start-up, lifecycle), poll_loop.cc (the poll thread),
// rebalance.cc (assign/revoke) and worker.cc (handler execution). Thread
// rules are in README.md of this folder and on each member below.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <shared_mutex>
#include <thread>

#include <spdlog/spdlog.h>

#include "engine/consumer_engine.h"
#include "engine/invocation_slot.h"
#include "engine/partition_state.h"
#include "engine/ready_queue.h"
#include "engine/stats.h"
#include "kafka/handles.h"
#include "prosody/logging.h"
#include "middleware/layer.h"
#include "timers/timer_service.h"

namespace prosody::engine {

using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;

// What became of one record.
enum class Outcome {
  complete,  // done (handled, skipped or dead-lettered): may be committed
  abandon,   // not done (revoked or shutting down): the next owner redoes it
  halt,      // terminal error: the partition stops here
};

// Spare key queues kept per partition: enough for every uncommitted record
// to have a key of its own, within a bound.
inline std::size_t spare_key_limit(int max_uncommitted) {
  return static_cast<std::size_t>(std::clamp(max_uncommitted, 16, 1024));
}

// Removes a drained, unscheduled key (nothing refers to its KeyQueue any
// more) and keeps its node for reuse. Extracts through an iterator: erasing
// by a reference to the node's own key would read the key after it is freed.
inline void erase_key(PartitionState& p, KeyQueue* kq, std::size_t spare_limit) {
  auto it = p.keys.find(kq->key);
  if (it == p.keys.end() || it->second.get() != kq) return;
  auto node = p.keys.extract(it);
  if (p.spare_keys.size() < spare_limit) p.spare_keys.push_back(std::move(node));
}

// Drops every record not yet started (left uncommitted, so whoever owns the
// partition next reads them again). Caller holds p.mutex.
inline void drop_queued_locked(PartitionState& p) {
  p.drop_queued = true;
  p.drop_source.request_stop();  // events waiting for a handler slot give up too
  for (auto& [k, kq] : p.keys) kq->pending.clear();
  p.parked.clear();
  p.queued = 0;
}

// The key's queue, created on first use (from a spare node when there is
// one: assigning the key reuses its string's buffer). Caller holds p.mutex.
inline KeyQueue& key_queue(PartitionState& p, const Key& key) {
  auto it = p.keys.find(key);
  if (it != p.keys.end()) return *it->second;
  if (!p.spare_keys.empty()) {
    auto node = std::move(p.spare_keys.back());
    p.spare_keys.pop_back();
    node.key() = key;
    node.mapped()->key = key;
    return *p.keys.insert(std::move(node)).position->second;
  }
  auto kq = std::make_unique<KeyQueue>();
  kq->key = key;
  return *p.keys.emplace(key, std::move(kq)).first->second;
}

inline bool type_allowed(const std::vector<std::string>& prefixes, const nlohmann::json& payload) {
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
        log_(prosody::logger()), slots_(worker_count(settings_)),
        timer_service_(clock_, settings_.slab_size, std::chrono::seconds(1)) {
    for (auto& slot : slots_) {
      slot.timer_service = &timer_service_;
      slot.timer_defer = settings_.defer_timers.get();
      slot.group_id = &settings_.group_id;
    }
  }

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
  // Ingests `records` in order under one lock and one clock read, and
  // clears it. The poll thread hands records over in chunks of at most
  // kIngestChunk: a lock and a clock read per record were a tenth of its
  // work, and a bounded chunk keeps a completing worker's wait for the
  // partition mutex short.
  void ingest(PartitionState& p, const std::shared_ptr<PartitionState>& self, std::vector<detail::RecordPtr>& records,
              std::vector<ReadyItem>& ready);
  static constexpr std::size_t kIngestChunk = 64;
  // Caller holds p.mutex.
  bool ingest_locked(PartitionState& p, const std::shared_ptr<PartitionState>& self, detail::RecordPtr rec,
                     Clock::steady_time now, std::vector<ReadyItem>& ready);

  // Workers.
  void worker_loop(std::size_t index);
  bool unpark(PartitionState& p, const std::shared_ptr<PartitionState>& self, std::vector<ReadyItem>& ready);
  bool take_event(PartitionState& p, const std::shared_ptr<PartitionState>& self, KeyQueue& kq, QueuedEvent& event,
                  std::vector<ReadyItem>& newly_ready);
  // Events of one key a worker runs back to back before it lets other keys
  // go first.
  static constexpr int kKeyBudget = 32;
  Outcome process(detail::Record& rec, PartitionState& p, detail::InvocationSlot& slot);
  Outcome process_timer(const timers::DueTimer& timer, PartitionState& p, detail::InvocationSlot& slot);
  middleware::Invocation invocation(PartitionState& p, detail::InvocationSlot& slot, const Key& key);
  // Maps the stack's final result to what becomes of the event.
  Outcome settle(const middleware::Invocation& inv, const Status& result);
  Status build_stack();
  // Handlers run on max_concurrency scheduler permits. Four times as many
  // worker threads let retries sleep in backoff and requests of *both*
  // demand classes wait for a permit at the same time, which is where the
  // fair scheduler chooses: with only twice as many, a class holding every
  // permit has no waiter left, so each release goes to the other class by
  // default and the failure weight is not kept (measured in qos_mock_test:
  // 0.46 instead of 0.30). Waiting threads cost a stack, not CPU.
  static std::size_t worker_count(const EngineSettings& s) {
    return static_cast<std::size_t>(4 * std::max(1, s.max_concurrency));
  }
  // Timer thread: queues a due timer behind the key's earlier events.
  bool deliver_timer(const std::weak_ptr<PartitionState>& partition, timers::DueTimer timer);

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
  mutable std::vector<detail::InvocationSlot> slots_;  // each guarded by its own mutex (read by is_stalled)
  EngineStats stats_;

  mutable std::shared_mutex partitions_mutex_;
  std::map<PartitionKey, std::shared_ptr<PartitionState>> partitions_;  // written by the poll thread only

  std::atomic<bool> stopping_{false};
  std::atomic<bool> shut_down_{false};
  std::atomic<steady::rep> shutdown_started_{0};
  std::atomic<steady::rep> last_poll_beat_{0};

  std::mutex wake_mutex_;
  std::condition_variable wake_cv_;
  std::atomic<bool> wake_pending_{false};
  std::mutex shutdown_mutex_;

  // Failure handling and QoS: built by init(), shared by the workers.
  std::unique_ptr<middleware::FairScheduler> scheduler_;
  std::unique_ptr<middleware::MonopolizationDetector> monopolization_;
  std::unique_ptr<middleware::FailureTracker> failures_;
  std::unique_ptr<middleware::Stack> stack_;

  // Declared last: its thread calls deliver_timer, which uses the members above.
  timers::TimerService timer_service_;
};

}  // namespace prosody::engine
