// The engine against a real Apache Kafka broker (started by scripts/kafka;
// its address comes in PROSODY_IT_BOOTSTRAP). Everything that can differ
// from the mock cluster: ordering across 8 partitions and 10k keys, group
// rebalances with two and three members, restart without loss, committed
// positions as the broker reports them, a replay skipped by deduplication,
// and missing topics.
#include <cstdlib>
#include <filesystem>

#include <gtest/gtest.h>

#include "support/kafka_admin.h"
#include "support/real_kafka.h"
#include "support/test_support.h"

namespace prosody {
namespace {

using namespace std::chrono_literals;
using testing::RecordingHandler;
using testing::unique_name;
using testing::wait_until;

class RealKafka : public testing::RealKafkaTest {};

TEST_F(RealKafka, PerKeyOrderAcrossEightPartitionsAndTenThousandKeys) {
  const auto topic = make_topic(8);
  const auto group = unique_name("g");
  auto consumer = Client::create(consumer_config(topic, group).with_max_concurrency(32));
  auto handler = std::make_shared<RecordingHandler>();
  ASSERT_TRUE(consumer->subscribe(handler));
  auto prod = producer_client();
  auto p = prod->producer();
  ASSERT_TRUE(p);
  const long n = 50000;
  ASSERT_EQ(testing::produce_sequenced(**p, topic, n, 10000), n);
  ASSERT_TRUE(wait_until([&] { return handler->unique_count() == static_cast<std::size_t>(n); }, 180s))
      << handler->unique_count();
  ASSERT_TRUE(consumer->unsubscribe());
  EXPECT_EQ(handler->violations(), 0);
  EXPECT_EQ(handler->overlaps(), 0);
  EXPECT_EQ(handler->duplicates(), 0);
  // The broker holds the final positions: every partition fully committed.
  EXPECT_EQ(testing::total_committed(bootstrap(), topic, group, 8), n);
}

TEST_F(RealKafka, ConsumersJoiningAndLeavingLoseNothing) {
  const auto topic = make_topic(6);
  const auto group = unique_name("g");
  auto handler = std::make_shared<RecordingHandler>();
  handler->before = [](const Message&) { std::this_thread::sleep_for(100us); };
  auto prod = producer_client();
  auto p = prod->producer();
  ASSERT_TRUE(p);
  std::vector<int> seqs;
  const long batch = 4000;
  long produced = 0;
  auto produce = [&] {
    ASSERT_EQ(testing::produce_sequenced(**p, topic, batch, 300, produced, &seqs), batch);
    produced += batch;
  };
  auto c1 = Client::create(consumer_config(topic, group));
  ASSERT_TRUE(c1->subscribe(handler));
  produce();
  auto c2 = Client::create(consumer_config(topic, group));
  ASSERT_TRUE(c2->subscribe(handler));
  produce();
  auto c3 = Client::create(consumer_config(topic, group));
  ASSERT_TRUE(c3->subscribe(handler));
  ASSERT_TRUE(wait_until([&] { return c3->assigned_partition_count() > 0; }, 60s));
  produce();
  ASSERT_TRUE(c1->unsubscribe());
  produce();
  ASSERT_TRUE(c2->unsubscribe());
  produce();
  ASSERT_TRUE(wait_until([&] { return handler->unique_count() == static_cast<std::size_t>(produced); }, 180s))
      << handler->unique_count() << " of " << produced;
  EXPECT_EQ(c3->assigned_partition_count(), 6u);
  ASSERT_TRUE(c3->unsubscribe());
  EXPECT_EQ(handler->overlaps(), 0);
  EXPECT_EQ(handler->violations(), 0);
  EXPECT_EQ(handler->duplicates(), 0) << "revoked partitions should be committed in the rebalance callback";
}

TEST_F(RealKafka, RestartMidStreamLosesNothing) {
  const auto topic = make_topic(4);
  const auto group = unique_name("g");
  auto prod = producer_client();
  auto p = prod->producer();
  ASSERT_TRUE(p);
  const long n = 8000;
  ASSERT_EQ(testing::produce_sequenced(**p, topic, n, 200), n);
  auto handler = std::make_shared<RecordingHandler>();
  handler->before = [](const Message&) { std::this_thread::sleep_for(200us); };
  {
    auto c = Client::create(consumer_config(topic, group));
    ASSERT_TRUE(c->subscribe(handler));
    ASSERT_TRUE(wait_until([&] { return handler->unique_count() > 2000; }, 60s));
    ASSERT_TRUE(c->unsubscribe());
  }
  auto c = Client::create(consumer_config(topic, group));
  ASSERT_TRUE(c->subscribe(handler));
  ASSERT_TRUE(wait_until([&] { return handler->unique_count() == static_cast<std::size_t>(n); }, 120s));
  ASSERT_TRUE(c->unsubscribe());
  EXPECT_EQ(handler->duplicates(), 0);
  EXPECT_EQ(handler->violations(), 0);
}

TEST_F(RealKafka, AReplayOfHandledRecordsRunsNoHandlerAgain) {
  // Deduplication (pipeline mode, on by default) with the SQLite store in
  // state_dir: an operator rewinds the group to the start of the topic and
  // a new consumer process (empty cache) commits every record again
  // without running a handler.
  const auto topic = make_topic(3);
  const auto group = unique_name("g");
  const auto state_dir = std::filesystem::temp_directory_path() / unique_name("dedup-state");
  auto prod = producer_client();
  auto p = prod->producer();
  ASSERT_TRUE(p);
  const long n = 600;
  ASSERT_EQ(testing::produce_sequenced(**p, topic, n, 50), n);
  auto handler = std::make_shared<RecordingHandler>();
  auto total_committed = [&] { return testing::total_committed(bootstrap(), topic, group, 3); };
  {
    auto c = Client::create(consumer_config(topic, group).with_state_dir(state_dir.string()));
    ASSERT_TRUE(c->subscribe(handler));
    ASSERT_TRUE(wait_until([&] { return total_committed() == n; }, 120s)) << total_committed();
    ASSERT_TRUE(c->unsubscribe());
  }
  ASSERT_EQ(handler->calls(), n);
  ASSERT_EQ(testing::set_committed_offsets(bootstrap(), topic, group, 3, 0), "");
  ASSERT_EQ(total_committed(), 0);
  auto c = Client::create(consumer_config(topic, group).with_state_dir(state_dir.string()));
  ASSERT_TRUE(c->subscribe(handler));
  ASSERT_TRUE(wait_until([&] { return total_committed() == n; }, 120s)) << total_committed();
  EXPECT_EQ(handler->calls(), n) << "the replay ran handlers again";
  EXPECT_EQ(c->stats().deduplicated, static_cast<std::uint64_t>(n));
  ASSERT_TRUE(c->unsubscribe());
  std::filesystem::remove_all(state_dir);
}

TEST_F(RealKafka, MissingTopicIsAClearErrorNamingIt) {
  const auto missing = unique_name("no-such-topic");
  auto c = Client::create(consumer_config(missing, unique_name("g")));
  auto s = c->subscribe(std::make_shared<RecordingHandler>());
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), ErrorCode::topic_missing);
  EXPECT_NE(s.error().message().find(missing), std::string::npos) << s.error().message();
}

}  // namespace
}  // namespace prosody
