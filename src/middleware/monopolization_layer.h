// Monopolization (pipeline): a key whose handlers took more than
// monopolization_threshold of the last monopolization_window is refused
// with a transient error before its handler runs, so the outer layers back
// it off (and, with deferral, park it) instead of letting it hog workers.
// Telemetry (innermost) feeds the detector with handler start/end times.
//
// Thread safety: any thread (the detector is thread-safe).
#pragma once

#include "middleware/layer.h"
#include "middleware/monopolization_detector.h"
#include "prosody/clock.h"

namespace prosody::middleware {

class MonopolizationLayer final : public Layer {
 public:
  MonopolizationLayer(MonopolizationDetector& detector, std::shared_ptr<Clock> clock, std::function<void()> on_refused)
      : detector_(detector), clock_(std::move(clock)), on_refused_(std::move(on_refused)) {}
  Status handle(Invocation& inv, const Next& next) const override {
    if (auto s = detector_.check(inv.tpk, clock_->now()); !s) {
      if (on_refused_) on_refused_();
      return s;
    }
    return next(inv);
  }
  std::string_view name() const override { return "monopolization"; }

 private:
  MonopolizationDetector& detector_;
  const std::shared_ptr<Clock> clock_;
  const std::function<void()> on_refused_;
};

}  // namespace prosody::middleware
