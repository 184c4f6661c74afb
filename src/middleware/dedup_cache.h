// Tier 1 of deduplication: the ids of messages this consumer handled
// recently, shared by all its partitions (reference/prosody-internals.md
// §2f: Prosody's consumer-wide approximate LRU, `idempotence_cache_size`
// entries). A hit skips the store lookup; a miss asks the store (tier 2).
//
// Approximate: the capacity is split over 16 shards, each an exact LRU with
// its own mutex, so the least recently used id of the whole cache is not
// always the one evicted. Sharding keeps the workers from queueing on one
// mutex for every message; ids are uniform hashes, so shards fill evenly.
//
// Thread safety: any thread.
#pragma once

#include <array>
#include <cstddef>
#include <memory>
#include <mutex>

#include "middleware/lru_map.h"
#include "store/dedup_store.h"

namespace prosody::middleware {

class DedupCache {
 public:
  // `capacity` ids in all (at least one per shard).
  explicit DedupCache(std::size_t capacity);

  // True when `id` is held; marks it recently used.
  bool contains(const store::DedupId& id);
  // Holds `id` (evicting its shard's least recently used id when full).
  void insert(const store::DedupId& id);

  std::size_t size() const;
  std::size_t capacity() const noexcept { return capacity_; }

 private:
  static constexpr std::size_t kShards = 16;
  struct Shard {
    explicit Shard(std::size_t capacity) : ids(capacity) {}
    mutable std::mutex mutex;
    LruMap<store::DedupId, bool, store::DedupIdHash> ids;  // guarded by mutex
  };
  Shard& shard(const store::DedupId& id);

  std::size_t capacity_;
  std::array<std::unique_ptr<Shard>, kShards> shards_;
};

}  // namespace prosody::middleware
