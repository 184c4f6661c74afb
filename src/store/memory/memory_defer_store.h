// In-memory defer stores: mock mode and tests. Nothing survives the process.
//
// Per segment a hash map key -> (retry count, entries ordered by position).
// Deferred keys are few (only failing keys) and their queues short, so a
// std::map per key is simple and cheap enough.
//
// Thread safety: any thread; one mutex per store guards everything.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <unordered_map>

#include "store/defer_store.h"

namespace prosody::store {

template <typename Entry>
class MemoryDeferStore final : public DeferStore<Entry> {
 public:
  using Head = DeferHead<Entry>;

  Status append(const DeferSegment& segment, const Key& key, const Entry& entry) override {
    std::lock_guard l(mutex_);
    segments_[segment.name()][key].entries.insert_or_assign(entry.position(), entry);
    return ok_status();
  }

  Result<std::optional<Head>> head(const DeferSegment& segment, const Key& key) override {
    std::lock_guard l(mutex_);
    const Queue* q = find(segment, key);
    return q ? head_of(*q) : std::optional<Head>();
  }

  Result<std::optional<Head>> remove(const DeferSegment& segment, const Key& key, std::int64_t position) override {
    std::lock_guard l(mutex_);
    auto seg = segments_.find(segment.name());
    if (seg == segments_.end()) return std::optional<Head>();
    auto it = seg->second.find(key);
    if (it == seg->second.end()) return std::optional<Head>();
    Queue& q = it->second;
    auto e = q.entries.find(position);
    if (e != q.entries.end()) {
      if (e == q.entries.begin()) q.retry_count = 0;
      q.entries.erase(e);
    }
    if (q.entries.empty()) {
      seg->second.erase(it);
      if (seg->second.empty()) segments_.erase(seg);
      return std::optional<Head>();
    }
    return head_of(q);
  }

  Status set_retry_count(const DeferSegment& segment, const Key& key, std::uint32_t retry_count) override {
    std::lock_guard l(mutex_);
    if (Queue* q = find(segment, key)) q->retry_count = retry_count;
    return ok_status();
  }

  Result<bool> is_deferred(const DeferSegment& segment, const Key& key) override {
    std::lock_guard l(mutex_);
    return find(segment, key) != nullptr;
  }

  Result<std::optional<std::uint64_t>> deferred_key_count(const DeferSegment& segment) override {
    std::lock_guard l(mutex_);
    auto seg = segments_.find(segment.name());
    return std::optional<std::uint64_t>(seg == segments_.end() ? 0 : seg->second.size());
  }

  Result<std::vector<Entry>> entries(const DeferSegment& segment, const Key& key) override {
    std::lock_guard l(mutex_);
    std::vector<Entry> out;
    if (const Queue* q = find(segment, key)) {
      out.reserve(q->entries.size());
      for (const auto& [pos, entry] : q->entries) out.push_back(entry);
    }
    return out;
  }

  Status remove_key(const DeferSegment& segment, const Key& key) override {
    std::lock_guard l(mutex_);
    auto seg = segments_.find(segment.name());
    if (seg == segments_.end()) return ok_status();
    seg->second.erase(key);
    if (seg->second.empty()) segments_.erase(seg);
    return ok_status();
  }

  std::string describe() const override { return "memory"; }

  // Deferred keys across all segments (tests).
  std::size_t key_count() const {
    std::lock_guard l(mutex_);
    std::size_t n = 0;
    for (const auto& [name, keys] : segments_) n += keys.size();
    return n;
  }

 private:
  struct Queue {
    std::uint32_t retry_count = 0;
    std::map<std::int64_t, Entry> entries;  // by position; never empty once stored
  };

  static std::optional<Head> head_of(const Queue& q) { return Head{q.entries.begin()->second, q.retry_count}; }

  Queue* find(const DeferSegment& segment, const Key& key) {
    auto seg = segments_.find(segment.name());
    if (seg == segments_.end()) return nullptr;
    auto it = seg->second.find(key);
    return it == seg->second.end() ? nullptr : &it->second;
  }

  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::unordered_map<Key, Queue>> segments_;  // guarded by mutex_
};

// Instantiated once, in memory_defer_store.cc.
extern template class MemoryDeferStore<DeferredMessage>;
extern template class MemoryDeferStore<DeferredTimer>;

using MemoryMessageDeferStore = MemoryDeferStore<DeferredMessage>;
using MemoryTimerDeferStore = MemoryDeferStore<DeferredTimer>;

}  // namespace prosody::store
