#include "middleware/retry_layer.h"

#include <random>

#include <spdlog/spdlog.h>

#include "prosody/logging.h"

namespace prosody::middleware {

RetryLayer::RetryLayer(engine::BackoffPolicy policy, std::optional<int> max_retries, std::shared_ptr<Clock> clock,
                       std::string_view name)
    : policy_(policy), max_retries_(max_retries), clock_(std::move(clock)), name_(name), log_(prosody::logger()) {}

Status RetryLayer::handle(Invocation& inv, const Next& next) const {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  for (int retry = 0;; ++retry) {
    Status result = next(inv);
    if (result.ok() || !result.error().is_transient()) return result;
    if (max_retries_ && retry >= *max_retries_) return result;
    if (inv.stopping()) return result;  // left for the partition's next owner
    log_->warn("{}: transient error on attempt {}, retrying: {}", inv.describe(), retry + 1,
               result.error().message());
    clock_->sleep_for(policy_.delay(retry, rng), inv.stop);
    if (inv.stopping()) return result;
    inv.demand = DemandClass::failure;
  }
}

}  // namespace prosody::middleware
