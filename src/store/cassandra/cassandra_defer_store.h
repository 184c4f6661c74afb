// The defer queues on Prosody's Cassandra tables (reference/
// prosody-internals.md §2c, §3):
//   deferred_offsets ((segment_id, key), offset)        static retry_count,
//                                                       static next_offset
//   deferred_timers  ((segment_id, key), original_time) span; static
//                    retry_count, static next_timer {time, span}
//   deferred_segments (id) topic, partition, consumer_group — written once
//                    per segment per store, for operators.
// segment id = UUIDv5(OID namespace, "{topic}/{partition}:{group}").
// Rows and statics carry TTL = cassandra_retention (none above 630,720,000 s
// or when it would end after 2038-01-19, see cassandra_support.h).
//
// The static "next" hint always names the smallest live entry, so head()
// and is_deferred() are one static read with no tombstone scan. A key has
// a queue exactly when its hint is set. Moving the head (removing the head
// entry) is one unlogged single-partition batch that deletes the row, sets
// the new hint and resets retry_count, so the three change together; the
// last entry's removal deletes the partition. Partitions written without a
// hint (before Prosody's hint migration) are repaired when first read.
// Finding the next head reads the key's live rows (queues are short);
// Prosody's range read after the old head is not reproduced.
//
// Time encoding of deferred_timers.original_time: Prosody's u32-as-int (see
// cassandra_support.h); times outside [0, 2^32-1] are refused with a
// permanent error, and ordering is done after decoding, never by the server.
// retry_count is a u32 bit-cast to int as well.
//
// Consistency: reads and writes at LOCAL_QUORUM; read-modify-write steps are
// not LWTs, relying (as the DeferStore contract allows) on the engine
// serialising calls per key.
//
// Thread rules: any thread; methods block on the Session and must not be
// called from a Session callback. The written-segments set is mutex-guarded.
#pragma once

#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "cql/session.h"
#include "store/cassandra/cassandra_support.h"
#include "store/cassandra/cassandra_timer_store.h"  // CassandraStoreOptions
#include "store/defer_store.h"

namespace prosody::store::cassandra {

template <typename Entry>
class CassandraDeferStore final : public DeferStore<Entry> {
 public:
  using Head = DeferHead<Entry>;

  // Checks the tables exist (else a permanent error naming `prosody
  // migrate`) and prepares every statement.
  static Result<std::unique_ptr<CassandraDeferStore>> open(std::shared_ptr<cql::Session> session,
                                                           CassandraStoreOptions options);

  Status append(const DeferSegment& segment, const Key& key, const Entry& entry) override;
  Result<std::optional<Head>> head(const DeferSegment& segment, const Key& key) override;
  Result<std::optional<Head>> remove(const DeferSegment& segment, const Key& key, std::int64_t position) override;
  Status set_retry_count(const DeferSegment& segment, const Key& key, std::uint32_t retry_count) override;
  Result<bool> is_deferred(const DeferSegment& segment, const Key& key) override;
  Result<std::vector<Entry>> entries(const DeferSegment& segment, const Key& key) override;
  Status remove_key(const DeferSegment& segment, const Key& key) override;
  std::string describe() const override { return "cassandra:" + options_.keyspace; }

  static cql::Uuid segment_id(const DeferSegment& segment) { return uuid_v5(kOidNamespace, segment.name()); }

 private:
  CassandraDeferStore(std::shared_ptr<cql::Session> session, CassandraStoreOptions options)
      : session_(std::move(session)), options_(std::move(options)) {}
  Status prepare_statements();
  EpochSeconds now() const;
  Status write_segment(const DeferSegment& segment, const cql::Uuid& id);
  Result<std::optional<Head>> read_head(const cql::Uuid& id, const Key& key);
  Result<std::vector<Entry>> read_entries(const cql::Uuid& id, const Key& key);

  std::shared_ptr<cql::Session> session_;
  CassandraStoreOptions options_;
  cql::Prepared put_segment_, put_entry_, set_hint_, set_hint_and_count_, set_count_, del_entry_, del_key_,
      get_head_, get_entries_;
  std::mutex mu_;
  std::set<cql::Uuid> segments_written_;  // guarded by mu_
};

extern template class CassandraDeferStore<DeferredMessage>;
extern template class CassandraDeferStore<DeferredTimer>;

using CassandraMessageDeferStore = CassandraDeferStore<DeferredMessage>;
using CassandraTimerDeferStore = CassandraDeferStore<DeferredTimer>;

}  // namespace prosody::store::cassandra
