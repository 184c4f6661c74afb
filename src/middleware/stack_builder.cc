#include "middleware/stack_builder.h"

#include "middleware/cancellation_layer.h"
#include "middleware/failure_topic_layer.h"
#include "middleware/log_layer.h"
#include "middleware/monopolization_layer.h"
#include "middleware/retry_layer.h"
#include "middleware/scheduler_layer.h"
#include "middleware/telemetry_layer.h"
#include "middleware/timer_defer_layer.h"
#include "middleware/timeout_layer.h"

namespace prosody::middleware {

Result<std::unique_ptr<Stack>> build_stack(StackParts parts) {
  if (!parts.scheduler || !parts.clock || !parts.innermost) {
    return Error::permanent("middleware stack needs a scheduler, a clock and a handler", ErrorCode::invalid_state);
  }
  std::vector<std::unique_ptr<Layer>> layers;
  switch (parts.mode) {
    case Mode::pipeline:
      // The outer Retry is the event boundary: transient errors are retried
      // until they succeed (or the partition goes away).
      layers.push_back(std::make_unique<RetryLayer>(parts.retry, std::nullopt, parts.clock));
      // Inside the outer Retry, so a store that cannot answer holds the key
      // until it can; outside MessageDefer, so a parked message counts as
      // handled and its redelivery is not parked twice.
      if (parts.dedup_store && parts.dedup.cache_size > 0) {
        layers.push_back(std::make_unique<DedupLayer>(std::move(parts.dedup), std::move(parts.dedup_store),
                                                      std::move(parts.dedup_sinks)));
      }
      if (parts.defer_messages && parts.defer_loader && parts.failures) {
        layers.push_back(std::make_unique<MessageDeferLayer>(parts.defer, parts.defer_messages, parts.defer_loader,
                                                             *parts.failures, parts.clock, parts.on_deferred));
      }
      if (parts.defer_timers && parts.failures) {
        layers.push_back(std::make_unique<TimerDeferLayer>(
            TimerDeferLayer::Options{parts.defer.enabled, parts.defer.backoff, parts.defer.group_id},
            parts.defer_timers, *parts.failures, parts.clock, parts.on_deferred));
      }
      if (parts.monopolization) {
        layers.push_back(
            std::make_unique<MonopolizationLayer>(*parts.monopolization, parts.clock, parts.on_monopolized));
      }
      break;
    case Mode::low_latency:
      if (!parts.failure_producer || !parts.failure_topic) {
        return Error::permanent("low_latency mode needs failure_topic (PROSODY_FAILURE_TOPIC)",
                                ErrorCode::invalid_config);
      }
      layers.push_back(std::make_unique<RetryLayer>(parts.retry, std::nullopt, parts.clock, "retry(failure-topic)"));
      layers.push_back(std::make_unique<FailureTopicLayer>(*parts.failure_producer, *parts.failure_topic,
                                                           parts.group_id, parts.on_dead_lettered));
      layers.push_back(std::make_unique<RetryLayer>(parts.retry, parts.max_retries, parts.clock, "retry(capped)"));
      break;
    case Mode::best_effort:
      layers.push_back(std::make_unique<LogLayer>());
      break;
  }
  layers.push_back(std::make_unique<CancellationLayer>());
  layers.push_back(std::make_unique<SchedulerLayer>(*parts.scheduler));
  layers.push_back(std::make_unique<TimeoutLayer>(parts.clock));
  layers.push_back(std::make_unique<TelemetryLayer>(
      TelemetryLayer::Sinks{parts.monopolization, parts.failures, parts.on_outcome}, parts.clock));
  return std::make_unique<Stack>(std::move(layers), std::move(parts.innermost));
}

}  // namespace prosody::middleware
