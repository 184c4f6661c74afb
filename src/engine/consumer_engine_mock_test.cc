// Consumer engine against librdkafka's in-process mock cluster: ordering,
// concurrency, backpressure bounds, rebalances, graceful restart, loop
// prevention, event filtering and undecodable payloads.
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

struct Topic {
  std::string name;
  std::string group;
};

Config base_config(const Topic& t, int partitions = 4) {
  return testing::mock_consumer_config(t.name, t.group, partitions);
}

// A producer whose records are not skipped by the consumer's loop filter.
std::shared_ptr<Client> producer_client(const Topic& t) {
  Config c;
  c.with_mock(true).with_source_system("test-producer").with_group_id(t.group + "-producer");
  return Client::create(c);
}

Producer& producer_of(const std::shared_ptr<Client>& c) {
  auto p = c->producer();
  EXPECT_TRUE(p) << (p ? "" : p.error().message());
  return **p;
}

TEST(ConsumerEngineMock, KeepsPerKeyOrderWithCrossKeyConcurrency) {
  Topic t{unique_name("order"), unique_name("g")};
  auto consumer = Client::create(base_config(t, 8).with_max_concurrency(16));
  auto handler = std::make_shared<RecordingHandler>();
  handler->before = [](const Message&) { std::this_thread::sleep_for(200us); };
  ASSERT_TRUE(consumer->subscribe(handler));
  auto prod = producer_client(t);
  const long n = 20000;
  ASSERT_EQ(testing::produce_sequenced(producer_of(prod), t.name, n, 1000), n);
  ASSERT_TRUE(wait_until([&] { return handler->unique_count() == static_cast<std::size_t>(n); }, 120s))
      << handler->unique_count();
  ASSERT_TRUE(consumer->unsubscribe());
  EXPECT_EQ(handler->violations(), 0);
  EXPECT_EQ(handler->overlaps(), 0);
  EXPECT_EQ(handler->duplicates(), 0);
  const auto stats = consumer->stats();
  EXPECT_GT(stats.max_in_flight_seen, 1u) << "no cross-key concurrency happened";
  EXPECT_LE(stats.max_in_flight_seen, 16u);
}

TEST(ConsumerEngineMock, BackpressureKeepsBoundsAndLosesNothing) {
  Topic t{unique_name("bp"), unique_name("g")};
  const int max_uncommitted = 64, per_key = 8;
  auto consumer = Client::create(base_config(t, 4)
                                     .with_max_concurrency(8)
                                     .with_max_uncommitted(max_uncommitted)
                                     .with_max_enqueued_per_key(per_key));
  auto prod = producer_client(t);
  const long n = 200000;
  // The whole backlog is in Kafka before the consumer starts.
  ASSERT_TRUE(kafka::MockCluster::instance().create_topic(t.name, 4));
  ASSERT_EQ(testing::produce_sequenced(producer_of(prod), t.name, n, 50), n);
  auto handler = std::make_shared<RecordingHandler>();
  // Slow at first (the backlog piles up against the bounds), then fast so
  // the test finishes.
  std::atomic<long> slow_calls{0};
  handler->before = [&](const Message&) {
    if (++slow_calls < 3000) std::this_thread::sleep_for(1ms);
  };
  ASSERT_TRUE(consumer->subscribe(handler));
  ASSERT_TRUE(wait_until([&] { return handler->unique_count() == static_cast<std::size_t>(n); }, 300s))
      << handler->unique_count();
  ASSERT_TRUE(consumer->unsubscribe());
  const auto stats = consumer->stats();
  EXPECT_LE(stats.max_uncommitted_seen, static_cast<std::uint64_t>(max_uncommitted));
  EXPECT_LE(stats.max_enqueued_per_key_seen, static_cast<std::uint64_t>(per_key));
  EXPECT_GT(stats.pauses, 0u);
  EXPECT_GT(stats.resumes, 0u);
  EXPECT_EQ(handler->violations(), 0);
  EXPECT_EQ(handler->overlaps(), 0);
}

