#include "middleware/timer_defer_layer.h"

#include <random>

#include <spdlog/spdlog.h>

#include "middleware/defer_timer.h"
#include "middleware/deferred_keys.h"
#include "prosody/logging.h"
#include "timers/partition_timers.h"

namespace prosody::middleware {

TimerDeferLayer::TimerDeferLayer(Options options, std::shared_ptr<store::TimerDeferStore> store,
                                 FailureTracker& failures, std::shared_ptr<Clock> clock,
                                 std::function<void()> on_deferred)
    : options_(std::move(options)), store_(std::move(store)), failures_(failures), clock_(std::move(clock)),
      on_deferred_(std::move(on_deferred)), log_(prosody::logger()) {}

store::DeferSegment TimerDeferLayer::segment(const Invocation& inv) const {
  return store::DeferSegment(options_.group_id, inv.tpk.topic, inv.tpk.partition);
}

Status TimerDeferLayer::handle(Invocation& inv, const Next& next) const {
  if (inv.kind != EventKind::timer) return next(inv);
  switch (inv.timer->type) {
    case TimerType::deferred_timer: return retry_head(inv, next);
    case TimerType::application: return defer_or_run(inv, next);
    case TimerType::deferred_message: break;
  }
  return next(inv);
}

Status TimerDeferLayer::defer_or_run(Invocation& inv, const Next& next) const {
  auto& deferred_keys = inv.partition->deferred_timer_keys;
  const store::DeferredTimer entry{inv.timer->time, inv.timer->span};
  // The segment (a string built per call) only when the store is asked.
  if (may_have_deferred_keys(deferred_keys)) {
    const auto seg = segment(inv);
    auto deferred = store_->is_deferred(seg, inv.tpk.key);
    if (!deferred) return deferred.error();  // transient store error: the outer Retry tries again
    if (*deferred) {
      // Behind the key's earlier deferred timers, never overtaking them.
      if (auto s = store_->append(seg, inv.tpk.key, entry); !s) return s;
      if (on_deferred_) on_deferred_();
      return ok_status();
    }
  }
  Status result = next(inv);
  if (result.ok() || !result.error().is_transient() || inv.stopping() || !options_.enabled) return result;
  if (!failures_.deferral_allowed(clock_->now())) return result;  // too many failures: hold the key instead
  // Counted first (see deferred_keys.h), then the retry timer, then the
  // queue entry (see the header).
  note_key_deferred(deferred_keys);
  if (auto s = schedule_defer_timer(inv, TimerType::deferred_timer, *clock_, std::chrono::milliseconds(0)); !s) {
    return s;
  }
  if (auto s = store_->append(segment(inv), inv.tpk.key, entry); !s) return s;
  if (on_deferred_) on_deferred_();
  log_->warn("{}: timer deferred after a transient error (the key's later timers queue behind it): {}",
             inv.describe(), result.error().message());
  return ok_status();
}

Status TimerDeferLayer::advance(Invocation& inv, const store::DeferSegment& seg,
                                const store::TimerDeferStore::Head& head) const {
  auto next_head = store_->pop_head(seg, inv.tpk.key, head);
  if (!next_head) return next_head.error();
  if (*next_head) {
    return schedule_defer_timer(inv, TimerType::deferred_timer, *clock_, std::chrono::milliseconds(0));
  }
  note_key_drained(inv.partition->deferred_timer_keys);
  return ok_status();
}

Status TimerDeferLayer::retry_head(Invocation& inv, const Next& next) const {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  const auto seg = segment(inv);
  auto head = store_->head(seg, inv.tpk.key);
  if (!head) return head.error();
  if (!*head) return ok_status();  // an orphan retry timer (the queue was cleared): nothing to do
  // The original application timer, as the handler scheduled it.
  const timers::DueTimer original{inv.tpk.key, (*head)->entry.time, TimerType::application, (*head)->entry.span};
  Invocation retry = inv;
  retry.timer = &original;
  retry.demand = DemandClass::failure;
  // Context::attempt counts the failed tries before this one.
  retry.handler_attempts = static_cast<int>((*head)->retry_count) + 1;
  Status result = next(retry);
  inv.handler_attempts = retry.handler_attempts;
  if (result.ok() || result.error().is_permanent()) {
    if (!result.ok()) {
      log_->error("{}: deferred timer failed permanently, moving on: {}", retry.describe(), result.error().message());
    }
    return advance(inv, seg, **head);
  }
  if (result.error().is_terminal() || inv.stopping()) return result;
  const auto retries = (*head)->retry_count + 1;
  if (auto s = store_->set_retry_count(seg, inv.tpk.key, retries); !s) return s;
  const auto delay = options_.backoff.delay(retries, rng);
  log_->warn("{}: deferred timer failed again (retry {}), next try in {} ms: {}", retry.describe(), retries,
             delay.count(), result.error().message());
  return schedule_defer_timer(inv, TimerType::deferred_timer, *clock_, delay);
}

}  // namespace prosody::middleware
