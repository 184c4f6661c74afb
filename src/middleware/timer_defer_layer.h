// TimerDefer (pipeline): an application timer that keeps failing
// transiently is parked so the partition's other keys keep flowing, as
// MessageDefer does for messages (reference/prosody-internals.md §2c).
//
// - An application timer of a key that already has a timer defer queue is
//   appended to it (with its time and span context) and counts as done: it
//   runs after the key's earlier deferred timers, never overtaking them.
// - Otherwise the timer runs; on a transient error, if deferral is enabled
//   and the consumer-wide failure rate allows it, a DeferredTimer retry
//   timer is scheduled for the key *first* and the timer appended *second*
//   (a crash between the two leaves a retry timer with nothing to do, never
//   a parked timer without a retry), and the firing counts as done.
// - When the key's DeferredTimer fires, the queue head is run through the
//   inner stack as a Failure-class retry of the original application timer
//   (the whole trigger is stored, so nothing is reloaded): success or a
//   permanent error pops it and schedules the next head at once; a
//   transient error bumps the retry count and reschedules after
//   DeferBackoff. A DeferredTimer with an empty queue is an orphan (the
//   queue was cleared by the handler) and is dropped.
//
// Messages and DeferredMessage timers pass straight through: the message
// and timer queues are independent (a key may be deferred in one only).
// Context sees the queue too (src/engine/context.cc): scheduled() reports a
// key's deferred times, unschedule/clear remove them.
//
// Thread safety: any thread; all state lives in the store, the timers and
// the Invocation. A key's events are serialised by the engine.
#pragma once

#include <functional>
#include <memory>

#include "middleware/defer_backoff.h"
#include "middleware/failure_tracker.h"
#include "middleware/layer.h"
#include "prosody/clock.h"
#include "store/defer_store.h"

namespace spdlog {
class logger;
}

namespace prosody::middleware {

class TimerDeferLayer final : public Layer {
 public:
  struct Options {
    bool enabled = true;  // defer_enabled: new deferrals (queued keys always drain)
    DeferBackoff backoff;
    std::string group_id;
  };
  TimerDeferLayer(Options options, std::shared_ptr<store::TimerDeferStore> store, FailureTracker& failures,
                  std::shared_ptr<Clock> clock, std::function<void()> on_deferred);

  Status handle(Invocation& inv, const Next& next) const override;
  std::string_view name() const override { return "timer_defer"; }

 private:
  Status defer_or_run(Invocation& inv, const Next& next) const;
  Status retry_head(Invocation& inv, const Next& next) const;
  Status advance(Invocation& inv, const store::DeferSegment& seg, const store::TimerDeferStore::Head& head) const;
  store::DeferSegment segment(const Invocation& inv) const;

  const Options options_;
  const std::shared_ptr<store::TimerDeferStore> store_;
  FailureTracker& failures_;
  const std::shared_ptr<Clock> clock_;
  const std::function<void()> on_deferred_;
  const std::shared_ptr<spdlog::logger> log_;
};

}  // namespace prosody::middleware
