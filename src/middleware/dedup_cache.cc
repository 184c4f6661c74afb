#include "middleware/dedup_cache.h"

namespace prosody::middleware {

DedupCache::DedupCache(std::size_t capacity) : capacity_(capacity < kShards ? kShards : capacity) {
  const std::size_t per_shard = (capacity_ + kShards - 1) / kShards;
  for (auto& s : shards_) s = std::make_unique<Shard>(per_shard);
}

DedupCache::Shard& DedupCache::shard(const store::DedupId& id) {
  // DedupIdHash reads bytes 0-7; the shard comes from byte 15 so the two
  // stay independent (and byte 15 carries no UUID version or variant bits).
  return *shards_[id.bytes[15] % kShards];
}

bool DedupCache::contains(const store::DedupId& id) {
  Shard& s = shard(id);
  std::lock_guard l(s.mutex);
  if (!s.ids.peek(id)) return false;
  s.ids.get_or_create(id);  // refresh its recency
  return true;
}

void DedupCache::insert(const store::DedupId& id) {
  Shard& s = shard(id);
  std::lock_guard l(s.mutex);
  s.ids.get_or_create(id) = true;
}

std::size_t DedupCache::size() const {
  std::size_t n = 0;
  for (const auto& s : shards_) {
    std::lock_guard l(s->mutex);
    n += s->ids.size();
  }
  return n;
}

}  // namespace prosody::middleware
