// In-memory timer store: mock mode and tests. Nothing survives the process.
//
// Layout, chosen for memory per pending timer (the benchmark reports it):
// per segment a hash map key -> small sorted vector of (time, type, span),
// with the span context boxed so a timer without one costs 24 bytes plus its
// share of the key's entry. Slab loads scan the segment; they happen once
// per slab period per partition, so a scan is cheaper than a second index.
//
// Thread safety: any thread; one mutex guards everything.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "store/timer_store.h"

namespace prosody::store {

class MemoryTimerStore : public TimerStore {
 public:
  Status upsert(const TimerSegment& segment, const StoredTimer& timer) override;
  Status remove(const TimerSegment& segment, const Key& key, TimerType type, EpochSeconds time) override;
  Status remove_all(const TimerSegment& segment, const Key& key, TimerType type) override;
  Result<std::vector<EpochSeconds>> times(const TimerSegment& segment, const Key& key, TimerType type) override;
  Result<std::vector<StoredTimer>> load_slabs(const TimerSegment& segment, SlabId first, SlabId last) override;
  std::string describe() const override { return "memory"; }

  // Pending timers across all segments (tests, benchmark).
  std::size_t size() const;

 private:
  struct Entry {
    EpochSeconds time;
    std::unique_ptr<SpanContext> span;  // null when empty
    TimerType type;
  };
  using KeyTimers = std::vector<Entry>;  // sorted by (type, time)
  using Segment = std::unordered_map<Key, KeyTimers>;

  mutable std::mutex mutex_;
  std::unordered_map<std::string, Segment> segments_;  // guarded by mutex_
};

}  // namespace prosody::store
