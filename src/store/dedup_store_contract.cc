// The dedup store contract tests (see dedup_store_contract.h).
#include "store/dedup_store_contract.h"

#include <atomic>
#include <cstdio>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

namespace prosody::store::testing {

DedupId random_dedup_id() {
  static std::mutex mu;
  static std::mt19937_64 rng{std::random_device{}()};
  std::lock_guard l(mu);
  DedupId id;
  for (std::size_t i = 0; i < id.bytes.size(); i += 8) {
    const std::uint64_t v = rng();
    std::memcpy(id.bytes.data() + i, &v, 8);
  }
  return id;
}

void DedupStoreContract::SetUp() {
  std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  test = test.substr(0, test.find('/'));
  if (auto it = GetParam().skipped.find(test); it != GetParam().skipped.end()) {
    GTEST_SKIP() << GetParam().name << ": " << it->second;
  }
  backend_ = GetParam().make(GetParam().ttl);
  if (IsSkipped()) return;  // the factory may skip (e.g. its server is not configured)
  ASSERT_NE(backend_.store, nullptr);
  ASSERT_TRUE(backend_.advance);
}

namespace {

bool has(DedupStore& s, const DedupId& id) {
  auto r = s.contains(id);
  EXPECT_TRUE(r.ok()) << (r ? "" : r.error().describe());
  return r && *r;
}

void put(DedupStore& s, const DedupId& id) {
  auto r = s.record(id);
  EXPECT_TRUE(r.ok()) << (r ? "" : r.error().describe());
}

}  // namespace

TEST_P(DedupStoreContract, AnUnknownIdIsNotContained) { EXPECT_FALSE(has(store(), random_dedup_id())); }

TEST_P(DedupStoreContract, ARecordedIdIsContainedAndOnlyThatId) {
  const auto id = random_dedup_id();
  put(store(), id);
  EXPECT_TRUE(has(store(), id));
  // Ids differing in one byte (first, middle, last) are different ids.
  for (std::size_t byte : {0u, 7u, 15u}) {
    auto other = id;
    other.bytes[byte] ^= 0x01;
    EXPECT_FALSE(has(store(), other)) << "byte " << byte;
  }
}

TEST_P(DedupStoreContract, RecordingTwiceIsHarmless) {
  const auto id = random_dedup_id();
  put(store(), id);
  put(store(), id);
  EXPECT_TRUE(has(store(), id));
}

TEST_P(DedupStoreContract, TheTtlIsTheOneConfigured) { EXPECT_EQ(store().ttl(), GetParam().ttl); }

TEST_P(DedupStoreContract, ARecordedIdExpiresAfterTheTtl) {
  const auto id = random_dedup_id();
  put(store(), id);
  advance(ttl() / 4);
  EXPECT_TRUE(has(store(), id)) << "expired a quarter TTL after recording";
  advance(ttl());
  EXPECT_FALSE(has(store(), id)) << "still there 1.25 TTLs after recording";
}

TEST_P(DedupStoreContract, RecordingAgainRestartsTheTtl) {
  const auto id = random_dedup_id();
  put(store(), id);
  advance(ttl() * 6 / 10);
  put(store(), id);
  advance(ttl() * 6 / 10);
  EXPECT_TRUE(has(store(), id)) << "the second record did not restart the TTL";
  advance(ttl() * 6 / 10);
  EXPECT_FALSE(has(store(), id));
}

TEST_P(DedupStoreContract, ConcurrentRecordsAndLookupsFromManyThreadsAllLand) {
  constexpr int kThreads = 8, kPerThread = 250;
  std::vector<std::vector<DedupId>> ids(kThreads);
  for (auto& v : ids) {
    for (int i = 0; i < kPerThread; ++i) v.push_back(random_dedup_id());
  }
  std::atomic<int> failures{0};
  auto run = [&](auto op) {
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (const auto& id : ids[static_cast<std::size_t>(t)]) {
          if (!op(id)) failures++;
        }
      });
    }
    for (auto& th : threads) th.join();
    return kThreads * kPerThread / std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  const double records = run([&](const DedupId& id) { return store().record(id).ok(); });
  const double lookups = run([&](const DedupId& id) {
    auto r = store().contains(id);
    return r && *r;
  });
  EXPECT_EQ(failures.load(), 0);
  std::printf("[ RATE ] %s: %.0f records/s, %.0f lookups/s (%d threads)\n", GetParam().name.c_str(), records,
              lookups, kThreads);
}

}  // namespace prosody::store::testing
