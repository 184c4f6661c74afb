// Dedup on its own (a one-layer stack over a scripted handler, a memory
// store behind a switchable fault injector): what counts as the same
// message, what is recorded when, the two tiers, and each store failure.
#include "middleware/dedup_layer.h"

#include <deque>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "engine/record.h"
#include "middleware/dedup_id.h"
#include "store/memory/memory_dedup_store.h"

namespace prosody::middleware {
namespace {

using namespace std::chrono_literals;

// Returns the scripted results in order (ok once the script runs out) and
// records the offsets it ran.
class ScriptedHandler final : public Innermost {
 public:
  Status invoke(Invocation& inv) const override {
    if (inv.kind == EventKind::message) offsets.push_back(inv.record->offset.value());
    else timers++;
    if (script.empty()) return ok_status();
    auto s = std::move(script.front());
    script.pop_front();
    return s;
  }
  mutable std::deque<Status> script;
  mutable std::vector<std::int64_t> offsets;
  mutable int timers = 0;
};

// A memory store whose calls can be made to fail, counting what reaches it.
class FaultyDedupStore final : public store::DedupStore {
 public:
  Result<bool> contains(const store::DedupId& id) override {
    ++lookups;
    if (lookup_error) return *lookup_error;
    return inner.contains(id);
  }
  Status record(const store::DedupId& id) override {
    ++records;
    if (record_error) return *record_error;
    return inner.record(id);
  }
  std::chrono::seconds ttl() const override { return inner.ttl(); }
  std::string describe() const override { return "faulty-memory"; }

  store::MemoryDedupStore inner{std::chrono::hours(1)};
  std::optional<Error> lookup_error, record_error;
  int lookups = 0, records = 0;
};

class DedupLayerTest : public ::testing::Test {
 protected:
  DedupLayerTest() { build("1", 64); }

  void build(std::string version, std::size_t cache_size) {
    std::vector<std::unique_ptr<Layer>> layers;
    layers.push_back(std::make_unique<DedupLayer>(
        DedupLayer::Options{std::move(version), "g", PayloadCodec::json, cache_size}, store_,
        DedupLayer::Sinks{[this] { ++deduplicated_; }, [this] { ++store_errors_; }}));
    stack_ = std::make_unique<Stack>(std::move(layers), handler_);
  }

  Status deliver(std::int64_t offset, std::string payload, std::string key = "k", std::int32_t partition = 0) {
    detail::Record rec;
    rec.topic = &topic_;
    rec.partition = Partition{partition};
    rec.offset = Offset{offset};
    rec.key = key;
    rec.owned_payload = std::move(payload);
    Invocation inv;
    inv.kind = EventKind::message;
    inv.tpk = TopicPartitionKey{topic_, Partition{partition}, key};
    inv.record = &rec;
    return stack_->run(inv);
  }

