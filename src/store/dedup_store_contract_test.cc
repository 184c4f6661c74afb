// Runs the dedup store contract against the embedded backends (memory and
// SQLite, both on a ManualClock), plus what only they have: SQLite's shared
// file, persistence and purge; the memory store's sweep; and the selection
// from the configuration.
#include <filesystem>
#include <thread>
#include <vector>

#include "store/dedup_store_contract.h"
#include "store/memory/memory_dedup_store.h"
#include "store/sqlite/sqlite_dedup_store.h"
#include "store/store_selection.h"
#include "support/test_support.h"
#include "util/manual_clock.h"

namespace prosody::store::testing {
namespace {

using namespace std::chrono_literals;

std::string temp_db() {
  const auto dir = std::filesystem::temp_directory_path() / ("prosody-dedup-" + ::prosody::testing::unique_name("t"));
  std::filesystem::create_directories(dir);
  return (dir / "dedup.sqlite").string();
}

DedupBackend memory(std::chrono::seconds ttl) {
  auto clock = std::make_shared<::prosody::testing::ManualClock>();
  return DedupBackend{std::make_shared<MemoryDedupStore>(ttl, clock), [clock](auto d) { clock->advance(d); }};
}

DedupBackend sqlite(std::chrono::seconds ttl) {
  auto clock = std::make_shared<::prosody::testing::ManualClock>();
  auto s = SqliteDedupStore::open(temp_db(), {ttl, 0ms, clock});
  EXPECT_TRUE(s.ok()) << (s ? "" : s.error().describe());
  if (!s) return {};
  return DedupBackend{std::move(*s), [clock](auto d) { clock->advance(d); }};
}

INSTANTIATE_TEST_SUITE_P(Backends, DedupStoreContract,
                         ::testing::Values(DedupStoreFactory{"memory", memory, std::chrono::minutes(10)},
                                           DedupStoreFactory{"sqlite", sqlite, std::chrono::minutes(10)}),
                         [](const auto& info) { return info.param.name; });

TEST(SqliteDedupStore, ConnectionsToOneFileShareIdsAndIdsOutliveThem) {
  const auto path = temp_db();
  auto clock = std::make_shared<::prosody::testing::ManualClock>();
  const auto id = random_dedup_id();
  {
    auto a = SqliteDedupStore::open(path, {1h, 0ms, clock});
    auto b = SqliteDedupStore::open(path, {1h, 0ms, clock});
    ASSERT_TRUE(a.ok() && b.ok());
    ASSERT_TRUE((*a)->record(id).ok());
    ASSERT_TRUE((*a)->flush().ok()) << "queued ids reach the file on a flush";
    auto seen = (*b)->contains(id);
    ASSERT_TRUE(seen.ok());
    EXPECT_TRUE(*seen);
  }
  auto reopened = SqliteDedupStore::open(path, {1h, 0ms, clock});
  ASSERT_TRUE(reopened.ok());
  auto seen = (*reopened)->contains(id);
  ASSERT_TRUE(seen.ok());
  EXPECT_TRUE(*seen);
}

TEST(SqliteDedupStore, ExpiredRowsArePurgedByRecordOncePerPurgeInterval) {
  auto clock = std::make_shared<::prosody::testing::ManualClock>();
  auto s = SqliteDedupStore::open(temp_db(), {1h, 2h, clock});
  ASSERT_TRUE(s.ok());
  auto& store = **s;
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(store.record(random_dedup_id()).ok());
  EXPECT_EQ(store.size().value(), 100);
  // Expired, but the purge interval has not passed: invisible, still stored.
  clock->advance(61min);
  const auto late = random_dedup_id();
  ASSERT_TRUE(store.record(late).ok());
  EXPECT_EQ(store.size().value(), 101);
  // Past the interval the next record deletes every expired row (the 100,
  // and `late`, which expired just now), keeping only itself.
  clock->advance(60min);
  ASSERT_TRUE(store.record(random_dedup_id()).ok());
  EXPECT_EQ(store.size().value(), 1);
  EXPECT_FALSE(store.contains(late).value());
  // purge() on demand.
  clock->advance(61min);
  EXPECT_TRUE(store.purge().ok());
  EXPECT_EQ(store.size().value(), 0);
}

TEST(SqliteDedupStore, RecordedIdsAreQueuedVisibleAtOnceHereAndWrittenInTheBackground) {
  const auto path = temp_db();
  auto clock = std::make_shared<::prosody::testing::ManualClock>();
  SqliteDedupStore::Options slow{1h, 0ms, clock};
  slow.flush_interval = 20ms;
  auto writer = SqliteDedupStore::open(path, slow);
  auto reader = SqliteDedupStore::open(path, {1h, 0ms, clock, 0ms});  // write-through
  ASSERT_TRUE(writer.ok() && reader.ok());
  const auto id = random_dedup_id();
  ASSERT_TRUE((*writer)->record(id).ok());
  EXPECT_TRUE((*writer)->contains(id).value()) << "the queue is part of the store's answer";
  // The background flush writes it within a few intervals (real time).
  bool seen = false;
  for (int i = 0; i < 500 && !seen; ++i) {
    seen = (*reader)->contains(id).value();
    if (!seen) std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(seen) << "the flusher thread wrote the queued id";
  // A queued id that expires is not reported, like a written one.
  const auto later = random_dedup_id();
  ASSERT_TRUE((*writer)->record(later).ok());
  clock->advance(61min);
  EXPECT_FALSE((*writer)->contains(later).value());
}

TEST(SqliteDedupStore, AFullQueueIsWrittenAtOnceAndTheRestOnDestruction) {
  const auto path = temp_db();
  auto clock = std::make_shared<::prosody::testing::ManualClock>();
  SqliteDedupStore::Options batching{1h, 0ms, clock};
  batching.flush_interval = std::chrono::hours(1);  // the thread never gets to it
  batching.max_pending = 10;
  std::vector<DedupId> ids;
  for (int i = 0; i < 25; ++i) ids.push_back(random_dedup_id());
  auto reader = SqliteDedupStore::open(path, {1h, 0ms, clock, 0ms});
  ASSERT_TRUE(reader.ok());
  {
    auto writer = SqliteDedupStore::open(path, batching);
    ASSERT_TRUE(writer.ok());
    for (const auto& id : ids) ASSERT_TRUE((*writer)->record(id).ok());
    // Two full batches of 10 were written; the last 5 wait in the queue.
    int written = 0;
    for (const auto& id : ids) written += (*reader)->contains(id).value() ? 1 : 0;
    EXPECT_EQ(written, 20);
  }
  for (const auto& id : ids) EXPECT_TRUE((*reader)->contains(id).value()) << "the destructor flushed the rest";
}

TEST(SqliteDedupStore, OpeningPurgesWhatExpiredMeanwhile) {
  const auto path = temp_db();
  auto clock = std::make_shared<::prosody::testing::ManualClock>();
  {
    auto s = SqliteDedupStore::open(path, {1h, 0ms, clock});
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE((*s)->record(random_dedup_id()).ok());
  }
  clock->advance(2h);
  auto s = SqliteDedupStore::open(path, {1h, 0ms, clock});
  ASSERT_TRUE(s.ok());
  EXPECT_EQ((*s)->size().value(), 0);
}

TEST(SqliteDedupStore, UnopenablePathIsAClearError) {
  auto s = SqliteDedupStore::open("/proc/definitely/not/here/dedup.sqlite", {});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("/proc/definitely/not/here/dedup.sqlite"), std::string::npos)
      << s.error().message();
}

TEST(MemoryDedupStore, ExpiredIdsAreSweptSoMemoryStaysBounded) {
  auto clock = std::make_shared<::prosody::testing::ManualClock>();
  MemoryDedupStore store(1h, clock);
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(store.record(random_dedup_id()).ok());
  clock->advance(61min);
  ASSERT_TRUE(store.record(random_dedup_id()).ok());
  EXPECT_EQ(store.size(), 1u);
}

TEST(DedupId, PrintsAsACanonicalUuid) {
  DedupId id;
  for (std::size_t i = 0; i < 16; ++i) id.bytes[i] = static_cast<std::uint8_t>(i * 17);
  EXPECT_EQ(id.str(), "00112233-4455-6677-8899-aabbccddeeff");
}

TEST(OpenDedupStore, MockModeSharesOneMemoryStorePerTtl) {
  Config config;
  config.with_mock(true).with_idempotence_ttl(std::chrono::hours(2));
  auto a = open_dedup_store(config);
  auto b = open_dedup_store(config);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);
  EXPECT_EQ((*a)->describe(), "memory");
  EXPECT_EQ((*a)->ttl(), std::chrono::hours(2));
  config.with_idempotence_ttl(std::chrono::hours(3));
  auto c = open_dedup_store(config);
  ASSERT_TRUE(c.ok());
  EXPECT_NE(*a, *c);
  EXPECT_EQ((*c)->ttl(), std::chrono::hours(3));
}

TEST(OpenDedupStore, StateDirGetsSqliteInDedupSqliteWithTheConfiguredTtl) {
  const auto dir = std::filesystem::temp_directory_path() / ("prosody-dedup-" + ::prosody::testing::unique_name("d"));
  Config config;
  config.with_state_dir((dir / "nested").string());
  auto store = open_dedup_store(config);
  ASSERT_TRUE(store.ok()) << store.error().describe();
  const auto file = (dir / "nested" / "dedup.sqlite").string();
  EXPECT_EQ((*store)->describe(), "sqlite:" + file);
  EXPECT_EQ((*store)->ttl(), std::chrono::days(7));  // idempotence_ttl's default
  EXPECT_TRUE(std::filesystem::exists(file));
}

TEST(OpenDedupStore, UnreachableCassandraIsAnErrorNamingTheNodes) {
  Config config;
  config.with_cassandra_nodes({"127.0.0.1:1"});
  auto store = open_dedup_store(config);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.error().message().find("cassandra_nodes = 127.0.0.1:1"), std::string::npos)
      << store.error().message();
}

}  // namespace
}  // namespace prosody::store::testing
