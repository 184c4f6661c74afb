// The three failure-handling modes on a real Kafka broker
// (PROSODY_IT_BOOTSTRAP), and the dead-letter records read back by the
// reference Java client (scripts/java-interop), which shares no code with us:
//   - low_latency: permanent, exhausted and undecodable records reach the
//     failure topic with their key, payload and headers plus every
//     Prosody source-* header and ours (error class, attempts);
//   - pipeline: a failing key is deferred (SQLite defer store), the other
//     keys flow and are committed, and its parked messages are reloaded
//     from the broker and run in order once it recovers;
//   - best_effort: failures are logged and committed, never retried.
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>

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
using testing::base64_decode;
using testing::run_command;
using testing::unique_name;
using testing::wait_until;

const std::string kJavaInterop = std::string(PROSODY_SOURCE_DIR) + "/scripts/java-interop";

// A fresh state directory per consumer (SQLite timer and defer stores).
std::string fresh_state_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / unique_name(name);
  std::filesystem::create_directories(dir);
  return dir.string();
}

class FailureModesOnKafka : public testing::RealKafkaTest {
 protected:
  Config config(const std::string& topic, const std::string& group, Mode mode) {
    return consumer_config(topic, group)
        .with_mode(mode)
        .with_state_dir(fresh_state_dir("fm-state"))
        .with_retry_base(1ms)
        .with_max_retry_delay(20ms);
  }
};

// Decides per record from its payload: {"i": n, "fail": "permanent" | "transient" | "none"}.
class ScriptedHandler final : public EventHandler {
 public:
  HandlerResult on_message(Context&, const Message& m) override {
    calls++;
    const std::string how = m.payload().value("fail", "none");
    if (how == "permanent") return Error::permanent("record " + std::to_string(m.payload().value("i", -1)) + " is invalid");
    if (how == "transient") return Error::transient("downstream unavailable");
    handled++;
    return ok_status();
  }
  std::atomic<int> calls{0}, handled{0};
};

struct JavaRecord {
  std::string key, payload;
  std::map<std::string, std::string> headers;
};

std::vector<JavaRecord> java_read(const std::string& bootstrap, const std::string& topic, int expected) {
  auto r = run_command({kJavaInterop, "consume", bootstrap, topic, unique_name("java-dlq"), std::to_string(expected), "90"});
  EXPECT_EQ(r.exit_code, 0) << "the Java consumer did not read " << expected << " dead letters (" << r.lines.size()
                            << " lines)";
  std::vector<JavaRecord> out;
  for (const auto& line : r.lines) {
    const auto j = nlohmann::json::parse(line);
    JavaRecord rec;
    rec.key = j.at("key").is_null() ? "" : j.at("key").get<std::string>();
    rec.payload = j.at("payload_b64").is_null() ? "" : base64_decode(j.at("payload_b64").get<std::string>());
    for (const auto& [name, value] : j.at("headers").items()) {
      rec.headers[name] = value.is_null() ? "<null>" : base64_decode(value.get<std::string>());
    }
    out.push_back(std::move(rec));
  }
  return out;
}

TEST_F(FailureModesOnKafka, LowLatencyDeadLettersCarryEveryHeaderAndTheJavaClientReadsThem) {
  const auto topic = make_topic(4, "fm-ll");
  const auto dlq = make_topic(1, "fm-dlq");
  const auto group = unique_name("fm-ll-g");
  auto prod = producer_client("fm-source");

  // 30 records: every 5th fails permanently, every 7th keeps failing
  // transiently (exhausts max_retries), record 11 is not JSON.
  struct Sent {
    std::string key, payload, error_class;
    int partition;
    long offset;
    int attempts;
  };
  std::map<std::string, Sent> expected;  // by payload
  const int n = 30;
  for (int i = 0; i < n; ++i) {
    const std::string key = "key-" + std::to_string(i % 6);
    std::string how = i % 5 == 0 ? "permanent" : i % 7 == 0 ? "transient" : "none";
    std::string payload = R"({"i":)" + std::to_string(i) + R"(,"fail":")" + how + R"("})";
    if (i == 11) {
      payload = "not json, record 11";
      how = "undecodable";
    }
    auto d = prod->send(topic, key, payload, Headers{{"x-origin", "test-" + std::to_string(i)}});
    ASSERT_TRUE(d) << d.error().message();
    if (how == "none") continue;
    const std::string cls = how == "transient" ? "transient" : "permanent";
    // max_retries 2: one try and two retries for a transient error; one try otherwise.
    const int attempts = how == "transient" ? 3 : how == "permanent" ? 1 : 0;
    expected[payload] = Sent{key, payload, cls, d->partition.value(), d->offset.value(), attempts};
  }

  auto handler = std::make_shared<ScriptedHandler>();
  auto consumer = Client::create(config(topic, group, Mode::low_latency).with_failure_topic(dlq).with_max_retries(2));
  ASSERT_TRUE(consumer->subscribe(handler));
  ASSERT_TRUE(wait_until([&] { return consumer->stats().dead_lettered >= expected.size(); }, 90s))
      << consumer->stats().dead_lettered << " of " << expected.size() << " dead-lettered";

  const auto got = java_read(bootstrap(), dlq, static_cast<int>(expected.size()));
  ASSERT_EQ(got.size(), expected.size());
  std::set<std::string> seen;
  for (const auto& rec : got) {
    auto it = expected.find(rec.payload);
    ASSERT_NE(it, expected.end()) << "unexpected or altered dead letter: " << rec.payload;
    seen.insert(rec.payload);
    const auto& s = it->second;
    const auto h = [&](const std::string& name) {
      auto f = rec.headers.find(name);
      return f == rec.headers.end() ? std::string("<missing>") : f->second;
    };
    EXPECT_EQ(rec.key, s.key);
    EXPECT_EQ(h("x-origin").rfind("test-", 0), 0u) << "the record's own headers are kept";
    // The dead-letter writer stamps its own source-system (the group id), so
    // a consumer of the failure topic in this group skips its own output.
    EXPECT_EQ(h("source-system"), group);
    EXPECT_EQ(h("source-kind"), "message");
    EXPECT_EQ(h("source-topic"), topic);
    EXPECT_EQ(h("source-partition"), std::to_string(s.partition));
    EXPECT_EQ(h("source-offset"), std::to_string(s.offset));
    EXPECT_EQ(h("source-group-id"), group);
    const auto ts = h("source-timestamp");
    EXPECT_FALSE(ts.empty() || ts == "<missing>") << rec.payload;
    EXPECT_NE(h("source-error"), "<missing>");
    EXPECT_FALSE(h("source-error").empty());
    EXPECT_EQ(h("prosody-error-class"), s.error_class) << rec.payload;
    if (s.attempts > 0) {
      EXPECT_EQ(h("prosody-attempts"), std::to_string(s.attempts)) << rec.payload;
    }
  }
  EXPECT_EQ(seen.size(), expected.size());
  ASSERT_TRUE(consumer->unsubscribe());
  EXPECT_EQ(handler->handled, n - static_cast<int>(expected.size()));
  // Everything, dead-lettered or not, is committed.
  long committed = 0;
  for (auto& [p, o] : testing::committed_offsets(bootstrap(), topic, group, 4)) committed += std::max(o, 0L);
  EXPECT_EQ(committed, n);
}

