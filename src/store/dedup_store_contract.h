// The contract every dedup store backend must meet, as a value-parameterised
// gtest suite. A backend's test file instantiates it with a factory that
// builds a store with a given TTL and says how to move that store's time:
//
//   INSTANTIATE_TEST_SUITE_P(Cassandra, DedupStoreContract,
//       ::testing::Values(DedupStoreFactory{"cassandra", make, std::chrono::seconds(4)}));
//
// Backends on the injected Clock advance a ManualClock (no sleeping);
// Cassandra expires rows by server time, so its factory sleeps, and uses a
// short TTL to keep that brief. Every test uses fresh random ids, so a
// factory may return stores sharing one table.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "store/dedup_store.h"

namespace prosody::store::testing {

struct DedupBackend {
  std::shared_ptr<DedupStore> store;
  // Moves the store's notion of time forward by at least `d`.
  std::function<void(std::chrono::milliseconds d)> advance;
};

struct DedupStoreFactory {
  std::string name;
  std::function<DedupBackend(std::chrono::seconds ttl)> make;
  // The TTL the expiry tests use (>= 4 s for server-side expiry with
  // one-second resolution).
  std::chrono::seconds ttl{600};
  // Tests this backend cannot pass by design: test name -> reason.
  std::map<std::string, std::string> skipped = {};
};

inline std::ostream& operator<<(std::ostream& os, const DedupStoreFactory& f) { return os << f.name; }

class DedupStoreContract : public ::testing::TestWithParam<DedupStoreFactory> {
 protected:
  void SetUp() override;

  DedupStore& store() { return *backend_.store; }
  void advance(std::chrono::milliseconds d) { backend_.advance(d); }
  std::chrono::milliseconds ttl() const { return GetParam().ttl; }

  DedupBackend backend_;
};

// A random id (tests; the contract's ids never collide across runs).
DedupId random_dedup_id();

}  // namespace prosody::store::testing
