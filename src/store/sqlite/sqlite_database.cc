#include "store/sqlite/sqlite_database.h"

#include <mutex>

#include <sqlite3.h>

#include <fmt/format.h>

namespace prosody::store::sqlite {

ErrorClass classify_sqlite(int code) noexcept {
  switch (code & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_PROTOCOL:
    case SQLITE_CANTOPEN:
      return ErrorClass::transient;
    default:
      return ErrorClass::permanent;
  }
}

Statement& Statement::operator=(Statement&& o) noexcept {
  if (this != &o) {
    if (stmt_) sqlite3_finalize(stmt_);
    db_ = o.db_;
    stmt_ = o.stmt_;
    o.stmt_ = nullptr;
  }
  return *this;
}

Statement::~Statement() {
  if (stmt_) sqlite3_finalize(stmt_);
}

Statement& Statement::bind(int index, std::int64_t value) {
  sqlite3_bind_int64(stmt_, index, value);
  return *this;
}

Statement& Statement::bind(int index, std::string_view value) {
  sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  return *this;
}

Statement& Statement::bind_blob(int index, const void* data, std::size_t size) {
  sqlite3_bind_blob64(stmt_, index, data, size, SQLITE_TRANSIENT);
  return *this;
}

Statement& Statement::bind_null(int index) {
  sqlite3_bind_null(stmt_, index);
  return *this;
}

Result<bool> Statement::step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  Error e(classify_sqlite(rc), ErrorCode::store,
          fmt::format("sqlite: {} ({})", sqlite3_errmsg(db_), sqlite3_errstr(rc)));
  reset();
  return e;
}

Status Statement::run() {
  for (;;) {
    auto r = step();
    if (!r) return r.error();
    if (!*r) break;
  }
  reset();
  return ok_status();
}

void Statement::reset() {
  // A statement never prepared (a store whose opening failed half-way and
  // is being destroyed): sqlite3_clear_bindings would dereference it.
  if (stmt_ == nullptr) return;
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

std::int64_t Statement::column_int(int index) const { return sqlite3_column_int64(stmt_, index); }

std::string_view Statement::column_text(int index) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, index));
  if (!p) return {};
  return {p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, index))};
}

bool Statement::column_is_null(int index) const { return sqlite3_column_type(stmt_, index) == SQLITE_NULL; }

namespace {

// SQLite counts every allocation under one process-wide mutex unless told
// not to (SQLITE_DEFAULT_MEMSTATUS=1 in Debian's build), which makes every
// connection on every thread contend for it: handlers looking up dedup ids
// against the flusher writing them (~16 % of a pipeline consumer's CPU,
// bench/PROFILE.md "Session 11"). Nothing here reads the counters.
//
// The setting is process-wide: in an application that links prosody and
// uses SQLite itself, sqlite3_memory_used, sqlite3_status and the heap
// limits stop counting once a prosody SQLite store has opened first (README,
// "Dependencies"). It can only be set before SQLite initialises; if the
// process already used SQLite, the call is refused (SQLITE_MISUSE, harmless,
// logged by SQLite's own log callback if one is set) and the counters stay
// on.
void turn_off_memory_statistics() {
  static std::once_flag once;
  std::call_once(once, [] { (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); });
}

}  // namespace

Result<std::unique_ptr<SqliteDatabase>> SqliteDatabase::open(const std::string& path, int busy_timeout_ms) {
  turn_off_memory_statistics();
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                                 nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    if (db) sqlite3_close(db);
    return Error(classify_sqlite(rc), ErrorCode::store, fmt::format("cannot open SQLite database '{}': {}", path, msg));
  }
  std::unique_ptr<SqliteDatabase> out(new SqliteDatabase(db, path));
  sqlite3_busy_timeout(db, busy_timeout_ms);
  // WAL lets readers and one writer from several processes work at once;
  // synchronous=NORMAL keeps every committed write across a process crash
  // (only an OS crash can lose the last transactions).
  if (auto s = out->exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"); !s) return s.error();
  return out;
}

SqliteDatabase::~SqliteDatabase() { sqlite3_close_v2(db_); }

Status SqliteDatabase::exec(std::string_view sql) {
  char* msg = nullptr;
  const std::string text(sql);
  const int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &msg);
  if (rc == SQLITE_OK) return ok_status();
  Error e(classify_sqlite(rc), ErrorCode::store,
          fmt::format("sqlite '{}': {}", path_, msg ? msg : sqlite3_errstr(rc)));
  sqlite3_free(msg);
  return e;
}

Result<Statement> SqliteDatabase::prepare(std::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  const int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &stmt,
                                    nullptr);
  if (rc != SQLITE_OK) return error(fmt::format("preparing '{}'", sql), rc);
  return Statement(db_, stmt);
}

Error SqliteDatabase::error(std::string_view what, int code) const {
  return Error(classify_sqlite(code), ErrorCode::store,
               fmt::format("sqlite '{}': {}: {}", path_, what, sqlite3_errmsg(db_)));
}

}  // namespace prosody::store::sqlite
