// Bounded caches keyed by deduplication ids, without allocation per entry.
//
// DedupCache is tier 1 of the consumer's deduplication: the ids of messages
// this consumer handled recently, shared by all its partitions
// (reference/prosody-internals.md §2f: Prosody's consumer-wide approximate
// LRU, `idempotence_cache_size` entries). A hit skips the store lookup; a
// miss asks the store (tier 2). The producer keeps one of the same shape
// (IdCache<SentRecord>, kafka/producer.h): where each delivered
// (topic, key, event id) went.
//
// Set-associative, like a CPU cache: entries live in sets of kWays, an id
// only in the set its hash picks, and a full set forgets its least recently
// used entry. Only approximately an LRU, so it has twice `capacity` slots:
// an id seen k inserts ago is still held unless 8 newer ids landed in its
// set, which happens with probability P(Poisson(4k/capacity) >= 8) — 0.1 %
// at k = capacity/2, 5 % at k = capacity (an exact LRU: 0 %, then all
// gone). In exchange an insert allocates nothing and touches one set; the
// linked LRU plus hash map it replaced cost two allocations, two frees and
// a bucket-chain walk per entry (bench/PROFILE.md "Session 10"), and ~100
// bytes per id against 64 for two slots here (with a bool value). A
// forgotten id costs a store lookup (consumer) or a resend that goes out
// (producer), nothing more.
//
// Memory layout: a set is three or more whole cache lines, aligned — the
// lock, clock and recency stamps; the low halves of the ids; the high
// halves; then the values. A lookup that misses reads two lines (the lock's
// and the low halves'), where the std::mutex-per-set layout before read
// four or five (a 40-byte mutex, unaligned arrays straddling lines):
// bench/PROFILE.md "Session 11".
//
// Thread safety: any thread; one util::WordLock per set.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>

#include "store/dedup_store.h"
#include "util/word_lock.h"

namespace prosody::middleware {

struct IdCacheTestAccess;  // dedup_cache_test.cc: moves a set's clock to its wrap

template <typename V>
class IdCache {
 public:
  static constexpr std::size_t kWays = 8;

  // Sized for `capacity` recent ids (at least 1): 2 x capacity slots,
  // rounded up to whole sets.
  explicit IdCache(std::size_t capacity)
      : capacity_(capacity == 0 ? 1 : capacity),
        sets_((2 * capacity_ + kWays - 1) / kWays),
        table_(std::make_unique<Set[]>(sets_)) {}

  // The value held for `id`, if any; marks it recently used.
  std::optional<V> find(const store::DedupId& id) {
    const Halves key(id);
    Set& s = set_for(key);
    std::lock_guard l(s.lock);
    const std::size_t way = s.way_of(key);
    if (way == kWays) return std::nullopt;
    s.touch(way);
    return s.values[way];
  }
  bool contains(const store::DedupId& id) { return find(id).has_value(); }

  // Holds `id` with `value`; a full set forgets its least recently used id.
  void insert(const store::DedupId& id, V value = V{}) {
    const Halves key(id);
    Set& s = set_for(key);
    std::lock_guard l(s.lock);
    std::size_t way = s.way_of(key);
    if (way == kWays) way = s.victim();
    s.low[way] = key.low;
    s.high[way] = key.high;
    s.values[way] = std::move(value);
    s.touch(way);
  }

  std::size_t size() const {
    std::size_t n = 0;
    for (std::size_t i = 0; i < sets_; ++i) {
      std::lock_guard l(table_[i].lock);
      for (auto stamp : table_[i].stamps) n += stamp != 0;
    }
    return n;
  }
  std::size_t capacity() const noexcept { return capacity_; }
  std::size_t slots() const noexcept { return sets_ * kWays; }

  // The set `id` belongs to (tests build collisions with it).
  std::size_t set_of(const store::DedupId& id) const noexcept { return index_of(Halves(id)); }

 private:
  friend struct IdCacheTestAccess;

  struct Halves {
    // Read little-endian on every host: the set index relies on the high
    // half's top bits being the id's last bytes (its fixed UUID bits are in
    // bytes 6 and 8).
    explicit Halves(const store::DedupId& id) {
      std::memcpy(&low, id.bytes.data(), 8);
      std::memcpy(&high, id.bytes.data() + 8, 8);
      if constexpr (std::endian::native == std::endian::big) {
        low = __builtin_bswap64(low);
        high = __builtin_bswap64(high);
      }
    }
    std::uint64_t low, high;
  };
  struct alignas(64) Set {
    // Line 1: the lock and the recency of each way, from the set's own
    // counter; 0 = empty.
    mutable util::WordLock lock;
    std::uint32_t clock = 0;
    std::array<std::uint32_t, kWays> stamps{};
    // Lines 2 and 3: the ids as two 64-bit halves; a miss compares only the
    // low ones (two ids sharing a low half are one in 2^64).
    alignas(64) std::array<std::uint64_t, kWays> low{};
    std::array<std::uint64_t, kWays> high{};
    std::array<V, kWays> values{};

    std::size_t way_of(const Halves& id) const {
      for (std::size_t w = 0; w < kWays; ++w) {
        if (low[w] == id.low && high[w] == id.high && stamps[w] != 0) return w;
      }
      return kWays;
    }
    // An empty way, else the least recently used one.
    std::size_t victim() const {
      std::size_t oldest = 0;
      for (std::size_t w = 0; w < kWays; ++w) {
        if (stamps[w] == 0) return w;
        if (stamps[w] < stamps[oldest]) oldest = w;
      }
      return oldest;
    }
    void touch(std::size_t way) {
      if (++clock == 0) {
        // Wrapped after 2^32 uses of this set: every held entry becomes
        // equally old once (an eviction order lost, no entry).
        for (auto& stamp : stamps) stamp = stamp != 0 ? 1 : 0;
        clock = 2;
      }
      stamps[way] = clock;
    }
  };

  // The high half scaled onto [0, sets_) (a multiply, not a division; its
  // top bits are uniform: the consumer's UUIDv8 fixes bits only in the low
  // half's byte 6 and the lowest byte of the high half).
  std::size_t index_of(const Halves& key) const noexcept {
    return static_cast<std::size_t>((static_cast<unsigned __int128>(key.high) * sets_) >> 64);
  }
  Set& set_for(const Halves& key) noexcept { return table_[index_of(key)]; }

  std::size_t capacity_;
  std::size_t sets_;
  std::unique_ptr<Set[]> table_;
};

// The consumer's: ids only.
using DedupCache = IdCache<bool>;

}  // namespace prosody::middleware
