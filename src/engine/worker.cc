#include "engine/engine_impl.h"

#include <algorithm>

#include "engine/json_check.h"
#include "kafka/client_config.h"
#include "middleware/stack_builder.h"
#include "prosody/logging.h"

namespace prosody::engine {

// ---------------------------------------------------------------- workers

// Moves parked records (in arrival order) into their key queues while they
// fit. Caller holds p.mutex. Returns true if anything moved.
bool Engine::unpark(PartitionState& p, const std::shared_ptr<PartitionState>& self, std::vector<ReadyItem>& ready) {
  bool moved = false;
  while (!p.parked.empty()) {
    auto& rec = p.parked.front();
    KeyQueue& kq = key_queue(p, rec->key);
    if (static_cast<int>(kq.pending.size()) >= settings_.max_enqueued_per_key) break;
    kq.pending.push_back(QueuedEvent{std::move(rec), nullptr});
    p.parked.pop_front();
    stats_.note_enqueued(kq.pending.size());
    if (!kq.scheduled) {
      kq.scheduled = true;
      ready.push_back(ReadyItem{self, &kq});
    }
    moved = true;
  }
  return moved;
}

bool Engine::deliver_timer(const std::weak_ptr<PartitionState>& partition, timers::DueTimer timer) {
  auto p = partition.lock();
  if (!p) return false;
  ReadyItem item{p, nullptr};
  {
    std::lock_guard l(p->mutex);
    if (p->revoked || p->halted || p->drop_queued) return false;
    KeyQueue& kq = key_queue(*p, timer.key);
    kq.pending.push_back(QueuedEvent{nullptr, std::make_unique<timers::DueTimer>(std::move(timer))});
    ++p->queued;
    if (kq.scheduled) return true;
    kq.scheduled = true;
    item.key = &kq;
  }
  ready_.push(std::move(item));
  return true;
}

// Takes the next event of a scheduled key. Caller holds p.mutex and has
// checked that the key may run (pending non-empty, partition not dropping or
// halted). Returns whether parked records moved into key queues and left
// the partition with nothing parked (so the poll thread may read it again).
bool Engine::take_event(PartitionState& p, const std::shared_ptr<PartitionState>& self, KeyQueue& kq,
                        QueuedEvent& event, std::vector<ReadyItem>& newly_ready) {
  event = std::move(kq.pending.front());
  kq.pending.pop_front();
  --p.queued;
  ++p.in_flight;
  return unpark(p, self, newly_ready) && p.parked.empty();
}

void Engine::worker_loop(std::size_t index) {
  auto& slot = slots_[index];
  std::vector<ReadyItem> newly_ready;
  while (auto item = ready_.pop()) {
    PartitionState& p = *item->partition;
    KeyQueue* kq = item->key;
    QueuedEvent event;
    bool unblocked = false;
    {
      std::lock_guard l(p.mutex);
      if (p.drop_queued || p.halted || kq->pending.empty()) {
        kq->scheduled = false;
        if (kq->pending.empty()) erase_key(p, kq, spare_key_limit(settings_.max_uncommitted));
        if (p.revoked && p.in_flight == 0) p.idle.notify_all();
        continue;
      }
      unblocked = take_event(p, item->partition, *kq, event, newly_ready);
    }
    ready_.push_all(newly_ready);
    if (unblocked) wake();

    // Run the key's events back to back while it has more (up to a budget,
    // so one busy key does not keep this worker from the others): the key
    // stays scheduled throughout, so its order is unchanged, and each event
    // costs one partition lock instead of a trip through the ready queue.
    bool reschedule = false;
    for (int budget = kKeyBudget;; --budget) {
      const Outcome outcome =
          event.record ? process(*event.record, p, slot) : process_timer(*event.timer, p, slot);
      bool more = false;
      bool resumable = false;
      unblocked = false;
      {
        std::lock_guard l(p.mutex);
        --p.in_flight;
        if (event.record && outcome == Outcome::complete && p.tracker.complete(event.record->offset)) {
          p.commit_dirty = true;
          // The poll thread stopped reading this partition when it was full;
          // it resumes at three quarters of the window (apply_backpressure), so it only
          // needs waking once that point is reached, not on every completion.
          resumable = p.paused.load(std::memory_order_relaxed) && p.parked.empty() &&
                      static_cast<int>(p.tracker.uncommitted()) <= settings_.max_uncommitted * 3 / 4;
        }
        if (outcome == Outcome::halt) p.halted = true;
        // After an abandoned record nothing later may run: the abandoned one
        // is redelivered to the next owner and must come first.
        if (outcome == Outcome::abandon || (outcome == Outcome::halt && p.revoked)) drop_queued_locked(p);
        if (!kq->pending.empty() && !p.drop_queued && !p.halted) {
          if (budget > 1) {
            event = QueuedEvent{};
            unblocked = take_event(p, item->partition, *kq, event, newly_ready);
            more = true;
          } else {
            reschedule = true;
          }
        } else {
          kq->scheduled = false;
          if (kq->pending.empty()) erase_key(p, kq, spare_key_limit(settings_.max_uncommitted));  // kq is recycled after this
        }
        if (p.revoked) p.idle.notify_all();
      }
      ready_.push_all(newly_ready);
      if (unblocked || resumable) wake();
      if (!more) break;
    }
    if (reschedule) ready_.push(std::move(*item));
  }
}

namespace {

// The innermost step of the stack: calls the user's handler with a Context
// over the worker's slot, turning exceptions into errors (ErrorRules) and
// applying the handler's is_permanent override.
class HandlerAdapter final : public middleware::Innermost {
 public:
  HandlerAdapter(std::shared_ptr<EventHandler> handler, EngineStats& stats)
      : handler_(std::move(handler)), stats_(stats) {}