TEST(ConsumerEngineMock, RebalanceBetweenTwoConsumersLosesNothingAndNeverOverlapsAKey) {
  Topic t{unique_name("rebalance"), unique_name("g")};
  auto handler = std::make_shared<RecordingHandler>();  // shared: sees the whole group
  handler->before = [](const Message&) { std::this_thread::sleep_for(100us); };
  auto first = Client::create(base_config(t, 6).with_max_concurrency(8));
  ASSERT_TRUE(first->subscribe(handler));
  auto prod = producer_client(t);
  std::vector<int> seqs;
  const long batch = 5000;
  ASSERT_EQ(testing::produce_sequenced(producer_of(prod), t.name, batch, 200, 0, &seqs), batch);
  ASSERT_TRUE(wait_until([&] { return handler->unique_count() > 1000; }, 60s));
  // A second consumer joins mid-stream: partitions move (cooperative).
  auto second = Client::create(base_config(t, 6).with_max_concurrency(8));
  ASSERT_TRUE(second->subscribe(handler));
  ASSERT_EQ(testing::produce_sequenced(producer_of(prod), t.name, batch, 200, batch, &seqs), batch);
  ASSERT_TRUE(wait_until([&] { return second->assigned_partition_count() > 0; }, 60s));
  ASSERT_TRUE(wait_until([&] { return handler->unique_count() >= static_cast<std::size_t>(2 * batch); }, 120s))
      << handler->unique_count();
  // The first consumer leaves: the second takes everything over.
  ASSERT_TRUE(first->unsubscribe());
  ASSERT_EQ(testing::produce_sequenced(producer_of(prod), t.name, batch, 200, 2 * batch, &seqs), batch);
  ASSERT_TRUE(wait_until([&] { return handler->unique_count() == static_cast<std::size_t>(3 * batch); }, 120s))
      << handler->unique_count();
  EXPECT_EQ(second->assigned_partition_count(), 6u);
  ASSERT_TRUE(second->unsubscribe());
  EXPECT_EQ(handler->overlaps(), 0);
  EXPECT_EQ(handler->violations(), 0);
  // Revoked partitions are committed in the rebalance callback, so the new
  // owner does not redo finished work.
  EXPECT_EQ(handler->duplicates(), 0);
  EXPECT_GT(first->stats().committed_on_revoke, 0u);
}

TEST(ConsumerEngineMock, GracefulShutdownThenRestartLosesNothingAndRedoesNothing) {
  Topic t{unique_name("restart"), unique_name("g")};
  auto prod = producer_client(t);
  ASSERT_TRUE(kafka::MockCluster::instance().create_topic(t.name, 4));
  const long n = 6000;
  ASSERT_EQ(testing::produce_sequenced(producer_of(prod), t.name, n, 100), n);
  auto handler = std::make_shared<RecordingHandler>();
  handler->before = [](const Message&) { std::this_thread::sleep_for(300us); };
  {
    auto consumer = Client::create(base_config(t, 4));
    ASSERT_TRUE(consumer->subscribe(handler));
    ASSERT_TRUE(wait_until([&] { return handler->unique_count() > 2000; }, 60s));
    ASSERT_TRUE(consumer->unsubscribe());  // mid-stream
  }
  const auto before_restart = handler->unique_count();
  {
    auto committed = testing::committed_offsets(kafka::MockCluster::instance().bootstrap_servers(), t.name, t.group, 4);
    long total = 0;
    for (auto& [p, o] : committed) total += std::max(o, 0L);
    std::printf("handled %zu, committed %ld\n", before_restart, total);
  }
  EXPECT_LT(before_restart, static_cast<std::size_t>(n)) << "stopped too late to test a restart";
  auto consumer = Client::create(base_config(t, 4));
  ASSERT_TRUE(consumer->subscribe(handler));
  ASSERT_TRUE(wait_until([&] { return handler->unique_count() == static_cast<std::size_t>(n); }, 60s))
      << handler->unique_count();
  ASSERT_TRUE(consumer->unsubscribe());
  EXPECT_EQ(handler->duplicates(), 0);
  EXPECT_EQ(handler->violations(), 0);
}

