#include "middleware/defer_timer.h"

#include "engine/invocation_slot.h"
#include "engine/partition_state.h"
#include "timers/partition_timers.h"
#include "timers/timer_service.h"

namespace prosody::middleware {

Status schedule_defer_timer(Invocation& inv, TimerType type, const Clock& clock, std::chrono::milliseconds delay) {
  const auto at = clock.system_now() + delay;
  const auto secs = std::chrono::ceil<std::chrono::seconds>(at.time_since_epoch()).count();
  auto s = inv.partition->timers->schedule(inv.tpk.key, type, secs);
  if (s && inv.slot && inv.slot->timer_service) inv.slot->timer_service->notify_scheduled(secs);
  return s;
}

}  // namespace prosody::middleware
