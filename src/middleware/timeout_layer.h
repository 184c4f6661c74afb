// Timeout: starts the handler's clock in the worker's invocation slot; the
// engine's poll thread cancels the handler's stop_token when it runs longer
// than `timeout` (CancelReason::timeout). Cancellation is cooperative: the
// call is still awaited, a handler that swallows it and returns ok counts as
// a success, and one that ignores it keeps its key busy (logged, counted,
// and reported by is_stalled() past stall_threshold).
//
// Thread safety: any thread; touches only the calling worker's slot.
#pragma once

#include "engine/invocation_slot.h"
#include "middleware/layer.h"
#include "prosody/clock.h"

namespace prosody::middleware {

class TimeoutLayer final : public Layer {
 public:
  explicit TimeoutLayer(std::shared_ptr<Clock> clock) : clock_(std::move(clock)) {}
  Status handle(Invocation& inv, const Next& next) const override {
    const auto start = inv.permit_granted_at ? *inv.permit_granted_at : clock_->now();
    inv.slot->begin(inv.tpk.key, *inv.partition, inv.handler_attempts, start);
    Status result = next(inv);
    inv.slot->end();
    return result;
  }
  std::string_view name() const override { return "timeout"; }

 private:
  const std::shared_ptr<Clock> clock_;
};

}  // namespace prosody::middleware
