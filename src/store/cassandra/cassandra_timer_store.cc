#include "store/cassandra/cassandra_timer_store.h"

#include <algorithm>
#include <tuple>

#include <fmt/format.h>

namespace prosody::store::cassandra {
namespace {

constexpr std::int8_t kSegmentVersion = 3;  // V3: typed tables

cql::Value type_value(TimerType t) { return static_cast<std::int8_t>(t); }

Result<std::int32_t> slab_size_value(const TimerSegment& s) {
  if (s.slab_size_seconds < 1 || s.slab_size_seconds > std::numeric_limits<std::int32_t>::max()) {
    return Error::permanent(fmt::format("slab size {} s does not fit Prosody's int column", s.slab_size_seconds),
                            ErrorCode::invalid_argument);
  }
  return static_cast<std::int32_t>(s.slab_size_seconds);
}

// Slab ids use the same u32-as-int encoding as times: with time <= 2^32-1
// and slab_size >= 1 they always fit.
std::int32_t slab_value(SlabId slab) { return static_cast<std::int32_t>(static_cast<std::uint32_t>(slab)); }
SlabId slab_from(std::int32_t v) { return static_cast<std::uint32_t>(v); }

}  // namespace

cql::Uuid CassandraTimerStore::segment_id(const TimerSegment& segment) {
  return uuid_v5(kUrlNamespace, segment.name());
}

Result<std::unique_ptr<CassandraTimerStore>> CassandraTimerStore::open(std::shared_ptr<cql::Session> session,
                                                                       CassandraStoreOptions options) {
  if (!options.clock) options.clock = system_clock();
  if (auto s = require_tables(*session, options.keyspace, {"timer_segments", "timer_typed_slabs", "timer_typed_keys"});
      !s) {
    return s.error();
  }
  std::unique_ptr<CassandraTimerStore> store(new CassandraTimerStore(std::move(session), std::move(options)));
  if (auto s = store->prepare_statements(); !s) return s.error();
  return store;
}

Status CassandraTimerStore::prepare_statements() {
  const auto& ks = options_.keyspace;
  struct Item {
    cql::Prepared* target;
    std::string cql;
  };
  const Item items[] = {
      {&put_segment_, fmt::format("INSERT INTO {}.timer_segments (id, name, slab_size, version) VALUES (?, ?, ?, ?)",
                                  ks)},
      {&put_slab_meta_, fmt::format("INSERT INTO {}.timer_segments (id, slab_id) VALUES (?, ?) USING TTL ?", ks)},
      {&put_slab_row_, fmt::format("INSERT INTO {}.timer_typed_slabs (segment_id, slab_size, id, timer_type, key, "
                                   "time, span) VALUES (?, ?, ?, ?, ?, ?, ?) USING TTL ?",
                                   ks)},
      {&put_key_row_, fmt::format("INSERT INTO {}.timer_typed_keys (segment_id, key, timer_type, time, span) VALUES "
                                  "(?, ?, ?, ?, ?) USING TTL ?",
                                  ks)},
      {&del_slab_row_, fmt::format("DELETE FROM {}.timer_typed_slabs WHERE segment_id = ? AND slab_size = ? AND id = ? "
                                   "AND timer_type = ? AND key = ? AND time = ?",
                                   ks)},
      {&del_key_row_, fmt::format("DELETE FROM {}.timer_typed_keys WHERE segment_id = ? AND key = ? AND timer_type = ? "
                                  "AND time = ?",
                                  ks)},
      {&del_key_type_,
       fmt::format("DELETE FROM {}.timer_typed_keys WHERE segment_id = ? AND key = ? AND timer_type = ?", ks)},
      {&del_state_, fmt::format("DELETE state[?] FROM {}.timer_typed_keys WHERE segment_id = ? AND key = ?", ks)},
      {&get_key_rows_,
       fmt::format("SELECT time FROM {}.timer_typed_keys WHERE segment_id = ? AND key = ? AND timer_type = ?", ks)},
      {&get_state_, fmt::format("SELECT state FROM {}.timer_typed_keys WHERE segment_id = ? AND key = ? LIMIT 1", ks)},
      {&get_slab_ids_, fmt::format("SELECT slab_id FROM {}.timer_segments WHERE id = ?", ks)},
      {&get_slab_rows_, fmt::format("SELECT timer_type, key, time, span FROM {}.timer_typed_slabs WHERE segment_id = ? "
                                    "AND slab_size = ? AND id = ?",
                                    ks)},
  };
  for (const auto& item : items) {
    auto p = prepare(*session_, item.cql);
    if (!p) return p.error();
    *item.target = std::move(*p);
  }
  return ok_status();
}

EpochSeconds CassandraTimerStore::now() const {
  return std::chrono::duration_cast<std::chrono::seconds>(options_.clock->system_now().time_since_epoch()).count();
}

std::optional<Call> CassandraTimerStore::segment_metadata(const TimerSegment& segment, const cql::Uuid& id) {
  {
    std::lock_guard l(mu_);
    if (segments_written_.contains(id)) return std::nullopt;
  }
  return Call{put_segment_, {id, segment.name(), static_cast<std::int32_t>(segment.slab_size_seconds),
                             kSegmentVersion}};
}

Status CassandraTimerStore::upsert(const TimerSegment& segment, const StoredTimer& timer) {
  auto time = encode_epoch(timer.time, "timer time");
  if (!time) return time.error();
  auto slab_size = slab_size_value(segment);
  if (!slab_size) return slab_size.error();
  const auto id = segment_id(segment);
  const SlabId slab = segment.slab_of(timer.time);
  const EpochSeconds t_now = now();
  const std::int32_t ttl = timer_ttl(timer.time, t_now, options_.retention);
  const std::int32_t slab_ttl = timer_ttl(segment.slab_start(slab + 1), t_now, options_.retention);
  const auto span = span_value(timer.span);

  std::vector<Call> calls;
  auto meta = segment_metadata(segment, id);
  if (meta) calls.push_back(std::move(*meta));
  calls.push_back({put_slab_meta_, {id, slab_value(slab), slab_ttl}});
  calls.push_back({put_slab_row_, {id, *slab_size, slab_value(slab), type_value(timer.type), timer.key, *time, span, ttl}});
  calls.push_back({put_key_row_, {id, timer.key, type_value(timer.type), *time, span, ttl}});
  if (auto s = run_concurrently(*session_, std::move(calls)); !s) return s;
  if (meta) {
    std::lock_guard l(mu_);
    segments_written_.insert(id);
  }
  return ok_status();
}

Result<CassandraTimerStore::KeyTimes> CassandraTimerStore::read_key(const cql::Uuid& id, const Key& key,
                                                                    TimerType type) {
  auto rows = read_concurrently(*session_, {{get_key_rows_, {id, key, type_value(type)}}, {get_state_, {id, key}}});
  if (!rows) return rows.error();
  KeyTimes out;
  const auto& clustering = (*rows)[0];
  for (std::size_t i = 0; i < clustering.size(); ++i) {
    if (const auto* t = clustering.rows[i][0].get<std::int32_t>()) out.times.push_back(decode_epoch(*t));
  }
  // An Inline state (written by Prosody) holds the key's only timer of
  // this type in the static map instead of a clustering row.
  const auto& state_rows = (*rows)[1];
  if (!state_rows.empty()) {
    if (const auto* state = state_rows.rows[0][0].get<cql::Map>()) {
      for (std::size_t i = 0; i < state->keys.size() && i < state->values.size(); ++i) {
        if (state->keys[i].as_int() != static_cast<std::int64_t>(type)) continue;
        const auto* udt = state->values[i].get<cql::Udt>();
        if (!udt) continue;
        bool is_inline = false;
        std::optional<std::int32_t> time;
        for (std::size_t f = 0; f < udt->names.size() && f < udt->values.size(); ++f) {
          if (udt->names[f] == "inline" && udt->values[f].get<bool>()) is_inline = *udt->values[f].get<bool>();
          if (udt->names[f] == "time" && udt->values[f].get<std::int32_t>()) time = *udt->values[f].get<std::int32_t>();
        }
        if (is_inline && time) {
          out.inline_time = decode_epoch(*time);
          out.times.push_back(*out.inline_time);
        }
      }
    }
  }
  std::sort(out.times.begin(), out.times.end());
  out.times.erase(std::unique(out.times.begin(), out.times.end()), out.times.end());
  return out;
}

Result<std::vector<EpochSeconds>> CassandraTimerStore::times(const TimerSegment& segment, const Key& key,
                                                             TimerType type) {
  auto k = read_key(segment_id(segment), key, type);
  if (!k) return k.error();
  return std::move(k->times);
}

Status CassandraTimerStore::remove_timers(const TimerSegment& segment, const cql::Uuid& id, const Key& key,
                                          TimerType type, const std::vector<EpochSeconds>& times, bool whole_type) {
  auto slab_size = slab_size_value(segment);
  if (!slab_size) return slab_size.error();
  std::vector<Call> calls;
  for (const auto t : times) {
    auto time = encode_epoch(t, "timer time");
    if (!time) return time.error();
    calls.push_back(
        {del_slab_row_, {id, *slab_size, slab_value(segment.slab_of(t)), type_value(type), key, *time}});
    if (!whole_type) calls.push_back({del_key_row_, {id, key, type_value(type), *time}});
  }
  if (whole_type) {
    calls.push_back({del_key_type_, {id, key, type_value(type)}});
    calls.push_back({del_state_, {type_value(type), id, key}});
  }
  return run_concurrently(*session_, std::move(calls));
}

Status CassandraTimerStore::remove(const TimerSegment& segment, const Key& key, TimerType type, EpochSeconds time) {
  if (time < 0 || time > kMaxStoredEpoch) return ok_status();  // could never have been stored
  const auto id = segment_id(segment);
  if (auto s = remove_timers(segment, id, key, type, {time}, false); !s) return s;
  // A timer Prosody kept inline lives in the static state map.
  auto k = read_key(id, key, type);
  if (!k) return k.error();
  if (k->inline_time == time) return run_concurrently(*session_, {{del_state_, {type_value(type), id, key}}});
  return ok_status();
}

Status CassandraTimerStore::remove_all(const TimerSegment& segment, const Key& key, TimerType type) {
  const auto id = segment_id(segment);
  auto k = read_key(id, key, type);
  if (!k) return k.error();
  return remove_timers(segment, id, key, type, k->times, true);
}

Result<std::vector<StoredTimer>> CassandraTimerStore::load_slabs(const TimerSegment& segment, SlabId first,
                                                                 SlabId last) {
  auto slab_size = slab_size_value(segment);
  if (!slab_size) return slab_size.error();
  const auto id = segment_id(segment);
  auto ids = session_->execute_all(get_slab_ids_, {id});
  if (!ids) return ids.error();
  std::vector<Call> reads;
  for (std::size_t i = 0; i < ids->size(); ++i) {
    const auto* v = ids->rows[i][0].get<std::int32_t>();
    if (!v) continue;  // the static-only row
    const SlabId slab = slab_from(*v);
    if (slab < first || slab > last) continue;
    reads.push_back({get_slab_rows_, {id, *slab_size, *v}});
  }
  std::vector<StoredTimer> out;
  // One paged read per slab; slabs are few (one per slab_size of future).
  for (auto& r : reads) {
    auto rows = session_->execute_all(r.statement, std::move(r.values));
    if (!rows) return rows.error();
    for (std::size_t i = 0; i < rows->size(); ++i) {
      const auto& row = rows->rows[i];
      const auto type = row[0].as_int();
      const auto* key = row[1].get<std::string>();
      const auto* time = row[2].get<std::int32_t>();
      if (!type || !key || !time) continue;
      out.push_back(StoredTimer{*key, static_cast<TimerType>(*type), decode_epoch(*time), span_from(row[3])});
    }
  }
  std::sort(out.begin(), out.end(), [](const StoredTimer& a, const StoredTimer& b) {
    return std::tie(a.time, a.key, a.type) < std::tie(b.time, b.key, b.type);
  });
  return out;
}

}  // namespace prosody::store::cassandra
