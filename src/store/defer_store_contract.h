// The contract every defer store backend must meet (both queues), as a
// value-parameterised gtest suite. A backend's test file instantiates it
// with a factory returning a message store and a timer store:
//
//   INSTANTIATE_TEST_SUITE_P(Cassandra, DeferStoreContract,
//       ::testing::Values(DeferStoreFactory{"cassandra", [] { return DeferStores{...}; }}));
//
// Each test uses its own group name, so a factory may return stores shared
// with other tests (e.g. one Cassandra keyspace).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "store/defer_store.h"

namespace prosody::store::testing {

struct DeferStoreFactory {
  std::string name;
  std::function<DeferStores()> make;
  // Tests this backend cannot pass by design: test name -> reason, printed
  // as the skip message.
  std::map<std::string, std::string> skipped = {};
};

inline std::ostream& operator<<(std::ostream& os, const DeferStoreFactory& f) { return os << f.name; }

class DeferStoreContract : public ::testing::TestWithParam<DeferStoreFactory> {
 protected:
  void SetUp() override {
    std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    test = test.substr(0, test.find('/'));
    if (auto it = GetParam().skipped.find(test); it != GetParam().skipped.end()) {
      GTEST_SKIP() << GetParam().name << ": " << it->second;
    }
    stores_ = GetParam().make();
    if (IsSkipped()) return;  // the factory may skip (e.g. its server is not configured)
    ASSERT_NE(stores_.messages, nullptr);
    ASSERT_NE(stores_.timers, nullptr);
  }
  // A segment no other test touches.
  DeferSegment segment(int partition = 3) const;

  DeferStores stores_;
};

}  // namespace prosody::store::testing
