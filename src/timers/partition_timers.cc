#include "timers/partition_timers.h"

#include <limits>

namespace prosody::timers {

bool PartitionTimers::in_window_locked(EpochSeconds time) const {
  if (owned_until_ && time < *owned_until_) return true;
  return loading_until_ && time < *loading_until_;
}

void PartitionTimers::remember_removal_locked(const Id& id) {
  if (loading_until_ && std::get<0>(id) < *loading_until_) removed_while_loading_.insert(id);
}

void PartitionTimers::insert_locked(const Id& id, const SpanContext& span) {
  removed_while_loading_.erase(id);
  auto [it, inserted] = timers_.try_emplace(id, Entry{State::scheduled, span});
  if (inserted) return;
  it->second.span = span;
  // Scheduling a running timer again: keep it after this run (fires again).
  if (it->second.state == State::fired) it->second.state = State::fired_rescheduled;
}

Status PartitionTimers::schedule(const Key& key, TimerType type, EpochSeconds time, const SpanContext& span) {
  if (auto s = store_->upsert(segment_, store::StoredTimer{key, type, time, span}); !s) return s;
  std::lock_guard l(mutex_);
  if (in_window_locked(time)) insert_locked(Id{time, key, type}, span);
  return ok_status();
}

Status PartitionTimers::remove_others(const Key& key, TimerType type, std::optional<EpochSeconds> keep) {
  auto times = store_->times(segment_, key, type);
  if (!times) return times.error();
  for (EpochSeconds t : *times) {
    if (keep && t == *keep) continue;
    if (auto s = unschedule(key, type, t); !s) return s;
  }
  return ok_status();
}

Status PartitionTimers::clear_and_schedule(const Key& key, TimerType type, EpochSeconds time,
                                           const SpanContext& span) {
  // New first, then the old ones: a failure in between leaves one timer too
  // many (visible through scheduled()), never none.
  if (auto s = schedule(key, type, time, span); !s) return s;
  return remove_others(key, type, time);
}

Status PartitionTimers::unschedule(const Key& key, TimerType type, EpochSeconds time) {
  if (auto s = store_->remove(segment_, key, type, time); !s) return s;
  std::lock_guard l(mutex_);
  const Id id{time, key, type};
  timers_.erase(id);
  remember_removal_locked(id);
  return ok_status();
}

Status PartitionTimers::clear(const Key& key, TimerType type) { return remove_others(key, type, std::nullopt); }

Result<std::vector<EpochSeconds>> PartitionTimers::scheduled(const Key& key, TimerType type) const {
  return store_->times(segment_, key, type);
}

Status PartitionTimers::load_through(EpochSeconds horizon) {
  store::SlabId first;
  const store::SlabId last = segment_.slab_of(horizon);
  {
    std::lock_guard l(mutex_);
    if (loading_until_) return ok_status();  // another load is running
    first = owned_until_ ? segment_.slab_of(*owned_until_) : std::numeric_limits<store::SlabId>::min();
    if (owned_until_ && last < first) return ok_status();  // already in memory
    loading_until_ = segment_.slab_start(last + 1);
    removed_while_loading_.clear();
  }
  auto rows = store_->load_slabs(segment_, first, last);
  std::lock_guard l(mutex_);
  if (!rows) {
    loading_until_.reset();
    removed_while_loading_.clear();
    return rows.error();
  }
  for (auto& row : *rows) {
    Id id{row.time, std::move(row.key), row.type};
    if (removed_while_loading_.contains(id)) continue;
    timers_.try_emplace(std::move(id), Entry{State::scheduled, std::move(row.span)});
  }
  owned_until_ = loading_until_;
  loading_until_.reset();
  removed_while_loading_.clear();
  return ok_status();
}

std::optional<EpochSeconds> PartitionTimers::owned_until() const {
  std::lock_guard l(mutex_);
  return owned_until_;
}

std::vector<DueTimer> PartitionTimers::take_due(EpochSeconds now) {
  std::vector<DueTimer> out;
  std::lock_guard l(mutex_);
  for (auto it = timers_.begin(); it != timers_.end() && std::get<0>(it->first) <= now; ++it) {
    if (outstanding_ >= max_outstanding_) break;
    if (it->second.state != State::scheduled) continue;
    it->second.state = State::fired;
    ++outstanding_;
    const auto& [time, key, type] = it->first;
    out.push_back(DueTimer{key, time, type, it->second.span});
  }
  return out;
}

std::optional<EpochSeconds> PartitionTimers::next_due() const {
  std::lock_guard l(mutex_);
  for (const auto& [id, entry] : timers_) {
    if (entry.state == State::scheduled) return std::get<0>(id);
  }
  return std::nullopt;
}

bool PartitionTimers::begin(const DueTimer& timer) {
  std::lock_guard l(mutex_);
  if (timers_.contains(Id{timer.time, timer.key, timer.type})) return true;
  --outstanding_;  // unscheduled since it fired: this run ends here
  return false;
}

Status PartitionTimers::complete(const DueTimer& timer) {
  {
    std::lock_guard l(mutex_);
    --outstanding_;
    auto it = timers_.find(Id{timer.time, timer.key, timer.type});
    if (it == timers_.end()) return ok_status();  // unscheduled while running: already gone from the store
    if (it->second.state == State::fired_rescheduled) {
      it->second.state = State::scheduled;
      return ok_status();
    }
    timers_.erase(it);
  }
  auto s = store_->remove(segment_, timer.key, timer.type, timer.time);
  if (!s) {
    std::lock_guard l(mutex_);
    failed_deletes_.push_back(timer);
  }
  return s;
}

void PartitionTimers::abandon(const DueTimer& timer) {
  std::lock_guard l(mutex_);
  --outstanding_;
  timers_.erase(Id{timer.time, timer.key, timer.type});
}

std::size_t PartitionTimers::retry_deletes() {
  std::vector<DueTimer> pending;
  {
    std::lock_guard l(mutex_);
    pending.swap(failed_deletes_);
  }
  std::vector<DueTimer> still;
  for (auto& t : pending) {
    if (!store_->remove(segment_, t.key, t.type, t.time)) still.push_back(std::move(t));
  }
  std::lock_guard l(mutex_);
  for (auto& t : still) failed_deletes_.push_back(std::move(t));
  return failed_deletes_.size();
}

std::size_t PartitionTimers::in_memory() const {
  std::lock_guard l(mutex_);
  return timers_.size();
}

std::size_t PartitionTimers::outstanding() const {
  std::lock_guard l(mutex_);
  return outstanding_;
}

}  // namespace prosody::timers
