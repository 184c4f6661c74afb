// The per-partition count of deferred keys (PartitionState::
// deferred_message_keys / deferred_timer_keys): what lets MessageDefer and
// TimerDefer skip the defer store for the events of a partition that has no
// deferred key — nearly every event, in a healthy system.
//
// Why a count is enough: only the owner of a partition writes its defer
// queues, and a key's events run one at a time. So when an event of key K
// reads 0, K has no queue: had K been deferred, that deferral happened
// before this event (same key, serialised) and counted. Other keys racing
// to 1 do not matter to K. The count may overstate (an append failed after
// counting, a handler cleared a timer queue): that only costs lookups; it
// must never understate, so it is decremented only when a queue is seen to
// drain.
//
// Thread safety: lock-free atomics; any worker.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>

#include "engine/partition_state.h"
#include "prosody/logging.h"
#include "store/defer_store.h"

namespace prosody::middleware {

// False only when the partition is known to have no deferred key.
inline bool may_have_deferred_keys(const std::atomic<std::int64_t>& count) {
  return count.load(std::memory_order_acquire) != 0;
}

// A key got its first queue entry (count it before writing, see above).
inline void note_key_deferred(std::atomic<std::int64_t>& count) {
  auto c = count.load(std::memory_order_relaxed);
  while (c != engine::PartitionState::kUnknownDeferredKeys &&
         !count.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel)) {
  }
}

// A key's queue drained.
inline void note_key_drained(std::atomic<std::int64_t>& count) {
  auto c = count.load(std::memory_order_relaxed);
  while (c > 0 && !count.compare_exchange_weak(c, c - 1, std::memory_order_acq_rel)) {
  }
}

// At assignment, before the partition is published to the workers: the
// store's count when it can give one, else unknown (and a store error is
// logged and treated as unknown — the per-event lookups then report it).
template <typename Entry>
void count_deferred_keys(store::DeferStore<Entry>& store, const store::DeferSegment& segment,
                         std::atomic<std::int64_t>& count) {
  auto c = store.deferred_key_count(segment);
  if (!c) {
    prosody::logger()->warn("{}: cannot count deferred keys ({}); every event will ask the defer store",
                            segment.name(), c.error().message());
  }
  count.store(c && *c ? static_cast<std::int64_t>(**c) : engine::PartitionState::kUnknownDeferredKeys,
              std::memory_order_release);
}

}  // namespace prosody::middleware
