#include "store/sqlite/sqlite_dedup_store.h"

#include <algorithm>
#include <atomic>

namespace prosody::store {
namespace {

// Leaves a statement reset (and unbound) however its use ended: after a
// failed step SQLite keeps it halted, and the next bind would be refused.
class Resetting {
 public:
  explicit Resetting(sqlite::Statement& s) : s_(s) {}
  ~Resetting() { s_.reset(); }
  Resetting(const Resetting&) = delete;
  Resetting& operator=(const Resetting&) = delete;

 private:
  sqlite::Statement& s_;
};

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS prosody_deduplication (
  id         BLOB PRIMARY KEY,  -- the 16 bytes (as text: 30 % more disk, 25 % slower)
  expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS prosody_deduplication_expiry ON prosody_deduplication (expires_at);
)sql";

}  // namespace

SqliteDedupStore::SqliteDedupStore(std::unique_ptr<sqlite::SqliteDatabase> writer, Readers readers,
                                   Options options)
    : options_(std::move(options)), writer_(std::move(writer)) {
  for (std::size_t i = 0; i < kReaders; ++i) readers_[i].db = std::move(readers[i]);
  if (!options_.clock) options_.clock = system_clock();
  if (options_.max_pending == 0) options_.max_pending = 1;
  if (options_.purge_interval <= std::chrono::milliseconds::zero()) {
    options_.purge_interval = std::min<std::chrono::milliseconds>(options_.ttl / 4, std::chrono::minutes(10));
  }
}

namespace {

// Ids are random keys: every lookup and insert lands on a random page, so
// a page cache misses once the file outgrows it, whatever its size; what it
// keeps hot are the B-tree's inner pages. The writer keeps 16 MiB: 64 MiB
// was 7-10 % more ids/s in bench/dedup.cc at 1M ids, but a pipeline
// consumer's peak RSS 62 MiB higher (backlog on the mock, 3M records,
// 45 s: 167 -> 105 MiB at the same 28k records/s; bench/PROFILE.md
// "Session 12"), and the backlog target is 256 MiB. A reader's cache is
// emptied whenever another connection has committed since its last lookup
// (every flush, 50 ms), so SQLite's 2 MiB default is all it can use.
constexpr const char* kWriterPragmas = "PRAGMA cache_size=-16384;";
constexpr const char* kReaderPragmas = "PRAGMA cache_size=-2048;";

Result<std::unique_ptr<sqlite::SqliteDatabase>> open_connection(const std::string& path, const char* pragmas) {
  auto db = sqlite::SqliteDatabase::open(path);
  if (!db) return db.error();
  if (auto s = (*db)->exec(pragmas); !s) return s.error();
  return db;
}

}  // namespace

Result<std::unique_ptr<SqliteDedupStore>> SqliteDedupStore::open(const std::string& path, Options options) {
  if (options.ttl < std::chrono::seconds(1)) {
    return Error::permanent("dedup TTL must be at least 1 s", ErrorCode::invalid_config);
  }
  auto writer = open_connection(path, kWriterPragmas);
  if (!writer) return writer.error();
  if (auto s = (*writer)->exec(kSchema); !s) return s.error();
  // Checkpoint every 16,384 pages of WAL (64 MiB) rather than SQLite's
  // 1,000. Random ids dirty random pages, and every checkpoint copies them
  // into the file and fsyncs it: a page dirtied by several batches between
  // two checkpoints is copied once. bench/dedup.cc, 1M ids, 4 threads:
  // 79-89k ids/s at 1,000 pages, 104k at 4,096, 111-125k at 16,384, 127k
  // at 65,536. The WAL file is kept to that size after a checkpoint.
  if (auto s = (*writer)->exec("PRAGMA wal_autocheckpoint=16384; PRAGMA journal_size_limit=67108864;"); !s) {
    return s.error();
  }
  // Every connection opens before the store exists: a store destroyed
  // half-built would flush through statements never prepared.
  Readers readers;
  for (auto& reader : readers) {
    auto db = open_connection(path, kReaderPragmas);
    if (!db) return db.error();
    reader = std::move(*db);
  }
  std::unique_ptr<SqliteDedupStore> store(
      new SqliteDedupStore(std::move(*writer), std::move(readers), std::move(options)));
  if (auto s = store->prepare_statements(); !s) return s.error();
  if (auto s = store->purge(); !s) return s.error();
  if (store->options_.flush_interval > std::chrono::milliseconds::zero()) {
    store->flusher_ = std::thread([raw = store.get()] { raw->run_flusher(); });
  }
  return store;
}

Status SqliteDedupStore::prepare_statements() {
  struct Item {
    sqlite::SqliteDatabase* db;
    sqlite::Statement* target;
    const char* sql;
  };
  const Item items[] = {
      {writer_.get(), &record_,
       "INSERT INTO prosody_deduplication (id, expires_at) VALUES (?1, ?2) "
       "ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at"},
      {writer_.get(), &purge_, "DELETE FROM prosody_deduplication WHERE expires_at <= ?1"},
      {writer_.get(), &count_, "SELECT count(*) FROM prosody_deduplication"},
      {writer_.get(), &begin_, "BEGIN IMMEDIATE"},
      {writer_.get(), &commit_, "COMMIT"},
      {writer_.get(), &rollback_, "ROLLBACK"},
  };
  for (const auto& item : items) {
    auto st = item.db->prepare(item.sql);
    if (!st) return st.error();
    *item.target = std::move(*st);
  }
  for (auto& reader : readers_) {
    auto st = reader.db->prepare("SELECT 1 FROM prosody_deduplication WHERE id = ?1 AND expires_at > ?2");
    if (!st) return st.error();
    reader.contains = std::move(*st);
  }
  return ok_status();
}

std::int64_t SqliteDedupStore::now_ms() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(options_.clock->system_now().time_since_epoch())
      .count();
}

