// File: prosody/client.h
//
// The high-level client: a producer plus a consumer that runs an
// EventHandler with per-key ordering and cross-key concurrency.
//
//   auto client = prosody::Client::create(prosody::Config::from_env().with_group_id("orders"));
//   if (auto s = client->subscribe(std::make_shared<Orders>()); !s) { ... s.error().message() ... }
//   client->send("topic", "key", R"({"type":"order.created"})");
//   ...
//   client->unsubscribe();   // graceful: finish in-flight work, commit, leave the group
//
// Consumer states (seed 000): unconfigured -> configured -> running; a bad
// consumer configuration gives `configuration_failed`, and subscribe()
// returns the validation error. The producer still works in that state if
// its own settings are valid.
//
// Thread safety: all methods are safe to call from any thread; subscribe and
// unsubscribe are serialised internally.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "prosody/clock.h"
#include "prosody/config.h"
#include "prosody/handler.h"
#include "prosody/producer.h"
#include "prosody/result.h"

namespace prosody {

enum class ConsumerState { unconfigured, configuration_failed, configured, running };

std::string_view to_string(ConsumerState s) noexcept;

// Counters of the consumer engine since subscribe(); a snapshot.
struct ConsumerStats {
  std::uint64_t received = 0;            // records taken from Kafka
  std::uint64_t handled = 0;             // handler calls that succeeded
  std::uint64_t failed = 0;              // handler calls that returned an error
  std::uint64_t retries = 0;             // retry attempts
  std::uint64_t skipped_permanent = 0;   // committed after a permanent error
  std::uint64_t decode_failures = 0;     // undecodable key or payload
  std::uint64_t filtered_loop = 0;       // skipped: our own source-system
  std::uint64_t filtered_event_type = 0; // skipped: type not in allowed_events
  std::uint64_t dead_lettered = 0;       // sent to the failure topic
  std::uint64_t pauses = 0;              // partitions paused for backpressure
  std::uint64_t resumes = 0;
  std::uint64_t rebalances = 0;          // assign + revoke callbacks
  std::uint64_t committed_on_revoke = 0; // partitions committed in a revoke callback
  // High-water marks of the engine's bounded buffers since subscribe().
  std::uint64_t max_uncommitted_seen = 0;     // per partition
  std::uint64_t max_enqueued_per_key_seen = 0;
  std::uint64_t max_in_flight_seen = 0;
  std::uint64_t timers_fired = 0;              // on_timer calls started (not counting retries)
  std::uint64_t max_timer_lateness_ms = 0;     // worst delay from a timer's due time to its start
  std::uint64_t timeouts = 0;                  // handlers cancelled for exceeding `timeout`
  std::uint64_t monopolized = 0;               // calls refused because their key hogged the workers
  std::uint64_t deferred = 0;                  // messages parked behind a failing key (pipeline)
  std::uint64_t deduplicated = 0;              // messages skipped: already handled (pipeline)
  std::uint64_t dedup_store_errors = 0;        // dedup store lookups or recordings that failed
};

class Client {
 public:
  virtual ~Client() = default;

  // Never fails: configuration problems surface from subscribe()/send().
  static std::shared_ptr<Client> create(Config config, std::shared_ptr<Clock> clock = nullptr);

  virtual Status subscribe(std::shared_ptr<EventHandler> handler) = 0;
  // Graceful shutdown of the consumer (seed 000's shutdown_timeout budget).
  virtual Status unsubscribe() = 0;

  virtual ConsumerState consumer_state() const = 0;
  virtual std::size_t assigned_partition_count() const = 0;
  virtual bool is_stalled() const = 0;
  virtual std::string source_system() const = 0;
  virtual ConsumerStats stats() const = 0;

  // Producer side: sends `payload` (bytes, typically JSON text).
  virtual Result<Delivery> send(std::string_view topic, std::string_view key, std::string_view payload,
                                const Headers& headers = {}, std::stop_token stop = {}) = 0;
  Result<Delivery> send_json(std::string_view topic, std::string_view key, const nlohmann::json& payload,
                             const Headers& headers = {}, std::stop_token stop = {}) {
    return send(topic, key, payload.dump(), headers, std::move(stop));
  }
  // The underlying producer, or the error that prevented creating it.
  virtual Result<Producer*> producer() = 0;
};

}  // namespace prosody
