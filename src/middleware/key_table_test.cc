#include "middleware/key_table.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "middleware/topic_partition_key.h"

namespace prosody::middleware {
namespace {

std::uint64_t d(const char* key, int partition = 0) {
  return digest(TopicPartitionKey{Topic("t"), Partition(partition), Key(key)});
}

TEST(KeyTable, CreatesOnceAndFindsAgain) {
  KeyTable<int> t(16);
  EXPECT_EQ(t.peek(d("a")), nullptr);
  t.get_or_create(d("a")) = 7;
  ASSERT_NE(t.peek(d("a")), nullptr);
  EXPECT_EQ(*t.peek(d("a")), 7);
  EXPECT_EQ(t.get_or_create(d("a")), 7);
  EXPECT_EQ(t.size(), 1u);
}

TEST(KeyTable, SameKeyInAnotherPartitionIsAnotherEntry) {
  KeyTable<int> t(16);
  t.get_or_create(d("a", 0)) = 1;
  t.get_or_create(d("a", 1)) = 2;
  EXPECT_EQ(*t.peek(d("a", 0)), 1);
  EXPECT_EQ(*t.peek(d("a", 1)), 2);
}

TEST(KeyTable, FullSetForgetsItsLeastRecentlyUsedKey) {
  // Capacity 2 is one set of two ways: every key competes with every other.
  KeyTable<int> t(2);
  t.get_or_create(d("a")) = 1;
  t.get_or_create(d("b")) = 2;
  t.get_or_create(d("a"));      // a is now more recent than b
  t.get_or_create(d("c")) = 3;  // evicts b
  EXPECT_EQ(t.size(), 2u);
  EXPECT_EQ(t.peek(d("b")), nullptr);
  EXPECT_EQ(*t.peek(d("a")), 1);
  EXPECT_EQ(*t.peek(d("c")), 3);
}

TEST(KeyTable, PeekDoesNotRefreshRecency) {
  KeyTable<int> t(2);
  t.get_or_create(d("a")) = 1;
  t.get_or_create(d("b")) = 2;
  (void)t.peek(d("a"));
  t.get_or_create(d("c"));  // a is still the least recently used
  EXPECT_EQ(t.peek(d("a")), nullptr);
  EXPECT_NE(t.peek(d("b")), nullptr);
}

TEST(KeyTable, ReusedSlotStartsFromAFreshValue) {
  struct Plain {
    int n = 0;
  };
  KeyTable<Plain> t(1);
  t.get_or_create(d("a")).n = 5;
  EXPECT_EQ(t.get_or_create(d("b")).n, 0);
}

TEST(KeyTable, ReusedSlotIsRecycledWhenTheValueKnowsHow) {
  struct History {
    std::vector<int> items;
    int recycled = 0;
    void recycle() {
      items.clear();
      ++recycled;
    }
  };
  KeyTable<History> t(1);
  auto& a = t.get_or_create(d("a"));
  a.items.assign(100, 1);
  const auto capacity = a.items.capacity();
  auto& b = t.get_or_create(d("b"));
  EXPECT_TRUE(b.items.empty());
  EXPECT_EQ(b.items.capacity(), capacity);  // the allocation is kept
  EXPECT_EQ(b.recycled, 1);
}

TEST(KeyTable, NeverHoldsMoreThanItsCapacity) {
  KeyTable<int> t(8192);
  EXPECT_EQ(t.capacity(), 8192u);
  for (int i = 0; i < 50'000; ++i) t.get_or_create(d(std::to_string(i).c_str())) = i;
  EXPECT_LE(t.size(), 8192u);
  // Sets fill evenly enough that almost every slot is in use.
  EXPECT_GT(t.size(), 8000u);
  // The most recent keys are all still there.
  for (int i = 49'990; i < 50'000; ++i) {
    const int* v = t.peek(d(std::to_string(i).c_str()));
    ASSERT_NE(v, nullptr) << i;
    EXPECT_EQ(*v, i);
  }
}

TEST(KeyTable, OddCapacitiesRoundDownToWholeSets) {
  EXPECT_EQ(KeyTable<int>(0).capacity(), 1u);
  EXPECT_EQ(KeyTable<int>(3).capacity(), 3u);
  EXPECT_EQ(KeyTable<int>(13).capacity(), 8u);
  EXPECT_EQ(KeyTable<int>(100).capacity(), 96u);
}

TEST(KeyTable, ADigestOfZeroIsAnOrdinaryKey) {
  KeyTable<int> t(4);
  t.get_or_create(0) = 9;
  EXPECT_EQ(*t.peek(0), 9);
  EXPECT_EQ(t.size(), 1u);
}

}  // namespace
}  // namespace prosody::middleware
