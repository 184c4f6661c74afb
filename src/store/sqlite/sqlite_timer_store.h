// Timer store in one SQLite file (WAL mode). Several consumer processes on
// one machine may open the same file: that is how timers follow their
// partition from one local consumer to another on a rebalance.
//
// Schema: one table keyed by (segment, key, type, time) — the per-key index —
// with a secondary index on (segment, time) that serves slab loads. The slab
// is not stored, so changing slab_size needs no migration.
//
// Thread safety: any thread; a mutex serialises use of the one connection.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "store/sqlite/sqlite_database.h"
#include "store/timer_store.h"

namespace prosody::store {

class SqliteTimerStore final : public TimerStore {
 public:
  // Opens or creates the database file and its schema.
  static Result<std::unique_ptr<SqliteTimerStore>> open(const std::string& path);

  Status upsert(const TimerSegment& segment, const StoredTimer& timer) override;
  Status remove(const TimerSegment& segment, const Key& key, TimerType type, EpochSeconds time) override;
  Status remove_all(const TimerSegment& segment, const Key& key, TimerType type) override;
  Result<std::vector<EpochSeconds>> times(const TimerSegment& segment, const Key& key, TimerType type) override;
  Result<std::vector<StoredTimer>> load_slabs(const TimerSegment& segment, SlabId first, SlabId last) override;
  std::string describe() const override { return "sqlite:" + db_->path(); }

 private:
  explicit SqliteTimerStore(std::unique_ptr<sqlite::SqliteDatabase> db) : db_(std::move(db)) {}
  Status prepare_statements();

  std::mutex mutex_;
  std::unique_ptr<sqlite::SqliteDatabase> db_;  // guarded by mutex_
  sqlite::Statement upsert_, remove_, remove_all_, times_, load_;  // guarded by mutex_
};

}  // namespace prosody::store
