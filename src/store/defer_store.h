// The defer stores: where the pipeline mode's deferred retries wait. When a
// key fails transiently, MessageDefer parks its offsets (and TimerDefer its
// application timers) here and retries the queue head on a backoff timer,
// while the partition moves on (reference/prosody-internals.md §2c, §3).
//
// Data model (Prosody's, so a Cassandra backend can use its tables):
//   - a *segment* is one consumer group's view of one partition
//     (DeferSegment); deferred work moves with the partition;
//   - per (segment, key) an ordered queue of entries and ONE retry count,
//     which belongs to the queue head (the entry being retried);
//   - the message queue holds offsets (Cassandra: deferred_offsets,
//     clustering `offset`), the timer queue holds (original time, span
//     context) (Cassandra: deferred_timers, clustering `original_time`).
//     An entry is identified by its position (offset, or time): appending
//     an existing position replaces it, as a clustering-key write would.
//
// Why one class template with two instantiations rather than two
// hand-written interfaces: both queues have exactly the same semantics
// (Prosody's two traits differ only in the entry type), so one contract,
// one cache wrapper and one memory backend serve both, and an engine layer
// can be written once against `DeferStore<E>`. The two queues stay
// independent: each is its own object (its own table in every backend), and
// a key may be deferred in one and not the other.
//
// Thread safety: every method may be called from any thread at the same
// time; calls block until the store answered. Errors are transient when a
// retry may succeed (store down, busy, timeout) and permanent otherwise.
// Every mutation is idempotent, so a caller may simply repeat a call that
// failed transiently (even if it had in fact been applied). Calls for one
// key are expected to be serialised by the caller (the engine runs a key's
// events one at a time); stores stay consistent without that, but the order
// in which two racing calls for one key apply is unspecified.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "prosody/result.h"
#include "prosody/types.h"
#include "store/timer_store.h"  // EpochSeconds, SpanContext

namespace prosody::store {

// One consumer group's view of one partition. Build it once per assigned
// partition: the name is computed at construction, since every store call
// (and the cache's hot path) needs it.
class DeferSegment {
 public:
  DeferSegment(std::string group, Topic topic, Partition partition);

  const std::string& group() const noexcept { return group_; }
  const Topic& topic() const noexcept { return topic_; }
  Partition partition() const noexcept { return partition_; }
  // "{topic}/{partition}:{group}": Prosody's segment name, from which its
  // Cassandra backend derives the segment id as UUIDv5(OID namespace, name).
  // (The timer segment name is spelled differently, see TimerSegment.)
  const std::string& name() const noexcept { return name_; }

  bool operator==(const DeferSegment& o) const noexcept { return name_ == o.name_; }

 private:
  std::string group_;
  Topic topic_;
  Partition partition_;
  std::string name_;
};

// A deferred message: only its offset is stored; the loader reads it back
// from Kafka when its retry is due.
struct DeferredMessage {
  Offset offset;

  std::int64_t position() const noexcept { return offset.value(); }
  bool operator==(const DeferredMessage&) const = default;
};

// A deferred application timer: the whole trigger is stored (time plus the
// span context it was scheduled under), so nothing needs reloading. Times are
// 64-bit epoch seconds: no 2038 wrap (Prosody's Cassandra column is a u32
// bit-cast to int; a Cassandra backend must map beyond-2038 times itself).
struct DeferredTimer {
  EpochSeconds time = 0;
  SpanContext span;

  std::int64_t position() const noexcept { return time; }
  bool operator==(const DeferredTimer&) const = default;
};

// The entry being retried and how many times it has failed so far.
template <typename Entry>
struct DeferHead {
  Entry entry;
  std::uint32_t retry_count = 0;

  bool operator==(const DeferHead&) const = default;
};

template <typename Entry>
class DeferStore {
 public:
  using EntryType = Entry;
  using Head = DeferHead<Entry>;

  virtual ~DeferStore() = default;

  // Adds `entry` to the key's queue (creating the queue with retry count 0
  // when the key had none). An existing key keeps its retry count, even if
  // the new entry sorts before the current head. Same position = replace.
  virtual Status append(const DeferSegment& segment, const Key& key, const Entry& entry) = 0;

  // The lowest-positioned entry and the retry count, or nullopt when the key
  // has no queue.
  virtual Result<std::optional<Head>> head(const DeferSegment& segment, const Key& key) = 0;

  // Removes the entry at `position`, resets the retry count to 0 when that
  // was the head (the new head has not failed yet), deletes the key when the
  // queue becomes empty, and returns the new head (nullopt: queue gone).
  // Removing a position that is not there changes nothing and returns the
  // current head. TimerDefer's `unschedule` of a deferred time uses this.
  virtual Result<std::optional<Head>> remove(const DeferSegment& segment, const Key& key,
                                             std::int64_t position) = 0;

  // Removes the head just retried (see remove). Naming the entry, rather
  // than "whatever is the head now", keeps a repeated call idempotent:
  // retrying after a timeout never drops a second entry.
  Result<std::optional<Head>> pop_head(const DeferSegment& segment, const Key& key, const Head& retried) {
    return remove(segment, key, retried.entry.position());
  }

  // Sets the head's retry count. No effect on a key without a queue.
  virtual Status set_retry_count(const DeferSegment& segment, const Key& key, std::uint32_t retry_count) = 0;

  // True when the key has a queue. The engine asks this for every message
  // of the partition, hence a separate, cheaper call than head().
  virtual Result<bool> is_deferred(const DeferSegment& segment, const Key& key) = 0;

  // Every entry of the key's queue in position order (TimerDefer's
  // `scheduled()` reports them; tools list them).
  virtual Result<std::vector<Entry>> entries(const DeferSegment& segment, const Key& key) = 0;

  // How many keys of the segment have a queue, when the backend can count
  // them cheaply; nullopt when it cannot (Cassandra: the partition key is
  // (segment, key), so counting would scan the table). The engine asks once
  // per assignment: while a partition it owns has no deferred key, its
  // events need no store lookup at all.
  virtual Result<std::optional<std::uint64_t>> deferred_key_count(const DeferSegment& /*segment*/) {
    return std::optional<std::uint64_t>();
  }

  // Deletes the key's queue and retry count. Deleting a missing key succeeds.
  virtual Status remove_key(const DeferSegment& segment, const Key& key) = 0;

  // Forgets anything held in memory about the segment. The engine calls it
  // when a partition is assigned, because another consumer may have changed
  // the segment meanwhile. Only caching wrappers hold anything.
  virtual void invalidate(const DeferSegment& /*segment*/) {}

  // A short name for logs ("memory", "sqlite:/path", ...).
  virtual std::string describe() const = 0;
};

using MessageDeferStore = DeferStore<DeferredMessage>;
using TimerDeferStore = DeferStore<DeferredTimer>;

// The two queues a consumer needs, as opened together from its config.
struct DeferStores {
  std::shared_ptr<MessageDeferStore> messages;
  std::shared_ptr<TimerDeferStore> timers;
};

}  // namespace prosody::store
