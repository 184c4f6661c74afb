// Deduplication through the whole client on the mock cluster (pipeline
// mode): a second message with the same event id on a key, and events sent
// again after a restart, are committed without running the handler;
// `idempotence_cache_size = 0` turns the layer off.
#include <gtest/gtest.h>

#include "kafka/mock_cluster.h"
#include "support/kafka_admin.h"
#include "support/test_support.h"

namespace prosody {
namespace {

using namespace std::chrono_literals;
using testing::RecordingHandler;
using testing::unique_name;
using testing::wait_until;

// A producer that really sends every duplicate: with its resend cache on it
// would skip the second send of an event itself, and the consumer's
// deduplication would never see one (the producer's own test covers that).
std::shared_ptr<Client> sender() { return testing::mock_producer_client_sending_every_record("dedup-test-producer"); }

long total_committed(const std::string& topic, const std::string& group, int partitions) {
  return testing::total_committed(kafka::MockCluster::instance().bootstrap_servers(), topic, group, partitions);
}

TEST(DedupMock, ASecondMessageWithTheSameEventIdOnAKeyIsCommittedWithoutRunningTheHandler) {
  const auto topic = unique_name("dedup"), group = unique_name("dedup-g");
  ASSERT_TRUE(kafka::MockCluster::instance().create_topic(topic, 1));
  auto s = sender();
  ASSERT_TRUE(s->send(topic, "k1", R"({"id":"evt-1","seq":0})"));
  ASSERT_TRUE(s->send(topic, "k1", R"({"id":"evt-1","seq":1})"));  // the same event again
  ASSERT_TRUE(s->send(topic, "k2", R"({"id":"evt-1","seq":0})"));  // another key: another event
  ASSERT_TRUE(s->send(topic, "k1", R"({"seq":1})"));               // no id: deduplicated by offset
  auto consumer = Client::create(testing::mock_consumer_config(topic, group));
  auto handler = std::make_shared<RecordingHandler>();
  ASSERT_TRUE(consumer->subscribe(handler));
  ASSERT_TRUE(wait_until([&] { return total_committed(topic, group, 1) == 4; }, 30s));
  EXPECT_EQ(handler->calls(), 3);
  EXPECT_EQ(consumer->stats().deduplicated, 1u);
  EXPECT_EQ(consumer->stats().dedup_store_errors, 0u);
  ASSERT_TRUE(consumer->unsubscribe());
}

TEST(DedupMock, EventsSentAgainAfterARestartAreCaughtByTheStore) {
  // An upstream producer retried: the same events arrive again, after the
  // consumer restarted with an empty cache. (A replay of the same offsets is
  // tested on real Kafka: the mock cluster cannot rewind a group.)
  const auto topic = unique_name("resend"), group = unique_name("resend-g");
  const int partitions = 2;
  ASSERT_TRUE(kafka::MockCluster::instance().create_topic(topic, partitions));
  auto s = sender();
  auto send_events = [&] {
    for (int i = 0; i < 20; ++i) {
      const auto seq = std::to_string(i / 5);
      ASSERT_TRUE(s->send(topic, "key-" + std::to_string(i % 5), R"({"id":"evt-)" + seq + R"(","seq":)" + seq + "}"));
    }
  };
  send_events();
  auto handler = std::make_shared<RecordingHandler>();
  {
    auto consumer = Client::create(testing::mock_consumer_config(topic, group, partitions));
    ASSERT_TRUE(consumer->subscribe(handler));
    ASSERT_TRUE(wait_until([&] { return total_committed(topic, group, partitions) == 20; }, 30s));
    ASSERT_TRUE(consumer->unsubscribe());
  }
  ASSERT_EQ(handler->calls(), 20);
  send_events();
  auto consumer = Client::create(testing::mock_consumer_config(topic, group, partitions));
  ASSERT_TRUE(consumer->subscribe(handler));
  ASSERT_TRUE(wait_until([&] { return total_committed(topic, group, partitions) == 40; }, 30s));
  EXPECT_EQ(handler->calls(), 20) << "events sent again ran handlers again";
  EXPECT_EQ(consumer->stats().deduplicated, 20u);
  ASSERT_TRUE(consumer->unsubscribe());
}

TEST(DedupMock, ACacheSizeOfZeroTurnsDeduplicationOff) {
  const auto topic = unique_name("nodedup"), group = unique_name("nodedup-g");
  ASSERT_TRUE(kafka::MockCluster::instance().create_topic(topic, 1));
  auto s = sender();
  ASSERT_TRUE(s->send(topic, "k1", R"({"id":"evt-1","seq":0})"));
  ASSERT_TRUE(s->send(topic, "k1", R"({"id":"evt-1","seq":1})"));
  auto consumer = Client::create(testing::mock_consumer_config(topic, group).with_idempotence_cache_size(0));
  auto handler = std::make_shared<RecordingHandler>();
  ASSERT_TRUE(consumer->subscribe(handler));
  ASSERT_TRUE(wait_until([&] { return total_committed(topic, group, 1) == 2; }, 30s));
  EXPECT_EQ(handler->calls(), 2);
  EXPECT_EQ(consumer->stats().deduplicated, 0u);
  ASSERT_TRUE(consumer->unsubscribe());
}

}  // namespace
}  // namespace prosody
