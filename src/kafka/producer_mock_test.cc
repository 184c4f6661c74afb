// KafkaProducer on the in-process mock cluster: the `source-system` header
// (ours replaces a caller's), delivery reports with and without a callback,
// several topics through the topic-handle cache, the pooled delivery states,
// a malformed topic name, the bounded wait on a full local queue
// (simulated clock, no sleeps), closing with records undelivered, and a
// mock cluster with a simulated round trip time (a slow broker), and
// resends of a delivered event skipped (Prosody's producer cases).
#include "kafka/producer.h"

#include <atomic>
#include <future>
#include <map>
#include <optional>
#include <thread>
#include <utility>
#include <string>

#include <gtest/gtest.h>

#include "kafka/mock_cluster.h"
#include "support/test_support.h"
#include "util/manual_clock.h"

namespace prosody::kafka {
namespace {

using namespace std::chrono_literals;

ProducerSettings mock_settings() {
  ProducerSettings s;
  s.bootstrap_servers = MockCluster::instance().bootstrap_servers();
  s.client_id = "producer-mock-test";
  s.kafka_properties = {{"linger.ms", "1"}};
  return s;
}

// Held as the public interface: its default arguments are the ones users get.
std::unique_ptr<Producer> make(const ProducerSettings& s, std::shared_ptr<Clock> clock = system_clock(),
                                    std::chrono::milliseconds send_timeout = 1s) {
  auto p = KafkaProducer::create(s, "producer-test-system", send_timeout, std::move(clock));
  EXPECT_TRUE(p) << (p ? "" : p.error().message());
  return p ? std::move(*p) : nullptr;
}

// Reads `n` records of partition 0 of `topic` from the start; returns each
// record's headers (name -> values, in order) keyed by the record's key.
std::map<std::string, std::multimap<std::string, std::string>> read_headers(const std::string& topic, int n) {
  std::map<std::string, std::multimap<std::string, std::string>> out;
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", MockCluster::instance().bootstrap_servers().c_str(), err, sizeof err);
  rd_kafka_conf_set(conf, "group.id", "producer-mock-test-reader", err, sizeof err);
  rd_kafka_conf_set(conf, "fetch.wait.max.ms", "10", err, sizeof err);
  KafkaHandle rk(rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err));
  if (!rk) return out;
  auto parts = make_partition_list();
  rd_kafka_topic_partition_list_add(parts.get(), topic.c_str(), 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
  rd_kafka_assign(rk.get(), parts.get());
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (static_cast<int>(out.size()) < n && std::chrono::steady_clock::now() < deadline) {
    MessageHandle m(rd_kafka_consumer_poll(rk.get(), 100));
    if (!m || m->err) continue;
    std::multimap<std::string, std::string> hs;
    rd_kafka_headers_t* h = nullptr;
    if (rd_kafka_message_headers(m.get(), &h) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      const char* name = nullptr;
      const void* value = nullptr;
      size_t size = 0;
      for (size_t i = 0; rd_kafka_header_get_all(h, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; ++i) {
        hs.emplace(name, std::string(static_cast<const char*>(value), size));
      }
    }
    out[std::string(static_cast<const char*>(m->key), m->key_len)] = std::move(hs);
  }
  rd_kafka_consumer_close(rk.get());
  return out;
}

TEST(KafkaProducer, EveryRecordCarriesOurSourceSystemAndTheCallersOtherHeaders) {
  const auto topic = testing::unique_name("producer-headers");
  ASSERT_TRUE(MockCluster::instance().create_topic(topic, 1));
  auto p = make(mock_settings());
  ASSERT_TRUE(p);
  ASSERT_TRUE(p->send(topic, "plain", "{}"));
  ASSERT_TRUE(p->send(topic, "with-headers", "{}", {{"x-trace", "abc"}, {"source-system", "spoofed"}, {"x-n", "1"}}));
  ASSERT_TRUE(p->send(topic, "plain-again", "{}"));

  const auto got = read_headers(topic, 3);
  ASSERT_EQ(got.size(), 3u);
  for (const auto& key : {"plain", "plain-again"}) {
    const auto& hs = got.at(key);
    ASSERT_EQ(hs.size(), 1u) << key;
    EXPECT_EQ(hs.begin()->first, "source-system");
    EXPECT_EQ(hs.begin()->second, "producer-test-system");
  }
  const auto& hs = got.at("with-headers");
  EXPECT_EQ(hs.size(), 3u);
  ASSERT_EQ(hs.count("source-system"), 1u);
  EXPECT_EQ(hs.find("source-system")->second, "producer-test-system");
  EXPECT_EQ(hs.find("x-trace")->second, "abc");
  EXPECT_EQ(hs.find("x-n")->second, "1");
}

TEST(KafkaProducer, AsyncSendsReportPerRecordOrNotAtAllAcrossTopics) {
  const auto a = testing::unique_name("producer-async-a");
  const auto b = testing::unique_name("producer-async-b");
  ASSERT_TRUE(MockCluster::instance().create_topic(a, 2));
  ASSERT_TRUE(MockCluster::instance().create_topic(b, 2));
  auto p = make(mock_settings());
  ASSERT_TRUE(p);
  std::mutex m;
  std::map<std::string, int> delivered;  // guarded by m
  int failed = 0;                        // guarded by m
  auto record = [&](Result<Delivery> d) {
    std::lock_guard l(m);
    if (d) ++delivered[d->topic];
    else ++failed;
  };
  for (int i = 0; i < 200; ++i) {
    const std::string key = "k" + std::to_string(i);
    ASSERT_TRUE(p->send_async(i % 2 ? a : b, key, "{}", {}, record));
    ASSERT_TRUE(p->send_async(i % 2 ? b : a, key, "{}", {}, DeliveryCallback{}));  // fire and forget
  }
  ASSERT_TRUE(p->flush(20s));
  std::lock_guard l(m);
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(delivered[a], 100);
  EXPECT_EQ(delivered[b], 100);
  // The callback-less records were written too.
  char e[256];
  rd_kafka_conf_t* c = rd_kafka_conf_new();
  rd_kafka_conf_set(c, "bootstrap.servers", MockCluster::instance().bootstrap_servers().c_str(), e, sizeof e);
  KafkaHandle probe(rd_kafka_new(RD_KAFKA_PRODUCER, c, e, sizeof e));
  ASSERT_TRUE(probe);
  std::int64_t total = 0;
  for (const auto& t : {a, b}) {
    for (int part = 0; part < 2; ++part) {
      std::int64_t lo = 0, hi = 0;
      ASSERT_EQ(rd_kafka_query_watermark_offsets(probe.get(), t.c_str(), part, &lo, &hi, 10000),
                RD_KAFKA_RESP_ERR_NO_ERROR);
      total += hi;
    }
  }
  EXPECT_EQ(total, 400);
}

TEST(KafkaProducer, DeliveryStatesAreReusedAndARejectedSendsCallbackIsDroppedUncalled) {
  // Delivery states are pooled: several rounds of sends with callbacks (more
  // than one pool block in flight) each report every record exactly once,
  // and the callbacks' captures are gone once flush returns.
  const auto topic = testing::unique_name("producer-pool");
  ASSERT_TRUE(MockCluster::instance().create_topic(topic, 2));
  auto s = mock_settings();
  s.kafka_properties.emplace_back("message.max.bytes", "10000");
  auto p = make(s);
  ASSERT_TRUE(p);
  auto token = std::make_shared<int>(0);
  std::atomic<int> delivered{0};
  std::atomic<int> wrong{0};
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 2500; ++i) {
      ASSERT_TRUE(p->send_async(topic, "k" + std::to_string(i), "{}", {}, [&, token](Result<Delivery> d) {
        if (d && d->topic == topic) ++delivered;
        else ++wrong;
      }));
    }
    // Rejected by librdkafka before it is queued: the send fails, its state
    // goes back to the pool and its callback is never called.
    auto called = std::make_shared<bool>(false);
    const auto big = p->send_async(topic, "big", std::string(20000, 'x'), {}, [called](Result<Delivery>) { *called = true; });
    ASSERT_FALSE(big);
    EXPECT_EQ(big.error().code(), ErrorCode::message_too_large);
    ASSERT_TRUE(p->flush(20s));
    EXPECT_EQ(delivered.load(), 2500 * (round + 1));
    EXPECT_FALSE(*called);
    EXPECT_EQ(called.use_count(), 1);  // the dropped callback was destroyed
    EXPECT_EQ(token.use_count(), 1);   // every delivered callback was emptied
  }
  EXPECT_EQ(wrong.load(), 0);
}

TEST(MockCluster, RoundTripTimeDelaysEveryAcknowledgementAndRejectsNegativeValues) {
  MockCluster cluster(1);  // its own: the shared cluster must stay fast
  ASSERT_FALSE(cluster.bootstrap_servers().empty());
  ASSERT_TRUE(cluster.create_topic("slow", 1));
  ProducerSettings s = mock_settings();
  s.bootstrap_servers = cluster.bootstrap_servers();
  auto p = make(s, system_clock(), 30s);
  ASSERT_TRUE(p);
  ASSERT_TRUE(p->send("slow", "warm", "{}"));  // metadata and producer id first, without delay

  ASSERT_TRUE(cluster.set_round_trip_time(250ms));
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(p->send("slow", "k", "{}"));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 250ms);

