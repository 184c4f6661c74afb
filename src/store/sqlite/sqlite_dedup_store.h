// Dedup store in its own SQLite file (WAL mode), `<state_dir>/dedup.sqlite`.
// Several consumer processes on one machine may share it, so a message
// handled by one local consumer is skipped by the next owner of its
// partition.
//
// Schema:
//   prosody_deduplication (id TEXT PRIMARY KEY, expires_at INTEGER)
//     id: the UUID text form (readable with the sqlite3 shell);
//     expires_at: epoch milliseconds on the injected Clock's wall time
//     (the file outlives processes, so steady time would not do).
//   An index on expires_at serves the purge.
// contains() ignores expired rows; record() upserts with a fresh expiry and,
// once per purge interval, deletes the expired rows (the file would
// otherwise grow with every message ever handled).
//
// Why a file of its own: one writer per SQLite file, and dedup writes come
// with every handled message, so sharing timers.sqlite or defer.sqlite would
// make those wait on them.
//
// Thread safety: any thread; a mutex serialises use of the one connection.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "prosody/clock.h"
#include "store/dedup_store.h"
#include "store/sqlite/sqlite_database.h"

namespace prosody::store {

class SqliteDedupStore final : public DedupStore {
 public:
  struct Options {
    std::chrono::seconds ttl = std::chrono::days(7);
    // How often record() purges expired rows; 0 = ttl / 4, at most 10 min.
    std::chrono::milliseconds purge_interval{0};
    std::shared_ptr<Clock> clock;  // null = the system clock
  };

  // Opens or creates the file and its schema, and purges expired rows.
  static Result<std::unique_ptr<SqliteDedupStore>> open(const std::string& path, Options options);

  Result<bool> contains(const DedupId& id) override;
  Status record(const DedupId& id) override;
  std::chrono::seconds ttl() const override { return options_.ttl; }
  std::string describe() const override { return "sqlite:" + db_->path(); }

  // Deletes the expired rows now (record() does this periodically).
  Status purge();
  // Rows in the file, expired or not (tests).
  Result<std::int64_t> size();

 private:
  SqliteDedupStore(std::unique_ptr<sqlite::SqliteDatabase> db, Options options);
  Status prepare_statements();
  std::int64_t now_ms() const;
  Status purge_locked(std::int64_t now);  // caller holds mutex_

  Options options_;
  std::mutex mutex_;
  std::unique_ptr<sqlite::SqliteDatabase> db_;  // guarded, like the statements
  sqlite::Statement contains_, record_, purge_, count_;
  std::int64_t next_purge_ms_ = 0;  // guarded
};

}  // namespace prosody::store
