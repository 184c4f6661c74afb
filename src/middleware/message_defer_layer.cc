#include "middleware/message_defer_layer.h"

#include <random>

#include <spdlog/spdlog.h>

#include "engine/partition_state.h"
#include "middleware/defer_timer.h"
#include "middleware/deferred_keys.h"
#include "prosody/logging.h"

namespace prosody::middleware {

MessageDeferLayer::MessageDeferLayer(Options options, std::shared_ptr<store::MessageDeferStore> store,
                                     std::shared_ptr<DeferLoader> loader, FailureTracker& failures,
                                     std::shared_ptr<Clock> clock, std::function<void()> on_deferred)
    : options_(std::move(options)), store_(std::move(store)), loader_(std::move(loader)), failures_(failures),
      clock_(std::move(clock)), on_deferred_(std::move(on_deferred)), log_(prosody::logger()) {}

store::DeferSegment MessageDeferLayer::segment(const Invocation& inv) const {
  return store::DeferSegment(options_.group_id, inv.tpk.topic, inv.tpk.partition);
}

Status MessageDeferLayer::schedule_retry(Invocation& inv, std::chrono::milliseconds delay) const {
  return schedule_defer_timer(inv, TimerType::deferred_message, *clock_, delay);
}

Status MessageDeferLayer::handle(Invocation& inv, const Next& next) const {
  if (inv.kind == EventKind::timer) {
    if (inv.timer->type == TimerType::deferred_message) return retry_head(inv, next);
    return next(inv);
  }
  auto& deferred_keys = inv.partition->deferred_message_keys;
  // The segment (a string built per call) only when the store is asked:
  // not on the hot path of a partition without deferred keys.
  if (may_have_deferred_keys(deferred_keys)) {
    const auto seg = segment(inv);
    auto deferred = store_->is_deferred(seg, inv.tpk.key);
    if (!deferred) return deferred.error();  // transient store error: the outer Retry tries again
    if (*deferred) {
      // Behind the key's earlier deferred messages, never overtaking them.
      if (auto s = store_->append(seg, inv.tpk.key, store::DeferredMessage{inv.record->offset}); !s) return s;
      if (on_deferred_) on_deferred_();
      return ok_status();
    }
  }
  Status result = next(inv);
  if (result.ok() || !result.error().is_transient() || inv.stopping() || !options_.enabled || inv.precheck_error) {
    return result;
  }
  if (!failures_.deferral_allowed(clock_->now())) return result;  // too many failures: hold the key instead
  // Counted first (see deferred_keys.h), then the timer, then the queue
  // entry (see the header).
  note_key_deferred(deferred_keys);
  if (auto s = schedule_retry(inv, std::chrono::milliseconds(0)); !s) return s;
  if (auto s = store_->append(segment(inv), inv.tpk.key, store::DeferredMessage{inv.record->offset}); !s) return s;
  if (on_deferred_) on_deferred_();
  log_->warn("{}: deferred after a transient error (the key's later messages queue behind it): {}", inv.describe(),
             result.error().message());
  return ok_status();
}

Status MessageDeferLayer::advance(Invocation& inv, const store::DeferSegment& seg,
                                  const store::MessageDeferStore::Head& head) const {
  auto next_head = store_->pop_head(seg, inv.tpk.key, head);
  if (!next_head) return next_head.error();
  if (*next_head) return schedule_retry(inv, std::chrono::milliseconds(0));
  note_key_drained(inv.partition->deferred_message_keys);
  return ok_status();
}

Status MessageDeferLayer::retry_head(Invocation& inv, const Next& next) const {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  const auto seg = segment(inv);
  auto head = store_->head(seg, inv.tpk.key);
  if (!head) return head.error();
  if (!*head) return ok_status();  // an orphan timer (the queue drained): nothing to do
  const auto offset = (*head)->entry.offset;
  auto loaded = loader_->load(inv.tpk.topic, inv.tpk.partition, offset, inv.stop);
  if (!loaded) {
    if (loaded.error().is_permanent()) {
      log_->error("{}: deferred offset {} cannot be reloaded, skipping it: {}", inv.describe(), offset.value(),
                  loaded.error().message());
      return advance(inv, seg, **head);
    }
    if (inv.stopping()) return loaded.error();
    const auto retries = (*head)->retry_count + 1;
    if (auto s = store_->set_retry_count(seg, inv.tpk.key, retries); !s) return s;
    return schedule_retry(inv, options_.backoff.delay(retries, rng));
  }
  if (!loaded->has_key || loaded->key != inv.tpk.key) {
    log_->error("{}: deferred offset {} holds key '{}', not this key; skipping it", inv.describe(), offset.value(),
                loaded->key);
    return advance(inv, seg, **head);
  }
  detail::Record rec;
  rec.topic = &inv.partition->topic;
  rec.partition = inv.tpk.partition;
  rec.offset = offset;
  rec.key = inv.tpk.key;
  rec.timestamp = loaded->timestamp;
  rec.owned_payload = std::move(loaded->payload);
  rec.headers = std::move(loaded->headers);
  Invocation retry = inv;
  retry.kind = EventKind::message;
  retry.record = &rec;
  retry.timer = nullptr;
  retry.demand = DemandClass::failure;
  // Context::attempt counts the failed tries before this one.
  retry.handler_attempts = static_cast<int>((*head)->retry_count) + 1;
  if (options_.codec == PayloadCodec::json && !rec.owned_payload.empty()) {
    rec.payload = nlohmann::json::parse(rec.owned_payload, nullptr, /*allow_exceptions=*/false);
    if (rec.payload.is_discarded()) {
      rec.payload = nullptr;
      retry.precheck_error = Error::permanent("payload is not valid JSON", ErrorCode::decode_failed);
    }
  }
  Status result = next(retry);
  inv.handler_attempts = retry.handler_attempts;
  if (result.ok() || result.error().is_permanent()) {
    if (!result.ok()) {
      log_->error("{}: deferred message failed permanently, moving on: {}", retry.describe(),
                  result.error().message());
    }
    return advance(inv, seg, **head);
  }
  if (result.error().is_terminal() || inv.stopping()) return result;
  const auto retries = (*head)->retry_count + 1;
  if (auto s = store_->set_retry_count(seg, inv.tpk.key, retries); !s) return s;
  const auto delay = options_.backoff.delay(retries, rng);
  log_->warn("{}: deferred message failed again (retry {}), next try in {} ms: {}", retry.describe(), retries,
             delay.count(), result.error().message());
  return schedule_retry(inv, delay);
}

}  // namespace prosody::middleware
