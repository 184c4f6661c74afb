// The deduplication store: which messages a consumer group has already
// handled, so a redelivered one (after a rebalance, a crash before the offset
// commit, a replay) can skip the handler (reference/prosody-internals.md §2f).
//
// Data model (Prosody's, so a Cassandra backend can use its `deduplication`
// table): a set of 16-byte ids, each a UUIDv8 derived from (version, group,
// topic, partition, key, event id or offset) by middleware/dedup_id.h. An id
// lives for the store's TTL (`idempotence_ttl`, 7 days by default, at least
// one minute) after it was last recorded; recording it again restarts the
// TTL, as a Cassandra `INSERT ... USING TTL` does. Ids are global: nothing is
// scoped by segment (the group and partition are inside the hash).
//
// Expiry is measured on the store's injected Clock in the memory and SQLite
// backends (tests move it by hand) and by the server in Cassandra.
//
// Thread safety: every method may be called from any thread at the same
// time; calls block until the store answered. Errors are transient when a
// retry may succeed (store down, busy, timeout) and permanent otherwise.
// record() is idempotent, so a caller may repeat a call that failed.
#pragma once

#include <array>
#include <chrono>
#include <compare>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>

#include "prosody/result.h"

namespace prosody::store {

// A dedup id: 16 bytes in UUID byte order (RFC 9562 field order: byte 6
// holds the version, byte 8 the variant).
struct DedupId {
  std::array<std::uint8_t, 16> bytes{};

  // 8-4-4-4-12 lowercase hex, as Cassandra prints a uuid.
  std::string str() const;
  auto operator<=>(const DedupId&) const = default;
};

struct DedupIdHash {
  std::size_t operator()(const DedupId& id) const noexcept {
    // The id is already a hash: any 8 of its bytes are uniform.
    std::uint64_t h;
    std::memcpy(&h, id.bytes.data(), sizeof h);
    return static_cast<std::size_t>(h);
  }
};

// Prosody's bounds for idempotence_ttl (the config validates them too).
inline constexpr std::chrono::seconds kMinDedupTtl{60};
inline constexpr std::chrono::seconds kMaxDedupTtl{630'720'000};  // Cassandra's maximum TTL

class DedupStore {
 public:
  virtual ~DedupStore() = default;

  // True when `id` was recorded less than the TTL ago.
  virtual Result<bool> contains(const DedupId& id) = 0;

  // Records `id` for the TTL (restarting it when already recorded).
  virtual Status record(const DedupId& id) = 0;

  // How long a recorded id is kept.
  virtual std::chrono::seconds ttl() const = 0;

  // A short name for logs ("memory", "sqlite:/path", ...).
  virtual std::string describe() const = 0;
};

}  // namespace prosody::store
