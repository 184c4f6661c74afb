// Interop with the reference Java client (kafka-clients, through
// scripts/java-interop) on a real broker (PROSODY_IT_BOOTSTRAP): records
// written by Java are read byte-exactly by prosody-cpp and the other way
// round, both producers place a key on the same partition, and a Java and a
// prosody-cpp consumer share one group without losing records.
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/kafka_admin.h"
#include "support/process.h"
#include "support/real_kafka.h"
#include "support/test_support.h"

#ifndef PROSODY_SOURCE_DIR
#error "PROSODY_SOURCE_DIR must point at the source tree (for scripts/java-interop)"
#endif

namespace prosody {
namespace {

using namespace std::chrono_literals;
using testing::ChildProcess;
using testing::RecordingHandler;
using testing::base64_decode;
using testing::run_command;
using testing::unique_name;
using testing::wait_until;

const std::string kJavaInterop = std::string(PROSODY_SOURCE_DIR) + "/scripts/java-interop";

// Interop.java's traceparent(i): "00-%016x%016x-%016x-01" of
// (0x70726f736f6479, i + 1, i + 1).
std::string java_traceparent(long i) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "00-%016llx%016llx-%016llx-01", 0x70726f736f6479ULL,
                static_cast<unsigned long long>(i + 1), static_cast<unsigned long long>(i + 1));
  return buf;
}

// Interop.java's payload for record i (key index i % keys, seq i / keys).
std::string java_payload(long i, int keys) {
  return R"({"id":"java-)" + std::to_string(i) + R"(","seq":)" + std::to_string(i / keys) + R"(,"key":"key-)" +
         std::to_string(i % keys) + R"(","type":"java.test"})";
}

// One line of `java-interop consume`, decoded.
struct JavaRecord {
  int partition;
  long offset;
  std::string key;
  std::string payload;
  std::map<std::string, std::string> headers;
};

JavaRecord parse_java_line(const std::string& line) {
  const auto j = nlohmann::json::parse(line);
  JavaRecord r;
  r.partition = j.at("partition").get<int>();
  r.offset = j.at("offset").get<long>();
  r.key = j.at("key").is_null() ? "" : j.at("key").get<std::string>();
  r.payload = j.at("payload_b64").is_null() ? "" : base64_decode(j.at("payload_b64").get<std::string>());
  for (const auto& [name, value] : j.at("headers").items()) {
    r.headers[name] = value.is_null() ? "<null>" : base64_decode(value.get<std::string>());
  }
  return r;
}

// Keeps a copy of everything a handler saw.
class CapturingHandler : public EventHandler {
 public:
  struct Got {
    std::string key;
    std::string raw;
    int partition;
    long offset;
    Headers headers;
  };

  HandlerResult on_message(Context&, const Message& m) override {
    std::lock_guard l(mutex_);
    got_.push_back(Got{m.key(), std::string(m.raw_payload()), m.partition().value(), m.offset().value(), m.headers()});
    return ok_status();
  }

