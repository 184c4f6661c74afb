// The timer and defer store contracts against a real Cassandra
// (PROSODY_IT_CASSANDRA=host:port, scripts/cassandra), in a fresh keyspace
// migrated once per test binary run; plus Prosody-compatibility checks of
// ids and encodings, and a schedule-rate measurement.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

#include <gtest/gtest.h>

#include "cql/it_support.h"
#include "store/cassandra/cassandra_dedup_store.h"
#include "store/cassandra/cassandra_defer_store.h"
#include "store/cassandra/cassandra_support.h"
#include "store/cassandra/cassandra_timer_store.h"
#include "store/cassandra/migrator.h"
#include "store/dedup_store_contract.h"
#include "store/defer_store_contract.h"
#include "store/store_selection.h"
#include "store/timer_store_contract.h"

namespace prosody::store::cassandra {
namespace {

struct Fixture {
  std::shared_ptr<cql::Session> session;
  std::string keyspace;
};

// One session and one migrated keyspace for the whole binary (nullptr
// session when PROSODY_IT_CASSANDRA is unset or the setup failed).
const Fixture& fixture() {
  static const Fixture f = [] {
    Fixture out;
    auto o = cql::it::options();
    if (!o) return out;
    auto s = cql::Session::connect(*o);
    if (!s) {
      ADD_FAILURE() << s.error().message();
      return out;
    }
    MigratorOptions mo;
    mo.keyspace = "stores_it_" + cql::Uuid::random().str().substr(0, 8);
    auto m = migrate(**s, mo);
    if (!m) {
      ADD_FAILURE() << m.error().message();
      return out;
    }
    out.session = *s;
    out.keyspace = mo.keyspace;
    return out;
  }();
  return f;
}

bool have_cassandra() { return cql::it::options().has_value(); }

// Called by the factories: the contract fixtures return early when skipped.
void skip_without_cassandra() {
  if (!have_cassandra()) GTEST_SKIP() << "PROSODY_IT_CASSANDRA not set (scripts/cassandra)";
}

CassandraStoreOptions store_options() {
  CassandraStoreOptions o;
  o.keyspace = fixture().keyspace;
  o.retention = std::chrono::minutes(10);  // as Prosody's own tests
  return o;
}

std::shared_ptr<TimerStore> make_timer_store() {
  skip_without_cassandra();
  if (!fixture().session) return nullptr;
  static const std::shared_ptr<TimerStore> store = [] {
    auto s = CassandraTimerStore::open(fixture().session, store_options());
    EXPECT_TRUE(s) << s.error().message();
    return s ? std::shared_ptr<TimerStore>(std::move(*s)) : nullptr;
  }();
  return store;
}

DeferStores make_defer_stores() {
  skip_without_cassandra();
  if (!fixture().session) return {};
  static const DeferStores stores = [] {
    auto m = CassandraMessageDeferStore::open(fixture().session, store_options());
    auto t = CassandraTimerDeferStore::open(fixture().session, store_options());
    EXPECT_TRUE(m) << m.error().message();
    EXPECT_TRUE(t) << t.error().message();
    if (!m || !t) return DeferStores{};
    return DeferStores{std::shared_ptr<MessageDeferStore>(std::move(*m)),
                       std::shared_ptr<TimerDeferStore>(std::move(*t))};
  }();
  return stores;
}

// The server expires rows by its own clock: "advancing" is sleeping, and
// the TTL is a few seconds (the store accepts >= 1 s; the config's 1-minute
// minimum is Prosody's, for production).
testing::DedupBackend make_dedup_store(std::chrono::seconds ttl) {
  skip_without_cassandra();
  if (!fixture().session) return {};
  auto s = CassandraDedupStore::open(fixture().session, fixture().keyspace, ttl);
  EXPECT_TRUE(s) << s.error().message();
  if (!s) return {};
  return {std::shared_ptr<DedupStore>(std::move(*s)), [](std::chrono::milliseconds d) { std::this_thread::sleep_for(d); }};
}

// Always instantiated, so test discovery lists the tests with or without a
// server; without one each test skips.
testing::TimerStoreFactory timer_factory() { return {"cassandra", make_timer_store}; }

testing::DeferStoreFactory defer_factory() {
  return {"cassandra",
           make_defer_stores,
           {{"BeyondTheYear2038AndLargeOffsets",
             "Prosody's deferred_timers.original_time holds u32 epoch seconds; times past 4294967295 "
             "(2106-02-07) are refused with a permanent error (checked by "
             "CassandraStores.TimesPastU32AreAClearPermanentError)"}}};
}

}  // namespace
}  // namespace prosody::store::cassandra

