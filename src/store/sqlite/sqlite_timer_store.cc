#include "store/sqlite/sqlite_timer_store.h"

#include <limits>

#include <nlohmann/json.hpp>

namespace prosody::store {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS prosody_timers (
  segment TEXT NOT NULL,
  key     TEXT NOT NULL,
  type    INTEGER NOT NULL,
  time    INTEGER NOT NULL,
  span    TEXT,
  PRIMARY KEY (segment, key, type, time)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS prosody_timers_by_time ON prosody_timers (segment, time);
)sql";

std::string encode_span(const SpanContext& span) {
  if (span.empty()) return {};
  return nlohmann::json(span).dump();
}

SpanContext decode_span(std::string_view text) {
  if (text.empty()) return {};
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  SpanContext out;
  if (!j.is_object()) return out;  // unreadable span: the timer still fires, untraced
  for (auto& [k, v] : j.items()) {
    if (v.is_string()) out.emplace(k, v.get<std::string>());
  }
  return out;
}

}  // namespace

Result<std::unique_ptr<SqliteTimerStore>> SqliteTimerStore::open(const std::string& path) {
  auto db = sqlite::SqliteDatabase::open(path);
  if (!db) return db.error();
  if (auto s = (*db)->exec(kSchema); !s) return s.error();
  std::unique_ptr<SqliteTimerStore> store(new SqliteTimerStore(std::move(*db)));
  if (auto s = store->prepare_statements(); !s) return s.error();
  return store;
}

Status SqliteTimerStore::prepare_statements() {
  struct Item {
    sqlite::Statement* target;
    const char* sql;
  };
  const Item items[] = {
      {&upsert_, "INSERT OR REPLACE INTO prosody_timers (segment, key, type, time, span) VALUES (?1, ?2, ?3, ?4, ?5)"},
      {&remove_, "DELETE FROM prosody_timers WHERE segment = ?1 AND key = ?2 AND type = ?3 AND time = ?4"},
      {&remove_all_, "DELETE FROM prosody_timers WHERE segment = ?1 AND key = ?2 AND type = ?3"},
      {&times_, "SELECT time FROM prosody_timers WHERE segment = ?1 AND key = ?2 AND type = ?3 ORDER BY time"},
      {&load_,
       "SELECT key, type, time, span FROM prosody_timers WHERE segment = ?1 AND time >= ?2 AND time < ?3 "
       "ORDER BY time, key, type"},
  };
  for (const auto& item : items) {
    auto st = db_->prepare(item.sql);
    if (!st) return st.error();
    *item.target = std::move(*st);
  }
  return ok_status();
}

Status SqliteTimerStore::upsert(const TimerSegment& segment, const StoredTimer& timer) {
  const auto name = segment.name();
  const auto span = encode_span(timer.span);
  std::lock_guard l(mutex_);
  upsert_.bind(1, name).bind(2, timer.key).bind(3, static_cast<std::int64_t>(timer.type)).bind(4, timer.time);
  if (span.empty()) {
    upsert_.bind_null(5);
  } else {
    upsert_.bind(5, span);
  }
  return upsert_.run();
}

Status SqliteTimerStore::remove(const TimerSegment& segment, const Key& key, TimerType type, EpochSeconds time) {
  const auto name = segment.name();
  std::lock_guard l(mutex_);
  return remove_.bind(1, name).bind(2, key).bind(3, static_cast<std::int64_t>(type)).bind(4, time).run();
}

Status SqliteTimerStore::remove_all(const TimerSegment& segment, const Key& key, TimerType type) {
  const auto name = segment.name();
  std::lock_guard l(mutex_);
  return remove_all_.bind(1, name).bind(2, key).bind(3, static_cast<std::int64_t>(type)).run();
}

Result<std::vector<EpochSeconds>> SqliteTimerStore::times(const TimerSegment& segment, const Key& key,
                                                          TimerType type) {
  const auto name = segment.name();
  std::vector<EpochSeconds> out;
  std::lock_guard l(mutex_);
  times_.bind(1, name).bind(2, key).bind(3, static_cast<std::int64_t>(type));
  for (;;) {
    auto row = times_.step();
    if (!row) return row.error();
    if (!*row) break;
    out.push_back(times_.column_int(0));
  }
  times_.reset();
  return out;
}

Result<std::vector<StoredTimer>> SqliteTimerStore::load_slabs(const TimerSegment& segment, SlabId first,
                                                              SlabId last) {
  const auto name = segment.name();
  // Slab bounds as a half-open time range; saturate instead of overflowing
  // for the "everything older" sentinel.
  const auto size = segment.slab_size_seconds;
  constexpr auto kMin = std::numeric_limits<std::int64_t>::min();
  constexpr auto kMax = std::numeric_limits<std::int64_t>::max();
  const EpochSeconds from = first <= kMin / size ? kMin : first * size;
  const EpochSeconds to = last >= kMax / size - 1 ? kMax : (last + 1) * size;
  std::vector<StoredTimer> out;
  std::lock_guard l(mutex_);
  load_.bind(1, name).bind(2, from).bind(3, to);
  for (;;) {
    auto row = load_.step();
    if (!row) return row.error();
    if (!*row) break;
    out.push_back(StoredTimer{std::string(load_.column_text(0)), static_cast<TimerType>(load_.column_int(1)),
                              load_.column_int(2), decode_span(load_.column_text(3))});
  }
  load_.reset();
  return out;
}

}  // namespace prosody::store
