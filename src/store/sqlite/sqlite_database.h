// A small RAII layer over one SQLite connection: open in WAL mode with a
// busy timeout (so several consumer processes on one machine can share the
// file), prepared statements that reset themselves, transactions, and
// SQLite result codes turned into prosody::Error (busy/locked/I/O are
// transient: a retry can succeed; the rest are permanent).
//
// Thread safety: a SqliteDatabase is NOT safe for concurrent use; owners
// serialise access (SqliteTimerStore holds a mutex around every call).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "prosody/result.h"

struct sqlite3;
struct sqlite3_stmt;

namespace prosody::store::sqlite {

class Statement {
 public:
  Statement() = default;
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  Statement(Statement&& o) noexcept : db_(o.db_), stmt_(o.stmt_) { o.stmt_ = nullptr; }
  Statement& operator=(Statement&& o) noexcept;
  ~Statement();

  Statement& bind(int index, std::int64_t value);
  Statement& bind(int index, std::string_view value);
  Statement& bind_null(int index);
  // Bytes, copied at once (the caller's buffer may go after the call).
  Statement& bind_blob(int index, const void* data, std::size_t size);

  // Steps once: true when a row is available, false when done.
  Result<bool> step();
  // Steps to completion (statements without result rows) and resets.
  Status run();
  void reset();

  std::int64_t column_int(int index) const;
  std::string_view column_text(int index) const;
  bool column_is_null(int index) const;

 private:
  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
};

class SqliteDatabase {
 public:
  // Opens (creating) the file, switches to WAL, sets the busy timeout.
  static Result<std::unique_ptr<SqliteDatabase>> open(const std::string& path, int busy_timeout_ms = 10000);
  ~SqliteDatabase();
  SqliteDatabase(const SqliteDatabase&) = delete;
  SqliteDatabase& operator=(const SqliteDatabase&) = delete;

  Status exec(std::string_view sql);
  Result<Statement> prepare(std::string_view sql);
  const std::string& path() const { return path_; }

  // Error for the connection's last failure, with context.
  Error error(std::string_view what, int code) const;

 private:
  SqliteDatabase(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  sqlite3* db_;
  std::string path_;
};

// Maps an SQLite result code to an error class.
ErrorClass classify_sqlite(int code) noexcept;

}  // namespace prosody::store::sqlite
