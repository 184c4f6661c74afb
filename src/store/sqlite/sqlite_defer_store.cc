#include "store/sqlite/sqlite_defer_store.h"

#include <nlohmann/json.hpp>

namespace prosody::store {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS prosody_deferred_keys (
  segment     TEXT NOT NULL,
  queue       INTEGER NOT NULL,
  key         TEXT NOT NULL,
  retry_count INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (segment, queue, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS prosody_deferred_entries (
  segment  TEXT NOT NULL,
  queue    INTEGER NOT NULL,
  key      TEXT NOT NULL,
  position INTEGER NOT NULL,
  span     TEXT,
  PRIMARY KEY (segment, queue, key, position)
) WITHOUT ROWID;
)sql";

// How each entry type maps onto the shared tables.
template <typename Entry>
struct Codec;

template <>
struct Codec<DeferredMessage> {
  static constexpr std::int64_t kQueue = 0;
  static std::string span(const DeferredMessage&) { return {}; }
  static DeferredMessage make(std::int64_t position, std::string_view) { return DeferredMessage{Offset{position}}; }
};

template <>
struct Codec<DeferredTimer> {
  static constexpr std::int64_t kQueue = 1;
  static std::string span(const DeferredTimer& t) { return t.span.empty() ? std::string() : nlohmann::json(t.span).dump(); }
  static DeferredTimer make(std::int64_t position, std::string_view text) {
    DeferredTimer t{position, {}};
    if (text.empty()) return t;
    auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) return t;  // unreadable span: the timer still retries, untraced
    for (auto& [k, v] : j.items()) {
      if (v.is_string()) t.span.emplace(k, v.get<std::string>());
    }
    return t;
  }
};

}  // namespace

template <typename Entry>
Result<std::unique_ptr<SqliteDeferStore<Entry>>> SqliteDeferStore<Entry>::open(const std::string& path) {
  auto db = sqlite::SqliteDatabase::open(path);
  if (!db) return db.error();
  if (auto s = (*db)->exec(kSchema); !s) return s.error();
  std::unique_ptr<SqliteDeferStore> store(new SqliteDeferStore(std::move(*db)));
  if (auto s = store->prepare_statements(); !s) return s.error();
  return store;
}

template <typename Entry>
Status SqliteDeferStore<Entry>::prepare_statements() {
  struct Item {
    sqlite::Statement* target;
    const char* sql;
  };
  // ?1 segment, ?2 queue, ?3 key throughout.
  const Item items[] = {
      {&begin_, "BEGIN IMMEDIATE"},
      {&commit_, "COMMIT"},
      {&rollback_, "ROLLBACK"},
      {&ensure_key_, "INSERT OR IGNORE INTO prosody_deferred_keys (segment, queue, key, retry_count) "
                     "VALUES (?1, ?2, ?3, 0)"},
      {&put_entry_, "INSERT OR REPLACE INTO prosody_deferred_entries (segment, queue, key, position, span) "
                    "VALUES (?1, ?2, ?3, ?4, ?5)"},
      {&head_, "SELECT e.position, e.span, k.retry_count FROM prosody_deferred_entries e "
               "JOIN prosody_deferred_keys k ON k.segment = e.segment AND k.queue = e.queue AND k.key = e.key "
               "WHERE e.segment = ?1 AND e.queue = ?2 AND e.key = ?3 ORDER BY e.position LIMIT 1"},
      {&delete_entry_, "DELETE FROM prosody_deferred_entries WHERE segment = ?1 AND queue = ?2 AND key = ?3 "
                       "AND position = ?4"},
      {&reset_count_, "UPDATE prosody_deferred_keys SET retry_count = 0 WHERE segment = ?1 AND queue = ?2 AND key = ?3"},
      {&set_count_, "UPDATE prosody_deferred_keys SET retry_count = ?4 WHERE segment = ?1 AND queue = ?2 AND key = ?3"},
      {&is_deferred_, "SELECT 1 FROM prosody_deferred_keys WHERE segment = ?1 AND queue = ?2 AND key = ?3"},
      {&count_keys_, "SELECT COUNT(*) FROM prosody_deferred_keys WHERE segment = ?1 AND queue = ?2"},
      {&list_, "SELECT position, span FROM prosody_deferred_entries WHERE segment = ?1 AND queue = ?2 AND key = ?3 "
               "ORDER BY position"},
      {&delete_entries_, "DELETE FROM prosody_deferred_entries WHERE segment = ?1 AND queue = ?2 AND key = ?3"},
      {&delete_key_, "DELETE FROM prosody_deferred_keys WHERE segment = ?1 AND queue = ?2 AND key = ?3"},
  };
  for (const auto& item : items) {
    auto st = db_->prepare(item.sql);
    if (!st) return st.error();
    *item.target = std::move(*st);
  }
  return ok_status();
}

template <typename Entry>
template <typename F>
auto SqliteDeferStore<Entry>::in_transaction(F&& body) -> decltype(body()) {
  if (auto s = begin_.run(); !s) return s.error();
  auto result = body();
  if (!result) {
    (void)rollback_.run();
    return result;
  }
  if (auto s = commit_.run(); !s) {
    (void)rollback_.run();  // a failed COMMIT leaves the transaction open
    return s.error();
  }
  return result;
}