// Fails every message of `bad_key` until healed; records what ran, per key.
class FlakyKeyHandler final : public EventHandler {
 public:
  explicit FlakyKeyHandler(std::string bad_key) : bad_key_(std::move(bad_key)) {}
  HandlerResult on_message(Context&, const Message& m) override {
    if (m.key() == bad_key_ && !healed) {
      bad_attempts++;
      return Error::transient("downstream for " + bad_key_ + " is down");
    }
    std::lock_guard l(mutex);
    order[m.key()].push_back(m.payload().value("seq", -1));
    done++;
    return ok_status();
  }
  std::atomic<bool> healed{false};
  std::atomic<int> bad_attempts{0}, done{0};
  std::mutex mutex;
  std::map<std::string, std::vector<int>> order;  // guarded by mutex

 private:
  std::string bad_key_;
};

TEST_F(FailureModesOnKafka, PipelineDefersAFailingKeyAndReloadsItsMessagesFromTheBroker) {
  const auto topic = make_topic(3, "fm-pipe");
  const auto group = unique_name("fm-pipe-g");
  auto handler = std::make_shared<FlakyKeyHandler>("k0");
  auto consumer = Client::create(
      config(topic, group, Mode::pipeline).with_defer_base(1s).with_defer_max_delay(2s));
  ASSERT_TRUE(consumer->subscribe(handler));
  auto prod = producer_client();
  auto p = prod->producer();
  ASSERT_TRUE(p);
  constexpr int kKeys = 200, kPerKey = 3;
  ASSERT_EQ(testing::produce_sequenced(**p, topic, kKeys * kPerKey, kKeys), kKeys * kPerKey);
  const int others = (kKeys - 1) * kPerKey;
  ASSERT_TRUE(wait_until([&] { return handler->done >= others; }, 90s)) << handler->done << " of " << others;
  EXPECT_EQ(handler->done, others) << "nothing of k0 runs while it fails";
  EXPECT_GE(consumer->stats().deferred, static_cast<std::uint64_t>(kPerKey));
  // Parked messages do not hold back the commit position.
  ASSERT_TRUE(wait_until(
      [&] { return testing::total_committed(bootstrap(), topic, group, 3) == kKeys * kPerKey; },
      30s));
  handler->healed = true;
  ASSERT_TRUE(wait_until([&] { return handler->done == kKeys * kPerKey; }, 60s)) << handler->done;
  ASSERT_TRUE(consumer->unsubscribe());
  std::lock_guard l(handler->mutex);
  EXPECT_EQ(handler->order.at("k0"), (std::vector<int>{0, 1, 2})) << "reloaded in order, each once";
  for (const auto& [key, seqs] : handler->order) EXPECT_EQ(seqs, (std::vector<int>{0, 1, 2})) << key;
}

TEST_F(FailureModesOnKafka, BestEffortLogsFailuresCommitsThemAndNeverRetries) {
  const auto topic = make_topic(2, "fm-be");
  const auto group = unique_name("fm-be-g");
  auto prod = producer_client();
  const int n = 40;
  for (int i = 0; i < n; ++i) {
    const std::string how = i % 2 ? "transient" : i % 4 ? "permanent" : "none";
    ASSERT_TRUE(prod->send(topic, "k" + std::to_string(i % 5), R"({"i":)" + std::to_string(i) + R"(,"fail":")" + how + R"("})"));
  }
  auto handler = std::make_shared<ScriptedHandler>();
  auto consumer = Client::create(config(topic, group, Mode::best_effort));
  ASSERT_TRUE(consumer->subscribe(handler));
  ASSERT_TRUE(wait_until(
      [&] { return testing::total_committed(bootstrap(), topic, group, 2) == n; },
      60s))
      << "failed records must be committed in best_effort mode";
  ASSERT_TRUE(consumer->unsubscribe());
  EXPECT_EQ(handler->calls, n) << "each record ran exactly once: no retries";
  EXPECT_EQ(handler->handled, n / 4);
}

}  // namespace
}  // namespace prosody