TEST(ConsumerEngineMock, SkipsOwnOutputButNotOtherSourceSystems) {
  Topic t{unique_name("loop"), unique_name("g")};
  auto consumer = Client::create(base_config(t, 1));
  auto handler = std::make_shared<RecordingHandler>();
  ASSERT_TRUE(consumer->subscribe(handler));
  // The consumer's own client sends with source-system = its group id.
  ASSERT_TRUE(consumer->send(t.name, "k0", R"({"seq":0})"));
  auto other = producer_client(t);
  ASSERT_TRUE(producer_of(other).send(t.name, "k1", R"({"seq":0})"));
  ASSERT_TRUE(wait_until([&] { return handler->calls() == 1 && consumer->stats().filtered_loop == 1; }, 30s));
  std::this_thread::sleep_for(300ms);
  ASSERT_TRUE(consumer->unsubscribe());
  EXPECT_EQ(handler->calls(), 1);
  EXPECT_EQ(consumer->stats().filtered_loop, 1u);
}

TEST(ConsumerEngineMock, AllowedEventsFilterByTypePrefix) {
  Topic t{unique_name("filter"), unique_name("g")};
  auto consumer = Client::create(base_config(t, 1).with_allowed_events(std::vector<std::string>{"user.", "account."}));
  auto handler = std::make_shared<RecordingHandler>();
  ASSERT_TRUE(consumer->subscribe(handler));
  auto prod = producer_client(t);
  auto& p = producer_of(prod);
  ASSERT_TRUE(p.send(t.name, "a", R"({"seq":0,"type":"user.created"})"));
  ASSERT_TRUE(p.send(t.name, "a", R"({"seq":1,"type":"admin.user.created"})"));
  ASSERT_TRUE(p.send(t.name, "a", R"({"seq":1,"type":"account.deleted"})"));
  ASSERT_TRUE(p.send(t.name, "a", R"({"seq":2,"type":"notification"})"));
  ASSERT_TRUE(p.send(t.name, "a", R"({"seq":2})"));  // no type: always processed
  ASSERT_TRUE(wait_until([&] { return handler->calls() == 3 && consumer->stats().filtered_event_type == 2; }, 30s))
      << handler->calls();
  ASSERT_TRUE(consumer->unsubscribe());
  EXPECT_EQ(handler->violations(), 0);
}

TEST(ConsumerEngineMock, UndecodablePayloadIsSkippedVisiblyAndCommitted) {
  Topic t{unique_name("decode"), unique_name("g")};
  auto consumer = Client::create(base_config(t, 1));
  auto handler = std::make_shared<RecordingHandler>();
  ASSERT_TRUE(consumer->subscribe(handler));
  auto prod = producer_client(t);
  auto& p = producer_of(prod);
  ASSERT_TRUE(p.send(t.name, "a", R"({"seq":0})"));
  ASSERT_TRUE(p.send(t.name, "a", "{not json"));
  ASSERT_TRUE(p.send(t.name, std::string("\xff\xfe"), R"({"seq":0})"));  // key is not UTF-8
  ASSERT_TRUE(p.send(t.name, "a", R"({"seq":1})"));
  ASSERT_TRUE(wait_until([&] { return handler->calls() == 2 && consumer->stats().decode_failures == 2; }, 30s));
  ASSERT_TRUE(consumer->unsubscribe());
  // Restarting the group reads nothing again: the bad records were committed.
  auto again = Client::create(base_config(t, 1));
  auto handler2 = std::make_shared<RecordingHandler>();
  ASSERT_TRUE(again->subscribe(handler2));
  ASSERT_TRUE(wait_until([&] { return again->assigned_partition_count() == 1; }, 30s));
  std::this_thread::sleep_for(500ms);
  ASSERT_TRUE(again->unsubscribe());
  EXPECT_EQ(handler2->calls(), 0);
  EXPECT_EQ(again->stats().received, 0u);
}

}  // namespace
}  // namespace prosody