namespace {

bool live_in(const std::unordered_map<DedupId, std::int64_t, DedupIdHash>& queue, const DedupId& id,
             std::int64_t now) {
  auto it = queue.find(id);
  return it != queue.end() && it->second > now;
}

}  // namespace

Result<bool> SqliteDedupStore::contains(const DedupId& id) {
  const auto now = now_ms();
  {
    // Queued and being-written ids first: the batch being written leaves
    // `writing_` only after its commit, so an id is always in one of the
    // two queues or visible to the SELECT below.
    std::lock_guard q(queue_mutex_);
    if (live_in(pending_, id, now) || live_in(writing_, id, now)) return true;
  }
  // The first free reader; when all are busy, this thread's own one (each
  // thread gets the next one in turn, so waiters split between them).
  static std::atomic<std::size_t> next_thread{0};
  thread_local const std::size_t own = next_thread.fetch_add(1, std::memory_order_relaxed) % kReaders;
  std::unique_lock<std::mutex> held;
  Reader* reader = nullptr;
  for (std::size_t i = 0; i < kReaders && reader == nullptr; ++i) {
    Reader& r = readers_[(own + i) % kReaders];
    held = std::unique_lock(r.mutex, std::try_to_lock);
    if (held) reader = &r;
  }
  if (reader == nullptr) {
    reader = &readers_[own];
    held = std::unique_lock(reader->mutex);
  }
  Resetting reset(reader->contains);
  return reader->contains.bind_blob(1, id.bytes.data(), id.bytes.size()).bind(2, now).step();
}

