#include "engine/offset_tracker.h"

#include <algorithm>

namespace prosody::engine {

bool OffsetTracker::take(Offset offset, time_point now) {
  if (last_taken_ && offset <= *last_taken_) return false;
  entries_.push_back(Entry{offset.value(), now, false});
  last_taken_ = offset;
  return true;
}

bool OffsetTracker::complete(Offset offset) {
  // Entries are sorted by offset, so a binary search finds the slot.
  auto it = std::lower_bound(entries_.begin(), entries_.end(), offset.value(),
                             [](const Entry& e, std::int64_t o) { return e.offset < o; });
  if (it == entries_.end() || it->offset != offset.value() || it->done) return false;
  it->done = true;
  if (it != entries_.begin()) return false;
  std::int64_t last_done = -1;
  while (!entries_.empty() && entries_.front().done) {
    last_done = entries_.front().offset;
    entries_.pop_front();
  }
  commit_position_ = Offset{last_done + 1};
  return true;
}

std::optional<OffsetTracker::time_point> OffsetTracker::oldest_uncommitted_since() const {
  for (const auto& e : entries_) {
    if (!e.done) return e.taken_at;
  }
  return std::nullopt;
}

}  // namespace prosody::engine
