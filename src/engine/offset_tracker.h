// Tracks the offsets of one partition that were taken from Kafka and not yet
// committed, and computes the commit position: the highest offset below which
// every taken record is done, plus one.
//
// Offsets are taken in increasing order (Kafka delivers a partition in
// order); gaps (compaction, transaction markers) are fine. Completion may
// happen in any order. A record that is never completed (terminal error,
// revoked mid-flight) freezes the position: the record is not committed and
// the next owner gets it again.
//
// Thread safety: none; the owning PartitionState serialises access.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>

#include "prosody/types.h"

namespace prosody::engine {

class OffsetTracker {
 public:
  using time_point = std::chrono::steady_clock::time_point;

  // Records `offset` as in flight. Returns false (and ignores it) if the
  // offset is not greater than every offset taken before.
  bool take(Offset offset, time_point now);

  // Marks `offset` done. Returns true if the commit position advanced.
  // Completing an unknown or already-committed offset returns false.
  bool complete(Offset offset);

  // The offset to commit (next record to read), if any record completed.
  std::optional<Offset> commit_position() const { return commit_position_; }

  // Taken records not yet below the commit position (done or not).
  std::size_t uncommitted() const { return entries_.size(); }

  // When the oldest still-uncommitted record was taken.
  std::optional<time_point> oldest_uncommitted_since() const;

  std::optional<Offset> last_taken() const { return last_taken_; }

 private:
  struct Entry {
    std::int64_t offset;
    time_point taken_at;
    bool done;
  };
  std::deque<Entry> entries_;
  std::optional<Offset> commit_position_;
  std::optional<Offset> last_taken_;
};

}  // namespace prosody::engine
