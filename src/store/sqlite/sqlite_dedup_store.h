// Dedup store in its own SQLite file (WAL mode), `<state_dir>/dedup.sqlite`.
// Several consumer processes on one machine may share it, so a message
// handled by one local consumer is skipped by the next owner of its
// partition.
//
// Schema:
//   prosody_deduplication (id BLOB PRIMARY KEY, expires_at INTEGER) WITHOUT ROWID
//     id: the id's 16 bytes (the sqlite3 shell shows them with hex(id));
//     expires_at: epoch milliseconds on the injected Clock's wall time
//     (the file outlives processes, so steady time would not do).
//   An index on expires_at serves the purge.
// contains() ignores expired rows; recorded ids are upserted with a fresh
// expiry and, once per purge interval, the expired rows are deleted (the
// file would otherwise grow with every message ever handled).
//
// Group commit: record() only queues the id; a background thread writes the
// queue in one transaction every `flush_interval` (and a record() that fills
// it to `max_pending` writes it at once). Ids are random keys, so past the
// page cache each written id dirties its own page, and the cost per id
// grows with the file. Measured by bench/dedup.cc (4 handler threads, this
// machine): lookup + record cost 46 µs per id written through, 5 µs with
// group commit at 200k ids, 6.5-7.7 µs at 1M ids (7.7 with the writer's
// page cache at 16 MiB; 11-12 µs before the WAL was checkpointed every
// 64 MiB instead of 4 and SQLite's allocation statistics were turned off,
// sqlite_database.cc); a lookup alone 2-4 µs. Faster consumers use
// Cassandra or turn deduplication off (idempotence_cache_size = 0).
// contains() sees queued ids, so within the process nothing changes; other
// connections to the file see them after the flush. A process crash loses
// at most the last interval's ids; a power failure also the ids written
// since the last checkpoint (synchronous=NORMAL: the WAL is fsynced only
// there). Either way a message whose id was lost runs again if it is
// delivered again (at-least-once, as without deduplication). flush() and
// the destructor write what is queued.
// A failed write keeps the queue for the next flush and is reported to the
// record() that triggered it, or by the next record() when the background
// thread failed.
//
// Why a file of its own: one writer per SQLite file, and dedup writes come
// with every handled message, so sharing timers.sqlite or defer.sqlite would
// make those wait on them.
//
// Connections to the file: a writer, and kReaders readers for lookups (WAL
// readers do not wait for the writer, so a handler's lookup never waits for
// a batch being written). With one reader, every handler thread's lookup
// queued on one mutex: waiting and waking took ~10 % of a pipeline
// consumer's CPU (perf, bench noop, 32 handlers on 2 cores); four gave
// 3-6 % more records/s in paired runs. A lookup takes the first free
// reader, else waits for its own thread's.
//
// Thread safety: any thread. One mutex per connection and one for the
// queues; a flush swaps the queue out under the queue mutex and writes it
// holding only the writer's. One background thread per store (the
// flusher), joined by the destructor.
#pragma once

#include <array>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>

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
    // Group commit (see above). flush_interval is real time: it schedules
    // I/O, it is not part of the data's meaning. 0 = write through (every
    // record() is its own transaction, no thread).
    std::chrono::milliseconds flush_interval{50};
    std::size_t max_pending = 4096;
  };
  ~SqliteDedupStore() override;

  // Opens or creates the file and its schema, and purges expired rows.
  static Result<std::unique_ptr<SqliteDedupStore>> open(const std::string& path, Options options);

  Result<bool> contains(const DedupId& id) override;
  Status record(const DedupId& id) override;
  std::chrono::seconds ttl() const override { return options_.ttl; }
  std::string describe() const override { return "sqlite:" + writer_->path(); }

  // Deletes the expired rows now (flushes do this periodically).
  Status purge();
  // Writes the queued ids now.
  Status flush();
  // Rows in the file, expired or not, after a flush (tests).
  Result<std::int64_t> size();

 private:
  static constexpr std::size_t kReaders = 4;
  using Readers = std::array<std::unique_ptr<sqlite::SqliteDatabase>, kReaders>;
  SqliteDedupStore(std::unique_ptr<sqlite::SqliteDatabase> writer, Readers readers, Options options);
  Status prepare_statements();
  std::int64_t now_ms() const;
  Status purge_locked(std::int64_t now);  // caller holds writer_mutex_
  Status flush_locked();                  // caller holds writer_mutex_
  Status write_batch();                   // caller holds writer_mutex_
  void run_flusher();

  Options options_;
  // Lock order: writer_mutex_, then queue_mutex_; a reader's mutex alone.
  std::mutex writer_mutex_;  // the writer connection and its statements; next_purge_ms_
  std::mutex queue_mutex_;   // pending_, writing_ (membership), flusher_error_, stopping_
  std::unique_ptr<sqlite::SqliteDatabase> writer_;
  struct Reader {
    std::mutex mutex;  // the connection and its statement
    std::unique_ptr<sqlite::SqliteDatabase> db;
    sqlite::Statement contains;
  };
  std::array<Reader, kReaders> readers_;
  sqlite::Statement record_, purge_, count_, begin_, commit_, rollback_;  // writer
  std::int64_t next_purge_ms_ = 0;
  // Recorded ids not yet written, with their expiry (epoch ms).
  std::unordered_map<DedupId, std::int64_t, DedupIdHash> pending_;
  // The batch a flush is writing; emptied after its commit (or put back
  // into pending_ when the write failed).
  std::unordered_map<DedupId, std::int64_t, DedupIdHash> writing_;
  std::optional<Error> flusher_error_;  // the background flush's last failure
  bool stopping_ = false;
  std::condition_variable wake_;
  std::thread flusher_;
};

}  // namespace prosody::store
