// MessageDefer (pipeline): a key whose message keeps failing transiently is
// parked so the partition's other keys keep flowing (reference/
// prosody-internals.md §2c).
//
// - A message of a key that already has a defer queue is appended to it
//   (by offset) and counts as done: it is committed, and it will run after
//   the key's earlier deferred messages, never overtaking them.
// - Otherwise the message runs; on a transient error, if deferral is
//   enabled and the consumer-wide failure rate allows it (FailureTracker),
//   a DeferredMessage timer is scheduled for the key *first* and the offset
//   appended *second* (a crash between the two leaves a timer with nothing
//   to do, never a parked message without a timer), and the message counts
//   as done. Above the failure-rate threshold the error goes to the outer
//   Retry instead, which holds the key (backpressure).
// - When the key's DeferredMessage timer fires, the queue head is reloaded
//   from Kafka (DeferLoader) and run through the inner stack as a Failure-
//   class retry: success or a permanent error pops it and schedules the
//   next head at once; a transient error bumps the retry count and
//   reschedules after DeferBackoff (0 s, then 1 s .. defer_max_delay). A
//   head that no longer exists in Kafka (retention, compaction) is skipped
//   with a log line.
//
// Thread safety: any thread; all state lives in the stores, the timers and
// the Invocation. A key's events are serialised by the engine, so the
// read-modify-write of one key's queue never races.
#pragma once

#include <functional>
#include <memory>

#include "middleware/defer_backoff.h"
#include "middleware/defer_loader.h"
#include "middleware/failure_tracker.h"
#include "middleware/layer.h"
#include "prosody/clock.h"
#include "prosody/config.h"
#include "store/defer_store.h"

namespace spdlog {
class logger;
}

namespace prosody::middleware {

class MessageDeferLayer final : public Layer {
 public:
  struct Options {
    bool enabled = true;  // defer_enabled: new deferrals (queued keys always drain)
    DeferBackoff backoff;
    std::string group_id;
    PayloadCodec codec = PayloadCodec::json;
  };
  MessageDeferLayer(Options options, std::shared_ptr<store::MessageDeferStore> store,
                    std::shared_ptr<DeferLoader> loader, FailureTracker& failures, std::shared_ptr<Clock> clock,
                    std::function<void()> on_deferred);

  Status handle(Invocation& inv, const Next& next) const override;
  std::string_view name() const override { return "message_defer"; }

 private:
  Status retry_head(Invocation& inv, const Next& next) const;
  // Pops `head` and schedules the next one (if any) to run at once.
  Status advance(Invocation& inv, const store::DeferSegment& seg,
                 const store::MessageDeferStore::Head& head) const;
  Status schedule_retry(Invocation& inv, std::chrono::milliseconds delay) const;
  store::DeferSegment segment(const Invocation& inv) const;

  const Options options_;
  const std::shared_ptr<store::MessageDeferStore> store_;
  const std::shared_ptr<DeferLoader> loader_;
  FailureTracker& failures_;
  const std::shared_ptr<Clock> clock_;
  const std::function<void()> on_deferred_;
  const std::shared_ptr<spdlog::logger> log_;
};

}  // namespace prosody::middleware
