// A bounded map that forgets the least recently used entry when full. The
// per-key caches of the scheduler and the monopolization detector use it so
// that a stream of ever-new keys costs bounded memory; a forgotten key simply
// starts again from zero history, which only ever favours it slightly.
//
// Thread safety: none; the owner locks.
#pragma once

#include <cassert>
#include <cstddef>
#include <functional>
#include <list>
#include <unordered_map>
#include <utility>

namespace prosody::middleware {

template <typename K, typename V, typename Hash = std::hash<K>>
class LruMap {
 public:
  // capacity 0 is treated as 1: callers always get a slot for the key at hand.
  explicit LruMap(std::size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

  // The entry for `key`, created with V{} (evicting the oldest if full) when
  // absent; marks it most recently used.
  V& get_or_create(const K& key) {
    if (auto it = index_.find(key); it != index_.end()) {
      order_.splice(order_.begin(), order_, it->second);
      return it->second->second;
    }
    if (index_.size() >= capacity_) {
      index_.erase(order_.back().first);
      order_.pop_back();
    }
    order_.emplace_front(key, V{});
    index_.emplace(key, order_.begin());
    return order_.front().second;
  }

  // Lookup without changing recency; nullptr when absent.
  const V* peek(const K& key) const {
    auto it = index_.find(key);
    return it == index_.end() ? nullptr : &it->second->second;
  }

  bool erase(const K& key) {
    auto it = index_.find(key);
    if (it == index_.end()) return false;
    order_.erase(it->second);
    index_.erase(it);
    return true;
  }

  std::size_t size() const noexcept { return index_.size(); }
  std::size_t capacity() const noexcept { return capacity_; }

 private:
  using Entry = std::pair<K, V>;
  std::size_t capacity_;
  std::list<Entry> order_;  // most recent first
  std::unordered_map<K, typename std::list<Entry>::iterator, Hash> index_;
};

}  // namespace prosody::middleware
