#include "engine/event_ring.h"

#include <gtest/gtest.h>

#include <deque>
#include <memory>
#include <random>

namespace prosody::engine {
namespace {

TEST(EventRing, StartsEmptyWithoutStorage) {
  EventRing<std::unique_ptr<int>> r;
  EXPECT_TRUE(r.empty());
  EXPECT_EQ(r.capacity(), 0u);
}

TEST(EventRing, BehavesLikeADequeAcrossWrapAndGrowth) {
  EventRing<std::unique_ptr<int>> r;
  std::deque<int> model;
  std::mt19937 rng(7);
  int next = 0;
  for (int step = 0; step < 20000; ++step) {
    if (model.empty() || rng() % 3 != 0) {
      r.push_back(std::make_unique<int>(next));
      model.push_back(next++);
    } else {
      ASSERT_EQ(*r.front(), model.front());
      r.pop_front();
      model.pop_front();
    }
    ASSERT_EQ(r.size(), model.size());
  }
  while (!model.empty()) {
    ASSERT_EQ(*r.front(), model.front());
    r.pop_front();
    model.pop_front();
  }
  EXPECT_TRUE(r.empty());
}

TEST(EventRing, PopAndClearReleaseWhatTheSlotsOwnAndKeepTheArray) {
  EventRing<std::shared_ptr<int>> r;
  auto a = std::make_shared<int>(1);
  auto b = std::make_shared<int>(2);
  r.push_back(a);
  r.push_back(b);
  r.pop_front();
  EXPECT_EQ(a.use_count(), 1);  // released on pop
  r.clear();
  EXPECT_EQ(b.use_count(), 1);
  EXPECT_TRUE(r.empty());
  const auto cap = r.capacity();
  EXPECT_GT(cap, 0u);
  for (int i = 0; i < static_cast<int>(cap); ++i) r.push_back(std::make_shared<int>(i));
  EXPECT_EQ(r.capacity(), cap);  // reused, no growth
  EXPECT_EQ(*r.front(), 0);
}

}  // namespace
}  // namespace prosody::engine
