// Runs the defer store contract against the embedded backends, bare and
// behind the write-through cache (a tiny cache, so eviction is exercised),
// plus what only SQLite has: a file shared by connections and processes.
#include <filesystem>

#include "store/cached_defer_store.h"
#include "store/defer_store_contract.h"
#include "store/memory/memory_defer_store.h"
#include "store/sqlite/sqlite_defer_store.h"
#include "store/store_selection.h"
#include "support/test_support.h"

namespace prosody::store::testing {
namespace {

std::string temp_db() {
  const auto dir = std::filesystem::temp_directory_path() / ("prosody-defer-" + ::prosody::testing::unique_name("t"));
  std::filesystem::create_directories(dir);
  return (dir / "defer.sqlite").string();
}

DeferStores open_sqlite() {
  const auto path = temp_db();
  auto m = SqliteMessageDeferStore::open(path);
  auto t = SqliteTimerDeferStore::open(path);
  EXPECT_TRUE(m.ok()) << (m ? "" : m.error().describe());
  EXPECT_TRUE(t.ok()) << (t ? "" : t.error().describe());
  if (!m || !t) return {};
  return DeferStores{std::move(*m), std::move(*t)};
}

DeferStores cached(DeferStores inner) {
  if (!inner.messages || !inner.timers) return {};
  return DeferStores{std::make_shared<CachedDeferStore<DeferredMessage>>(inner.messages, 4),
                     std::make_shared<CachedDeferStore<DeferredTimer>>(inner.timers, 4)};
}

DeferStores open_memory() {
  return DeferStores{std::make_shared<MemoryMessageDeferStore>(), std::make_shared<MemoryTimerDeferStore>()};
}

INSTANTIATE_TEST_SUITE_P(Backends, DeferStoreContract,
                         ::testing::Values(DeferStoreFactory{"memory", open_memory},
                                           DeferStoreFactory{"sqlite", open_sqlite},
                                           DeferStoreFactory{"cached_memory", [] { return cached(open_memory()); }},
                                           DeferStoreFactory{"cached_sqlite", [] { return cached(open_sqlite()); }}),
                         [](const auto& info) { return info.param.name; });

TEST(SqliteDeferStore, ConnectionsToOneFileSeeEachOthersWritesAndDataOutlivesThem) {
  const auto path = temp_db();
  const DeferSegment seg("g", "t", Partition{0});
  {
    auto a = SqliteMessageDeferStore::open(path);
    auto b = SqliteMessageDeferStore::open(path);
    ASSERT_TRUE(a.ok() && b.ok());
    ASSERT_TRUE((*a)->append(seg, "k", DeferredMessage{Offset{7}}).ok());
    ASSERT_TRUE((*a)->set_retry_count(seg, "k", 2).ok());
    auto seen = (*b)->head(seg, "k");
    ASSERT_TRUE(seen.ok());
    EXPECT_EQ(*seen, (DeferHead<DeferredMessage>{DeferredMessage{Offset{7}}, 2}));
  }
  auto reopened = SqliteMessageDeferStore::open(path);
  ASSERT_TRUE(reopened.ok());
  auto seen = (*reopened)->head(seg, "k");
  ASSERT_TRUE(seen.ok());
  EXPECT_EQ(*seen, (DeferHead<DeferredMessage>{DeferredMessage{Offset{7}}, 2}));
  // The timer queue in the same file is a different queue.
  auto timers = SqliteTimerDeferStore::open(path);
  ASSERT_TRUE(timers.ok());
  auto none = (*timers)->is_deferred(seg, "k");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(*none);
}

TEST(SqliteDeferStore, UnopenablePathIsAClearError) {
  auto s = SqliteTimerDeferStore::open("/proc/definitely/not/here/defer.sqlite");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("/proc/definitely/not/here/defer.sqlite"), std::string::npos)
      << s.error().message();
}

TEST(DeferSegment, NameIsProsodysSegmentName) {
  EXPECT_EQ(DeferSegment("orders-group", "orders", Partition{7}).name(), "orders/7:orders-group");
}

TEST(OpenDeferStore, MockModeSharesOneMemoryStorePerProcess) {
  Config config;
  config.with_mock(true);
  auto a = open_defer_store(config);
  auto b = open_defer_store(config);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->messages, b->messages);
  EXPECT_EQ(a->timers, b->timers);
  EXPECT_NE(static_cast<void*>(a->messages.get()), static_cast<void*>(a->timers.get()));
  EXPECT_EQ(a->messages->describe(), "memory");
}

TEST(OpenDeferStore, StateDirGetsCachedSqliteInDeferSqlite) {
  const auto dir = std::filesystem::temp_directory_path() / ("prosody-defer-" + ::prosody::testing::unique_name("d"));
  Config config;
  config.with_state_dir((dir / "nested").string());
  auto stores = open_defer_store(config);
  ASSERT_TRUE(stores.ok()) << stores.error().describe();
  const auto file = (dir / "nested" / "defer.sqlite").string();
  EXPECT_EQ(stores->messages->describe(), "cached(sqlite:" + file + ")");
  EXPECT_EQ(stores->timers->describe(), "cached(sqlite:" + file + ")");
  EXPECT_TRUE(std::filesystem::exists(file));
  config.with_defer_store_cache_size(0);
  auto uncached = open_defer_store(config);
  ASSERT_TRUE(uncached.ok());
  EXPECT_EQ(uncached->messages->describe(), "sqlite:" + file);
}

// cassandra_nodes selects the Cassandra backend (its integration tests are
// in cassandra/); an unreachable cluster is an error naming the option.
TEST(OpenDeferStore, UnreachableCassandraIsAnErrorNamingTheNodes) {
  Config config;
  config.with_cassandra_nodes({"127.0.0.1:1"});
  auto stores = open_defer_store(config);
  ASSERT_FALSE(stores.ok());
  EXPECT_NE(stores.error().message().find("cassandra_nodes = 127.0.0.1:1"), std::string::npos)
      << stores.error().message();
}

}  // namespace
}  // namespace prosody::store::testing
