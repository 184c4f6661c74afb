// The contract every TimerStore backend must meet, as a value-parameterised
// gtest suite. A backend's test file instantiates it with a factory:
//
//   INSTANTIATE_TEST_SUITE_P(Sqlite, TimerStoreContract,
//       ::testing::Values(TimerStoreFactory{"sqlite", [] { return ...; }}));
//
// Each test uses its own segment names, so a factory may return a store
// shared with other tests (e.g. one Cassandra keyspace).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "store/timer_store.h"

namespace prosody::store::testing {

struct TimerStoreFactory {
  std::string name;
  std::function<std::shared_ptr<TimerStore>()> make;
};

inline std::ostream& operator<<(std::ostream& os, const TimerStoreFactory& f) { return os << f.name; }

class TimerStoreContract : public ::testing::TestWithParam<TimerStoreFactory> {
 protected:
  void SetUp() override {
    store_ = GetParam().make();
    if (IsSkipped()) return;  // the factory may skip (e.g. its server is not configured)
    ASSERT_NE(store_, nullptr);
  }
  // A segment no other test touches.
  TimerSegment segment(std::int64_t slab_size = 3600) const;

  std::shared_ptr<TimerStore> store_;
};

}  // namespace prosody::store::testing
