// The identity every per-key algorithm in this folder tracks: a key is only
// meaningful inside its topic and partition, so two partitions that happen to
// carry the same key string are accounted separately (as Prosody does).
//
// Thread safety: value type.
#pragma once

#include <cstddef>
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

}  // namespace prosody::middleware
