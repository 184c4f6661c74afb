// A bounded table of per-key state for the hot path: the fair scheduler's
// virtual times and the monopolization detector's busy intervals, touched by
// every handler call.
//
// Why not LruMap: an exact LRU over std::unordered_map + std::list allocates
// two nodes and copies the topic and key strings for every new key, and a
// key stream wider than the capacity (10k keys through an 8,192-entry cache)
// misses on every record - a profile of the noop benchmark put 17 % of all
// CPU in that map. This table allocates once, stores a 64-bit digest of the
// key instead of the key, and is set-associative: a key lives in one of
// `kWays` slots of the set its digest selects, and a full set forgets its
// least recently used key. Forgetting a key only resets its history to zero,
// which both users already accept from an LRU; two keys whose 64-bit digests
// collide would share history (odds ~n^2 / 2^65: 3e-12 for 10k keys).
//
// Capacity: at most `capacity` keys (rounded down to whole sets of kWays, at
// least one set). Memory is (16 + sizeof(V)) bytes per slot, allocated on
// first use.
//
// A value whose slot is reused for another key is reset with
// `value.recycle()` when V has one (so a vector keeps its capacity), else by
// assigning V{}.
//
// Thread safety: none; the owner locks.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace prosody::middleware {

template <typename V>
class KeyTable {
 public:
  static constexpr std::size_t kWays = 8;

  explicit KeyTable(std::size_t capacity)
      : ways_(std::clamp<std::size_t>(capacity, 1, kWays)),
        sets_(std::clamp<std::size_t>(capacity / ways_, 1, std::size_t{1} << 31)) {}

  // The state of the key with this digest, created (V{} or recycled) when
  // absent, evicting the set's least recently used key if the set is full.
  // Marks the key most recently used.
  V& get_or_create(std::uint64_t digest) {
    digest = nonzero(digest);
    if (slots_.empty()) slots_.resize(ways_ * sets_);
    Slot* set = set_of(digest);
    Slot* victim = set;
    for (std::size_t i = 0; i < ways_; ++i) {
      Slot& s = set[i];
      if (s.digest == digest) {
        s.used = ++clock_;
        return s.value;
      }
      // Empty slots (digest 0, used 0) sort before every occupied one.
      if (s.used < victim->used) victim = &s;
    }
    if (victim->digest == 0) {
      ++size_;
    } else {
      reset(victim->value);
    }
    victim->digest = digest;
    victim->used = ++clock_;
    return victim->value;
  }

  // Lookup without changing recency; nullptr when absent.
  const V* peek(std::uint64_t digest) const {
    if (slots_.empty()) return nullptr;
    digest = nonzero(digest);
    const Slot* set = set_of(digest);
    for (std::size_t i = 0; i < ways_; ++i) {
      if (set[i].digest == digest) return &set[i].value;
    }
    return nullptr;
  }

  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return ways_ * sets_; }

 private:
  struct Slot {
    std::uint64_t digest = 0;  // 0: empty
    std::uint64_t used = 0;    // recency stamp; higher is more recent
    V value{};
  };

  static std::uint64_t nonzero(std::uint64_t d) noexcept { return d == 0 ? 1 : d; }

  // Multiply-shift maps the digest's high 32 bits onto [0, sets) without a
  // division (sets_ < 2^32); the digest is already well mixed.
  std::size_t set_index(std::uint64_t digest) const noexcept {
    return static_cast<std::size_t>(((digest >> 32) * sets_) >> 32);
  }
  Slot* set_of(std::uint64_t digest) noexcept { return slots_.data() + set_index(digest) * ways_; }
  const Slot* set_of(std::uint64_t digest) const noexcept { return slots_.data() + set_index(digest) * ways_; }

  static void reset(V& v) {
    if constexpr (requires { v.recycle(); }) {
      v.recycle();
    } else {
      v = V{};
    }
  }

  std::size_t ways_;
  std::size_t sets_;
  std::vector<Slot> slots_;  // sets_ groups of ways_ slots; empty until first use
  std::uint64_t clock_ = 0;
  std::size_t size_ = 0;
};

}  // namespace prosody::middleware