namespace prosody::store::testing {
INSTANTIATE_TEST_SUITE_P(Cassandra, TimerStoreContract, ::testing::Values(cassandra::timer_factory()),
                         [](const auto& info) { return info.param.name; });
INSTANTIATE_TEST_SUITE_P(Cassandra, DeferStoreContract, ::testing::Values(cassandra::defer_factory()),
                         [](const auto& info) { return info.param.name; });
INSTANTIATE_TEST_SUITE_P(Cassandra, DedupStoreContract,
                         ::testing::Values(DedupStoreFactory{"cassandra", cassandra::make_dedup_store,
                                                             std::chrono::seconds(4)}),
                         [](const auto& info) { return info.param.name; });
}  // namespace prosody::store::testing

namespace prosody::store::cassandra {
namespace {

#define REQUIRE_CASSANDRA()                                                                    \
  if (!have_cassandra()) GTEST_SKIP() << "PROSODY_IT_CASSANDRA not set (scripts/cassandra)"; \
  ASSERT_TRUE(fixture().session)

TEST(CassandraStores, SegmentIdsAreProsodys) {
  // Python: uuid.uuid5(uuid.NAMESPACE_URL, "g:orders/3") and
  //         uuid.uuid5(uuid.NAMESPACE_OID, "orders/3:g")
  EXPECT_EQ(CassandraTimerStore::segment_id(TimerSegment{"g", "orders", Partition{3}, 3600}).str(),
            "249d5e07-73bf-5519-82aa-b2509b690d3a");
  EXPECT_EQ(CassandraMessageDeferStore::segment_id(DeferSegment("g", "orders", Partition{3})).str(),
            "0c9a2f87-3595-5471-9edd-f136e2dc3cf2");
}

TEST(CassandraStores, TimeEncodingIsProsodysU32) {
  EXPECT_EQ(*encode_epoch(0, "t"), 0);
  EXPECT_EQ(*encode_epoch(2'147'483'647, "t"), 2'147'483'647);
  EXPECT_EQ(*encode_epoch(2'147'483'648, "t"), std::numeric_limits<std::int32_t>::min());
  EXPECT_EQ(*encode_epoch(4'294'967'295, "t"), -1);
  EXPECT_EQ(decode_epoch(-1), 4'294'967'295);
  EXPECT_EQ(decode_epoch(std::numeric_limits<std::int32_t>::min()), 2'147'483'648);
  auto late = encode_epoch(4'294'967'296, "timer time");
  ASSERT_FALSE(late);
  EXPECT_TRUE(late.error().is_permanent());
  EXPECT_NE(late.error().message().find("2106-02-07"), std::string::npos) << late.error().message();
  EXPECT_FALSE(encode_epoch(-1, "t"));
}

TEST(CassandraStores, TtlRule) {
  const auto year = std::chrono::seconds(365 * 86400);
  EXPECT_EQ(timer_ttl(1000, 400, year), 600 + year.count());
  EXPECT_EQ(timer_ttl(100, 400, std::chrono::seconds(100)), 1);           // long past: expires at once
  EXPECT_EQ(timer_ttl(700'000'000, 0, std::chrono::seconds(10)), 0);      // beyond 630,720,000 s: no TTL
  EXPECT_EQ(retention_ttl(400, std::chrono::seconds(630'720'001)), 0);
  EXPECT_EQ(retention_ttl(400, std::chrono::seconds(86400)), 86400);
  // Expiry past 2038-01-19 is refused by Cassandra's int32 expiry: no TTL.
  EXPECT_EQ(timer_ttl(2'147'000'000, 1'800'000'000, std::chrono::seconds(600'000)), 0);
  EXPECT_EQ(timer_ttl(2'140'000'000, 1'800'000'000, std::chrono::seconds(600)), 340'000'600);
}

TEST(CassandraStores, TimesPastU32AreAClearPermanentError) {
  REQUIRE_CASSANDRA();
  auto timers = make_timer_store();
  auto defer = make_defer_stores();
  ASSERT_TRUE(timers && defer.timers);
  TimerSegment seg{"past-u32", "orders", Partition{0}, 3600};
  auto s = timers->upsert(seg, {"k", TimerType::application, 4'294'967'296, {}});
  ASSERT_FALSE(s);
  EXPECT_TRUE(s.error().is_permanent());
  auto d = defer.timers->append(DeferSegment("past-u32", "orders", Partition{0}), "k", DeferredTimer{253'402'300'799, {}});
  ASSERT_FALSE(d);
  EXPECT_TRUE(d.error().is_permanent());
}

TEST(CassandraStores, RowsAreWhereProsodyLooksForThem) {
  REQUIRE_CASSANDRA();
  auto timers = make_timer_store();
  ASSERT_TRUE(timers);
  auto& session = *fixture().session;
  const auto& ks = fixture().keyspace;
  TimerSegment seg{"layout-" + cql::Uuid::random().str(), "orders", Partition{1}, 3600};
  const EpochSeconds t = 2'208'988'800;  // 2040: stored as a negative int
  auto up = timers->upsert(seg, {"k", TimerType::deferred_message, t, {{"traceparent", "x"}}});
  ASSERT_TRUE(up) << up.error().message();
  const auto id = CassandraTimerStore::segment_id(seg);
  auto meta = session.query("SELECT name, slab_size, version, slab_id FROM " + ks + ".timer_segments WHERE id = ?", {id});
  ASSERT_TRUE(meta) << meta.error().message();
  ASSERT_EQ(meta->size(), 1u);
  EXPECT_EQ(meta->at(0, "name"), cql::Value(seg.name()));
  EXPECT_EQ(meta->at(0, "slab_size"), cql::Value(std::int32_t{3600}));
  EXPECT_EQ(meta->at(0, "version"), cql::Value(std::int8_t{3}));
  EXPECT_EQ(meta->at(0, "slab_id"), cql::Value(static_cast<std::int32_t>(t / 3600)));
  auto slab = session.query("SELECT key, time, TTL(span) AS ttl FROM " + ks +
                                ".timer_typed_slabs WHERE segment_id = ? AND slab_size = 3600 AND id = ? AND timer_type = 1",
                            {id, static_cast<std::int32_t>(t / 3600)});
  ASSERT_TRUE(slab) << slab.error().message();
  ASSERT_EQ(slab->size(), 1u);
  EXPECT_EQ(slab->at(0, "time"), cql::Value(static_cast<std::int32_t>(static_cast<std::uint32_t>(t))));
  // 2040 is more than 20 years away only after 2020: TTL is (t - now) + 10 min, or none.
  EXPECT_TRUE(slab->at(0, "ttl").is_null() || slab->at(0, "ttl").as_int().value_or(0) > 0);
}

TEST(CassandraStores, ReadsAndRemovesProsodysInlineKeyState) {
  REQUIRE_CASSANDRA();
  auto timers = make_timer_store();
  ASSERT_TRUE(timers);
  auto& session = *fixture().session;
  const auto& ks = fixture().keyspace;
  TimerSegment seg{"inline-" + cql::Uuid::random().str(), "orders", Partition{1}, 3600};
  const auto id = CassandraTimerStore::segment_id(seg);
  // As Prosody's V3 writes a key's single timer: inline in the static map.
  auto w = session.query("UPDATE " + ks + ".timer_typed_keys SET state[0] = {inline: true, time: 1800000000, span: null} "
                         "WHERE segment_id = ? AND key = 'k'",
                         {id});
  ASSERT_TRUE(w) << w.error().message();
  ASSERT_TRUE(timers->upsert(seg, {"k", TimerType::application, 1'800'000'100, {}}));
  auto ts = timers->times(seg, "k", TimerType::application);
  ASSERT_TRUE(ts);
  EXPECT_EQ(*ts, (std::vector<EpochSeconds>{1'800'000'000, 1'800'000'100}));
  ASSERT_TRUE(timers->remove(seg, "k", TimerType::application, 1'800'000'000));
  ts = timers->times(seg, "k", TimerType::application);
  ASSERT_TRUE(ts);
  EXPECT_EQ(*ts, (std::vector<EpochSeconds>{1'800'000'100}));
}

TEST(CassandraStores, MissingTablesNameProsodyMigrate) {
  REQUIRE_CASSANDRA();
  CassandraStoreOptions o;
  o.keyspace = "not_migrated_" + cql::Uuid::random().str().substr(0, 8);
  auto t = CassandraTimerStore::open(fixture().session, o);
  ASSERT_FALSE(t);
  EXPECT_NE(t.error().message().find("prosody migrate"), std::string::npos) << t.error().message();
  auto d = CassandraMessageDeferStore::open(fixture().session, o);
  ASSERT_FALSE(d);
  EXPECT_NE(d.error().message().find("prosody migrate"), std::string::npos) << d.error().message();
  auto dd = CassandraDedupStore::open(fixture().session, o.keyspace, std::chrono::hours(1));
  ASSERT_FALSE(dd);
  EXPECT_NE(dd.error().message().find("prosody migrate"), std::string::npos) << dd.error().message();
}


Config cassandra_config(const std::string& keyspace) {
  const auto o = *cql::it::options();
  Config c;
  c.with_cassandra_nodes(o.contact_points)
      .with_cassandra_user(o.user)
      .with_cassandra_password(o.password)
      .with_cassandra_keyspace(keyspace)
      .with_cassandra_retention(std::chrono::minutes(10));
  return c;
}

TEST(CassandraStores, StoreSelectionOpensCassandraStoresFromConfig) {
  REQUIRE_CASSANDRA();
  const auto config = cassandra_config(fixture().keyspace);
  auto timers = open_timer_store(config);
  ASSERT_TRUE(timers) << timers.error().message();
  EXPECT_EQ((*timers)->describe(), "cassandra:" + fixture().keyspace);
  auto defer = open_defer_store(config);
  ASSERT_TRUE(defer) << defer.error().message();
  TimerSegment seg{"selection-" + cql::Uuid::random().str(), "orders", Partition{0}, 3600};
  ASSERT_TRUE((*timers)->upsert(seg, {"k", TimerType::application, 1'800'000'000, {}}));
  // The same rows through the test's own store: same keyspace, same ids.
  auto seen = make_timer_store()->times(seg, "k", TimerType::application);
  ASSERT_TRUE(seen);
  EXPECT_EQ(*seen, std::vector<EpochSeconds>{1'800'000'000});
  const DeferSegment dseg("selection-" + cql::Uuid::random().str(), "orders", Partition{0});
  ASSERT_TRUE(defer->messages->append(dseg, "k", DeferredMessage{Offset{5}}));
  auto direct = make_defer_stores().messages->head(dseg, "k");
  ASSERT_TRUE(direct);
  EXPECT_EQ(*direct, (DeferHead<DeferredMessage>{DeferredMessage{Offset{5}}, 0}));
}

TEST(CassandraStores, StoreSelectionRequiresProsodyMigrate) {
  REQUIRE_CASSANDRA();
  const auto config = cassandra_config("unmigrated_" + cql::Uuid::random().str().substr(0, 8));
  auto timers = open_timer_store(config);
  ASSERT_FALSE(timers);
  EXPECT_TRUE(timers.error().is_permanent());
  EXPECT_NE(timers.error().message().find("run `prosody migrate --keyspace unmigrated_"), std::string::npos)
      << timers.error().message();
  auto defer = open_defer_store(config);
  ASSERT_FALSE(defer);
  EXPECT_NE(defer.error().message().find("prosody migrate"), std::string::npos) << defer.error().message();
}

// Not a pass/fail test: prints the schedule rate the store sustains.
TEST(CassandraStores, ScheduleRate) {
  REQUIRE_CASSANDRA();
  auto timers = make_timer_store();
  ASSERT_TRUE(timers);
  constexpr int kTimers = 5000, kConcurrency = 16;
  TimerSegment seg{"rate-" + cql::Uuid::random().str(), "orders", Partition{0}, 3600};
  std::atomic<int> next{0}, failures{0};
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < kConcurrency; ++c) {
    threads.emplace_back([&] {
      for (int i = next++; i < kTimers; i = next++) {
        if (!timers->upsert(seg, {"key-" + std::to_string(i % 1000), TimerType::application, 1'800'000'000 + i, {}}))
          ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(failures.load(), 0);
  std::printf("[ RATE     ] cassandra timer store: %d upserts at concurrency %d in %.2f s = %.0f upserts/s\n",
              kTimers, kConcurrency, secs, kTimers / secs);
  auto all = timers->load_slabs(seg, std::numeric_limits<SlabId>::min(), std::numeric_limits<SlabId>::max());
  ASSERT_TRUE(all);
  EXPECT_EQ(all->size(), static_cast<std::size_t>(kTimers));
}

// The row is Prosody's: table `deduplication`, the id as a uuid. (Its TTL
// cannot be read back: TTL() refuses primary-key columns, and the table has
// no other; the contract's expiry tests cover it.)
TEST(CassandraStores, DedupRowsAreInProsodysTable) {
  REQUIRE_CASSANDRA();
  auto store = CassandraDedupStore::open(fixture().session, fixture().keyspace, std::chrono::hours(2));
  ASSERT_TRUE(store) << store.error().message();
  const auto id = testing::random_dedup_id();
  ASSERT_TRUE((*store)->record(id));
  auto row = fixture().session->query("SELECT id FROM " + fixture().keyspace + ".deduplication WHERE id = ?",
                                      {cql::Uuid{id.bytes}});
  ASSERT_TRUE(row) << row.error().message();
  ASSERT_EQ(row->size(), 1u);
  EXPECT_EQ(row->rows[0][0], cql::Value(cql::Uuid{id.bytes}));
}

TEST(CassandraStores, DedupStoreSelectionUsesIdempotenceTtl) {
  REQUIRE_CASSANDRA();
  auto config = cassandra_config(fixture().keyspace);
  config.with_idempotence_ttl(std::chrono::hours(5));
  auto store = open_dedup_store(config);
  ASSERT_TRUE(store) << store.error().message();
  EXPECT_EQ((*store)->describe(), "cassandra:" + fixture().keyspace);
  EXPECT_EQ((*store)->ttl(), std::chrono::hours(5));
  const auto id = testing::random_dedup_id();
  ASSERT_TRUE((*store)->record(id));
  auto direct = make_dedup_store(std::chrono::seconds(60)).store->contains(id);
  ASSERT_TRUE(direct);
  EXPECT_TRUE(*direct);
}

}  // namespace
}  // namespace prosody::store::cassandra
