// The defer store contract tests (see defer_store_contract.h). Most checks
// are written once as templates and run against both queues.
#include "store/defer_store_contract.h"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <thread>
#include <vector>

namespace prosody::store::testing {
namespace {

std::string unique_group() {
  static std::atomic<int> counter{0};
  const auto now = std::chrono::system_clock::now().time_since_epoch().count();
  return "defer-contract-" + std::to_string(now) + "-" + std::to_string(counter++);
}

// An entry at `position`; timers carry a span naming their position, so a
// mixed-up span is caught too.
template <typename Entry>
Entry at(std::int64_t position);

template <>
DeferredMessage at<DeferredMessage>(std::int64_t position) {
  return DeferredMessage{Offset{position}};
}

template <>
DeferredTimer at<DeferredTimer>(std::int64_t position) {
  return DeferredTimer{position, {{"traceparent", "00-" + std::to_string(position) + "-01"}}};
}

template <typename Entry>
std::optional<DeferHead<Entry>> head_of(DeferStore<Entry>& s, const DeferSegment& seg, const Key& key) {
  auto r = s.head(seg, key);
  EXPECT_TRUE(r.ok()) << (r ? "" : r.error().describe());
  return r ? *r : std::nullopt;
}

template <typename Entry>
bool deferred(DeferStore<Entry>& s, const DeferSegment& seg, const Key& key) {
  auto r = s.is_deferred(seg, key);
  EXPECT_TRUE(r.ok()) << (r ? "" : r.error().describe());
  return r && *r;
}

template <typename Entry>
std::vector<std::int64_t> positions(DeferStore<Entry>& s, const DeferSegment& seg, const Key& key) {
  auto r = s.entries(seg, key);
  EXPECT_TRUE(r.ok()) << (r ? "" : r.error().describe());
  std::vector<std::int64_t> out;
  if (r) {
    for (const auto& e : *r) out.push_back(e.position());
  }
  return out;
}

template <typename Entry>
void append_all(DeferStore<Entry>& s, const DeferSegment& seg, const Key& key, std::vector<std::int64_t> ps) {
  for (auto p : ps) ASSERT_TRUE(s.append(seg, key, at<Entry>(p)).ok()) << p;
}

template <typename Entry>
DeferHead<Entry> head_at(std::int64_t position, std::uint32_t retry_count) {
  return DeferHead<Entry>{at<Entry>(position), retry_count};
}

// ---- checks, each run on both queues ----------------------------------------

template <typename Entry>
void unknown_key_is_not_deferred(DeferStore<Entry>& s, const DeferSegment& seg) {
  EXPECT_FALSE(head_of(s, seg, "nobody").has_value());
  EXPECT_FALSE(deferred(s, seg, "nobody"));
  EXPECT_TRUE(positions(s, seg, "nobody").empty());
  EXPECT_TRUE(s.remove_key(seg, "nobody").ok());
  // Neither a retry count nor a removal creates a queue.
  EXPECT_TRUE(s.set_retry_count(seg, "nobody", 4).ok());
  auto removed = s.remove(seg, "nobody", 7);
  ASSERT_TRUE(removed.ok());
  EXPECT_FALSE(removed->has_value());
  EXPECT_FALSE(deferred(s, seg, "nobody"));
  EXPECT_FALSE(head_of(s, seg, "nobody").has_value());
}

template <typename Entry>
void entries_are_ordered_by_position(DeferStore<Entry>& s, const DeferSegment& seg) {
  append_all<Entry>(s, seg, "k", {30, 10, 20, 10});
  EXPECT_EQ(positions(s, seg, "k"), (std::vector<std::int64_t>{10, 20, 30}));
  EXPECT_EQ(head_of(s, seg, "k"), (head_at<Entry>(10, 0)));
  EXPECT_TRUE(deferred(s, seg, "k"));
}

template <typename Entry>
void pop_head_advances_and_resets_the_retry_count(DeferStore<Entry>& s, const DeferSegment& seg) {
  append_all<Entry>(s, seg, "k", {5, 7, 9});
  ASSERT_TRUE(s.set_retry_count(seg, "k", 3).ok());
  auto h = head_of(s, seg, "k");
  ASSERT_EQ(h, (head_at<Entry>(5, 3)));
  auto next = s.pop_head(seg, "k", *h);
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(*next, (head_at<Entry>(7, 0)));
  EXPECT_EQ(head_of(s, seg, "k"), (head_at<Entry>(7, 0)));
  ASSERT_TRUE(s.set_retry_count(seg, "k", 1).ok());
  next = s.pop_head(seg, "k", head_at<Entry>(7, 1));
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(*next, (head_at<Entry>(9, 0)));
  next = s.pop_head(seg, "k", head_at<Entry>(9, 0));
  ASSERT_TRUE(next.ok());
  EXPECT_FALSE(next->has_value());
  EXPECT_FALSE(deferred(s, seg, "k"));
  EXPECT_TRUE(positions(s, seg, "k").empty());
  // A fresh queue on the same key starts again at retry count 0.
  append_all<Entry>(s, seg, "k", {11});
  EXPECT_EQ(head_of(s, seg, "k"), (head_at<Entry>(11, 0)));
}

template <typename Entry>
void repeating_a_pop_removes_nothing_more(DeferStore<Entry>& s, const DeferSegment& seg) {
  append_all<Entry>(s, seg, "k", {1, 2, 3});
  const auto first = head_at<Entry>(1, 0);
  ASSERT_TRUE(s.pop_head(seg, "k", first).ok());
  ASSERT_TRUE(s.set_retry_count(seg, "k", 2).ok());
  auto again = s.pop_head(seg, "k", first);  // e.g. retried after a timeout
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, (head_at<Entry>(2, 2)));  // head and its count untouched
  EXPECT_EQ(positions(s, seg, "k"), (std::vector<std::int64_t>{2, 3}));
}

template <typename Entry>
void removing_a_later_entry_keeps_the_retry_count(DeferStore<Entry>& s, const DeferSegment& seg) {
  append_all<Entry>(s, seg, "k", {1, 2, 3});
  ASSERT_TRUE(s.set_retry_count(seg, "k", 5).ok());
  auto r = s.remove(seg, "k", 2);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, (head_at<Entry>(1, 5)));
  EXPECT_EQ(positions(s, seg, "k"), (std::vector<std::int64_t>{1, 3}));
}

