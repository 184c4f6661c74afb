// Assembles the middleware stack of each mode, outermost first, in
// Prosody's order (reference/prosody-internals.md §1):
//   pipeline    Retry(∞) → Dedup → MessageDefer → TimerDefer → Monopolization
//               → Cancellation → Scheduler → Timeout → Telemetry → handler
//   low_latency Retry(∞, failure-topic writes) → FailureTopic → Retry(max_retries)
//               → Cancellation → Scheduler → Timeout → Telemetry → handler
//   best_effort Log → Cancellation → Scheduler → Timeout → Telemetry → handler
// Dedup is left out when no dedup store is given or the cache size is 0
// (Prosody: idempotence_cache_size 0 disables deduplication).
// Monopolization is left out when disabled; MessageDefer when no defer
// store/loader is given; TimerDefer when no timer defer store is given.
//
// Thread safety: build once; the Stack is then shared read-only.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "engine/backoff.h"
#include "middleware/dedup_layer.h"
#include "middleware/failure_tracker.h"
#include "middleware/fair_scheduler.h"
#include "middleware/layer.h"
#include "middleware/message_defer_layer.h"
#include "middleware/monopolization_detector.h"
#include "prosody/config.h"
#include "prosody/producer.h"

namespace prosody::middleware {

struct StackParts {
  Mode mode = Mode::pipeline;
  engine::BackoffPolicy retry;
  int max_retries = 3;
  std::shared_ptr<Clock> clock;
  FairScheduler* scheduler = nullptr;
  MonopolizationDetector* monopolization = nullptr;  // null: layer omitted
  FailureTracker* failures = nullptr;
  Producer* failure_producer = nullptr;  // low_latency
  std::optional<std::string> failure_topic;
  std::string group_id;
  std::function<void()> on_dead_lettered;
  std::function<void()> on_monopolized;
  std::function<void(const Invocation&, const Status&)> on_outcome;
  std::shared_ptr<Innermost> innermost;
  // Deferral (pipeline): both set, or the layer is left out.
  std::shared_ptr<store::MessageDeferStore> defer_messages;
  std::shared_ptr<DeferLoader> defer_loader;
  MessageDeferLayer::Options defer;  // enabled, backoff and group also drive TimerDefer
  // Timer deferral (pipeline): set, or the layer is left out.
  std::shared_ptr<store::TimerDeferStore> defer_timers;
  std::function<void()> on_deferred;
  // Deduplication (pipeline): set, with a cache size > 0, or the layer is left out.
  std::shared_ptr<store::DedupStore> dedup_store;
  DedupLayer::Options dedup;
  DedupLayer::Sinks dedup_sinks;
};

Result<std::unique_ptr<Stack>> build_stack(StackParts parts);

}  // namespace prosody::middleware
