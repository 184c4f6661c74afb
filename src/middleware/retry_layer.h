// Retry: runs the inner stack again after a transient error, with
// exponential backoff and full jitter (retry_base, max_retry_delay), until it
// succeeds, the error is not transient, `max_attempts` is reached, or the
// partition is going away (revoke/shutdown cut the wait short and the last
// error is returned, so the event is left for redelivery). Attempts after
// the first ask the scheduler for the Failure class.
//
// Thread safety: stateless apart from the options; any thread.
#pragma once

#include <memory>
#include <optional>

#include "engine/backoff.h"
#include "middleware/layer.h"
#include "prosody/clock.h"

namespace spdlog {
class logger;
}

namespace prosody::middleware {

class RetryLayer final : public Layer {
 public:
  // max_retries: nullopt retries forever.
  RetryLayer(engine::BackoffPolicy policy, std::optional<int> max_retries, std::shared_ptr<Clock> clock,
             std::string_view name = "retry");
  Status handle(Invocation& inv, const Next& next) const override;
  std::string_view name() const override { return name_; }

 private:
  const engine::BackoffPolicy policy_;
  const std::optional<int> max_retries_;
  const std::shared_ptr<Clock> clock_;
  const std::string_view name_;
  const std::shared_ptr<spdlog::logger> log_;
};

}  // namespace prosody::middleware