  const auto bad = cluster.set_round_trip_time(-1ms);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), ErrorCode::invalid_argument);
  EXPECT_NE(bad.error().message().find("round trip time"), std::string::npos);
  EXPECT_TRUE(cluster.set_round_trip_time(0ms));
}

TEST(KafkaProducer, MalformedTopicNameIsAPermanentError) {
  auto p = make(mock_settings());
  ASSERT_TRUE(p);
  const std::string too_long(600, 't');  // librdkafka refuses names over 512 bytes
  auto s = p->send_async(too_long, "k", "{}", {}, DeliveryCallback{});
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().error_class(), ErrorClass::permanent);
  EXPECT_NE(s.error().message().find("cannot send"), std::string::npos);
}

TEST(KafkaProducer, FullQueueWaitsSendTimeoutOnTheClockThenFailsWithQueueFull) {
  // Nothing listens on the discard port: records stay queued until their
  // message timeout, so a one-record queue is full after the first send.
  ProducerSettings s;
  s.bootstrap_servers = "127.0.0.1:9";
  s.client_id = "producer-mock-test-full";
  s.kafka_properties = {{"queue.buffering.max.messages", "1"}, {"message.timeout.ms", "300"}};
  auto clock = std::make_shared<testing::ManualClock>();
  auto p = make(s, clock, 200ms);
  ASSERT_TRUE(p);
  std::promise<Result<Delivery>> first_outcome;
  ASSERT_TRUE(p->send_async("t", "k1", "{}", {}, [&](Result<Delivery> d) { first_outcome.set_value(std::move(d)); }));

  auto second = std::async(std::launch::async, [&] { return p->send_async("t", "k2", "{}", {}, DeliveryCallback{}); });
  clock->await_sleepers(1);  // the second send found the queue full and waits
  EXPECT_EQ(second.wait_for(0s), std::future_status::timeout);
  clock->advance(210ms);
  const auto r = second.get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::queue_full);
  EXPECT_EQ(r.error().error_class(), ErrorClass::transient);
  EXPECT_NE(r.error().message().find("send_timeout"), std::string::npos);

  // The queued record is reported as failed once its message timeout passes.
  auto f = first_outcome.get_future();
  ASSERT_EQ(f.wait_for(20s), std::future_status::ready);
  const auto d = f.get();
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().code(), ErrorCode::timed_out);
}

