#include "store/memory/memory_dedup_store.h"

namespace prosody::store {

MemoryDedupStore::MemoryDedupStore(std::chrono::seconds ttl, std::shared_ptr<Clock> clock)
    : ttl_(ttl), clock_(clock ? std::move(clock) : system_clock()), next_sweep_(clock_->now() + ttl_ / 4) {}

Result<bool> MemoryDedupStore::contains(const DedupId& id) {
  const auto now = clock_->now();
  std::lock_guard l(mutex_);
  auto it = expiry_.find(id);
  return it != expiry_.end() && now < it->second;
}

Status MemoryDedupStore::record(const DedupId& id) {
  const auto now = clock_->now();
  std::lock_guard l(mutex_);
  if (now >= next_sweep_) sweep_locked(now);
  expiry_.insert_or_assign(id, now + ttl_);
  return ok_status();
}

void MemoryDedupStore::sweep_locked(Clock::steady_time now) {
  std::erase_if(expiry_, [&](const auto& e) { return e.second <= now; });
  next_sweep_ = now + ttl_ / 4;
}

std::size_t MemoryDedupStore::size() const {
  std::lock_guard l(mutex_);
  return expiry_.size();
}

}  // namespace prosody::store
