// Defer stores in one SQLite file (WAL mode), `<state_dir>/defer.sqlite`.
// Like the timer store's file, several consumer processes on one machine may
// open it: deferred work follows its partition to whichever local consumer
// owns it next.
//
// Why a file of its own rather than timers.sqlite: SQLite admits one writer
// per file, and the defer queues and the timers are written by different
// threads at the same moments (a deferral writes a timer *and* a queue
// entry), so separate files halve the write-lock contention; the file can
// also be inspected or deleted on its own.
//
// Schema (both queues in the same two tables, told apart by `queue`: 0 =
// messages, 1 = timers; the Cassandra backend uses Prosody's two tables):
//   prosody_deferred_keys    (segment, queue, key) -> retry_count
//       one row per deferred key; plays the part of Cassandra's static
//       retry_count column;
//   prosody_deferred_entries (segment, queue, key, position) -> span
//       the queue itself; `position` is the offset or the epoch second.
// Multi-statement changes run in one IMMEDIATE transaction, so a reader
// never sees a key row without entries or the reverse.
//
// Thread safety: any thread; a mutex serialises use of the one connection
// each store holds (the two stores hold one connection each).
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "store/defer_store.h"
#include "store/sqlite/sqlite_database.h"

namespace prosody::store {

template <typename Entry>
class SqliteDeferStore final : public DeferStore<Entry> {
 public:
  using Head = DeferHead<Entry>;

  // Opens or creates the database file and its schema.
  static Result<std::unique_ptr<SqliteDeferStore>> open(const std::string& path);

  Status append(const DeferSegment& segment, const Key& key, const Entry& entry) override;
  Result<std::optional<Head>> head(const DeferSegment& segment, const Key& key) override;
  Result<std::optional<Head>> remove(const DeferSegment& segment, const Key& key, std::int64_t position) override;
  Status set_retry_count(const DeferSegment& segment, const Key& key, std::uint32_t retry_count) override;
  Result<bool> is_deferred(const DeferSegment& segment, const Key& key) override;
  Result<std::optional<std::uint64_t>> deferred_key_count(const DeferSegment& segment) override;
  Result<std::vector<Entry>> entries(const DeferSegment& segment, const Key& key) override;
  Status remove_key(const DeferSegment& segment, const Key& key) override;
  std::string describe() const override { return "sqlite:" + db_->path(); }

 private:
  explicit SqliteDeferStore(std::unique_ptr<sqlite::SqliteDatabase> db) : db_(std::move(db)) {}
  Status prepare_statements();
  // Runs `body` inside BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error).
  // Caller holds mutex_.
  template <typename F>
  auto in_transaction(F&& body) -> decltype(body());
  Result<std::optional<Head>> read_head(const std::string& segment, const Key& key);  // caller holds mutex_

  std::mutex mutex_;
  std::unique_ptr<sqlite::SqliteDatabase> db_;  // guarded by mutex_
  // guarded by mutex_:
  sqlite::Statement begin_, commit_, rollback_, ensure_key_, put_entry_, head_, delete_entry_, reset_count_,
      set_count_, is_deferred_, count_keys_, list_, delete_entries_, delete_key_;
};

extern template class SqliteDeferStore<DeferredMessage>;
extern template class SqliteDeferStore<DeferredTimer>;

using SqliteMessageDeferStore = SqliteDeferStore<DeferredMessage>;
using SqliteTimerDeferStore = SqliteDeferStore<DeferredTimer>;

}  // namespace prosody::store
