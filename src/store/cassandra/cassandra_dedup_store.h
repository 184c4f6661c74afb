// Dedup store on Prosody's `deduplication` table (id uuid primary key, no
// other column; UCS with an expired-SSTable check, gc_grace 1 day): a record
// is `INSERT ... USING TTL ?` with the configured idempotence_ttl, a lookup
// `SELECT id ... WHERE id = ?`. The server expires rows, so nothing is ever
// deleted (no tombstones beyond the TTL's own). Rows are interchangeable
// with Prosody's: both sides derive the same id for the same message
// (middleware/dedup_id.h), so a C++ consumer skips what a Rust one handled.
//
// Consistency: the session default (LOCAL_QUORUM), as Prosody: once
// record() returns, the offset may be committed, so a later reader in the
// local DC must see the row.
//
// Thread rules: blocks the caller on the Session; never call from a Session
// callback. Safe from any thread (no state besides prepared statements).
#pragma once

#include <memory>

#include "cql/session.h"
#include "store/cassandra/cassandra_support.h"
#include "store/dedup_store.h"

namespace prosody::store::cassandra {

class CassandraDedupStore final : public DedupStore {
 public:
  // Checks the table exists (else a permanent error naming `prosody
  // migrate`) and prepares the two statements. `ttl` between 1 s and
  // Cassandra's 20-year maximum (the config enforces Prosody's 1-minute
  // minimum; tests use seconds).
  static Result<std::unique_ptr<CassandraDedupStore>> open(std::shared_ptr<cql::Session> session,
                                                           std::string keyspace, std::chrono::seconds ttl);

  Result<bool> contains(const DedupId& id) override;
  Status record(const DedupId& id) override;
  std::chrono::seconds ttl() const override { return ttl_; }
  std::string describe() const override { return "cassandra:" + keyspace_; }

 private:
  CassandraDedupStore(std::shared_ptr<cql::Session> session, std::string keyspace, std::chrono::seconds ttl)
      : session_(std::move(session)), keyspace_(std::move(keyspace)), ttl_(ttl) {}

  std::shared_ptr<cql::Session> session_;
  std::string keyspace_;
  std::chrono::seconds ttl_;
  cql::Prepared select_, insert_;
};

}  // namespace prosody::store::cassandra
