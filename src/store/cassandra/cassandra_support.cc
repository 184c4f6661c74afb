#include "store/cassandra/cassandra_support.h"

#include <algorithm>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <openssl/evp.h>

namespace prosody::store::cassandra {

const cql::Uuid kUrlNamespace = *cql::Uuid::parse("6ba7b811-9dad-11d1-80b4-00c04fd430c8");
const cql::Uuid kOidNamespace = *cql::Uuid::parse("6ba7b812-9dad-11d1-80b4-00c04fd430c8");

cql::Uuid uuid_v5(const cql::Uuid& name_space, std::string_view name) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha1(), nullptr);
  EVP_DigestUpdate(ctx, name_space.bytes.data(), name_space.bytes.size());
  EVP_DigestUpdate(ctx, name.data(), name.size());
  EVP_DigestFinal_ex(ctx, digest, &len);
  EVP_MD_CTX_free(ctx);
  cql::Uuid out;
  std::copy_n(digest, out.bytes.size(), out.bytes.begin());
  out.bytes[6] = static_cast<std::uint8_t>((out.bytes[6] & 0x0F) | 0x50);  // version 5
  out.bytes[8] = static_cast<std::uint8_t>((out.bytes[8] & 0x3F) | 0x80);  // RFC 4122 variant
  return out;
}

Result<std::int32_t> encode_epoch(EpochSeconds t, std::string_view what) {
  if (t < 0 || t > kMaxStoredEpoch) {
    return Error::permanent(fmt::format("{} {} s cannot be stored in Cassandra: Prosody's schema holds epoch seconds "
                                        "as a 32-bit unsigned value, 0 to {} (2106-02-07T06:28:15Z)",
                                        what, t, kMaxStoredEpoch),
                            ErrorCode::invalid_argument);
  }
  return static_cast<std::int32_t>(static_cast<std::uint32_t>(t));
}

std::int32_t timer_ttl(EpochSeconds time, EpochSeconds now, std::chrono::seconds retention) {
  const std::int64_t ttl = std::max<std::int64_t>((time - now) + retention.count(), 1);
  if (ttl > kMaxTtlSeconds || now + ttl > kMaxExpiry) return 0;
  return static_cast<std::int32_t>(ttl);
}

std::int32_t retention_ttl(EpochSeconds now, std::chrono::seconds retention) {
  return timer_ttl(now, now, retention);
}

cql::Value span_value(const SpanContext& span) {
  if (span.empty()) return cql::Null{};
  cql::Map m;
  for (const auto& [k, v] : span) {
    m.keys.emplace_back(k);
    m.values.emplace_back(v);
  }
  return m;
}

SpanContext span_from(const cql::Value& v) {
  SpanContext out;
  const auto* m = v.get<cql::Map>();
  if (!m) return out;
  for (std::size_t i = 0; i < m->keys.size() && i < m->values.size(); ++i) {
    const auto* k = m->keys[i].get<std::string>();
    const auto* val = m->values[i].get<std::string>();
    if (k && val) out.emplace(*k, *val);
  }
  return out;
}

namespace {

// Completion state shared with the I/O thread's callbacks.
struct Pending {
  std::mutex mu;
  std::condition_variable cv;
  std::size_t left = 0;
  std::optional<Error> error;
  std::vector<cql::Rows> rows;
};

}  // namespace

Result<std::vector<cql::Rows>> read_concurrently(cql::Session& session, std::vector<Call> calls) {
  auto p = std::make_shared<Pending>();
  p->left = calls.size();
  p->rows.resize(calls.size());
  for (std::size_t i = 0; i < calls.size(); ++i) {
    session.execute_async(std::move(calls[i].statement), std::move(calls[i].values), {},
                          [p, i](Result<cql::Rows> r) {
                            std::lock_guard l(p->mu);
                            if (r) {
                              p->rows[i] = std::move(*r);
                            } else if (!p->error) {
                              p->error = r.error();
                            }
                            if (--p->left == 0) p->cv.notify_all();
                          });
  }
  std::unique_lock l(p->mu);
  p->cv.wait(l, [&] { return p->left == 0; });
  if (p->error) return *p->error;
  return std::move(p->rows);
}

Status run_concurrently(cql::Session& session, std::vector<Call> calls) {
  auto r = read_concurrently(session, std::move(calls));
  if (!r) return r.error();
  return ok_status();
}

Status require_tables(cql::Session& session, const std::string& keyspace, const std::vector<std::string>& tables) {
  auto r = session.query("SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?", {keyspace});
  if (!r) return r.error();
  std::vector<std::string> missing;
  for (const auto& t : tables) {
    bool found = false;
    for (std::size_t i = 0; i < r->size() && !found; ++i) found = r->at(i, "table_name") == cql::Value(t);
    if (!found) missing.push_back(t);
  }
  if (missing.empty()) return ok_status();
  return Error::permanent(
      fmt::format("Cassandra keyspace '{}' lacks Prosody's table(s) {}: run `prosody migrate --keyspace {}` (with "
                  "PROSODY_CASSANDRA_NODES/_USER/_PASSWORD set) first; prosody-cpp never migrates implicitly",
                  keyspace, fmt::join(missing, ", "), keyspace),
      ErrorCode::invalid_config);
}

Result<cql::Prepared> prepare(cql::Session& session, const std::string& cql) {
  auto p = session.prepare(cql);
  if (!p) {
    const auto& e = p.error();
    return Error(e.error_class(), e.code(), "preparing `" + cql + "`: " + e.message());
  }
  return p;
}

}  // namespace prosody::store::cassandra
