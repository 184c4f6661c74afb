// The timer store: where durable per-key timers live while they are pending.
// One interface, several backends (memory for mock mode and tests, SQLite
// for a single machine, Cassandra for fleets), all held to the same contract
// by timer_store_contract_test.cc.
//
// Data model (Prosody's, see reference/prosody-internals.md §2e):
//   - a *segment* is one consumer group's view of one partition; all timers
//     of the partition live in it, so they move with the partition;
//   - a timer is identified by (key, type, time); writing the same triple
//     again is an upsert;
//   - timers are grouped by *slab* = floor(time / slab_size), so a consumer
//     loads the near future one slab range at a time instead of everything;
//   - a per-key index answers "which times does this key have" without
//     scanning slabs.
//
// Times are 64-bit epoch seconds (no 2038 wrap). Each timer carries the
// span context it was scheduled under (W3C trace headers), stored opaque.
//
// Thread safety: every method may be called from any thread at the same
// time; calls block until the store answered. Errors are transient when a
// retry may succeed (store down, busy, timeout) and permanent otherwise.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "prosody/result.h"
#include "prosody/timer.h"
#include "prosody/types.h"

namespace prosody::store {

using SlabId = std::int64_t;
using EpochSeconds = std::int64_t;
using SpanContext = std::map<std::string, std::string>;

struct TimerSegment {
  std::string group;
  Topic topic;
  Partition partition;
  std::int64_t slab_size_seconds = 3600;

  // "{group}:{topic}/{partition}", the name Prosody derives its segment id from.
  std::string name() const;
  SlabId slab_of(EpochSeconds t) const;
  EpochSeconds slab_start(SlabId slab) const { return slab * slab_size_seconds; }
};

struct StoredTimer {
  Key key;
  TimerType type = TimerType::application;
  EpochSeconds time = 0;
  SpanContext span;

  bool operator==(const StoredTimer&) const = default;
};

class TimerStore {
 public:
  virtual ~TimerStore() = default;

  // Inserts or replaces (key, type, time) in both indexes.
  virtual Status upsert(const TimerSegment& segment, const StoredTimer& timer) = 0;
  // Removes one timer; removing a timer that is not there succeeds.
  virtual Status remove(const TimerSegment& segment, const Key& key, TimerType type, EpochSeconds time) = 0;
  // Removes every timer of `type` for `key`.
  virtual Status remove_all(const TimerSegment& segment, const Key& key, TimerType type) = 0;
  // The key's pending times of `type`, ascending.
  virtual Result<std::vector<EpochSeconds>> times(const TimerSegment& segment, const Key& key, TimerType type) = 0;
  // Every timer whose slab lies in [first, last], ordered by time, then key,
  // then type. `first` may be the minimum SlabId to include all older slabs.
  virtual Result<std::vector<StoredTimer>> load_slabs(const TimerSegment& segment, SlabId first, SlabId last) = 0;

  // A short name for logs ("memory", "sqlite:/path", ...).
  virtual std::string describe() const = 0;
};

}  // namespace prosody::store