template <typename Entry>
Result<std::optional<DeferHead<Entry>>> SqliteDeferStore<Entry>::read_head(const std::string& segment,
                                                                         const Key& key) {
  head_.bind(1, segment).bind(2, Codec<Entry>::kQueue).bind(3, key);
  auto row = head_.step();
  if (!row) return row.error();
  std::optional<Head> out;
  if (*row) {
    out = Head{Codec<Entry>::make(head_.column_int(0), head_.column_text(1)),
               static_cast<std::uint32_t>(head_.column_int(2))};
  }
  head_.reset();
  return out;
}

template <typename Entry>
Status SqliteDeferStore<Entry>::append(const DeferSegment& segment, const Key& key, const Entry& entry) {
  const auto span = Codec<Entry>::span(entry);
  std::lock_guard l(mutex_);
  return in_transaction([&]() -> Status {
    const auto& seg = segment.name();
    if (auto s = ensure_key_.bind(1, seg).bind(2, Codec<Entry>::kQueue).bind(3, key).run(); !s) return s;
    put_entry_.bind(1, seg).bind(2, Codec<Entry>::kQueue).bind(3, key).bind(4, entry.position());
    if (span.empty()) {
      put_entry_.bind_null(5);
    } else {
      put_entry_.bind(5, span);
    }
    return put_entry_.run();
  });
}

template <typename Entry>
Result<std::optional<DeferHead<Entry>>> SqliteDeferStore<Entry>::head(const DeferSegment& segment, const Key& key) {
  std::lock_guard l(mutex_);
  return read_head(segment.name(), key);
}

template <typename Entry>
Result<std::optional<DeferHead<Entry>>> SqliteDeferStore<Entry>::remove(const DeferSegment& segment, const Key& key,
                                                                       std::int64_t position) {
  std::lock_guard l(mutex_);
  const auto& seg = segment.name();
  return in_transaction([&]() -> Result<std::optional<Head>> {
    auto before = read_head(seg, key);
    if (!before) return before.error();
    if (!*before) return std::optional<Head>();
    auto s = delete_entry_.bind(1, seg).bind(2, Codec<Entry>::kQueue).bind(3, key).bind(4, position).run();
    if (!s) return s.error();
    if ((*before)->entry.position() == position) {
      if (auto r = reset_count_.bind(1, seg).bind(2, Codec<Entry>::kQueue).bind(3, key).run(); !r) return r.error();
    }
    auto after = read_head(seg, key);
    if (!after) return after.error();
    if (!*after) {
      if (auto r = delete_key_.bind(1, seg).bind(2, Codec<Entry>::kQueue).bind(3, key).run(); !r) return r.error();
    }
    return after;
  });
}

template <typename Entry>
Status SqliteDeferStore<Entry>::set_retry_count(const DeferSegment& segment, const Key& key,
                                                std::uint32_t retry_count) {
  std::lock_guard l(mutex_);
  return set_count_.bind(1, segment.name())
      .bind(2, Codec<Entry>::kQueue)
      .bind(3, key)
      .bind(4, static_cast<std::int64_t>(retry_count))
      .run();
}

template <typename Entry>
Result<bool> SqliteDeferStore<Entry>::is_deferred(const DeferSegment& segment, const Key& key) {
  std::lock_guard l(mutex_);
  is_deferred_.bind(1, segment.name()).bind(2, Codec<Entry>::kQueue).bind(3, key);
  auto row = is_deferred_.step();
  if (!row) return row.error();
  const bool found = *row;
  is_deferred_.reset();
  return found;
}

template <typename Entry>
Result<std::optional<std::uint64_t>> SqliteDeferStore<Entry>::deferred_key_count(const DeferSegment& segment) {
  std::lock_guard l(mutex_);
  count_keys_.bind(1, segment.name()).bind(2, Codec<Entry>::kQueue);
  auto row = count_keys_.step();
  if (!row) return row.error();
  const auto count = *row ? count_keys_.column_int(0) : 0;
  count_keys_.reset();
  return std::optional<std::uint64_t>(static_cast<std::uint64_t>(count));
}

template <typename Entry>
Result<std::vector<Entry>> SqliteDeferStore<Entry>::entries(const DeferSegment& segment, const Key& key) {
  std::vector<Entry> out;
  std::lock_guard l(mutex_);
  list_.bind(1, segment.name()).bind(2, Codec<Entry>::kQueue).bind(3, key);
  for (;;) {
    auto row = list_.step();
    if (!row) return row.error();
    if (!*row) break;
    out.push_back(Codec<Entry>::make(list_.column_int(0), list_.column_text(1)));
  }
  list_.reset();
  return out;
}

template <typename Entry>
Status SqliteDeferStore<Entry>::remove_key(const DeferSegment& segment, const Key& key) {
  std::lock_guard l(mutex_);
  const auto& seg = segment.name();
  return in_transaction([&]() -> Status {
    if (auto s = delete_entries_.bind(1, seg).bind(2, Codec<Entry>::kQueue).bind(3, key).run(); !s) return s;
    return delete_key_.bind(1, seg).bind(2, Codec<Entry>::kQueue).bind(3, key).run();
  });
}

template class SqliteDeferStore<DeferredMessage>;
template class SqliteDeferStore<DeferredTimer>;

}  // namespace prosody::store
