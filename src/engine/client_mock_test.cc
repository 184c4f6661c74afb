// Client facade on the mock cluster: the consumer state machine, clear
// errors for bad configuration and bad sends, regex subscriptions, and the
// producer's stop token.
#include <gtest/gtest.h>

#include "kafka/mock_cluster.h"
#include "support/test_support.h"

namespace prosody {
namespace {

using namespace std::chrono_literals;
using testing::RecordingHandler;
using testing::unique_name;
using testing::wait_until;

Config mock_config(const std::string& topic, const std::string& group) {
  return testing::mock_consumer_config(topic, group);
}

TEST(Client, MovesThroughConsumerStates) {
  auto client = Client::create(mock_config(unique_name("states"), unique_name("g")));
  EXPECT_EQ(client->consumer_state(), ConsumerState::configured);
  ASSERT_TRUE(client->subscribe(std::make_shared<RecordingHandler>()));
  EXPECT_EQ(client->consumer_state(), ConsumerState::running);
  auto again = client->subscribe(std::make_shared<RecordingHandler>());
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), ErrorCode::invalid_state);
  ASSERT_TRUE(client->unsubscribe());
  EXPECT_EQ(client->consumer_state(), ConsumerState::configured);
  EXPECT_EQ(client->source_system(), client->source_system());
}

TEST(Client, BadConfigurationFailsSubscribeNamingEveryField) {
  Config c = mock_config(unique_name("bad"), unique_name("g"));
  c.with_max_concurrency(0).with_max_uncommitted(-1);
  auto client = Client::create(c);
  EXPECT_EQ(client->consumer_state(), ConsumerState::configuration_failed);
  auto s = client->subscribe(std::make_shared<RecordingHandler>());
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), ErrorCode::invalid_config);
  EXPECT_NE(s.error().message().find("max_concurrency"), std::string::npos) << s.error().message();
  EXPECT_NE(s.error().message().find("max_uncommitted"), std::string::npos) << s.error().message();
}

TEST(Client, SourceSystemDefaultsToGroupId) {
  auto client = Client::create(mock_config(unique_name("src"), "orders"));
  EXPECT_EQ(client->source_system(), "orders");
  Config c = mock_config(unique_name("src"), "orders");
  c.with_source_system("orders-producer");
  EXPECT_EQ(Client::create(c)->source_system(), "orders-producer");
}

TEST(Client, OversizedRecordIsAClearPermanentError) {
  const auto topic = unique_name("big");
  ASSERT_TRUE(kafka::MockCluster::instance().create_topic(topic, 1));
  auto client = Client::create(mock_config(topic, unique_name("g")).with_kafka_property("message.max.bytes", "10000"));
  const std::string huge(20000, 'x');
  auto r = client->send(topic, "k", huge);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is_permanent()) << r.error().describe();
  EXPECT_EQ(r.error().code(), ErrorCode::message_too_large) << r.error().describe();
  EXPECT_NE(r.error().message().find(topic), std::string::npos) << r.error().message();
}

TEST(Client, SendsOfADeliveredEventIdGoOutOnceUnlessTheCacheIsOff) {
  const auto topic = unique_name("resend");
  ASSERT_TRUE(kafka::MockCluster::instance().create_topic(topic, 1));
  // idempotence_cache_size (8192 by default) sizes the producer's memory too.
  auto client = Client::create(mock_config(topic, unique_name("g")));
  auto first = client->send(topic, "k", R"({"id":"order-1"})");
  auto resend = client->send(topic, "k", R"({"id":"order-1"})");
  ASSERT_TRUE(first && resend);
  EXPECT_EQ(resend->offset, first->offset);
  auto off = Client::create(mock_config(topic, unique_name("g")).with_idempotence_cache_size(0));
  auto a = off->send(topic, "k", R"({"id":"order-1"})");
  auto b = off->send(topic, "k", R"({"id":"order-1"})");
  ASSERT_TRUE(a && b);
  EXPECT_NE(a->offset, b->offset);
  EXPECT_NE(a->offset, first->offset);
}

TEST(Client, StopTokenEndsTheWaitForDelivery) {
  // No broker answers on this address: delivery can never be acknowledged.
  Config c;
  c.with_bootstrap_servers(std::vector<std::string>{"127.0.0.1:1"}).with_group_id("nobody");
  auto client = Client::create(c);
  std::stop_source stop;
  std::jthread stopper([&] {
    std::this_thread::sleep_for(200ms);
    stop.request_stop();
  });
  const auto t0 = std::chrono::steady_clock::now();
  auto r = client->send("t", "k", "{}", {}, stop.get_token());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::cancelled);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

TEST(Client, RegexSubscriptionReadsOnlyMatchingTopics) {
  const auto prefix = unique_name("rx");
  auto& cluster = kafka::MockCluster::instance();
  ASSERT_TRUE(cluster.create_topic(prefix + "-a", 1));
  ASSERT_TRUE(cluster.create_topic(prefix + "-b", 1));
  ASSERT_TRUE(cluster.create_topic(prefix + "x-other", 1));
  auto client = Client::create(mock_config("^" + prefix + "-.*", unique_name("g")));
  auto handler = std::make_shared<RecordingHandler>();
  ASSERT_TRUE(client->subscribe(handler));
  Config pc;
  pc.with_mock(true).with_source_system("regex-producer");
  auto producer = Client::create(pc);
  ASSERT_TRUE(producer->send(prefix + "-a", "a", R"({"seq":0})"));
  ASSERT_TRUE(producer->send(prefix + "-b", "b", R"({"seq":0})"));
  ASSERT_TRUE(producer->send(prefix + "x-other", "c", R"({"seq":0})"));
  ASSERT_TRUE(wait_until([&] { return handler->calls() == 2; }, 60s)) << handler->calls();
  std::this_thread::sleep_for(500ms);
  ASSERT_TRUE(client->unsubscribe());
  EXPECT_EQ(handler->calls(), 2);
}

}  // namespace
}  // namespace prosody