TEST(KafkaProducer, ClosingWithUndeliveredRecordsReportsEachOnceAsShutDownAndKeepsNothing) {
  // Nothing listens on the discard port and the message timeout is far off:
  // the records are still queued when the destructor's flush gives up. They
  // used to be freed by rd_kafka_destroy without a report, their callbacks
  // never called; now each is purged and reported once, and nothing the
  // callbacks captured outlives the producer (the ASan build checks leaks).
  ProducerSettings s;
  s.bootstrap_servers = "127.0.0.1:9";
  s.client_id = "producer-mock-test-close";
  s.kafka_properties = {{"message.timeout.ms", "300000"}};
  auto p = make(s);
  ASSERT_TRUE(p);
  auto token = std::make_shared<int>(0);
  std::atomic<int> delivered{0};
  std::atomic<int> shut_down{0};
  std::atomic<int> other{0};
  constexpr int kRecords = 50;
  for (int i = 0; i < kRecords; ++i) {
    ASSERT_TRUE(p->send_async("t", "k" + std::to_string(i), "{}", {}, [&, token](Result<Delivery> d) {
      if (d) ++delivered;
      else if (d.error().code() == ErrorCode::shut_down) ++shut_down;
      else ++other;
    }));
  }
  ASSERT_TRUE(p->send_async("t", "no-callback", "{}", {}, DeliveryCallback{}));
  EXPECT_FALSE(p->flush(50ms));
  p.reset();  // waits its own flush (10 s) out, then purges
  EXPECT_EQ(delivered.load(), 0);
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(shut_down.load(), kRecords);
  EXPECT_EQ(token.use_count(), 1);
}

