// DeferLoader against the librdkafka mock cluster: loads in and out of order
// across partitions, cache hits and shared fetches, a real retention hole
// (the mock prunes a partition's oldest batches past 5 MiB), missing topics
// and partitions, cancellation, deadlines on the injected clock, shutdown.
#include "middleware/defer_loader.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include <librdkafka/rdkafka.h>

#include "kafka/mock_cluster.h"
#include "support/test_support.h"
#include "util/manual_clock.h"

namespace prosody::middleware {
namespace {

using namespace std::chrono_literals;
using ::prosody::testing::unique_name;
using ::prosody::testing::wait_until;

kafka::MockCluster& cluster() { return kafka::MockCluster::instance(); }

// A plain librdkafka producer: explicit partitions, headers and timestamps,
// no compression, batches no larger than `batch_bytes`.
class TestProducer {
 public:
  explicit TestProducer(int batch_bytes = 1000000) {
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", cluster().bootstrap_servers().c_str(), err, sizeof err);
    rd_kafka_conf_set(conf, "linger.ms", "0", err, sizeof err);
    rd_kafka_conf_set(conf, "batch.size", std::to_string(batch_bytes).c_str(), err, sizeof err);
    rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  }
  ~TestProducer() { rd_kafka_destroy(rk_); }

  void send(const std::string& topic, int partition, const std::string& key, const std::string& payload,
            std::int64_t timestamp_ms = 0, const std::string& header = "") {
    rd_kafka_headers_t* hdrs = rd_kafka_headers_new(1);
    if (!header.empty()) rd_kafka_header_add(hdrs, "h", -1, header.data(), static_cast<ssize_t>(header.size()));
    const auto err = rd_kafka_producev(
        rk_, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(partition),
        RD_KAFKA_V_KEY(key.data(), key.size()), RD_KAFKA_V_VALUE(const_cast<char*>(payload.data()), payload.size()),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_TIMESTAMP(timestamp_ms), RD_KAFKA_V_HEADERS(hdrs),
        RD_KAFKA_V_END);
    ASSERT_EQ(err, RD_KAFKA_RESP_ERR_NO_ERROR) << rd_kafka_err2str(err);
  }
  void flush() { ASSERT_EQ(rd_kafka_flush(rk_, 30000), RD_KAFKA_RESP_ERR_NO_ERROR); }

  // (low, high) watermarks as the broker reports them.
  std::pair<std::int64_t, std::int64_t> watermarks(const std::string& topic, int partition) {
    std::int64_t lo = -1, hi = -1;
    EXPECT_EQ(rd_kafka_query_watermark_offsets(rk_, topic.c_str(), partition, &lo, &hi, 10000),
              RD_KAFKA_RESP_ERR_NO_ERROR);
    return {lo, hi};
  }

 private:
  rd_kafka_t* rk_ = nullptr;
};

std::string payload_for(int partition, int i) {
  return R"({"p":)" + std::to_string(partition) + R"(,"i":)" + std::to_string(i) + "}";
}

class DeferLoaderMockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    topic_ = unique_name("defer-loader");
    ASSERT_TRUE(cluster().create_topic(topic_, 2).ok());
  }

  // Offsets 0..n-1 on each of partitions 0 and 1, keys "k<i % 5>".
  void produce(int n) {
    TestProducer p;
    for (int part = 0; part < 2; ++part) {
      for (int i = 0; i < n; ++i) {
        p.send(topic_, part, "k" + std::to_string(i % 5), payload_for(part, i), 1'700'000'000'000 + i,
               "hdr-" + std::to_string(i));
      }
    }
    p.flush();
  }

  DeferLoaderSettings settings() const {
    DeferLoaderSettings s;
    s.bootstrap_servers = cluster().bootstrap_servers();
    s.group_id = unique_name("g");
    s.seek_timeout = 20s;
    s.cache_size = 64;
    s.discard_threshold = 10;
    s.poll_interval = 20ms;
    return s;
  }

  std::unique_ptr<DeferLoader> start(DeferLoaderSettings s, std::shared_ptr<Clock> clock = system_clock()) {
    auto r = DeferLoader::start(std::move(s), std::move(clock));
    EXPECT_TRUE(r.ok()) << (r ? "" : r.error().describe());
    return r ? std::move(*r) : nullptr;
  }

