// What the write-through cache adds over the contract suite (which also runs
// against it): it saves store reads, forgets what a failed write may have
// changed, honours invalidate(), stays bounded, and agrees with the store
// under concurrent use.
#include "store/cached_defer_store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "store/memory/memory_defer_store.h"

namespace prosody::store {
namespace {

// Counts reads reaching the store and fails the next call on request.
class CountingStore final : public MessageDeferStore {
 public:
  std::atomic<int> reads{0};
  std::atomic<bool> fail_next{false};

  Status append(const DeferSegment& s, const Key& k, const DeferredMessage& e) override {
    if (fail_next.exchange(false)) return Error::transient("injected", ErrorCode::store);
    return inner.append(s, k, e);
  }
  Result<std::optional<Head>> head(const DeferSegment& s, const Key& k) override {
    ++reads;
    if (fail_next.exchange(false)) return Error::transient("injected", ErrorCode::store);
    return inner.head(s, k);
  }
  Result<std::optional<Head>> remove(const DeferSegment& s, const Key& k, std::int64_t p) override {
    if (fail_next.exchange(false)) return Error::transient("injected", ErrorCode::store);
    return inner.remove(s, k, p);
  }
  Status set_retry_count(const DeferSegment& s, const Key& k, std::uint32_t n) override {
    if (fail_next.exchange(false)) return Error::transient("injected", ErrorCode::store);
    return inner.set_retry_count(s, k, n);
  }
  Result<bool> is_deferred(const DeferSegment& s, const Key& k) override {
    ++reads;
    return inner.is_deferred(s, k);
  }
  Result<std::vector<DeferredMessage>> entries(const DeferSegment& s, const Key& k) override {
    return inner.entries(s, k);
  }
  Status remove_key(const DeferSegment& s, const Key& k) override { return inner.remove_key(s, k); }
  std::string describe() const override { return "counting"; }

  MemoryMessageDeferStore inner;
};

using Head = DeferHead<DeferredMessage>;
DeferredMessage msg(std::int64_t o) { return DeferredMessage{Offset{o}}; }

struct Fixture : ::testing::Test {
  std::shared_ptr<CountingStore> store = std::make_shared<CountingStore>();
  CachedDeferStore<DeferredMessage> cache{store, 16};
  DeferSegment seg{"g", "t", Partition{0}};
};

using CachedDeferStoreTest = Fixture;

TEST_F(CachedDeferStoreTest, NotDeferredAnswersComeFromMemoryAfterTheFirstRead) {
  for (int i = 0; i < 10; ++i) {
    auto r = cache.is_deferred(seg, "k");
    ASSERT_TRUE(r.ok());
    EXPECT_FALSE(*r);
  }
  EXPECT_EQ(store->reads.load(), 1);
}

TEST_F(CachedDeferStoreTest, WritesKeepTheCachedHeadCurrentWithoutReads) {
  ASSERT_TRUE(cache.is_deferred(seg, "k").ok());  // known absent: 1 read
  ASSERT_TRUE(cache.append(seg, "k", msg(10)).ok());
  ASSERT_TRUE(cache.append(seg, "k", msg(12)).ok());
  ASSERT_TRUE(cache.set_retry_count(seg, "k", 4).ok());
  EXPECT_EQ(*cache.head(seg, "k"), (Head{msg(10), 4}));
  ASSERT_TRUE(cache.append(seg, "k", msg(3)).ok());  // sorts first: new head, same count
  EXPECT_EQ(*cache.head(seg, "k"), (Head{msg(3), 4}));
  auto next = cache.pop_head(seg, "k", Head{msg(3), 4});
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(*cache.head(seg, "k"), (Head{msg(10), 0}));
  ASSERT_TRUE(cache.remove_key(seg, "k").ok());
  EXPECT_FALSE(*cache.is_deferred(seg, "k"));
  EXPECT_EQ(store->reads.load(), 1);
  // ... and the store agrees.
  EXPECT_FALSE(*store->inner.is_deferred(seg, "k"));
}

TEST_F(CachedDeferStoreTest, AFailedWriteForgetsTheKey) {
  ASSERT_TRUE(cache.append(seg, "k", msg(1)).ok());
  ASSERT_TRUE(cache.head(seg, "k").ok());
  const int before = store->reads.load();
  store->fail_next = true;
  auto s = cache.set_retry_count(seg, "k", 9);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(s.error().is_transient());
  EXPECT_EQ(*cache.head(seg, "k"), (Head{msg(1), 0}));  // re-read: the write did not apply
  EXPECT_EQ(store->reads.load(), before + 1);
}

TEST_F(CachedDeferStoreTest, AFailedReadIsNotCached) {
  store->fail_next = true;
  EXPECT_FALSE(cache.is_deferred(seg, "k").ok());
  ASSERT_TRUE(store->inner.append(seg, "k", msg(5)).ok());
  EXPECT_TRUE(*cache.is_deferred(seg, "k"));
}

TEST_F(CachedDeferStoreTest, InvalidateReReadsOnlyThatSegment) {
  const DeferSegment other("g", "t", Partition{1});
  EXPECT_FALSE(*cache.is_deferred(seg, "k"));
  EXPECT_FALSE(*cache.is_deferred(other, "k"));
  // Another consumer owned the partitions meanwhile and deferred the key.
  ASSERT_TRUE(store->inner.append(seg, "k", msg(5)).ok());
  ASSERT_TRUE(store->inner.append(other, "k", msg(6)).ok());
  EXPECT_FALSE(*cache.is_deferred(seg, "k"));  // stale until told
  cache.invalidate(seg);
  EXPECT_TRUE(*cache.is_deferred(seg, "k"));
  EXPECT_EQ(*cache.head(seg, "k"), (Head{msg(5), 0}));
  EXPECT_FALSE(*cache.is_deferred(other, "k"));  // not invalidated
}

TEST_F(CachedDeferStoreTest, StaysWithinCapacity) {
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(cache.is_deferred(seg, "k" + std::to_string(i)).ok());
  EXPECT_EQ(cache.cached_keys(), 16u);
  // An evicted key is simply read again.
  const int before = store->reads.load();
  EXPECT_FALSE(*cache.is_deferred(seg, "k0"));
  EXPECT_EQ(store->reads.load(), before + 1);
}

TEST_F(CachedDeferStoreTest, ConcurrentUseAgreesWithTheStore) {
  constexpr int kThreads = 6, kKeys = 40, kSteps = 300;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::uint32_t x = 2654435761u * static_cast<std::uint32_t>(t + 1);
      for (int i = 0; i < kSteps; ++i) {
        x = x * 1664525u + 1013904223u;
        const Key key = "k" + std::to_string((x >> 8) % kKeys);
        bool ok = true;
        switch ((x >> 20) % 5) {
          case 0: ok = cache.append(seg, key, msg((x >> 4) % 50)).ok(); break;
          case 1: {
            auto h = cache.head(seg, key);
            ok = h.ok() && (!*h || cache.pop_head(seg, key, **h).ok());
            break;
          }
          case 2: ok = cache.set_retry_count(seg, key, x % 7).ok(); break;
          case 3: ok = cache.is_deferred(seg, key).ok(); break;
          default: ok = (x % 11 != 0) || cache.remove_key(seg, key).ok(); break;
        }
        if (!ok) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  for (int k = 0; k < kKeys; ++k) {
    const Key key = "k" + std::to_string(k);
    EXPECT_EQ(*cache.head(seg, key), *store->inner.head(seg, key)) << key;
  }
}

}  // namespace
}  // namespace prosody::store