template <typename Entry>
void appending_keeps_the_key_retry_count(DeferStore<Entry>& s, const DeferSegment& seg) {
  append_all<Entry>(s, seg, "k", {10});
  ASSERT_TRUE(s.set_retry_count(seg, "k", 6).ok());
  append_all<Entry>(s, seg, "k", {20});
  EXPECT_EQ(head_of(s, seg, "k"), (head_at<Entry>(10, 6)));
  // An entry sorting before the head becomes the head; the count is the key's.
  append_all<Entry>(s, seg, "k", {4});
  EXPECT_EQ(head_of(s, seg, "k"), (head_at<Entry>(4, 6)));
  const auto max = std::numeric_limits<std::uint32_t>::max();
  ASSERT_TRUE(s.set_retry_count(seg, "k", max).ok());
  EXPECT_EQ(head_of(s, seg, "k"), (head_at<Entry>(4, max)));
}

template <typename Entry>
void remove_key_deletes_queue_and_count(DeferStore<Entry>& s, const DeferSegment& seg) {
  append_all<Entry>(s, seg, "k", {1, 2});
  append_all<Entry>(s, seg, "other", {1});
  ASSERT_TRUE(s.set_retry_count(seg, "k", 9).ok());
  ASSERT_TRUE(s.remove_key(seg, "k").ok());
  EXPECT_FALSE(deferred(s, seg, "k"));
  EXPECT_TRUE(positions(s, seg, "k").empty());
  EXPECT_TRUE(deferred(s, seg, "other"));
  append_all<Entry>(s, seg, "k", {3});
  EXPECT_EQ(head_of(s, seg, "k"), (head_at<Entry>(3, 0)));
}

// A backend that can count (memory, SQLite) counts exactly the segment's
// keys with a queue; one that cannot (Cassandra) says so with nullopt.
template <typename Entry>
void deferred_key_count_is_exact_or_unknown(DeferStore<Entry>& s, const DeferSegment& seg) {
  const auto count = [&](const DeferSegment& g) {
    auto c = s.deferred_key_count(g);
    EXPECT_TRUE(c.ok());
    return c.ok() ? *c : std::optional<std::uint64_t>();
  };
  if (!count(seg)) return;  // the backend cannot count: the engine then asks per event
  EXPECT_EQ(count(seg), 0u);
  append_all<Entry>(s, seg, "a", {1, 2});
  append_all<Entry>(s, seg, "b", {1});
  const DeferSegment other(seg.group(), seg.topic(), Partition{seg.partition().value() + 1});
  append_all<Entry>(s, other, "c", {1});
  EXPECT_EQ(count(seg), 2u);
  EXPECT_EQ(count(other), 1u);
  ASSERT_TRUE(s.pop_head(seg, "b", head_at<Entry>(1, 0)).ok());
  EXPECT_EQ(count(seg), 1u) << "a drained queue is no longer counted";
  ASSERT_TRUE(s.remove_key(seg, "a").ok());
  EXPECT_EQ(count(seg), 0u);
}

