#include "engine/ready_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <set>
#include <thread>

namespace prosody::engine {
namespace {

// Items are told apart by their key pointer, which the queue never follows.
ReadyItem item(std::uintptr_t id) { return ReadyItem{nullptr, reinterpret_cast<KeyQueue*>(id)}; }
std::uintptr_t id(const ReadyItem& i) { return reinterpret_cast<std::uintptr_t>(i.key); }

// Waits (real time, only as a failure bound) until `pred` holds.
template <class Pred>
bool eventually(Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

TEST(ReadyQueue, KeepsFifoOrderAcrossPushAndPushAll) {
  ReadyQueue q;
  q.push(item(1));
  std::vector<ReadyItem> batch{item(2), item(3)};
  q.push_all(batch);
  EXPECT_TRUE(batch.empty());
  q.push(item(4));
  for (std::uintptr_t want = 1; want <= 4; ++want) {
    auto got = q.pop();
    ASSERT_TRUE(got);
    EXPECT_EQ(id(*got), want);
  }
  EXPECT_EQ(q.size(), 0u);
}

TEST(ReadyQueue, EveryItemIsTakenExactlyOnceByConcurrentWorkers) {
  ReadyQueue q;
  constexpr int kWorkers = 6;
  constexpr std::uintptr_t kItems = 20000;
  std::mutex m;
  std::multiset<std::uintptr_t> seen;
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&] {
      while (auto got = q.pop()) {
        std::lock_guard l(m);
        seen.insert(id(*got));
      }
    });
  }
  std::vector<ReadyItem> batch;
  for (std::uintptr_t i = 1; i <= kItems; ++i) {
    batch.push_back(item(i));
    if (i % 7 == 0) q.push_all(batch);
    if (i % 13 == 0) q.push(item(kItems + i));
  }
  q.push_all(batch);
  const std::size_t expected = kItems + kItems / 13;
  ASSERT_TRUE(eventually([&] {
    std::lock_guard l(m);
    return seen.size() == expected;
  }));
  q.close();
  for (auto& t : workers) t.join();
  std::set<std::uintptr_t> unique(seen.begin(), seen.end());
  EXPECT_EQ(unique.size(), expected);  // no duplicates
}

// Handlers that block need every idle worker: one push of a batch wakes one
// worker, and each worker that takes an item with more left wakes the next.
TEST(ReadyQueue, ABatchReachesEveryIdleWorkerWhenTheyAllBlock) {
  ReadyQueue q;
  constexpr int kWorkers = 8;
  std::atomic<int> holding{0};
  std::atomic<bool> release{false};
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&] {
      while (auto got = q.pop()) {
        ++holding;
        while (!release.load()) std::this_thread::yield();  // a blocking handler
      }
    });
  }
  ASSERT_TRUE(eventually([&] { return q.idle_workers() == kWorkers; }));
  std::vector<ReadyItem> batch;
  for (std::uintptr_t i = 1; i <= kWorkers; ++i) batch.push_back(item(i));
  q.push_all(batch);
  EXPECT_TRUE(eventually([&] { return holding.load() == kWorkers; }));
  release = true;
  q.close();
  for (auto& t : workers) t.join();
}

// Single pushes while every worker sleeps: each must be taken even though
// a wake-up may already be in flight when the next one is pushed.
TEST(ReadyQueue, SinglePushesDuringAWakeUpAreNotStranded) {
  ReadyQueue q;
  constexpr int kWorkers = 4;
  std::atomic<int> holding{0};
  std::atomic<bool> release{false};
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&] {
      while (auto got = q.pop()) {
        ++holding;
        while (!release.load()) std::this_thread::yield();
      }
    });
  }
  ASSERT_TRUE(eventually([&] { return q.idle_workers() == kWorkers; }));
  for (std::uintptr_t i = 1; i <= kWorkers; ++i) q.push(item(i));
  EXPECT_TRUE(eventually([&] { return holding.load() == kWorkers; }));
  release = true;
  q.close();
  for (auto& t : workers) t.join();
}

TEST(ReadyQueue, CloseReleasesSleepingWorkersAndDropsItems) {
  ReadyQueue q;
  std::atomic<int> ended{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < 3; ++w) {
    workers.emplace_back([&] {
      while (q.pop()) {
      }
      ++ended;
    });
  }
  ASSERT_TRUE(eventually([&] { return q.idle_workers() == 3; }));
  q.close();
  for (auto& t : workers) t.join();
  EXPECT_EQ(ended.load(), 3);
  q.push(item(1));  // after close: never handed out
  EXPECT_FALSE(q.pop());
}

TEST(ReadyQueue, TheMostRecentlyIdleWorkerIsWokenFirst) {
  ReadyQueue q;
  std::atomic<int> first_taker{-1};
  auto worker = [&](int who) {
    while (auto got = q.pop()) {
      int expected = -1;
      first_taker.compare_exchange_strong(expected, who);
    }
  };
  std::thread early(worker, 0);
  ASSERT_TRUE(eventually([&] { return q.idle_workers() == 1; }));
  std::thread late(worker, 1);
  ASSERT_TRUE(eventually([&] { return q.idle_workers() == 2; }));
  q.push(item(1));
  ASSERT_TRUE(eventually([&] { return first_taker.load() != -1; }));
  EXPECT_EQ(first_taker.load(), 1);  // the late sleeper; the early one stays asleep
  q.close();
  early.join();
  late.join();
}

}  // namespace
}  // namespace prosody::engine
