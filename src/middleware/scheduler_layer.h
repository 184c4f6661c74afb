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
    return next(inv);  // the permit is released (and charged) on return
  }
  std::string_view name() const override { return "scheduler"; }

 private:
  FairScheduler& scheduler_;
};

}  // namespace prosody::middleware
