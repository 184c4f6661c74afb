// Scheduling the internal retry timer of a defer queue (DeferredMessage or
// DeferredTimer), shared by MessageDefer and TimerDefer.
//
// The retry time is rounded *up* to whole seconds (timer precision), so a
// retry never fires before its backoff has passed. Rescheduling the timer
// that is firing right now is safe: the partition's timers mark it
// "rescheduled" and its completion does not delete the new one.
//
// Thread safety: as PartitionTimers (any thread); called from a worker
// running one of the key's events.
#pragma once

#include <chrono>

#include "middleware/layer.h"
#include "prosody/clock.h"
#include "prosody/timer.h"

namespace prosody::middleware {

Status schedule_defer_timer(Invocation& inv, TimerType type, const Clock& clock, std::chrono::milliseconds delay);

}  // namespace prosody::middleware
