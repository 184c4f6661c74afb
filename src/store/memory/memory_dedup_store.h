// In-memory dedup store: mock mode and tests. Nothing survives the process.
//
// A hash map id -> expiry on the injected Clock's steady time. Expired ids
// are ignored by contains() and swept out by record() once per TTL/4 of
// clock time, so the map holds at most about 1.25 TTLs' worth of ids.
//
// Thread safety: any thread; one mutex guards everything.
#pragma once

#include <memory>
#include <mutex>
#include <unordered_map>

#include "prosody/clock.h"
#include "store/dedup_store.h"

namespace prosody::store {

class MemoryDedupStore final : public DedupStore {
 public:
  // `clock`: null = the system clock.
  explicit MemoryDedupStore(std::chrono::seconds ttl, std::shared_ptr<Clock> clock = nullptr);

  Result<bool> contains(const DedupId& id) override;
  Status record(const DedupId& id) override;
  std::chrono::seconds ttl() const override { return ttl_; }
  std::string describe() const override { return "memory"; }

  // Ids held, expired or not (tests).
  std::size_t size() const;

 private:
  void sweep_locked(Clock::steady_time now);

  const std::chrono::seconds ttl_;
  const std::shared_ptr<Clock> clock_;
  mutable std::mutex mutex_;
  std::unordered_map<DedupId, Clock::steady_time, DedupIdHash> expiry_;  // guarded
  Clock::steady_time next_sweep_;                                        // guarded
};

}  // namespace prosody::store
