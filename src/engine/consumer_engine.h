// The consumer engine: per-key ordered, cross-key concurrent processing of
// the subscribed topics.
//
// Threads:
//   poll thread  - owns the librdkafka consumer: reads each partition's own
//                  queue up to its free capacity, pauses/resumes partitions,
//                  stores offsets, runs rebalance callbacks, fires handler
//                  timeouts. Never runs user code; waits for it only while
//                  revoking (bounded by shutdown_timeout).
//   workers      - max_concurrency threads running handlers (and their
//                  retries) for one key at a time.
//
// Commit: librdkafka auto-commits the stored offsets every commit_interval;
// the stored offset of a partition is the highest contiguous completed
// offset + 1. On revoke the engine stops dispatching the partition, lets
// in-flight handlers finish, and commits synchronously inside the rebalance
// callback, so the next owner does not redo finished work.
//
// Thread safety: public methods are safe from any thread; shutdown() must be
// called once.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/backoff.h"
#include "middleware/failure_tracker.h"
#include "middleware/fair_scheduler.h"
#include "middleware/defer_backoff.h"
#include "middleware/defer_loader.h"
#include "middleware/monopolization_detector.h"
#include "store/dedup_store.h"
#include "store/defer_store.h"
#include "prosody/client.h"
#include "prosody/clock.h"
#include "prosody/config.h"
#include "prosody/handler.h"
#include "prosody/producer.h"
#include "prosody/result.h"
#include "store/timer_store.h"

namespace prosody::engine {

// The subset of Config the engine reads, resolved (no optionals left).
struct EngineSettings {
  std::string bootstrap_servers;
  std::string group_id;
  std::string client_id;
  std::vector<std::string> topics;
  std::vector<std::pair<std::string, std::string>> kafka_properties;
  Mode mode = Mode::pipeline;
  PayloadCodec codec = PayloadCodec::json;
  std::vector<std::string> allowed_events;
  std::optional<std::string> failure_topic;
  int max_concurrency = 32;
  int max_uncommitted = 64;
  int max_enqueued_per_key = 8;
  int max_retries = 3;
  BackoffPolicy retry;
  std::chrono::milliseconds poll_interval{100};
  std::chrono::milliseconds commit_interval{1000};
  std::chrono::milliseconds shutdown_timeout{30000};
  std::chrono::milliseconds stall_threshold{300000};
  std::chrono::milliseconds timeout{240000};
  // Durable timers: where they are stored, and the slab size they are
  // loaded by. Required (the client picks memory, SQLite or Cassandra).
  std::shared_ptr<store::TimerStore> timer_store;
  std::chrono::seconds slab_size{3600};
  // Failure handling and QoS (src/middleware).
  middleware::SchedulerOptions scheduler;
  middleware::MonopolizationOptions monopolization;
  middleware::FailureTrackerOptions failure_tracker;
  // Deferral (pipeline mode): the message defer queue and the loader that
  // reads deferred offsets back. Both null: no deferral.
  std::shared_ptr<store::MessageDeferStore> defer_messages;
  std::shared_ptr<middleware::DeferLoader> defer_loader;
  // The timer defer queue (pipeline mode). Null: timers are not deferred.
  std::shared_ptr<store::TimerDeferStore> defer_timers;
  bool defer_enabled = true;
  middleware::DeferBackoff defer_backoff;
  // Deduplication (pipeline mode): the store of handled ids. Null, or a
  // cache size of 0: no deduplication.
  std::shared_ptr<store::DedupStore> dedup_store;
  int idempotence_cache_size = 8192;
  std::string idempotence_version = "1";

  static EngineSettings from(const Config& config, const std::string& bootstrap_servers);
};

class ConsumerEngine {
 public:
  virtual ~ConsumerEngine() = default;

  // Creates the consumer, subscribes, and starts the threads.
  // `dead_letters` is used in low_latency mode (may be null otherwise).
  static Result<std::unique_ptr<ConsumerEngine>> start(EngineSettings settings, std::shared_ptr<EventHandler> handler,
                                                       std::shared_ptr<Clock> clock, Producer* dead_letters);

  // Graceful: stop reading, let in-flight handlers run (cancellation fires
  // at 4/5 of shutdown_timeout), commit, leave the group, join threads.
  virtual Status shutdown() = 0;

  virtual std::size_t assigned_partition_count() const = 0;
  virtual bool is_stalled() const = 0;
  virtual ConsumerStats stats() const = 0;
};

}  // namespace prosody::engine
