// The defer loader's two decisions, without Kafka: when to seek rather than
// read forward, and which pending offsets an arriving record proves gone.
#include "middleware/defer_loader.h"

#include <gtest/gtest.h>

#include <limits>

namespace prosody::middleware {
namespace {

TEST(PlanRead, SeeksWhenThePositionIsUnknown) {
  EXPECT_EQ(plan_read(std::nullopt, 10, 100), ReadPlan::seek);
}

TEST(PlanRead, SeeksWhenAlreadyPastTheTarget) {
  EXPECT_EQ(plan_read(11, 10, 100), ReadPlan::seek);
  EXPECT_EQ(plan_read(1'000'000, 0, 100), ReadPlan::seek);
}

TEST(PlanRead, ReadsForwardWithinTheDiscardThreshold) {
  EXPECT_EQ(plan_read(10, 10, 100), ReadPlan::read_forward);  // next record is the target
  EXPECT_EQ(plan_read(10, 110, 100), ReadPlan::read_forward);  // exactly at the threshold
  EXPECT_EQ(plan_read(10, 111, 100), ReadPlan::seek);          // one further: seek
  EXPECT_EQ(plan_read(10, 11, 0), ReadPlan::seek);             // threshold 0: always seek ahead
  EXPECT_EQ(plan_read(10, 10, 0), ReadPlan::read_forward);
}

TEST(PlanRead, HugeOffsetsDoNotOverflow) {
  constexpr auto kMax = std::numeric_limits<std::int64_t>::max();
  EXPECT_EQ(plan_read(kMax - 5, kMax, kMax), ReadPlan::read_forward);
  EXPECT_EQ(plan_read(0, kMax, 100), ReadPlan::seek);
  EXPECT_EQ(plan_read(kMax - 50, kMax, 100), ReadPlan::read_forward);
}

TEST(MissingOffsets, NothingIsMissingWhenTheExpectedOffsetArrives) {
  EXPECT_EQ(missing_offsets(7, 7), std::nullopt);
}

TEST(MissingOffsets, ARecordBehindTheExpectedOneProvesNothing) {
  // After an offset reset to the log start the consumer may deliver older
  // offsets; they say nothing about the ones ahead.
  EXPECT_EQ(missing_offsets(7, 3), std::nullopt);
}

TEST(MissingOffsets, AJumpProvesTheSkippedRangeGone) {
  EXPECT_EQ(missing_offsets(7, 8), (std::pair<std::int64_t, std::int64_t>{7, 8}));
  EXPECT_EQ(missing_offsets(0, 1500), (std::pair<std::int64_t, std::int64_t>{0, 1500}));
}

TEST(DeferLoaderSettings, FromConfigTakesTheDeferOptions) {
  using namespace std::chrono_literals;
  Config c;
  c.with_group_id("orders")
      .with_defer_cache_size(17)
      .with_defer_seek_timeout(3s)
      .with_defer_discard_threshold(42)
      .with_max_uncommitted(9)
      .with_kafka_property("security.protocol", "plaintext");
  auto s = DeferLoaderSettings::from(c, "b:9092");
  EXPECT_EQ(s.bootstrap_servers, "b:9092");
  EXPECT_EQ(s.group_id, "orders");
  EXPECT_EQ(s.cache_size, 17u);
  EXPECT_EQ(s.seek_timeout, 3s);
  EXPECT_EQ(s.discard_threshold, 42);
  EXPECT_EQ(s.max_pending, 9u);
  ASSERT_EQ(s.kafka_properties.size(), 1u);
  EXPECT_EQ(s.kafka_properties[0].first, "security.protocol");
}

TEST(DeferLoader, RefusesToStartWithoutAGroup) {
  DeferLoaderSettings s;
  s.bootstrap_servers = "127.0.0.1:1";
  auto loader = DeferLoader::start(s);
  ASSERT_FALSE(loader.ok());
  EXPECT_EQ(loader.error().code(), ErrorCode::invalid_config);
}

}  // namespace
}  // namespace prosody::middleware
