// Cancellation: an event whose partition has given up on unstarted work
// (drain budget of a revoke/shutdown spent, partition lost or halted) is not
// started; it returns a transient shut_down error and is left uncommitted
// for the partition's next owner. (Prosody's "Shutdown" layer; unlike
// Prosody, events queued when a revoke begins still run within the budget,
// so the next owner redoes nothing.)
//
// Thread safety: stateless; any thread.
#pragma once

#include "middleware/layer.h"

namespace prosody::middleware {

class CancellationLayer final : public Layer {
 public:
  Status handle(Invocation& inv, const Next& next) const override {
    if (inv.abandon.stop_requested()) {
      return Error::transient(inv.shutting_down && inv.shutting_down->load() ? "consumer shutting down"
                                                                             : "partition revoked",
                              ErrorCode::shut_down);
    }
    return next(inv);
  }
  std::string_view name() const override { return "cancellation"; }
};

}  // namespace prosody::middleware
