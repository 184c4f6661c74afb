// Pieces both Cassandra stores share: Prosody's segment ids (UUIDv5), its
// time encoding, the TTL rule, span maps, running several statements at
// once, and the "has this keyspace been migrated" check.
//
// Time encoding (see README.md): Prosody writes epoch seconds as a u32
// bit-cast to CQL int. We write exactly that, so either system reads the
// other's rows for every time up to 2^32-1 s (2106-02-07T06:28:15Z). Times
// from 2^31 s (2038-01-19) on are stored as negative ints, which breaks the
// server's clustering order; our stores therefore never rely on the server
// ordering `time` columns and sort after decoding. Times outside [0, 2^32-1]
// cannot be written without breaking Prosody's readers and are refused with
// a permanent error.
//
// Thread rules: free functions; run_concurrently blocks its caller (never
// call it from a Session callback).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cql/session.h"
#include "prosody/result.h"
#include "store/timer_store.h"

namespace prosody::store::cassandra {

// RFC 4122 name-based UUID, version 5 (SHA-1).
cql::Uuid uuid_v5(const cql::Uuid& name_space, std::string_view name);
extern const cql::Uuid kUrlNamespace;  // 6ba7b811-9dad-11d1-80b4-00c04fd430c8
extern const cql::Uuid kOidNamespace;  // 6ba7b812-9dad-11d1-80b4-00c04fd430c8

inline constexpr EpochSeconds kMaxStoredEpoch = 4'294'967'295;  // u32 max: 2106-02-07T06:28:15Z
// Cassandra refuses larger TTLs (20 years); Prosody then writes no TTL.
inline constexpr std::int64_t kMaxTtlSeconds = 630'720'000;

// Prosody's u32-as-int encoding; a permanent error outside [0, 2^32-1].
Result<std::int32_t> encode_epoch(EpochSeconds t, std::string_view what);
inline EpochSeconds decode_epoch(std::int32_t v) noexcept { return static_cast<std::uint32_t>(v); }

// Cassandra before 5.0's storage_compatibility_mode NONE stores expiry as
// an int32 and rejects TTLs ending after 2038-01-19T03:14:06Z
// (CASSANDRA-14092). Capping the TTL there could expire a row before its
// timer fires, so such rows get no TTL, like those over kMaxTtlSeconds.
inline constexpr EpochSeconds kMaxExpiry = 2'147'483'646;

// TTL for a timer row: (time - now) + retention; 0 (no TTL) when that
// exceeds kMaxTtlSeconds or would end after kMaxExpiry; at least 1 s for
// rows already older than the retention (they would expire at once anyway).
std::int32_t timer_ttl(EpochSeconds time, EpochSeconds now, std::chrono::seconds retention);
// TTL for a defer-queue row: the retention, with timer_ttl's limits.
std::int32_t retention_ttl(EpochSeconds now, std::chrono::seconds retention);

// frozen<map<text, text>>: empty span <-> null.
cql::Value span_value(const SpanContext& span);
SpanContext span_from(const cql::Value& v);

struct Call {
  cql::Prepared statement;
  std::vector<cql::Value> values;
};
// Sends every call at once and waits for all; the first error wins.
Status run_concurrently(cql::Session& session, std::vector<Call> calls);
Result<std::vector<cql::Rows>> read_concurrently(cql::Session& session, std::vector<Call> calls);

// A permanent error naming `prosody migrate` when the keyspace or one of
// `tables` is missing.
Status require_tables(cql::Session& session, const std::string& keyspace, const std::vector<std::string>& tables);

// Prepares `cql`, turning a failure into an error that names the statement.
Result<cql::Prepared> prepare(cql::Session& session, const std::string& cql);

}  // namespace prosody::store::cassandra
