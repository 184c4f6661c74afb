// A write-through cache in front of a defer store: key -> (head, retry count)
// or "not deferred", for `defer_store_cache_size` keys (LRU). In pipeline
// mode the engine asks is_deferred() for *every* message, and almost every
// answer is "no": the cache answers those from memory after the first miss.
//
// Correctness rests on one rule: only the consumer that owns a partition
// writes its segment. The cache may therefore trust what it saw or wrote
// itself, as long as the partition stayed assigned. Call invalidate(segment)
// when a partition is (re)assigned: another consumer may have changed the
// segment while this one did not own it. A failed inner call drops the
// key's entry (the write may or may not have been applied).
//
// Thread safety: any thread. Calls for one key are serialised through one of
// a fixed set of stripe locks held across the inner call, so the cache never
// keeps an answer older than the store's; different keys proceed in
// parallel. The LRU itself sits behind a short internal mutex.
#pragma once

#include <array>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "middleware/lru_map.h"
#include "store/defer_store.h"

namespace prosody::store {

template <typename Entry>
class CachedDeferStore final : public DeferStore<Entry> {
 public:
  using Head = DeferHead<Entry>;

  // capacity 0 is treated as 1 (see LruMap).
  CachedDeferStore(std::shared_ptr<DeferStore<Entry>> inner, std::size_t capacity)
      : inner_(std::move(inner)), cache_(capacity) {}

  // Forgets everything cached for the segment (O(1)).
  void invalidate(const DeferSegment& segment) override {
    std::lock_guard l(cache_mutex_);
    ++generations_[segment.name()];
  }

  Status append(const DeferSegment& segment, const Key& key, const Entry& entry) override {
    std::lock_guard stripe(stripe_for(segment, key));
    auto s = inner_->append(segment, key, entry);
    std::lock_guard l(cache_mutex_);
    Slot* slot = find_locked(segment, key);
    if (!s) {
      forget_locked(segment, key);
      return s;
    }
    if (!slot) return s;  // unknown before: still unknown (the new entry may not be the head)
    if (!slot->head) {
      slot->head = Head{entry, 0};
    } else if (entry.position() <= slot->head->entry.position()) {
      slot->head->entry = entry;  // new head (or the head replaced); the key's retry count stays
    }
    return s;
  }

  Result<std::optional<Head>> head(const DeferSegment& segment, const Key& key) override {
    std::lock_guard stripe(stripe_for(segment, key));
    {
      std::lock_guard l(cache_mutex_);
      if (Slot* slot = find_locked(segment, key)) return slot->head;
    }
    return fill(segment, key);
  }

  Result<std::optional<Head>> remove(const DeferSegment& segment, const Key& key, std::int64_t position) override {
    std::lock_guard stripe(stripe_for(segment, key));
    auto r = inner_->remove(segment, key, position);
    std::lock_guard l(cache_mutex_);
    if (!r) {
      forget_locked(segment, key);
    } else {
      store_locked(segment, key, *r);
    }
    return r;
  }

  Status set_retry_count(const DeferSegment& segment, const Key& key, std::uint32_t retry_count) override {
    std::lock_guard stripe(stripe_for(segment, key));
    auto s = inner_->set_retry_count(segment, key, retry_count);
    std::lock_guard l(cache_mutex_);
    Slot* slot = find_locked(segment, key);
    if (!s) {
      forget_locked(segment, key);
    } else if (slot && slot->head) {
      slot->head->retry_count = retry_count;
    }
    return s;
  }

  // Not cached: asked once per assignment, right after invalidate().
  Result<std::optional<std::uint64_t>> deferred_key_count(const DeferSegment& segment) override {
    return inner_->deferred_key_count(segment);
  }

  Result<bool> is_deferred(const DeferSegment& segment, const Key& key) override {
    std::lock_guard stripe(stripe_for(segment, key));
    {
      std::lock_guard l(cache_mutex_);
      if (Slot* slot = find_locked(segment, key)) return slot->head.has_value();
    }
    // Read the whole head, not just the flag: the next question about a
    // deferred key is almost always head().
    auto r = fill(segment, key);
    if (!r) return r.error();
    return r->has_value();
  }

  Result<std::vector<Entry>> entries(const DeferSegment& segment, const Key& key) override {
    return inner_->entries(segment, key);
  }

  Status remove_key(const DeferSegment& segment, const Key& key) override {
    std::lock_guard stripe(stripe_for(segment, key));
    auto s = inner_->remove_key(segment, key);
    std::lock_guard l(cache_mutex_);
    if (!s) {
      forget_locked(segment, key);
    } else {
      store_locked(segment, key, std::nullopt);
    }
    return s;
  }

  std::string describe() const override { return "cached(" + inner_->describe() + ")"; }

  // Cached keys, known-absent ones included (tests).
  std::size_t cached_keys() const {
    std::lock_guard l(cache_mutex_);
    return cache_.size();
  }

 private:
  struct CacheKey {
    std::string segment;
    Key key;
    bool operator==(const CacheKey&) const = default;
  };
  struct CacheKeyHash {
    std::size_t operator()(const CacheKey& k) const noexcept {
      std::size_t h = std::hash<std::string>{}(k.segment);
      return h ^ (std::hash<std::string>{}(k.key) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2));
    }
  };
  struct Slot {
    bool valid = false;         // false: a fresh LRU slot, nothing known yet
    std::uint64_t generation = 0;
    std::optional<Head> head;   // nullopt: known not deferred
  };
  static constexpr std::size_t kStripes = 64;

  std::mutex& stripe_for(const DeferSegment& segment, const Key& key) {
    return stripes_[CacheKeyHash{}(CacheKey{segment.name(), key}) % kStripes];
  }

  // Caller holds the key's stripe.
  Result<std::optional<Head>> fill(const DeferSegment& segment, const Key& key) {
    auto r = inner_->head(segment, key);
    if (r) {
      std::lock_guard l(cache_mutex_);
      store_locked(segment, key, *r);
    }
    return r;
  }

  std::uint64_t generation_locked(const DeferSegment& segment) const {
    auto it = generations_.find(segment.name());
    return it == generations_.end() ? 0 : it->second;
  }

  // The valid, current slot for the key (marking it recently used), or null.
  Slot* find_locked(const DeferSegment& segment, const Key& key) {
    CacheKey k{segment.name(), key};
    const Slot* seen = cache_.peek(k);
    if (!seen || !seen->valid || seen->generation != generation_locked(segment)) return nullptr;
    return &cache_.get_or_create(k);
  }

  void store_locked(const DeferSegment& segment, const Key& key, std::optional<Head> head) {
    Slot& slot = cache_.get_or_create(CacheKey{segment.name(), key});
    slot.valid = true;
    slot.generation = generation_locked(segment);
    slot.head = std::move(head);
  }

  void forget_locked(const DeferSegment& segment, const Key& key) { cache_.erase(CacheKey{segment.name(), key}); }

  std::shared_ptr<DeferStore<Entry>> inner_;
  std::array<std::mutex, kStripes> stripes_;
  mutable std::mutex cache_mutex_;
  middleware::LruMap<CacheKey, Slot, CacheKeyHash> cache_;             // guarded by cache_mutex_
  std::unordered_map<std::string, std::uint64_t> generations_;         // guarded by cache_mutex_
};

extern template class CachedDeferStore<DeferredMessage>;
extern template class CachedDeferStore<DeferredTimer>;

}  // namespace prosody::store
