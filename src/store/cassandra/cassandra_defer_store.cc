#include "store/cassandra/cassandra_defer_store.h"

#include <algorithm>

#include <fmt/format.h>

namespace prosody::store::cassandra {
namespace {

// How each entry type maps onto its table.
template <typename Entry>
struct Codec;

template <>
struct Codec<DeferredMessage> {
  static constexpr const char* kTable = "deferred_offsets";
  static constexpr const char* kPosition = "offset";
  static constexpr const char* kHint = "next_offset";
  static constexpr const char* kRowColumns = "offset";  // the row's own columns, in insert order
  static constexpr const char* kRowMarks = "?";
  static Result<std::vector<cql::Value>> row(const DeferredMessage& m) { return std::vector<cql::Value>{m.offset.value()}; }
  static Result<cql::Value> position(std::int64_t p) { return cql::Value(p); }
  static Result<cql::Value> hint(const DeferredMessage& m) { return cql::Value(m.offset.value()); }
  static std::optional<DeferredMessage> from_hint(const cql::Value& v) {
    const auto* p = v.get<std::int64_t>();
    if (!p) return std::nullopt;
    return DeferredMessage{Offset{*p}};
  }
  // Row columns as selected: position first, then the rest.
  static std::optional<DeferredMessage> from_row(const std::vector<cql::Value>& row) { return from_hint(row[0]); }
};

template <>
struct Codec<DeferredTimer> {
  static constexpr const char* kTable = "deferred_timers";
  static constexpr const char* kPosition = "original_time";
  static constexpr const char* kHint = "next_timer";
  static constexpr const char* kRowColumns = "original_time, span";
  static constexpr const char* kRowMarks = "?, ?";
  static Result<std::vector<cql::Value>> row(const DeferredTimer& t) {
    auto time = encode_epoch(t.time, "deferred timer time");
    if (!time) return time.error();
    return std::vector<cql::Value>{*time, span_value(t.span)};
  }
  static Result<cql::Value> position(std::int64_t p) {
    auto time = encode_epoch(p, "deferred timer time");
    if (!time) return time.error();
    return cql::Value(*time);
  }
  static Result<cql::Value> hint(const DeferredTimer& t) {
    auto time = encode_epoch(t.time, "deferred timer time");
    if (!time) return time.error();
    return cql::Value(cql::Udt{{"time", "span"}, {*time, span_value(t.span)}});
  }
  static std::optional<DeferredTimer> from_hint(const cql::Value& v) {
    const auto* udt = v.get<cql::Udt>();
    if (!udt) return std::nullopt;
    std::optional<DeferredTimer> out;
    SpanContext span;
    for (std::size_t i = 0; i < udt->names.size() && i < udt->values.size(); ++i) {
      if (udt->names[i] == "time") {
        if (const auto* t = udt->values[i].get<std::int32_t>()) out = DeferredTimer{decode_epoch(*t), {}};
      } else if (udt->names[i] == "span") {
        span = span_from(udt->values[i]);
      }
    }
    if (out) out->span = std::move(span);
    return out;
  }
  static std::optional<DeferredTimer> from_row(const std::vector<cql::Value>& row) {
    const auto* t = row[0].get<std::int32_t>();
    if (!t) return std::nullopt;
    return DeferredTimer{decode_epoch(*t), span_from(row[1])};
  }
};

std::int32_t count_value(std::uint32_t c) { return static_cast<std::int32_t>(c); }
std::uint32_t count_from(const cql::Value& v) {
  const auto* c = v.get<std::int32_t>();
  return c ? static_cast<std::uint32_t>(*c) : 0;
}

}  // namespace

template <typename Entry>
Result<std::unique_ptr<CassandraDeferStore<Entry>>> CassandraDeferStore<Entry>::open(
    std::shared_ptr<cql::Session> session, CassandraStoreOptions options) {
  if (!options.clock) options.clock = system_clock();
  if (auto s = require_tables(*session, options.keyspace, {"deferred_segments", Codec<Entry>::kTable}); !s) {
    return s.error();
  }
  std::unique_ptr<CassandraDeferStore> store(new CassandraDeferStore(std::move(session), std::move(options)));
  if (auto s = store->prepare_statements(); !s) return s.error();
  return store;
}

template <typename Entry>
Status CassandraDeferStore<Entry>::prepare_statements() {
  using C = Codec<Entry>;
  const auto table = fmt::format("{}.{}", options_.keyspace, C::kTable);
  struct Item {
    cql::Prepared* target;
    std::string cql;
  };
  const Item items[] = {
      {&put_segment_, fmt::format("INSERT INTO {}.deferred_segments (id, topic, partition, consumer_group) VALUES "
                                  "(?, ?, ?, ?) USING TTL ?",
                                  options_.keyspace)},
      {&put_entry_, fmt::format("INSERT INTO {} (segment_id, key, {}) VALUES (?, ?, {}) USING TTL ?", table,
                                C::kRowColumns, C::kRowMarks)},
      {&set_hint_, fmt::format("UPDATE {} USING TTL ? SET {} = ? WHERE segment_id = ? AND key = ?", table, C::kHint)},
      {&set_hint_and_count_, fmt::format("UPDATE {} USING TTL ? SET {} = ?, retry_count = ? WHERE segment_id = ? AND "
                                         "key = ?",
                                         table, C::kHint)},
      {&set_count_, fmt::format("UPDATE {} USING TTL ? SET retry_count = ? WHERE segment_id = ? AND key = ?", table)},
      {&del_entry_, fmt::format("DELETE FROM {} WHERE segment_id = ? AND key = ? AND {} = ?", table, C::kPosition)},
      {&del_key_, fmt::format("DELETE FROM {} WHERE segment_id = ? AND key = ?", table)},
      {&get_head_, fmt::format("SELECT {}, retry_count, {} FROM {} WHERE segment_id = ? AND key = ? LIMIT 1",
                               C::kPosition, C::kHint, table)},
      {&get_entries_, fmt::format("SELECT {} FROM {} WHERE segment_id = ? AND key = ?", C::kRowColumns, table)},
  };
  for (const auto& item : items) {
    auto p = prepare(*session_, item.cql);
    if (!p) return p.error();
    *item.target = std::move(*p);
  }
  return ok_status();
}

template <typename Entry>
EpochSeconds CassandraDeferStore<Entry>::now() const {
  return std::chrono::duration_cast<std::chrono::seconds>(options_.clock->system_now().time_since_epoch()).count();
}

template <typename Entry>
Status CassandraDeferStore<Entry>::write_segment(const DeferSegment& segment, const cql::Uuid& id) {
  {
    std::lock_guard l(mu_);
    if (segments_written_.contains(id)) return ok_status();
  }
  auto s = session_->execute(put_segment_, {id, segment.topic(), static_cast<std::int32_t>(segment.partition().value()),
                                            segment.group(), retention_ttl(now(), options_.retention)});
  if (!s) return s.error();
  std::lock_guard l(mu_);
  segments_written_.insert(id);
  return ok_status();
}

template <typename Entry>
Result<std::vector<Entry>> CassandraDeferStore<Entry>::read_entries(const cql::Uuid& id, const Key& key) {
  auto rows = session_->execute_all(get_entries_, {id, key});
  if (!rows) return rows.error();
  std::vector<Entry> out;
  for (const auto& row : rows->rows) {
    if (auto e = Codec<Entry>::from_row(row)) out.push_back(std::move(*e));  // skips the static-only row
  }
  // Decoded order: the server's int order is wrong for times past 2038.
  std::sort(out.begin(), out.end(), [](const Entry& a, const Entry& b) { return a.position() < b.position(); });
  return out;
}

template <typename Entry>
Result<std::optional<DeferHead<Entry>>> CassandraDeferStore<Entry>::read_head(const cql::Uuid& id, const Key& key) {
  auto rows = session_->execute(get_head_, {id, key});
  if (!rows) return rows.error();
  if (rows->empty()) return std::optional<Head>();
  const auto& row = rows->rows[0];
  const std::uint32_t count = count_from(row[1]);
  if (auto hint = Codec<Entry>::from_hint(row[2])) return std::optional<Head>(Head{std::move(*hint), count});
  if (row[0].is_null()) return std::optional<Head>();  // statics only, no entries: no queue
  // Entries without a hint: written before the hint existed. Repair it.
  auto all = read_entries(id, key);
  if (!all) return all.error();
  if (all->empty()) return std::optional<Head>();
  auto hint = Codec<Entry>::hint(all->front());
  if (!hint) return hint.error();
  auto s = session_->execute(set_hint_, {retention_ttl(now(), options_.retention), *hint, id, key});
  if (!s) return s.error();
  return std::optional<Head>(Head{all->front(), count});
}

template <typename Entry>
Status CassandraDeferStore<Entry>::append(const DeferSegment& segment, const Key& key, const Entry& entry) {
  auto row = Codec<Entry>::row(entry);
  if (!row) return row.error();
  auto hint = Codec<Entry>::hint(entry);
  if (!hint) return hint.error();
  const auto id = segment_id(segment);
  if (auto s = write_segment(segment, id); !s) return s;
  auto current = read_head(id, key);
  if (!current) return current.error();
  const std::int32_t ttl = retention_ttl(now(), options_.retention);
  std::vector<cql::Value> insert{id, key};
  for (auto& v : *row) insert.push_back(std::move(v));
  insert.push_back(ttl);
  std::vector<cql::BatchStatement> batch{{put_entry_, {}, std::move(insert)}};
  if (!*current) {
    // A new queue: its only entry is the head and has not failed yet.
    batch.push_back({set_hint_and_count_, {}, {ttl, *hint, count_value(0), id, key}});
  } else if (entry.position() <= (*current)->entry.position()) {
    // A new (or replaced) head; the key keeps its retry count.
    batch.push_back({set_hint_, {}, {ttl, *hint, id, key}});
  }
  auto r = session_->batch(cql::BatchType::unlogged, std::move(batch));
  if (!r) return r.error();
  return ok_status();
}

template <typename Entry>
Result<std::optional<DeferHead<Entry>>> CassandraDeferStore<Entry>::head(const DeferSegment& segment, const Key& key) {
  return read_head(segment_id(segment), key);
}

template <typename Entry>
Result<std::optional<DeferHead<Entry>>> CassandraDeferStore<Entry>::remove(const DeferSegment& segment, const Key& key,
                                                                          std::int64_t position) {
  const auto id = segment_id(segment);
  auto current = read_head(id, key);
  if (!current) return current.error();
  if (!*current) return std::optional<Head>();
  auto pos = Codec<Entry>::position(position);
  if (!pos) return *current;  // cannot have been stored: nothing to remove
  if ((*current)->entry.position() != position) {
    auto s = session_->execute(del_entry_, {id, key, *pos});
    if (!s) return s.error();
    return *current;
  }
  // Moving the head: the next entry becomes the head with retry count 0.
  auto all = read_entries(id, key);
  if (!all) return all.error();
  std::erase_if(*all, [&](const Entry& e) { return e.position() == position; });
  if (all->empty()) {
    auto s = session_->execute(del_key_, {id, key});
    if (!s) return s.error();
    return std::optional<Head>();
  }
  auto hint = Codec<Entry>::hint(all->front());
  if (!hint) return hint.error();
  std::vector<cql::BatchStatement> batch{
      {del_entry_, {}, {id, key, *pos}},
      {set_hint_and_count_, {}, {retention_ttl(now(), options_.retention), *hint, count_value(0), id, key}}};
  auto r = session_->batch(cql::BatchType::unlogged, std::move(batch));
  if (!r) return r.error();
  return std::optional<Head>(Head{all->front(), 0});
}

template <typename Entry>
Status CassandraDeferStore<Entry>::set_retry_count(const DeferSegment& segment, const Key& key,
                                                   std::uint32_t retry_count) {
  const auto id = segment_id(segment);
  auto current = read_head(id, key);
  if (!current) return current.error();
  if (!*current) return ok_status();  // a count never creates a queue
  auto s = session_->execute(set_count_, {retention_ttl(now(), options_.retention), count_value(retry_count), id, key});
  if (!s) return s.error();
  return ok_status();
}

template <typename Entry>
Result<bool> CassandraDeferStore<Entry>::is_deferred(const DeferSegment& segment, const Key& key) {
  auto h = read_head(segment_id(segment), key);
  if (!h) return h.error();
  return h->has_value();
}

template <typename Entry>
Result<std::vector<Entry>> CassandraDeferStore<Entry>::entries(const DeferSegment& segment, const Key& key) {
  return read_entries(segment_id(segment), key);
}

template <typename Entry>
Status CassandraDeferStore<Entry>::remove_key(const DeferSegment& segment, const Key& key) {
  auto s = session_->execute(del_key_, {segment_id(segment), key});
  if (!s) return s.error();
  return ok_status();
}

template class CassandraDeferStore<DeferredMessage>;
template class CassandraDeferStore<DeferredTimer>;

}  // namespace prosody::store::cassandra