  Topic topic_ = "orders";
  std::shared_ptr<FaultyDedupStore> store_ = std::make_shared<FaultyDedupStore>();
  std::shared_ptr<ScriptedHandler> handler_ = std::make_shared<ScriptedHandler>();
  std::unique_ptr<Stack> stack_;
  int deduplicated_ = 0, store_errors_ = 0;
};

TEST_F(DedupLayerTest, ASecondCopyOfAnEventOnTheSameKeyIsSkipped) {
  ASSERT_TRUE(deliver(10, R"({"id":"evt-1","n":1})").ok());
  ASSERT_TRUE(deliver(11, R"({"n":2,"id":"evt-1"})").ok()) << "a skipped message is done (committed)";
  EXPECT_EQ(handler_->offsets, (std::vector<std::int64_t>{10}));
  EXPECT_EQ(deduplicated_, 1);
}

TEST_F(DedupLayerTest, TheSameEventIdOnAnotherKeyOrPartitionRuns) {
  ASSERT_TRUE(deliver(10, R"({"id":"evt-1"})", "k").ok());
  ASSERT_TRUE(deliver(11, R"({"id":"evt-1"})", "other-key").ok());
  ASSERT_TRUE(deliver(12, R"({"id":"evt-1"})", "k", 1).ok());
  EXPECT_EQ(handler_->offsets, (std::vector<std::int64_t>{10, 11, 12}));
  EXPECT_EQ(deduplicated_, 0);
}

TEST_F(DedupLayerTest, WithoutAnEventIdOnlyARedeliveryOfTheSameOffsetIsSkipped) {
  ASSERT_TRUE(deliver(10, R"({"n":1})").ok());
  ASSERT_TRUE(deliver(11, R"({"n":1})").ok()) << "same payload, new offset: a new message";
  ASSERT_TRUE(deliver(10, R"({"n":1})").ok()) << "offset 10 again: a redelivery";
  ASSERT_TRUE(deliver(12, R"({"id":7})").ok()) << "a non-string id is no event id";
  ASSERT_TRUE(deliver(13, R"({"id":7})").ok());
  EXPECT_EQ(handler_->offsets, (std::vector<std::int64_t>{10, 11, 12, 13}));
  EXPECT_EQ(deduplicated_, 1);
}

TEST_F(DedupLayerTest, ATransientFailureIsNotRecordedSoTheRetryRunsTheHandler) {
  handler_->script = {Error::transient("downstream down")};
  EXPECT_FALSE(deliver(10, R"({"id":"evt-1"})").ok());
  EXPECT_EQ(store_->records, 0);
  ASSERT_TRUE(deliver(10, R"({"id":"evt-1"})").ok());
  EXPECT_EQ(handler_->offsets, (std::vector<std::int64_t>{10, 10}));
  EXPECT_EQ(deduplicated_, 0);
}

TEST_F(DedupLayerTest, APermanentFailureIsRecordedItIsDone) {
  handler_->script = {Error::permanent("bad event")};
  const auto s = deliver(10, R"({"id":"evt-1"})");
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(s.error().is_permanent()) << "the handler's result passes through";
  ASSERT_TRUE(deliver(11, R"({"id":"evt-1"})").ok());
  EXPECT_EQ(handler_->offsets, (std::vector<std::int64_t>{10}));
  EXPECT_EQ(deduplicated_, 1);
}

TEST_F(DedupLayerTest, TheStoreRemembersWhatTheCacheForgot) {
  build("1", 16);  // 32 slots for 200 ids
  for (std::int64_t o = 0; o < 200; ++o) ASSERT_TRUE(deliver(o, R"({"n":0})").ok());
  ASSERT_EQ(store_->records, 200);
  const int lookups_before = store_->lookups;
  ASSERT_TRUE(deliver(0, R"({"n":0})").ok());  // long evicted from the cache
  EXPECT_EQ(store_->lookups, lookups_before + 1) << "a cache miss asks the store";
  EXPECT_EQ(handler_->offsets.size(), 200u) << "the store's answer skips the handler";
  // The store's hit filled the cache: the next copy does not reach the store.
  ASSERT_TRUE(deliver(0, R"({"n":0})").ok());
  EXPECT_EQ(store_->lookups, lookups_before + 1);
  EXPECT_EQ(deduplicated_, 2);
}

TEST_F(DedupLayerTest, ANewLayerOverTheSameStoreSkipsWhatTheLastOneHandled) {
  ASSERT_TRUE(deliver(10, R"({"id":"evt-1"})").ok());
  build("1", 64);  // a restart: empty cache, same store
  ASSERT_TRUE(deliver(10, R"({"id":"evt-1"})").ok());
  EXPECT_EQ(handler_->offsets, (std::vector<std::int64_t>{10}));
}

TEST_F(DedupLayerTest, ANewIdempotenceVersionForgetsEverything) {
  ASSERT_TRUE(deliver(10, R"({"id":"evt-1"})").ok());
  build("2", 64);
  ASSERT_TRUE(deliver(10, R"({"id":"evt-1"})").ok());
  EXPECT_EQ(handler_->offsets, (std::vector<std::int64_t>{10, 10}));
}

TEST_F(DedupLayerTest, ALookupTheStoreCannotAnswerHoldsTheMessageForTheRetry) {
  store_->lookup_error = Error::transient("store down", ErrorCode::store);
  const auto s = deliver(10, R"({"id":"evt-1"})");
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(s.error().is_transient()) << "the outer Retry asks again";
  EXPECT_EQ(s.error().code(), ErrorCode::store);
  EXPECT_NE(s.error().message().find("faulty-memory"), std::string::npos) << s.error().message();
  EXPECT_NE(s.error().message().find("store down"), std::string::npos) << s.error().message();
  EXPECT_TRUE(handler_->offsets.empty()) << "nothing runs while the store cannot say";
  store_->lookup_error.reset();
  ASSERT_TRUE(deliver(10, R"({"id":"evt-1"})").ok());
  EXPECT_EQ(handler_->offsets, (std::vector<std::int64_t>{10}));
  EXPECT_EQ(store_errors_, 1);
}

TEST_F(DedupLayerTest, APermanentLookupFailureRunsTheHandlerWithoutDedup) {
  store_->lookup_error = Error::permanent("schema mismatch", ErrorCode::store);
  ASSERT_TRUE(deliver(10, R"({"id":"evt-1"})").ok());
  EXPECT_EQ(handler_->offsets, (std::vector<std::int64_t>{10}));
  EXPECT_EQ(store_errors_, 1);
}

TEST_F(DedupLayerTest, AFailedRecordingKeepsTheHandlersResultAndTheCacheStillCatchesARedelivery) {
  store_->record_error = Error::transient("store down", ErrorCode::store);
  ASSERT_TRUE(deliver(10, R"({"id":"evt-1"})").ok()) << "failing now would make Retry run the handler twice";
  EXPECT_EQ(store_errors_, 1);
  ASSERT_TRUE(deliver(11, R"({"id":"evt-1"})").ok());
  EXPECT_EQ(handler_->offsets, (std::vector<std::int64_t>{10}));
  EXPECT_EQ(deduplicated_, 1);
}

TEST_F(DedupLayerTest, TimersPassStraightThrough) {
  const timers::DueTimer timer{"k", 1000, TimerType::application, {}};
  Invocation inv;
  inv.kind = EventKind::timer;
  inv.tpk = TopicPartitionKey{topic_, Partition{0}, "k"};
  inv.timer = &timer;
  ASSERT_TRUE(stack_->run(inv).ok());
  ASSERT_TRUE(stack_->run(inv).ok());
  EXPECT_EQ(handler_->timers, 2);
  EXPECT_EQ(store_->lookups, 0);
  EXPECT_EQ(store_->records, 0);
}

TEST_F(DedupLayerTest, TheIdIsProsodysForTheEventIdOrTheOffset) {
  detail::Record rec;
  rec.topic = &topic_;
  rec.offset = Offset{42};
  rec.owned_payload = R"({"type":"t","id":"evt-9"})";
  Invocation inv;
  inv.tpk = TopicPartitionKey{topic_, Partition{3}, "k"};
  inv.record = &rec;
  DedupLayer layer(DedupLayer::Options{"1", "g", PayloadCodec::json, 8}, store_, {});
  EXPECT_EQ(layer.id_of(inv), dedup_id(DedupFields{"1", "g", "orders", 3, "k", "evt-9", 42}));
  rec.owned_payload = R"({"type":"t"})";
  EXPECT_EQ(layer.id_of(inv), dedup_id(DedupFields{"1", "g", "orders", 3, "k", std::nullopt, 42}));
  // Raw payloads have no event id, whatever their bytes.
  DedupLayer raw(DedupLayer::Options{"1", "g", PayloadCodec::raw, 8}, store_, {});
  rec.owned_payload = R"({"id":"evt-9"})";
  EXPECT_EQ(raw.id_of(inv), dedup_id(DedupFields{"1", "g", "orders", 3, "k", std::nullopt, 42}));
}

}  // namespace
}  // namespace prosody::middleware
