#include "middleware/log_layer.h"

#include <spdlog/spdlog.h>

#include "prosody/logging.h"

namespace prosody::middleware {

LogLayer::LogLayer() : log_(prosody::logger()) {}

Status LogLayer::handle(Invocation& inv, const Next& next) const {
  Status result = next(inv);
  if (result.ok() || result.error().is_terminal()) return result;
  if (result.error().is_transient() && inv.stopping()) return result;
  log_->warn("{}: {} error (best effort, not retried): {}", inv.describe(), to_string(result.error().error_class()),
             result.error().message());
  return ok_status();
}

}  // namespace prosody::middleware
