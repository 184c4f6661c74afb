// Telemetry (innermost): observes each handler call — its start and end
// feed the monopolization detector, its outcome feeds the failure-rate
// tracker (the deferral gate) and the consumer's counters. Innermost, so
// time spent waiting for a scheduler permit is not counted as handler time.
//
// Thread safety: any thread (detector, tracker and counters are).
#pragma once

#include <functional>

#include "middleware/failure_tracker.h"
#include "middleware/layer.h"
#include "middleware/monopolization_detector.h"
#include "prosody/clock.h"

namespace prosody::middleware {

class TelemetryLayer final : public Layer {
 public:
  struct Sinks {
    MonopolizationDetector* monopolization = nullptr;  // null when disabled
    FailureTracker* failures = nullptr;
    std::function<void(const Invocation&, const Status&)> on_outcome;
  };
  TelemetryLayer(Sinks sinks, std::shared_ptr<Clock> clock) : sinks_(std::move(sinks)), clock_(std::move(clock)) {}

  Status handle(Invocation& inv, const Next& next) const override {
    const auto start = inv.permit_granted_at ? *inv.permit_granted_at : clock_->now();
    if (sinks_.monopolization) sinks_.monopolization->on_invoked(inv.tpk, start);
    ++inv.handler_attempts;
    Status result = next(inv);
    const auto end = clock_->now();
    inv.handler_ended_at = end;
    if (sinks_.monopolization) sinks_.monopolization->on_completed(inv.tpk, end);
    if (sinks_.failures && inv.kind == EventKind::message) {
      if (result.ok()) {
        sinks_.failures->record_success(end);
      } else {
        sinks_.failures->record_failure(end);
      }
    }
    if (sinks_.on_outcome) sinks_.on_outcome(inv, result);
    return result;
  }
  std::string_view name() const override { return "telemetry"; }

 private:
  const Sinks sinks_;
  const std::shared_ptr<Clock> clock_;
};

}  // namespace prosody::middleware
