// Runs the TimerStore contract against the embedded backends.
#include <filesystem>

#include "store/memory/memory_timer_store.h"
#include "store/sqlite/sqlite_timer_store.h"
#include "store/timer_store_contract.h"
#include "support/test_support.h"

namespace prosody::store::testing {
namespace {

std::shared_ptr<TimerStore> open_sqlite() {
  const auto dir = std::filesystem::temp_directory_path() / ("prosody-store-" + ::prosody::testing::unique_name("t"));
  std::filesystem::create_directories(dir);
  auto store = SqliteTimerStore::open((dir / "timers.sqlite").string());
  EXPECT_TRUE(store.ok()) << store.error().message();
  return store ? std::shared_ptr<TimerStore>(std::move(*store)) : nullptr;
}

INSTANTIATE_TEST_SUITE_P(Backends, TimerStoreContract,
                         ::testing::Values(TimerStoreFactory{"memory", [] { return std::make_shared<MemoryTimerStore>(); }},
                                           TimerStoreFactory{"sqlite", open_sqlite}),
                         [](const auto& info) { return info.param.name; });

TEST(SqliteTimerStore, TwoConnectionsToOneFileSeeEachOthersWrites) {
  const auto dir = std::filesystem::temp_directory_path() / ("prosody-store-" + ::prosody::testing::unique_name("t"));
  std::filesystem::create_directories(dir);
  const auto path = (dir / "timers.sqlite").string();
  auto a = SqliteTimerStore::open(path);
  auto b = SqliteTimerStore::open(path);
  ASSERT_TRUE(a.ok() && b.ok());
  TimerSegment seg{"g", "t", Partition{0}, 3600};
  ASSERT_TRUE((*a)->upsert(seg, {"k", TimerType::application, 100, {}}).ok());
  auto seen = (*b)->times(seg, "k", TimerType::application);
  ASSERT_TRUE(seen.ok());
  EXPECT_EQ(*seen, std::vector<EpochSeconds>{100});
}

TEST(SqliteTimerStore, UnopenablePathIsAClearError) {
  auto s = SqliteTimerStore::open("/proc/definitely/not/here/timers.sqlite");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("/proc/definitely/not/here/timers.sqlite"), std::string::npos)
      << s.error().message();
}

}  // namespace
}  // namespace prosody::store::testing