  void expect_record(const Result<LoadedRecord>& r, int partition, int i) {
    ASSERT_TRUE(r.ok()) << r.error().describe();
    EXPECT_EQ(r->topic, topic_);
    EXPECT_EQ(r->partition, Partition{partition});
    EXPECT_EQ(r->offset, Offset{i});
    EXPECT_TRUE(r->has_key);
    EXPECT_EQ(r->key, "k" + std::to_string(i % 5));
    EXPECT_EQ(r->payload, payload_for(partition, i));
    ASSERT_EQ(r->headers.size(), 1u);
    EXPECT_EQ(r->headers[0], (Header{"h", "hdr-" + std::to_string(i)}));
    EXPECT_EQ(r->timestamp, std::chrono::system_clock::time_point{std::chrono::milliseconds{1'700'000'000'000 + i}});
  }

  std::string topic_;
};

TEST_F(DeferLoaderMockTest, LoadsInAndOutOfOrderAcrossPartitions) {
  produce(60);
  auto loader = start(settings());
  ASSERT_NE(loader, nullptr);
  // Forward, a short skip (read forward), a long skip (seek), backwards
  // (seek), the other partition, and the last record.
  for (auto [part, i] : std::vector<std::pair<int, int>>{{0, 0}, {0, 1}, {0, 4}, {0, 40}, {0, 2}, {1, 33}, {1, 0},
                                                          {0, 59}, {1, 59}}) {
    SCOPED_TRACE(std::to_string(part) + "/" + std::to_string(i));
    expect_record(loader->load(topic_, Partition{part}, Offset{i}), part, i);
  }
  const auto st = loader->stats();
  EXPECT_EQ(st.fetched, 9u);
  EXPECT_EQ(st.cache_hits, 0u);
  EXPECT_GE(st.seeks + st.assigns, 3u);  // at least the backward moves repositioned
}

TEST_F(DeferLoaderMockTest, ARepeatedLoadIsACacheHit) {
  produce(5);
  auto loader = start(settings());
  ASSERT_NE(loader, nullptr);
  expect_record(loader->load(topic_, Partition{0}, Offset{3}), 0, 3);
  expect_record(loader->load(topic_, Partition{0}, Offset{3}), 0, 3);
  const auto st = loader->stats();
  EXPECT_EQ(st.fetched, 1u);
  EXPECT_EQ(st.cache_hits, 1u);
}

TEST_F(DeferLoaderMockTest, ConcurrentLoadsOfOneOffsetShareOneFetch) {
  produce(5);
  auto loader = start(settings());
  ASSERT_NE(loader, nullptr);
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      auto r = loader->load(topic_, Partition{1}, Offset{2});
      if (r && r->payload == payload_for(1, 2)) ++ok;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 8);
  const auto st = loader->stats();
  EXPECT_EQ(st.fetched, 1u);
  EXPECT_EQ(st.coalesced + st.cache_hits, 7u);
}

TEST_F(DeferLoaderMockTest, ManyOffsetsAtOnceWithFewPendingSlots) {
  produce(40);
  auto s = settings();
  s.max_pending = 2;
  s.cache_size = 4;  // smaller than the working set: evictions on the way
  auto loader = start(s);
  ASSERT_NE(loader, nullptr);
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 20; ++t) {
    threads.emplace_back([&, t] {
      const int part = t % 2, i = (t * 7) % 40;
      auto r = loader->load(topic_, Partition{part}, Offset{i});
      if (r && r->payload == payload_for(part, i) && r->offset == Offset{i}) ++ok;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 20);
  const auto st = loader->stats();
  EXPECT_EQ(st.fetched + st.coalesced + st.cache_hits, 20u);
  EXPECT_EQ(st.pending, 0u);
}

TEST_F(DeferLoaderMockTest, AnOffsetLostToRetentionIsAPermanentError) {
  // The mock keeps at most 5 MiB per partition and prunes the oldest
  // batches beyond that: offset 0 (its own batch) disappears, as it would
  // under retention.ms or compaction on a real broker.
  TestProducer p(/*batch_bytes=*/16000);
  p.send(topic_, 0, "first", "gone soon");
  p.flush();
  const std::string big(15000, 'x');
  for (int i = 0; i < 400; ++i) p.send(topic_, 0, "k", big);
  p.flush();
  const auto [low, high] = p.watermarks(topic_, 0);
  ASSERT_GT(low, 0) << "the mock did not prune; cannot create a hole";
  ASSERT_EQ(high, 401);

  auto loader = start(settings());
  ASSERT_NE(loader, nullptr);
  auto gone = loader->load(topic_, Partition{0}, Offset{0});
  ASSERT_FALSE(gone.ok());
  EXPECT_TRUE(gone.error().is_permanent());
  EXPECT_EQ(gone.error().message(), "offset 0 no longer exists in " + topic_ + "[0]");
  // Just below the new log start too, and the log start itself loads.
  auto also_gone = loader->load(topic_, Partition{0}, Offset{low - 1});
  ASSERT_FALSE(also_gone.ok());
  EXPECT_TRUE(also_gone.error().is_permanent());
  auto first_kept = loader->load(topic_, Partition{0}, Offset{low});
  ASSERT_TRUE(first_kept.ok()) << first_kept.error().describe();
  EXPECT_EQ(first_kept->payload, big);
  EXPECT_EQ(first_kept->offset, Offset{low});
}

TEST_F(DeferLoaderMockTest, AMissingTopicOrPartitionIsAClearPermanentError) {
  auto loader = start(settings());
  ASSERT_NE(loader, nullptr);
  const std::string missing = unique_name("no-such-topic");
  auto r = loader->load(missing, Partition{0}, Offset{0});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.error().is_permanent());
  EXPECT_EQ(r.error().code(), ErrorCode::topic_missing);
  EXPECT_NE(r.error().message().find("'" + missing + "' does not exist"), std::string::npos) << r.error().message();

  auto p = loader->load(topic_, Partition{7}, Offset{0});
  ASSERT_FALSE(p.ok());
  EXPECT_TRUE(p.error().is_permanent());
  EXPECT_NE(p.error().message().find("partition 7 does not exist"), std::string::npos) << p.error().message();
}