  Status invoke(middleware::Invocation& inv) const override {
    if (inv.precheck_error) return *inv.precheck_error;
    if (inv.kind == middleware::EventKind::timer && inv.timer->type != TimerType::application) {
      // An internal (defer) timer with no defer layer to take it: the mode
      // changed since it was scheduled. Removing it is all we can do.
      return Error::permanent(std::string("a ") + std::string(to_string(inv.timer->type)) +
                                  " timer fired but deferral is not active in this mode; its defer queue stays "
                                  "in the store",
                              ErrorCode::invalid_state);
    }
    stats_.note_in_flight(static_cast<std::uint64_t>(++running_));
    Status result = call(inv);
    --running_;
    return result;
  }

 private:
  Status call(middleware::Invocation& inv) const {
    const bool is_timer = inv.kind == middleware::EventKind::timer;
    Status result;
    try {
      Context ctx(*inv.slot);
      if (is_timer) {
        result = handler_->on_timer(ctx, Timer(inv.tpk.topic, inv.tpk.partition, inv.tpk.key,
                                               TimerTime{std::chrono::seconds{inv.timer->time}}, inv.timer->type));
      } else {
        result = handler_->on_message(ctx, Message(*inv.record));
      }
    } catch (...) {
      result = handler_->classify_exception(is_timer ? HandlerMethod::on_timer : HandlerMethod::on_message,
                                            std::current_exception());
    }
    if (!result.ok() && result.error().is_transient() && handler_->is_permanent(result.error())) {
      return Error(ErrorClass::permanent, result.error().code(), result.error().message());
    }
    return result;
  }

