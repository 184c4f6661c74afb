// The identity every per-key algorithm in this folder tracks: a key is only
// meaningful inside its topic and partition, so two partitions that happen to
// carry the same key string are accounted separately (as Prosody does).
//
// Thread safety: value type.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "prosody/types.h"

namespace prosody::middleware {

struct TopicPartitionKey {
  Topic topic;
  Partition partition;
  Key key;

  bool operator==(const TopicPartitionKey&) const = default;
};

struct TopicPartitionKeyHash {
  std::size_t operator()(const TopicPartitionKey& k) const noexcept {
    // boost::hash_combine's mixing constant; good enough for an LRU index.
    std::size_t h = std::hash<std::string>{}(k.topic);
    h ^= std::hash<Partition>{}(k.partition) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    h ^= std::hash<std::string>{}(k.key) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    return h;
  }
};

// A well-mixed 64-bit identity of the key (the hash above through the
// splitmix64 finalizer), for tables that store digests instead of keys
// (key_table.h).
inline std::uint64_t digest(const TopicPartitionKey& k) noexcept {
  std::uint64_t z = TopicPartitionKeyHash{}(k);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace prosody::middleware