// The records in partition 0 of `topic` (its high watermark).
std::int64_t records_in(const std::string& topic) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", MockCluster::instance().bootstrap_servers().c_str(), err, sizeof err);
  KafkaHandle rk(rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err));
  if (!rk) return -1;
  std::int64_t low = 0, high = -1;
  if (rd_kafka_query_watermark_offsets(rk.get(), topic.c_str(), 0, &low, &high, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return -1;
  }
  return high;
}

std::unique_ptr<Producer> make_with_resend_cache(const ProducerSettings& s, std::size_t cache_size) {
  auto p = KafkaProducer::create(s, "producer-test-system", 1s, system_clock(), cache_size);
  EXPECT_TRUE(p) << (p ? "" : p.error().message());
  return p ? std::move(*p) : nullptr;
}

// Prosody's producer test cases: what a resend is, and what is not one.
TEST(KafkaProducer, AResendOfADeliveredEventIsSkippedAndReportsWhereTheFirstWent) {
  const auto topic = testing::unique_name("producer-resend");
  const auto other_topic = testing::unique_name("producer-resend-other");
  ASSERT_TRUE(MockCluster::instance().create_topic(topic, 1));
  ASSERT_TRUE(MockCluster::instance().create_topic(other_topic, 1));
  auto p = make_with_resend_cache(mock_settings(), 64);
  ASSERT_TRUE(p);

  auto first = p->send(topic, "k", R"({"id":"e1","seq":0})");
  ASSERT_TRUE(first) << first.error().message();
  // The same event again (another body, same id): not sent, same place.
  auto again = p->send(topic, "k", R"({"id":"e1","seq":1})");
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_EQ(again->topic, topic);
  EXPECT_EQ(again->partition, first->partition);
  EXPECT_EQ(again->offset, first->offset);
  EXPECT_EQ(records_in(topic), 1);

  // The same id on another key, or to another topic, is another event.
  auto other_key = p->send(topic, "k2", R"({"id":"e1"})");
  ASSERT_TRUE(other_key);
  EXPECT_NE(other_key->offset, first->offset);
  ASSERT_TRUE(p->send(other_topic, "k", R"({"id":"e1"})"));
  EXPECT_EQ(records_in(topic), 2);
  EXPECT_EQ(records_in(other_topic), 1);

  // id -> no id -> id: the third is a resend; id1 -> id2 -> id1 too.
  ASSERT_TRUE(p->send(topic, "k", R"({"id":"e2"})"));
  ASSERT_TRUE(p->send(topic, "k", R"({"seq":5})"));
  ASSERT_TRUE(p->send(topic, "k", R"({"id":"e2"})"));
  ASSERT_TRUE(p->send(topic, "k", R"({"id":"e3"})"));
  ASSERT_TRUE(p->send(topic, "k", R"({"id":"e2"})"));
  EXPECT_EQ(records_in(topic), 5) << "e1, e1 on k2, e2, the id-less record, e3";

  // Payloads without a string id are never skipped.
  ASSERT_TRUE(p->send(topic, "k", R"({"seq":5})"));
  ASSERT_TRUE(p->send(topic, "k", R"({"id":7})"));
  ASSERT_TRUE(p->send(topic, "k", R"({"id":7})"));
  EXPECT_EQ(records_in(topic), 8);

  // send_async: a resend is reported like any outcome, on the delivery
  // thread, never from inside the call.
  auto reported = std::make_shared<std::promise<std::pair<Result<Delivery>, std::thread::id>>>();
  auto outcome = reported->get_future();
  ASSERT_TRUE(p->send_async(topic, "k", R"({"id":"e1"})", {}, [reported](Result<Delivery> d) {
    reported->set_value({std::move(d), std::this_thread::get_id()});
  }));
  ASSERT_TRUE(p->flush(10s)) << "flush waits for a skipped send's report too";
  ASSERT_EQ(outcome.wait_for(0s), std::future_status::ready);
  auto [delivery, thread] = outcome.get();
  ASSERT_TRUE(delivery);
  EXPECT_EQ(delivery->offset, first->offset);
  EXPECT_NE(thread, std::this_thread::get_id());
  EXPECT_EQ(records_in(topic), 8);
}

