// Prosody-compatible schema migrator for Cassandra.
//
// The migrations are the .cql files in migrations/, embedded at build time.
// `migrate` brings a keyspace up to date:
//   1. create the keyspace (SimpleStrategy RF 1) if absent — create it
//      yourself in production — and the schema_migrations and locks tables;
//   2. read what is recorded; a recorded file whose checksum differs from the
//      embedded one is a terminal error (someone changed an applied file);
//   3. if anything is pending, take the `migration` lease lock
//      (INSERT ... IF NOT EXISTS USING TTL 600), re-check what is pending
//      under it, apply each file's statements in order, record the file
//      (SHA-256 checksum, applied_at, execution_time_ms), and release the
//      lock (DELETE ... IF owner_id = ?);
//   4. retry the whole procedure on transient failures or a busy lock, up to
//      10 times, with jittered backoff up to min(2^n s, 30 s).
// Running it again is a no-op. Placeholders {{KEYSPACE}} and {{TABLE_*}} are
// substituted before checksumming. Files are named YYYYMMDD_name.cql.
//
// Compatibility with Prosody (Rust): the tables, UDTs and options are the
// same. Our file names differ from Prosody's, and our DDL is idempotent, so
// a keyspace migrated by either one can be migrated by the other: each
// records its own files, and ignores (with a warning) files it does not know.
//
// Thread rules: `migrate` blocks the calling thread (it uses the Session's
// synchronous API); never call it from a Session callback. Backoff sleeps go
// through the injected Clock.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cql/session.h"
#include "prosody/clock.h"
#include "prosody/result.h"

namespace prosody::store::cassandra {

struct Migration {
  std::string filename;  // YYYYMMDD_name.cql
  std::string content;   // with placeholders
};

// The files of migrations/, sorted by name (generated at build time).
const std::vector<Migration>& embedded_migrations();

struct MigratorOptions {
  std::string keyspace = "prosody";
  std::vector<Migration> migrations = embedded_migrations();
  int max_attempts = 10;
  std::chrono::seconds lock_ttl{600};
  std::chrono::milliseconds max_backoff{30000};
  std::shared_ptr<Clock> clock;  // backoff sleeps and applied_at; system clock when null
};

struct MigrationReport {
  std::vector<std::string> applied;           // applied by this run
  std::vector<std::string> already_applied;   // found recorded
  std::vector<std::string> unknown_recorded;  // recorded, not embedded (warned)
};

Result<MigrationReport> migrate(cql::Session& session, const MigratorOptions& options = {});

// Helpers, exposed for tests.
std::string substitute_placeholders(std::string_view content, std::string_view keyspace);
// Statements end at a line ending with ';'; lines starting with "--" are skipped.
std::vector<std::string> split_statements(std::string_view content);
std::string sha256_hex(std::string_view data);
bool valid_keyspace_name(std::string_view name);

}  // namespace prosody::store::cassandra
