// Scheduler: takes one of max_concurrency permits from the fair scheduler
// for the inner call (Normal class on a first attempt, Failure on retries)
// and holds it until the handler returns; the handler's time is charged to
// its key and class. Waiting is cut short when the partition abandons
// unstarted work (a transient shut_down error: left for redelivery).
//
// Thread safety: any thread (FairScheduler is thread-safe).
#pragma once

#include "middleware/layer.h"

namespace prosody::middleware {

class SchedulerLayer final : public Layer {
 public:
  explicit SchedulerLayer(FairScheduler& scheduler) : scheduler_(scheduler) {}
  Status handle(Invocation& inv, const Next& next) const override {
    auto permit = scheduler_.acquire(ScheduleRequest{inv.tpk, inv.demand, std::nullopt}, inv.abandon);
    if (!permit) return Error::transient("cancelled while waiting for a handler slot", ErrorCode::shut_down);
    // A permit that waited was granted by another thread before this one
    // woke: its grant time is not "now" here, so the inner layers read the
    // clock themselves.
    if (permit->immediate()) inv.permit_granted_at = permit->granted_at();
    inv.handler_ended_at.reset();
    Status result = next(inv);
    inv.permit_granted_at.reset();
    // Charged up to the handler's end as the telemetry layer read it (or,
    // had it not run, up to now when the permit goes).
    if (inv.handler_ended_at) permit->release_at(*inv.handler_ended_at);
    return result;
  }
  std::string_view name() const override { return "scheduler"; }

 private:
  FairScheduler& scheduler_;
};

}  // namespace prosody::middleware
