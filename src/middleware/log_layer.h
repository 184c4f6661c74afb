// Log (best-effort mode): a failed event is logged and counts as done;
// only a terminal error still stops the partition, and an event cut short
// by revoke/shutdown is still left for redelivery.
//
// Thread safety: stateless; any thread.
#pragma once

#include "middleware/layer.h"

namespace spdlog {
class logger;
}

namespace prosody::middleware {

class LogLayer final : public Layer {
 public:
  LogLayer();
  Status handle(Invocation& inv, const Next& next) const override;
  std::string_view name() const override { return "log"; }

 private:
  const std::shared_ptr<spdlog::logger> log_;
};

}  // namespace prosody::middleware