  std::size_t count() const {
    std::lock_guard l(mutex_);
    return got_.size();
  }
  std::vector<Got> snapshot() const {
    std::lock_guard l(mutex_);
    return got_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<Got> got_;
};

std::optional<std::string> last_header(const Headers& headers, std::string_view name) {
  std::optional<std::string> v;
  for (const auto& h : headers) {
    if (h.name == name) v = h.value;
  }
  return v;
}

class JavaInterop : public testing::RealKafkaTest {
 protected:
  // Runs `java-interop produce` and checks it acknowledged everything.
  static void java_produce(const std::string& topic, int count, int keys) {
    auto r = run_command({kJavaInterop, "produce", bootstrap(), topic, std::to_string(count), std::to_string(keys)});
    ASSERT_EQ(r.exit_code, 0) << "java-interop produce failed";
    ASSERT_FALSE(r.lines.empty());
    EXPECT_EQ(r.lines.back(), "produced " + std::to_string(count));
  }
};

// (a) Java -> prosody-cpp: every record, per-key order, payload bytes and
// headers as Java wrote them.
TEST_F(JavaInterop, JavaProducedRecordsArriveIntactAndInKeyOrder) {
  const auto topic = make_topic(8);
  const int n = 2000, keys = 50;
  ASSERT_NO_FATAL_FAILURE(java_produce(topic, n, keys));

  auto consumer = Client::create(consumer_config(topic, unique_name("g")));
  auto handler = std::make_shared<CapturingHandler>();
  ASSERT_TRUE(consumer->subscribe(handler));
  ASSERT_TRUE(wait_until([&] { return handler->count() >= static_cast<std::size_t>(n); }, 120s))
      << handler->count() << " of " << n;
  ASSERT_TRUE(consumer->unsubscribe());

  const auto got = handler->snapshot();
  EXPECT_EQ(got.size(), static_cast<std::size_t>(n)) << "duplicates with a single stable consumer";
  std::set<long> ids;
  std::map<std::string, int> next_seq;
  std::map<std::string, std::set<int>> partitions_of_key;
  int bad = 0;
  for (const auto& g : got) {
    const auto j = nlohmann::json::parse(g.raw, nullptr, /*allow_exceptions=*/false);
    ASSERT_TRUE(j.is_object()) << g.raw;
    const std::string id = j.value("id", "");
    ASSERT_EQ(id.rfind("java-", 0), 0u) << g.raw;
    const long i = std::stol(id.substr(5));
    ASSERT_TRUE(i >= 0 && i < n) << g.raw;
    ids.insert(i);
    const int seq = j.value("seq", -1);
    // Byte-exact payload and the fields inside it.
    if (g.raw != java_payload(i, keys)) ++bad;
    EXPECT_EQ(g.raw, java_payload(i, keys)) << "record " << i;
    EXPECT_EQ(j.value("key", ""), g.key) << g.raw;
    EXPECT_EQ(g.key, "key-" + std::to_string(i % keys));
    EXPECT_EQ(seq, i / keys);
    // Per-key order: each key's records arrive with seq 0, 1, 2, ...
    EXPECT_EQ(seq, next_seq[g.key]) << "key " << g.key << " out of order";
    next_seq[g.key] = seq + 1;
    partitions_of_key[g.key].insert(g.partition);
    // Headers: exactly what Java set, nothing dropped or renamed.
    EXPECT_EQ(last_header(g.headers, "traceparent"), java_traceparent(i)) << "record " << i;
    EXPECT_EQ(last_header(g.headers, "x-interop"), std::optional<std::string>("java")) << "record " << i;
    EXPECT_FALSE(last_header(g.headers, "source-system")) << "Java records carry no source-system header";
    if (bad > 5) FAIL() << "too many mismatches";
  }
  EXPECT_EQ(ids.size(), static_cast<std::size_t>(n));
  EXPECT_EQ(next_seq.size(), static_cast<std::size_t>(keys));
  for (const auto& [key, parts] : partitions_of_key) EXPECT_EQ(parts.size(), 1u) << key;
}

// (b) prosody-cpp -> Java: keys, payload bytes and every header byte-exact,
// including the producer's source-system, a binary header and an empty one.
TEST_F(JavaInterop, CppProducedRecordsReachJavaByteExactly) {
  const auto topic = make_topic(4);
  auto prod = producer_client("interop-cpp-src");
  const std::string source = prod->source_system();
  ASSERT_EQ(source, "interop-cpp-src");

  std::string binary;
  for (int b = 0; b < 256; ++b) binary.push_back(static_cast<char>(b));
  const int n = 200, keys = 20;
  struct Sent {
    std::string key, payload;
    Headers headers;
  };
  std::map<std::string, Sent> sent;  // by payload
  for (int i = 0; i < n; ++i) {
    const std::string key = "cpp-" + std::to_string(i % keys);
    // UTF-8 text and a JSON escape in the payload; Java base64s the bytes.
    const std::string payload = R"({"id":"cpp-)" + std::to_string(i) + R"(","seq":)" + std::to_string(i / keys) +
                                R"(,"key":")" + key + R"(","text":"h\u00e9llo \"w\u00f6rld\" ✓ é"})";
    Headers headers{{"traceparent", java_traceparent(1000 + i)},
                    {"x-bin", binary},
                    {"x-empty", ""},
                    {"x-index", std::to_string(i)}};
    auto d = prod->send(topic, key, payload, headers);
    ASSERT_TRUE(d) << d.error().message();
    sent[payload] = Sent{key, payload, headers};
  }

  auto r = run_command({kJavaInterop, "consume", bootstrap(), topic, unique_name("jg"), std::to_string(n), "60"});
  ASSERT_EQ(r.exit_code, 0) << "Java consumer did not get all " << n << " records (" << r.lines.size() << " lines)";
  ASSERT_EQ(r.lines.size(), static_cast<std::size_t>(n));
  std::set<std::string> seen;
  for (const auto& line : r.lines) {
    const auto rec = parse_java_line(line);
    auto it = sent.find(rec.payload);
    ASSERT_NE(it, sent.end()) << "payload bytes changed: " << line;
    seen.insert(rec.payload);
    const auto& s = it->second;
    EXPECT_EQ(rec.key, s.key);
    ASSERT_EQ(rec.headers.count("source-system"), 1u) << line;
    EXPECT_EQ(rec.headers.at("source-system"), source);
    for (const auto& h : s.headers) {
      auto hit = rec.headers.find(h.name);
      ASSERT_NE(hit, rec.headers.end()) << "header " << h.name << " missing: " << line;
      EXPECT_EQ(hit->second, h.value) << "header " << h.name << " differs: " << line;
    }
    EXPECT_EQ(rec.headers.size(), s.headers.size() + 1) << line;
  }
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(n));
}

