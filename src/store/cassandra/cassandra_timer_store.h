// TimerStore on Prosody's V3 Cassandra tables, so a C++ and a Rust service
// can take over each other's consumer groups (reference/prosody-internals.md
// §2e, §3):
//   timer_segments     (id, slab_id)   statics name, slab_size, version=3;
//                                      one clustering row per slab in use
//   timer_typed_slabs  ((segment_id, slab_size, id), timer_type, key, time)
//   timer_typed_keys   ((segment_id, key), timer_type, time)
// segment id = UUIDv5(URL namespace, "{group}:{topic}/{partition}"),
// slab id = floor(time / slab_size). All statements are prepared and run at
// LOCAL_QUORUM (the Session's default). Rows carry
// TTL = (time - now) + cassandra_retention, none when that exceeds
// 630,720,000 s or when the expiry would pass 2038-01-19 (Cassandra 5.0's
// default storage mode rejects that; capping could expire a pending timer);
// a slab's metadata row uses the TTL of the slab's end.
//
// Time encoding: Prosody's u32-as-int (see cassandra_support.h). Times up to
// 2^32-1 s (2106-02-07) are stored exactly as Prosody stores them, so rows
// are readable by both systems; the 2038 wrap of the int column is handled
// by sorting after decoding (we never ask the server to order times). Later
// times (TimerTime allows up to year 9999) get a permanent error.
//
// Key index states: Prosody V3 may keep a key's only timer of a type inline
// in the static `state` map (Inline) instead of a clustering row. We read
// inline entries (merged with clustering rows) and remove them, but always
// write clustering rows and leave `state` alone — the "Absent" shape every
// row had before the state column existed. Skipped: writing Inline state
// (the tombstone optimisation), its 8192-entry state cache, and the lazy
// migration of V1 segments and of slab-size changes (a segment's slabs are
// read with the slab size the caller passes).
//
// Writes for one upsert go out concurrently (segment metadata, slab row, key
// row), as Prosody's `add` does; a crash in between can leave a slab row
// without its key row or the reverse, which the next load or remove heals.
//
// Thread rules: any thread; methods block on the Session's async calls and
// must not be called from a Session callback. The set of segments whose
// metadata was written is guarded by a mutex.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "cql/session.h"
#include "prosody/clock.h"
#include "store/cassandra/cassandra_support.h"
#include "store/timer_store.h"

namespace prosody::store::cassandra {

struct CassandraStoreOptions {
  std::string keyspace = "prosody";
  std::chrono::seconds retention = std::chrono::days(365);
  std::shared_ptr<Clock> clock;  // "now" for TTLs; system clock when null
};

class CassandraTimerStore final : public TimerStore {
 public:
  // Checks that the tables exist (else a permanent error naming
  // `prosody migrate`) and prepares every statement.
  static Result<std::unique_ptr<CassandraTimerStore>> open(std::shared_ptr<cql::Session> session,
                                                           CassandraStoreOptions options);

  Status upsert(const TimerSegment& segment, const StoredTimer& timer) override;
  Status remove(const TimerSegment& segment, const Key& key, TimerType type, EpochSeconds time) override;
  Status remove_all(const TimerSegment& segment, const Key& key, TimerType type) override;
  Result<std::vector<EpochSeconds>> times(const TimerSegment& segment, const Key& key, TimerType type) override;
  Result<std::vector<StoredTimer>> load_slabs(const TimerSegment& segment, SlabId first, SlabId last) override;
  std::string describe() const override { return "cassandra:" + options_.keyspace; }

  // Prosody's segment id for a timer segment.
  static cql::Uuid segment_id(const TimerSegment& segment);

 private:
  CassandraTimerStore(std::shared_ptr<cql::Session> session, CassandraStoreOptions options)
      : session_(std::move(session)), options_(std::move(options)) {}
  Status prepare_statements();
  EpochSeconds now() const;
  // The segment's static metadata, written once per segment per store.
  std::optional<Call> segment_metadata(const TimerSegment& segment, const cql::Uuid& id);
  Status remove_timers(const TimerSegment& segment, const cql::Uuid& id, const Key& key, TimerType type,
                       const std::vector<EpochSeconds>& times, bool whole_type);
  struct KeyTimes {
    std::vector<EpochSeconds> times;  // clustering rows and inline, sorted, unique
    std::optional<EpochSeconds> inline_time;
  };
  Result<KeyTimes> read_key(const cql::Uuid& id, const Key& key, TimerType type);

  std::shared_ptr<cql::Session> session_;
  CassandraStoreOptions options_;
  cql::Prepared put_segment_, put_slab_meta_, put_slab_row_, put_key_row_, del_slab_row_, del_key_row_,
      del_key_type_, del_state_, get_key_rows_, get_state_, get_slab_ids_, get_slab_rows_;
  std::mutex mu_;
  std::set<cql::Uuid> segments_written_;  // guarded by mu_
};

}  // namespace prosody::store::cassandra