Status SqliteDedupStore::record(const DedupId& id) {
  const auto now = now_ms();
  const auto expires = now + std::chrono::duration_cast<std::chrono::milliseconds>(options_.ttl).count();
  if (options_.flush_interval <= std::chrono::milliseconds::zero()) {
    std::lock_guard w(writer_mutex_);
    {
      Resetting r(record_);
      if (auto s = record_.bind_blob(1, id.bytes.data(), id.bytes.size()).bind(2, expires).run(); !s) return s;
    }
    // A failed purge is retried at the next record; the write itself succeeded.
    if (now >= next_purge_ms_) (void)purge_locked(now);
    return ok_status();
  }
  bool full = false;
  {
    std::lock_guard q(queue_mutex_);
    // A store that keeps failing must not queue without bound: past 16
    // batches the id is refused (the caller logs it) until a write succeeds.
    if (pending_.size() >= 16 * options_.max_pending && !pending_.contains(id)) {
      return flusher_error_ ? *flusher_error_
                            : Error::transient("dedup store " + describe() + ": write queue full", ErrorCode::store);
    }
    pending_[id] = expires;
    full = pending_.size() >= options_.max_pending;
    if (!full && flusher_error_) {
      // The background flush failed: say so once, to this caller.
      Error e = std::move(*flusher_error_);
      flusher_error_.reset();
      return e;
    }
  }
  // A full queue is written by the caller that filled it: the handler
  // threads slow down to the rate the file takes, instead of the queue
  // growing.
  return full ? flush() : ok_status();
}

Status SqliteDedupStore::flush() {
  std::lock_guard w(writer_mutex_);
  return flush_locked();
}

Status SqliteDedupStore::flush_locked() {
  const auto now = now_ms();
  {
    std::lock_guard q(queue_mutex_);
    writing_.swap(pending_);  // writing_ is empty between flushes
  }
  if (!writing_.empty()) {
    Status written = write_batch();
    std::lock_guard q(queue_mutex_);
    if (!written) {
      // Back into the queue for the next flush; an id recorded again
      // meanwhile keeps its newer expiry.
      for (const auto& [id, expires] : writing_) pending_.try_emplace(id, expires);
      writing_.clear();
      return written;
    }
    writing_.clear();
  }
  // A failed purge is retried at the next flush; the writes succeeded.
  if (now >= next_purge_ms_) (void)purge_locked(now);
  return ok_status();
}

Status SqliteDedupStore::write_batch() {
  // Only the flusher holding writer_mutex_ touches writing_'s contents, so
  // reading it without queue_mutex_ is safe: contains() only looks.
  if (auto s = begin_.run(); !s) return s;
  for (const auto& [id, expires] : writing_) {
    Resetting r(record_);
    if (auto s = record_.bind_blob(1, id.bytes.data(), id.bytes.size()).bind(2, expires).run(); !s) {
      (void)rollback_.run();
      return s;
    }
  }
  if (auto s = commit_.run(); !s) {
    (void)rollback_.run();
    return s;
  }
  return ok_status();
}

void SqliteDedupStore::run_flusher() {
  std::unique_lock q(queue_mutex_);
  while (!stopping_) {
    wake_.wait_for(q, options_.flush_interval, [this] { return stopping_; });
    if (stopping_) break;
    if (pending_.empty()) continue;
    q.unlock();
    Status s = flush();
    q.lock();
    if (!s) flusher_error_ = s.error();
  }
}

SqliteDedupStore::~SqliteDedupStore() {
  if (flusher_.joinable()) {
    {
      std::lock_guard q(queue_mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    flusher_.join();
  }
  (void)flush();  // best effort: a failure here loses only dedup hints
}

Status SqliteDedupStore::purge() {
  const auto now = now_ms();
  std::lock_guard w(writer_mutex_);
  return purge_locked(now);
}

Status SqliteDedupStore::purge_locked(std::int64_t now) {
  {
    Resetting r(purge_);
    if (auto s = purge_.bind(1, now).run(); !s) return s;
  }
  next_purge_ms_ = now + options_.purge_interval.count();
  return ok_status();
}

Result<std::int64_t> SqliteDedupStore::size() {
  std::lock_guard w(writer_mutex_);
  if (auto s = flush_locked(); !s) return s.error();
  Resetting r(count_);
  auto row = count_.step();
  if (!row) return row.error();
  return *row ? count_.column_int(0) : std::int64_t{0};
}

}  // namespace prosody::store