TEST(KafkaProducer, EverySendNeverSkipsAResend) {
  const auto topic = testing::unique_name("producer-every-send");
  ASSERT_TRUE(MockCluster::instance().create_topic(topic, 1));
  auto p = KafkaProducer::create(mock_settings(), "producer-test-system", 1s, system_clock(), 64);
  ASSERT_TRUE(p) << p.error().message();
  Producer& producer = **p;  // the interface holds the default arguments
  auto first = producer.send(topic, "k", R"({"id":"e1"})");
  auto again = (*p)->every_send().send(topic, "k", R"({"id":"e1"})");
  ASSERT_TRUE(first && again);
  EXPECT_NE(again->offset, first->offset);
  EXPECT_EQ(records_in(topic), 2);
}

TEST(KafkaProducer, AFailedDeliveryIsNotRememberedSoItsResendGoesOut) {
  // Nothing listens on the discard port: the delivery times out.
  ProducerSettings s;
  s.bootstrap_servers = "127.0.0.1:9";
  s.client_id = "producer-mock-test-resend-failed";
  s.kafka_properties = {{"message.timeout.ms", "300"}};
  auto p = make_with_resend_cache(s, 64);
  ASSERT_TRUE(p);
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto sent = p->send("t", "k", R"({"id":"e1"})");
    ASSERT_FALSE(sent) << "attempt " << attempt << " was answered from the cache";
    EXPECT_EQ(sent.error().code(), ErrorCode::timed_out) << sent.error().message();
  }
}

TEST(KafkaProducer, WithoutAResendCacheEverySendGoesOut) {
  const auto topic = testing::unique_name("producer-no-resend-cache");
  ASSERT_TRUE(MockCluster::instance().create_topic(topic, 1));
  auto p = make(mock_settings());  // the default: no cache
  ASSERT_TRUE(p);
  auto first = p->send(topic, "k", R"({"id":"e1"})");
  auto second = p->send(topic, "k", R"({"id":"e1"})");
  ASSERT_TRUE(first && second);
  EXPECT_NE(first->offset, second->offset);
  EXPECT_EQ(records_in(topic), 2);
}

}  // namespace
}  // namespace prosody::kafka
