#include "store/cassandra/cassandra_dedup_store.h"

#include <fmt/format.h>

namespace prosody::store::cassandra {
namespace {

cql::Uuid to_uuid(const DedupId& id) { return cql::Uuid{id.bytes}; }

}  // namespace

Result<std::unique_ptr<CassandraDedupStore>> CassandraDedupStore::open(std::shared_ptr<cql::Session> session,
                                                                       std::string keyspace,
                                                                       std::chrono::seconds ttl) {
  if (ttl < std::chrono::seconds(1) || ttl > kMaxDedupTtl) {
    return Error::permanent(fmt::format("dedup TTL {} s is outside Cassandra's 1 s .. {} s", ttl.count(),
                                        kMaxDedupTtl.count()),
                            ErrorCode::invalid_config);
  }
  if (auto s = require_tables(*session, keyspace, {"deduplication"}); !s) return s.error();
  std::unique_ptr<CassandraDedupStore> store(new CassandraDedupStore(std::move(session), std::move(keyspace), ttl));
  auto select = prepare(*store->session_, fmt::format("SELECT id FROM {}.deduplication WHERE id = ?", store->keyspace_));
  if (!select) return select.error();
  auto insert =
      prepare(*store->session_, fmt::format("INSERT INTO {}.deduplication (id) VALUES (?) USING TTL ?", store->keyspace_));
  if (!insert) return insert.error();
  store->select_ = std::move(*select);
  store->insert_ = std::move(*insert);
  return store;
}

Result<bool> CassandraDedupStore::contains(const DedupId& id) {
  auto rows = session_->execute(select_, {to_uuid(id)});
  if (!rows) return rows.error();
  return rows->size() > 0;
}

Status CassandraDedupStore::record(const DedupId& id) {
  auto done = session_->execute(insert_, {to_uuid(id), static_cast<std::int32_t>(ttl_.count())});
  if (!done) return done.error();
  return ok_status();
}

}  // namespace prosody::store::cassandra