  const std::shared_ptr<EventHandler> handler_;
  EngineStats& stats_;
  mutable std::atomic<int> running_{0};  // handler calls in progress (max_in_flight_seen)
};

}  // namespace

Status Engine::build_stack() {
  scheduler_ = std::make_unique<middleware::FairScheduler>(settings_.scheduler, clock_);
  if (settings_.mode == Mode::pipeline && settings_.monopolization.enabled) {
    monopolization_ = std::make_unique<middleware::MonopolizationDetector>(settings_.monopolization);
  }
  failures_ = std::make_unique<middleware::FailureTracker>(settings_.failure_tracker);
  middleware::StackParts parts;
  parts.mode = settings_.mode;
  parts.retry = settings_.retry;
  parts.max_retries = settings_.max_retries;
  parts.clock = clock_;
  parts.scheduler = scheduler_.get();
  parts.monopolization = monopolization_.get();
  parts.failures = failures_.get();
  parts.failure_producer = dead_letters_;
  parts.failure_topic = settings_.failure_topic;
  parts.group_id = settings_.group_id;
  parts.on_dead_lettered = [this] { stats_.dead_lettered++; };
  parts.on_monopolized = [this] { stats_.monopolized++; };
  parts.on_outcome = [this](const middleware::Invocation& inv, const Status& result) {
    if (result.ok()) {
      stats_.handled++;
    } else {
      stats_.failed++;
    }
    if (inv.handler_attempts > 1) stats_.retries++;
  };
  parts.innermost = std::make_shared<HandlerAdapter>(handler_, stats_);
  parts.defer_messages = settings_.defer_messages;
  parts.defer_loader = settings_.defer_loader;
  parts.defer = middleware::MessageDeferLayer::Options{settings_.defer_enabled, settings_.defer_backoff,
                                                       settings_.group_id, settings_.codec};
  parts.defer_timers = settings_.defer_timers;
  parts.on_deferred = [this] { stats_.deferred++; };
  parts.dedup_store = settings_.dedup_store;
  parts.dedup = middleware::DedupLayer::Options{settings_.idempotence_version, settings_.group_id, settings_.codec,
                                                static_cast<std::size_t>(std::max(0, settings_.idempotence_cache_size))};
  parts.dedup_sinks = middleware::DedupLayer::Sinks{[this] { stats_.deduplicated++; },
                                                    [this] { stats_.dedup_store_errors++; }};
  auto stack = middleware::build_stack(std::move(parts));
  if (!stack) return stack.error();
  stack_ = std::move(*stack);
  return ok_status();
}

middleware::Invocation Engine::invocation(PartitionState& p, detail::InvocationSlot& slot, const Key& key) {
  middleware::Invocation inv;
  inv.tpk = middleware::TopicPartitionKey{p.topic, p.partition, key};
  inv.partition = &p;
  inv.slot = &slot;
  inv.stop = p.revoke_source.get_token();
  inv.abandon = p.drop_source.get_token();
  inv.shutting_down = &stopping_;
  return inv;
}

Outcome Engine::settle(const middleware::Invocation& inv, const Status& result) {
  if (result.ok()) return Outcome::complete;
  const Error& error = result.error();
  auto& p = *inv.partition;
  if (error.is_terminal()) {
    log_->error("{}: terminal error, stopping the partition: {}", inv.describe(), error.message());
    std::lock_guard l(p.mutex);
    p.halt_reason = error.message();
    return Outcome::halt;
  }
  if (error.is_permanent()) {
    log_->error("{}: permanent error, {}: {}", inv.describe(),
                inv.kind == middleware::EventKind::timer ? "removing the timer" : "committing and moving on",
                error.message());
    stats_.skipped_permanent++;
    return Outcome::complete;
  }
  // Transient at the boundary: the partition is going away (or retries were
  // capped with nowhere to send the event); the next owner redoes it.
  log_->info("{}: not finished ({}); leaving it for redelivery", inv.describe(), error.message());
  return Outcome::abandon;
}

Outcome Engine::process(detail::Record& rec, PartitionState& p, detail::InvocationSlot& slot) {
  // Loop prevention: our own output comes back committed and skipped. Checked
  // here rather than on the poll thread: finding the header parses the
  // record's header block, which is a third of the poll thread's work if
  // done there, and the poll thread is the one serial stage.
  if (auto src = rec.find_header("source-system"); src && *src == settings_.group_id) {
    stats_.filtered_loop++;
    return Outcome::complete;
  }
  auto inv = invocation(p, slot, rec.key);
  inv.record = &rec;
  const bool dead_lettering = settings_.mode == Mode::low_latency;
  if (!rec.key_is_valid_utf8) {
    stats_.decode_failures++;
    auto e = Error::permanent("record key is not valid UTF-8", ErrorCode::decode_failed);
    log_->error("{}: undecodable record: {}", inv.describe(), e.message());
    if (!dead_lettering) return Outcome::complete;
    inv.precheck_error = e;  // the failure topic takes it
  } else if (settings_.codec == PayloadCodec::json && !rec.raw_payload().empty()) {
    // Validate now, decode when the handler asks (Record::decoded_payload):
    // the contract that an undecodable payload never reaches the handler
    // holds without building a DOM the handler may never read.
    const auto raw = rec.raw_payload();
    if (is_valid_json(raw)) {
      rec.payload_pending = true;
    } else {
      stats_.decode_failures++;
      auto e = Error::permanent("payload is not valid JSON (" + std::to_string(raw.size()) + " bytes)",
                                ErrorCode::decode_failed);
      log_->error("{}: undecodable record: {}; {}", inv.describe(), e.message(),
                  dead_lettering ? "sending it to the failure topic" : "committed and skipped");
      if (!dead_lettering) return Outcome::complete;
      inv.precheck_error = e;
    }
  }
  if (!inv.precheck_error && !settings_.allowed_events.empty() &&
      !type_allowed(settings_.allowed_events, rec.decoded_payload())) {
    stats_.filtered_event_type++;
    return Outcome::complete;
  }
  return settle(inv, stack_->run(inv));
}

Outcome Engine::process_timer(const timers::DueTimer& timer, PartitionState& p, detail::InvocationSlot& slot) {
  auto& timers = *p.timers;
  // Unscheduled after it fired (e.g. by a message of the key queued before
  // it): nothing to run, nothing to remove.
  if (!timers.begin(timer)) return Outcome::complete;
  stats_.timers_fired++;
  const auto lateness = clock_->system_now() - std::chrono::system_clock::time_point(std::chrono::seconds(timer.time));
  stats_.note_timer_lateness(std::chrono::duration_cast<std::chrono::milliseconds>(lateness));
  auto inv = invocation(p, slot, timer.key);
  inv.kind = middleware::EventKind::timer;
  inv.timer = &timer;
  const auto outcome = settle(inv, stack_->run(inv));
  if (outcome == Outcome::complete) {
    if (auto s = timers.complete(timer); !s) {
      log_->warn("{}: could not remove the completed timer from the store (retrying in the background; it may "
                 "fire again after a restart): {}",
                 inv.describe(), s.error().message());
    }
    timer_service_.notify_completed();
  } else {
    // Left in the store: the partition's next owner (or a restart) fires it.
    timers.abandon(timer);
  }
  return outcome;
}

}  // namespace prosody::engine
