// Everything the engine keeps for one assigned partition: the offset
// tracker, the per-key FIFO queues, and the bounds that decide when the
// partition must stop being read.
//
// Bounds (never exceeded):
//   uncommitted records (taken, not yet below the commit position) <= max_uncommitted
//   records waiting in one key's queue (not running)                <= max_enqueued_per_key
// A record whose key queue is full is parked (in arrival order); while any
// record is parked the partition is not read (head-of-line), so nothing is
// dropped and per-key order holds.
//
// Thread safety: fields marked "guarded" need `mutex`. The poll thread owns
// the fields marked "poll thread".
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/event_ring.h"
#include "engine/offset_tracker.h"
#include "engine/record.h"
#include "kafka/handles.h"
#include "timers/partition_timers.h"

namespace prosody::engine {

// One unit of work for a key: a consumed record or a due timer.
struct QueuedEvent {
  detail::RecordPtr record;
  std::unique_ptr<timers::DueTimer> timer;
};

struct KeyQueue {
  Key key;
  EventRing<QueuedEvent> pending;  // waiting, not running
  bool scheduled = false;          // in the ready queue or running
};

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

struct PartitionState {
  PartitionState(Topic t, Partition p) : topic(std::move(t)), partition(p) {}

  const Topic topic;
  const Partition partition;

  std::mutex mutex;
  std::condition_variable idle;  // signalled when in_flight drops to 0 after revoke
  OffsetTracker tracker;                                                            // guarded
  using KeyMap = std::unordered_map<Key, std::unique_ptr<KeyQueue>, StringHash, std::equal_to<>>;
  KeyMap keys;  // guarded
  // Drained keys' map nodes (each with its KeyQueue and the queue's array),
  // reused for the next new key: with many keys nearly every record has a
  // key of its own, and this keeps that from allocating per record.
  std::vector<KeyMap::node_type> spare_keys;  // guarded
  std::deque<detail::RecordPtr> parked;  // guarded: waiting for room in their key queue
  int in_flight = 0;          // guarded
  int queued = 0;             // guarded: events in key queues + parked records
  bool drop_queued = false;   // guarded: revoke gave up draining (or a record was abandoned)
  bool revoked = false;       // guarded
  bool halted = false;        // guarded: a terminal error stopped the partition
  std::string halt_reason;    // guarded

  // The partition's timers while it is owned (set before the partition is
  // published to the workers; immutable after).
  std::shared_ptr<timers::PartitionTimers> timers;

  // Keys of this partition with a message / timer defer queue (pipeline
  // mode), as far as this owner knows: counted from the store at assignment
  // when the backend can count, then kept by MessageDefer / TimerDefer
  // (src/middleware/deferred_keys.h). kUnknownDeferredKeys: ask the store
  // for every event. While a count is 0 no event of the partition needs a
  // defer-store lookup, which is the common case on the hot path.
  static constexpr std::int64_t kUnknownDeferredKeys = -1;
  std::atomic<std::int64_t> deferred_message_keys{kUnknownDeferredKeys};
  std::atomic<std::int64_t> deferred_timer_keys{kUnknownDeferredKeys};

  // Fired with drop_queued: events not yet started (including those waiting
  // for a scheduler permit) are abandoned for the next owner.
  std::stop_source drop_source;

  // Fired on revoke: cuts retry backoffs short.
  std::stop_source revoke_source;
  std::atomic<bool> commit_dirty{false};

  // Set by the poll thread when it stops reading the partition (full);
  // workers wake the poll thread on completions while it is set.
  std::atomic<bool> paused{false};

  // Poll thread only.
  kafka::QueueHandle queue;
  bool fetch_paused = false;  // librdkafka fetching paused (terminal halt)
  std::int64_t stored_position = -1;
};

}  // namespace prosody::engine
