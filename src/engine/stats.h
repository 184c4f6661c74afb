// Lock-free counters of one consumer engine, snapshotted into the public
// ConsumerStats. Relaxed atomics: counters are monotonic and read for
// reporting only.
//
// Thread safety: all members are safe from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "prosody/client.h"

namespace prosody::engine {

struct EngineStats {
  std::atomic<std::uint64_t> received{0}, handled{0}, failed{0}, retries{0}, skipped_permanent{0},
      decode_failures{0}, filtered_loop{0}, filtered_event_type{0}, dead_lettered{0}, pauses{0}, resumes{0},
      rebalances{0}, committed_on_revoke{0}, topic_errors{0}, timers_fired{0},
      timeouts{0}, monopolized{0}, deferred{0}, deduplicated{0}, dedup_store_errors{0};
  std::atomic<std::uint64_t> max_uncommitted_seen{0}, max_enqueued_per_key_seen{0}, max_in_flight_seen{0},
      max_timer_lateness_ms{0};

  static void raise(std::atomic<std::uint64_t>& hw, std::uint64_t v) {
    auto cur = hw.load(std::memory_order_relaxed);
    while (v > cur && !hw.compare_exchange_weak(cur, v, std::memory_order_relaxed)) {
    }
  }
  void note_uncommitted(std::uint64_t v) { raise(max_uncommitted_seen, v); }
  void note_enqueued(std::uint64_t v) { raise(max_enqueued_per_key_seen, v); }
  void note_in_flight(std::uint64_t v) { raise(max_in_flight_seen, v); }
  void note_timer_lateness(std::chrono::milliseconds late) {
    if (late.count() > 0) raise(max_timer_lateness_ms, static_cast<std::uint64_t>(late.count()));
  }

  ConsumerStats snapshot() const {
    ConsumerStats s;
    s.received = received;
    s.handled = handled;
    s.failed = failed;
    s.retries = retries;
    s.skipped_permanent = skipped_permanent;
    s.decode_failures = decode_failures;
    s.filtered_loop = filtered_loop;
    s.filtered_event_type = filtered_event_type;
    s.dead_lettered = dead_lettered;
    s.pauses = pauses;
    s.resumes = resumes;
    s.rebalances = rebalances;
    s.committed_on_revoke = committed_on_revoke;
    s.max_uncommitted_seen = max_uncommitted_seen;
    s.max_enqueued_per_key_seen = max_enqueued_per_key_seen;
    s.max_in_flight_seen = max_in_flight_seen;
    s.timers_fired = timers_fired;
    s.timeouts = timeouts;
    s.monopolized = monopolized;
    s.deferred = deferred;
    s.deduplicated = deduplicated;
    s.dedup_store_errors = dedup_store_errors;
    s.max_timer_lateness_ms = max_timer_lateness_ms;
    return s;
  }
};

}  // namespace prosody::engine