template <typename Entry>
void segments_and_keys_are_isolated(DeferStore<Entry>& s, const DeferSegment& seg) {
  const DeferSegment other_partition(seg.group(), seg.topic(), Partition{seg.partition().value() + 1});
  const DeferSegment other_group(seg.group() + "-b", seg.topic(), seg.partition());
  const DeferSegment other_topic(seg.group(), seg.topic() + "-b", seg.partition());
  append_all<Entry>(s, seg, "k", {1});
  ASSERT_TRUE(s.set_retry_count(seg, "k", 2).ok());
  for (const auto* o : {&other_partition, &other_group, &other_topic}) {
    EXPECT_FALSE(deferred(s, *o, "k")) << o->name();
    EXPECT_FALSE(head_of(s, *o, "k").has_value()) << o->name();
    ASSERT_TRUE(s.remove_key(*o, "k").ok());
  }
  EXPECT_FALSE(deferred(s, seg, "k2"));
  append_all<Entry>(s, other_partition, "k", {8});
  EXPECT_EQ(head_of(s, other_partition, "k"), (head_at<Entry>(8, 0)));
  EXPECT_EQ(head_of(s, seg, "k"), (head_at<Entry>(1, 2)));
}

template <typename Entry>
void unicode_and_binary_looking_keys(DeferStore<Entry>& s, const DeferSegment& seg) {
  const std::vector<Key> keys = {"ключ", "🔑/партия:1", "a'b\"c;--", std::string("nul\0inside", 10), ""};
  std::int64_t p = 1;
  for (const auto& k : keys) append_all<Entry>(s, seg, k, {p++});
  p = 1;
  for (const auto& k : keys) EXPECT_EQ(head_of(s, seg, k), (head_at<Entry>(p++, 0))) << k;
}

template <typename Entry>
void concurrent_writers_lose_nothing(DeferStore<Entry>& s, const DeferSegment& seg) {
  constexpr int kThreads = 8, kKeysPerThread = 4, kEntries = 12;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEntries; ++i) {
        for (int k = 0; k < kKeysPerThread; ++k) {
          const Key key = "t" + std::to_string(t) + "k" + std::to_string(k);
          if (!s.append(seg, key, at<Entry>(kEntries - i)).ok()) ++failures;
          if (!s.is_deferred(seg, "t" + std::to_string((t + 1) % kThreads) + "k0").ok()) ++failures;
        }
      }
      // Each thread then drains half of its keys by popping heads.
      for (int k = 0; k < kKeysPerThread / 2; ++k) {
        const Key key = "t" + std::to_string(t) + "k" + std::to_string(k);
        for (int i = 1; i <= kEntries; ++i) {
          auto next = s.pop_head(seg, key, DeferHead<Entry>{at<Entry>(i), 0});
          if (!next) ++failures;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  std::vector<std::int64_t> all;
  for (int i = 1; i <= kEntries; ++i) all.push_back(i);
  for (int t = 0; t < kThreads; ++t) {
    for (int k = 0; k < kKeysPerThread; ++k) {
      const Key key = "t" + std::to_string(t) + "k" + std::to_string(k);
      if (k < kKeysPerThread / 2) {
        EXPECT_FALSE(deferred(s, seg, key)) << key;
      } else {
        EXPECT_EQ(positions(s, seg, key), all) << key;
      }
    }
  }
}

}  // namespace

DeferSegment DeferStoreContract::segment(int partition) const {
  return DeferSegment(unique_group(), "orders", Partition{partition});
}

#define BOTH_QUEUES(check)                           \
  do {                                               \
    {                                                \
      SCOPED_TRACE("message queue");                 \
      check<DeferredMessage>(*stores_.messages, segment()); \
    }                                                \
    {                                                \
      SCOPED_TRACE("timer queue");                   \
      check<DeferredTimer>(*stores_.timers, segment());     \
    }                                                \
  } while (0)