// (c) Same key -> same partition whichever client produced it (murmur2, like
// Java's default partitioner).
TEST_F(JavaInterop, SameKeyLandsOnSamePartitionFromBothProducers) {
  const auto topic = make_topic(12);
  const int java_n = 600, keys = 60;
  ASSERT_NO_FATAL_FAILURE(java_produce(topic, java_n, keys));

  auto prod = producer_client();
  std::map<std::string, int> cpp_partition;
  const int per_key = 3;
  for (int k = 0; k < keys; ++k) {
    const std::string key = "key-" + std::to_string(k);
    for (int s = 0; s < per_key; ++s) {
      auto d = prod->send(topic, key, R"({"from":"cpp","key":")" + key + R"(","n":)" + std::to_string(s) + "}");
      ASSERT_TRUE(d) << d.error().message();
      cpp_partition[key] = d->partition.value();
    }
  }

  const std::size_t total = java_n + keys * per_key;
  auto consumer = Client::create(consumer_config(topic, unique_name("g")));
  auto handler = std::make_shared<CapturingHandler>();
  ASSERT_TRUE(consumer->subscribe(handler));
  ASSERT_TRUE(wait_until([&] { return handler->count() >= total; }, 120s)) << handler->count() << " of " << total;
  ASSERT_TRUE(consumer->unsubscribe());

  std::map<std::string, std::set<int>> partitions_of_key;
  std::map<std::string, int> java_partition;
  for (const auto& g : handler->snapshot()) {
    partitions_of_key[g.key].insert(g.partition);
    if (g.raw.find(R"("type":"java.test")") != std::string::npos) java_partition[g.key] = g.partition;
  }
  ASSERT_EQ(partitions_of_key.size(), static_cast<std::size_t>(keys));
  std::set<int> used;
  for (const auto& [key, parts] : partitions_of_key) {
    EXPECT_EQ(parts.size(), 1u) << key << " is on several partitions";
    EXPECT_EQ(java_partition[key], cpp_partition[key]) << key << ": Java and prosody-cpp disagree";
    used.insert(parts.begin(), parts.end());
  }
  EXPECT_GT(used.size(), 6u) << "keys should spread over the partitions";
}

