// One partition's timers while this consumer owns the partition: the store
// operations a handler asks for through Context, and an in-memory view of
// the near future that the TimerService fires from.
//
// Ownership window: every stored timer with time < owned_until() is also in
// memory; later ones live only in the store until the service loads their
// slab (load_through). A handler scheduling a time inside the window writes
// the store and memory; outside, only the store. The store is written first,
// so a crash can duplicate a timer but never lose one.
//
// Loading races with handlers: the store is read without the lock, so an
// unschedule that lands while a load is reading would be undone when the
// load merges its rows. While a load runs, removals inside the range being
// loaded are remembered (tombstones) and the merge skips them.
//
// Firing: take_due() marks timers fired and hands them out (at most
// `max_outstanding` at a time: backpressure). A fired timer scheduled again
// at the same time becomes fired_rescheduled and is kept when its run
// completes, so it fires once more. complete() removes it from memory and
// the store; a timer unscheduled before it began is skipped by begin().
//
// Thread safety: all methods are safe from any thread; one mutex guards the
// in-memory state and is never held across a store call.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "store/timer_store.h"

namespace prosody::timers {

using store::EpochSeconds;
using store::SpanContext;

struct DueTimer {
  Key key;
  EpochSeconds time = 0;
  TimerType type = TimerType::application;
  SpanContext span;
};

class PartitionTimers {
 public:
  PartitionTimers(store::TimerSegment segment, std::shared_ptr<store::TimerStore> store, std::size_t max_outstanding)
      : segment_(std::move(segment)), store_(std::move(store)), max_outstanding_(max_outstanding) {}

  const store::TimerSegment& segment() const { return segment_; }

  // ---- handler operations (Context), for one key ------------------------
  Status schedule(const Key& key, TimerType type, EpochSeconds time, const SpanContext& span = {});
  // Schedules `time` and removes every other time of the key and type.
  Status clear_and_schedule(const Key& key, TimerType type, EpochSeconds time, const SpanContext& span = {});
  Status unschedule(const Key& key, TimerType type, EpochSeconds time);
  Status clear(const Key& key, TimerType type);
  Result<std::vector<EpochSeconds>> scheduled(const Key& key, TimerType type) const;

  // ---- loading (TimerService) --------------------------------------------
  // Loads every stored timer up to the end of the slab holding `horizon`
  // (the first load also takes every older slab). Store errors leave the
  // window unchanged, so the next attempt loads the same range again.
  Status load_through(EpochSeconds horizon);
  // Timers before this time (exclusive) are all in memory; nullopt before
  // the first successful load.
  std::optional<EpochSeconds> owned_until() const;

  // ---- firing ---------------------------------------------------------------
  // Due timers (time <= now) not yet fired, oldest first, at most
  // max_outstanding minus those fired and not yet finished.
  std::vector<DueTimer> take_due(EpochSeconds now);
  // The earliest scheduled (not fired) time in memory.
  std::optional<EpochSeconds> next_due() const;
  // Called when the timer's handler is about to run: false when it was
  // unscheduled since it fired (the run is skipped, nothing to remove).
  bool begin(const DueTimer& timer);
  // The run finished (success or a final failure): remove it, unless it
  // was scheduled again while running. A failed store delete is kept and
  // retried by retry_deletes(); until then the timer may fire again after a
  // restart (at least once).
  Status complete(const DueTimer& timer);
  // The run will not finish here (revoke, shutdown): forget it in memory;
  // the stored row is reloaded by the partition's next owner.
  void abandon(const DueTimer& timer);
  // Retries store deletes that failed in complete(); returns how many remain.
  std::size_t retry_deletes();

  std::size_t in_memory() const;
  std::size_t outstanding() const;
  // True when take_due() would hand out nothing more until a run finishes.
  bool at_capacity() const { return outstanding() >= max_outstanding_; }

 private:
  enum class State : std::uint8_t { scheduled, fired, fired_rescheduled };
  using Id = std::tuple<EpochSeconds, Key, TimerType>;
  struct Entry {
    State state = State::scheduled;
    SpanContext span;
  };

  bool in_window_locked(EpochSeconds time) const;
  void remember_removal_locked(const Id& id);
  void insert_locked(const Id& id, const SpanContext& span);
  Status remove_others(const Key& key, TimerType type, std::optional<EpochSeconds> keep);

  const store::TimerSegment segment_;
  const std::shared_ptr<store::TimerStore> store_;
  const std::size_t max_outstanding_;

  mutable std::mutex mutex_;
  std::map<Id, Entry> timers_;             // guarded: in-window timers by due time
  std::optional<EpochSeconds> owned_until_;  // guarded
  std::optional<EpochSeconds> loading_until_;  // guarded: set while a load reads the store
  std::set<Id> removed_while_loading_;     // guarded
  std::size_t outstanding_ = 0;            // guarded: fired, not yet completed/abandoned
  std::vector<DueTimer> failed_deletes_;   // guarded
};

}  // namespace prosody::timers