TEST_P(DeferStoreContract, UnknownKeyIsNotDeferred) { BOTH_QUEUES(unknown_key_is_not_deferred); }
TEST_P(DeferStoreContract, EntriesAreOrderedByPosition) { BOTH_QUEUES(entries_are_ordered_by_position); }
TEST_P(DeferStoreContract, PopHeadAdvancesAndResetsRetryCount) {
  BOTH_QUEUES(pop_head_advances_and_resets_the_retry_count);
}
TEST_P(DeferStoreContract, RepeatingAPopRemovesNothingMore) { BOTH_QUEUES(repeating_a_pop_removes_nothing_more); }
TEST_P(DeferStoreContract, RemovingALaterEntryKeepsRetryCount) {
  BOTH_QUEUES(removing_a_later_entry_keeps_the_retry_count);
}
TEST_P(DeferStoreContract, AppendingKeepsTheKeysRetryCount) { BOTH_QUEUES(appending_keeps_the_key_retry_count); }
TEST_P(DeferStoreContract, RemoveKeyDeletesQueueAndCount) { BOTH_QUEUES(remove_key_deletes_queue_and_count); }
TEST_P(DeferStoreContract, DeferredKeyCountIsExactOrUnknown) { BOTH_QUEUES(deferred_key_count_is_exact_or_unknown); }
TEST_P(DeferStoreContract, SegmentsAndKeysAreIsolated) { BOTH_QUEUES(segments_and_keys_are_isolated); }
TEST_P(DeferStoreContract, UnicodeAndBinaryLookingKeys) { BOTH_QUEUES(unicode_and_binary_looking_keys); }
TEST_P(DeferStoreContract, ConcurrentWritersLoseNothing) { BOTH_QUEUES(concurrent_writers_lose_nothing); }

TEST_P(DeferStoreContract, MessageAndTimerQueuesAreIndependent) {
  auto seg = segment();
  ASSERT_TRUE(stores_.messages->append(seg, "k", DeferredMessage{Offset{42}}).ok());
  EXPECT_FALSE(deferred(*stores_.timers, seg, "k"));
  ASSERT_TRUE(stores_.timers->append(seg, "k", DeferredTimer{42, {}}).ok());
  ASSERT_TRUE(stores_.timers->set_retry_count(seg, "k", 3).ok());
  EXPECT_EQ(head_of(*stores_.messages, seg, "k"), (DeferHead<DeferredMessage>{DeferredMessage{Offset{42}}, 0}));
  ASSERT_TRUE(stores_.messages->remove_key(seg, "k").ok());
  EXPECT_FALSE(deferred(*stores_.messages, seg, "k"));
  EXPECT_EQ(head_of(*stores_.timers, seg, "k"), (DeferHead<DeferredTimer>{DeferredTimer{42, {}}, 3}));
}

TEST_P(DeferStoreContract, TimerSpanContextRoundTripsAndIsReplacedOnAppend) {
  auto seg = segment();
  const SpanContext span{{"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
                         {"tracestate", "vendor=a,other=\"b\""}};
  ASSERT_TRUE(stores_.timers->append(seg, "k", DeferredTimer{100, span}).ok());
  ASSERT_TRUE(stores_.timers->append(seg, "k", DeferredTimer{200, {}}).ok());
  auto all = stores_.timers->entries(seg, "k");
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(*all, (std::vector<DeferredTimer>{{100, span}, {200, {}}}));
  // Same time again: one entry, the new span.
  const SpanContext newer{{"traceparent", "00-11111111111111111111111111111111-2222222222222222-01"}};
  ASSERT_TRUE(stores_.timers->append(seg, "k", DeferredTimer{100, newer}).ok());
  EXPECT_EQ(head_of(*stores_.timers, seg, "k"), (DeferHead<DeferredTimer>{{100, newer}, 0}));
  EXPECT_EQ(positions(*stores_.timers, seg, "k"), (std::vector<std::int64_t>{100, 200}));
}

TEST_P(DeferStoreContract, BeyondTheYear2038AndLargeOffsets) {
  auto seg = segment();
  // Around the signed and unsigned 32-bit boundaries, and far beyond.
  const std::vector<std::int64_t> times = {2'147'483'647, 2'147'483'648, 4'294'967'295, 4'294'967'296,
                                           253'402'300'799};
  for (auto it = times.rbegin(); it != times.rend(); ++it) {
    ASSERT_TRUE(stores_.timers->append(seg, "k", DeferredTimer{*it, {}}).ok());
  }
  EXPECT_EQ(positions(*stores_.timers, seg, "k"), times);
  EXPECT_EQ(head_of(*stores_.timers, seg, "k"), (DeferHead<DeferredTimer>{{2'147'483'647, {}}, 0}));
  const std::vector<std::int64_t> offsets = {0, 2'147'483'648, 9'007'199'254'740'993,
                                             std::numeric_limits<std::int64_t>::max()};
  for (auto it = offsets.rbegin(); it != offsets.rend(); ++it) {
    ASSERT_TRUE(stores_.messages->append(seg, "k", DeferredMessage{Offset{*it}}).ok());
  }
  EXPECT_EQ(positions(*stores_.messages, seg, "k"), offsets);
  auto next = stores_.messages->pop_head(seg, "k", DeferHead<DeferredMessage>{DeferredMessage{Offset{0}}, 0});
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(*next, (DeferHead<DeferredMessage>{DeferredMessage{Offset{2'147'483'648}}, 0}));
}

}  // namespace prosody::store::testing
