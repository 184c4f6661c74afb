#include "store/timer_store.h"

#include <fmt/format.h>

namespace prosody::store {

std::string TimerSegment::name() const { return fmt::format("{}:{}/{}", group, topic, partition.value()); }

SlabId TimerSegment::slab_of(EpochSeconds t) const {
  // Floor division: times are never negative in practice, but a floor keeps
  // slab boundaries correct if they ever are.
  SlabId q = t / slab_size_seconds;
  if (t % slab_size_seconds != 0 && t < 0) --q;
  return q;
}

}  // namespace prosody::store