TEST_F(DeferLoaderMockTest, AStopRequestCancelsAWaitingLoad) {
  produce(3);
  auto loader = start(settings());
  ASSERT_NE(loader, nullptr);
  std::stop_source stop;
  std::optional<Result<LoadedRecord>> out;
  std::thread t([&] { out.emplace(loader->load(topic_, Partition{0}, Offset{500}, stop.get_token())); });
  // Offset 500 does not exist yet: the load waits until stopped.
  ASSERT_TRUE(wait_until([&] { return loader->stats().pending == 1; }, 10s));
  stop.request_stop();
  t.join();
  ASSERT_TRUE(out.has_value());
  ASSERT_FALSE(out->ok());
  EXPECT_EQ(out->error().code(), ErrorCode::cancelled);
  EXPECT_TRUE(out->error().is_transient());
  EXPECT_EQ(loader->stats().pending, 0u);  // the fetch was withdrawn
  // An already-stopped token never starts a fetch.
  auto r = loader->load(topic_, Partition{0}, Offset{1}, stop.get_token());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::cancelled);
  // The loader still works for others.
  auto fine = loader->load(topic_, Partition{0}, Offset{1});
  ASSERT_TRUE(fine.ok()) << fine.error().describe();
}

TEST_F(DeferLoaderMockTest, ALoadThatNeverArrivesTimesOutOnTheInjectedClock) {
  produce(3);
  auto clock = std::make_shared<::prosody::testing::ManualClock>();
  auto s = settings();
  s.seek_timeout = 5s;
  auto loader = start(s, clock);
  ASSERT_NE(loader, nullptr);
  std::optional<Result<LoadedRecord>> out;
  std::thread t([&] { out.emplace(loader->load(topic_, Partition{1}, Offset{900})); });
  ASSERT_TRUE(wait_until([&] { return loader->stats().pending == 1; }, 10s));
  clock->advance(5s);
  t.join();
  ASSERT_TRUE(out.has_value());
  ASSERT_FALSE(out->ok());
  EXPECT_EQ(out->error().code(), ErrorCode::timed_out);
  EXPECT_TRUE(out->error().is_transient());
  EXPECT_NE(out->error().message().find("offset 900 of " + topic_ + "[1]"), std::string::npos);
}

TEST_F(DeferLoaderMockTest, StoppingTheLoaderFailsWaitingLoads) {
  produce(3);
  auto loader = start(settings());
  ASSERT_NE(loader, nullptr);
  std::optional<Result<LoadedRecord>> out;
  std::thread t([&] { out.emplace(loader->load(topic_, Partition{0}, Offset{77})); });
  ASSERT_TRUE(wait_until([&] { return loader->stats().pending == 1; }, 10s));
  loader->stop();
  t.join();
  ASSERT_TRUE(out.has_value());
  ASSERT_FALSE(out->ok());
  EXPECT_EQ(out->error().code(), ErrorCode::shut_down);
  auto after = loader->load(topic_, Partition{0}, Offset{0});
  ASSERT_FALSE(after.ok());
  EXPECT_EQ(after.error().code(), ErrorCode::shut_down);
  loader->stop();  // idempotent
}

}  // namespace
}  // namespace prosody::middleware
