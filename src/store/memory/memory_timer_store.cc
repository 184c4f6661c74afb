#include "store/memory/memory_timer_store.h"

#include <algorithm>
#include <tuple>

namespace prosody::store {
namespace {

template <typename E>
bool entry_less(const E& e, TimerType type, EpochSeconds time) {
  return std::tie(e.type, e.time) < std::tie(type, time);
}

}  // namespace

Status MemoryTimerStore::upsert(const TimerSegment& segment, const StoredTimer& timer) {
  std::lock_guard l(mutex_);
  auto& timers = segments_[segment.name()][timer.key];
  auto it = std::lower_bound(timers.begin(), timers.end(), 0, [&](const Entry& e, int) {
    return entry_less(e, timer.type, timer.time);
  });
  auto span = timer.span.empty() ? nullptr : std::make_unique<SpanContext>(timer.span);
  if (it != timers.end() && it->type == timer.type && it->time == timer.time) {
    it->span = std::move(span);
  } else {
    timers.insert(it, Entry{timer.time, std::move(span), timer.type});
  }
  return ok_status();
}

Status MemoryTimerStore::remove(const TimerSegment& segment, const Key& key, TimerType type, EpochSeconds time) {
  std::lock_guard l(mutex_);
  auto seg = segments_.find(segment.name());
  if (seg == segments_.end()) return ok_status();
  auto k = seg->second.find(key);
  if (k == seg->second.end()) return ok_status();
  auto& timers = k->second;
  std::erase_if(timers, [&](const Entry& e) { return e.type == type && e.time == time; });
  if (timers.empty()) seg->second.erase(k);
  return ok_status();
}

Status MemoryTimerStore::remove_all(const TimerSegment& segment, const Key& key, TimerType type) {
  std::lock_guard l(mutex_);
  auto seg = segments_.find(segment.name());
  if (seg == segments_.end()) return ok_status();
  auto k = seg->second.find(key);
  if (k == seg->second.end()) return ok_status();
  std::erase_if(k->second, [&](const Entry& e) { return e.type == type; });
  if (k->second.empty()) seg->second.erase(k);
  return ok_status();
}

Result<std::vector<EpochSeconds>> MemoryTimerStore::times(const TimerSegment& segment, const Key& key, TimerType type) {
  std::lock_guard l(mutex_);
  std::vector<EpochSeconds> out;
  auto seg = segments_.find(segment.name());
  if (seg == segments_.end()) return out;
  auto k = seg->second.find(key);
  if (k == seg->second.end()) return out;
  for (const auto& e : k->second) {
    if (e.type == type) out.push_back(e.time);
  }
  return out;  // entries are sorted by (type, time)
}

Result<std::vector<StoredTimer>> MemoryTimerStore::load_slabs(const TimerSegment& segment, SlabId first, SlabId last) {
  std::vector<StoredTimer> out;
  {
    std::lock_guard l(mutex_);
    auto seg = segments_.find(segment.name());
    if (seg == segments_.end()) return out;
    for (const auto& [key, timers] : seg->second) {
      for (const auto& e : timers) {
        const SlabId slab = segment.slab_of(e.time);
        if (slab < first || slab > last) continue;
        out.push_back(StoredTimer{key, e.type, e.time, e.span ? *e.span : SpanContext{}});
      }
    }
  }
  std::sort(out.begin(), out.end(), [](const StoredTimer& a, const StoredTimer& b) {
    return std::tie(a.time, a.key, a.type) < std::tie(b.time, b.key, b.type);
  });
  return out;
}

std::size_t MemoryTimerStore::size() const {
  std::lock_guard l(mutex_);
  std::size_t n = 0;
  for (const auto& [name, seg] : segments_) {
    for (const auto& [key, timers] : seg) n += timers.size();
  }
  return n;
}

}  // namespace prosody::store