// (d) A Java consumer and a prosody-cpp consumer in one group split the
// partitions and together see every record.
TEST_F(JavaInterop, JavaAndCppConsumersShareAGroupWithoutLoss) {
  const auto topic = make_topic(6);
  const auto group = unique_name("mixed");
  const long n = 3000;
  const int keys = 120;

  auto handler = std::make_shared<RecordingHandler>();
  std::mutex cpp_mutex;
  std::set<std::pair<std::string, int>> cpp_seen;
  handler->before = [&](const Message& m) {
    std::this_thread::sleep_for(200us);
    std::lock_guard l(cpp_mutex);
    cpp_seen.insert({m.key(), m.payload().value("seq", -1)});
  };
  auto consumer = Client::create(consumer_config(topic, group));
  ASSERT_TRUE(consumer->subscribe(handler));
  ASSERT_TRUE(wait_until([&] { return consumer->assigned_partition_count() == 6; }, 60s));

  // The Java member; its output lines are parsed as they come.
  std::mutex mutex;
  std::set<std::pair<std::string, int>> java_seen;
  std::set<int> java_partitions;
  long java_lines = 0;
  int java_exit = -1;
  std::string java_error;
  std::thread java([&] {
    try {
      ChildProcess child({kJavaInterop, "consume", bootstrap(), topic, group, std::to_string(n), "20"});
      while (auto line = child.read_line()) {
        const auto rec = parse_java_line(*line);
        const auto j = nlohmann::json::parse(rec.payload);
        std::lock_guard l(mutex);
        java_seen.insert({j.at("key").get<std::string>(), j.at("seq").get<int>()});
        java_partitions.insert(rec.partition);
        ++java_lines;
      }
      const int rc = child.wait();
      std::lock_guard l(mutex);
      java_exit = rc;
    } catch (const std::exception& e) {
      std::lock_guard l(mutex);
      java_error = e.what();
    }
  });
  struct Joiner {
    std::thread& t;
    ~Joiner() {
      if (t.joinable()) t.join();
    }
  } joiner{java};

  // The Java member has joined once our consumer gave partitions away.
  ASSERT_TRUE(wait_until([&] { return consumer->assigned_partition_count() < 6; }, 30s))
      << "the Java consumer never got a partition of the shared group";

  auto prod = producer_client();
  auto p = prod->producer();
  ASSERT_TRUE(p);
  ASSERT_EQ(testing::produce_sequenced(**p, topic, n, keys), n);

  // Everything must be handled by one of the two members.
  auto covered = [&] {
    std::set<std::pair<std::string, int>> all;
    {
      std::lock_guard l(cpp_mutex);
      all = cpp_seen;
    }
    std::lock_guard l(mutex);
    all.insert(java_seen.begin(), java_seen.end());
    return all.size();
  };
  ASSERT_TRUE(wait_until([&] { return covered() == static_cast<std::size_t>(n); }, 90s))
      << "union " << covered() << " of " << n;
  java.join();
  {
    std::lock_guard l(mutex);
    ASSERT_EQ(java_error, "");
    EXPECT_TRUE(java_exit == 0 || java_exit == 3) << "Java consumer failed with exit code " << java_exit;
    EXPECT_GT(java_seen.size(), 0u) << "Java handled nothing: the group was not shared";
    EXPECT_LT(java_partitions.size(), 6u);
  }
  // After the Java member left, prosody-cpp owns everything again.
  EXPECT_TRUE(wait_until([&] { return consumer->assigned_partition_count() == 6; }, 60s));
  EXPECT_GT(handler->unique_count(), 0u);
  ASSERT_TRUE(consumer->unsubscribe());
  EXPECT_EQ(handler->violations(), 0);
  EXPECT_EQ(handler->overlaps(), 0);
}

}  // namespace
}  // namespace prosody
