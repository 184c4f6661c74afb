#include "engine/engine_impl.h"

#include "kafka/client_config.h"
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

void Engine::worker_loop(std::size_t index) {
  auto& slot = slots_[index];
  while (auto item = ready_.pop()) {
    PartitionState& p = *item->partition;
    KeyQueue* kq = item->key;
    QueuedEvent event;
    bool unblocked = false;
    std::vector<ReadyItem> newly_ready;
    {
      std::lock_guard l(p.mutex);
      if (p.drop_queued || p.halted || kq->pending.empty()) {
        kq->scheduled = false;
        if (kq->pending.empty()) erase_key(p, kq);
        if (p.revoked && p.in_flight == 0) p.idle.notify_all();
        continue;
      }
      event = std::move(kq->pending.front());
      kq->pending.pop_front();
      --p.queued;
      unblocked = unpark(p, item->partition, newly_ready);
      ++p.in_flight;
    }
    ready_.push_all(newly_ready);
    const int now_in_flight = ++in_flight_total_;
    stats_.note_in_flight(static_cast<std::uint64_t>(now_in_flight));
    if (unblocked) wake();

    const Outcome outcome = event.record ? process(*event.record, p, slot) : process_timer(*event.timer, p, slot);

    --in_flight_total_;
    bool reschedule = false;
    bool freed_capacity = false;
    {
      std::lock_guard l(p.mutex);
      --p.in_flight;
      if (event.record && outcome == Outcome::complete && p.tracker.complete(event.record->offset)) {
        p.commit_dirty = true;
        freed_capacity = p.paused.load(std::memory_order_relaxed);
      }
      if (outcome == Outcome::halt) p.halted = true;
      // After an abandoned record nothing later may run: the abandoned one
      // is redelivered to the next owner and must come first.
      if (outcome == Outcome::abandon || (outcome == Outcome::halt && p.revoked)) drop_queued_locked(p);
      if (!kq->pending.empty() && !p.drop_queued && !p.halted) {
        reschedule = true;
      } else {
        kq->scheduled = false;
        if (kq->pending.empty()) erase_key(p, kq);  // kq is gone after this
      }
      if (p.revoked) p.idle.notify_all();
    }
    if (reschedule) ready_.push(std::move(*item));
    if (freed_capacity) wake();
  }
}

template <typename Where, typename Invoke>
std::optional<Outcome> Engine::run_attempts(const Key& key, PartitionState& p, detail::InvocationSlot& slot,
                                            bool is_timer, Where&& where, Invoke&& invoke, Failure& failure) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  int attempt = 0;
  for (;;) {
    slot.begin(key, p, attempt, clock_->now());
    Status result;
    try {
      Context ctx(slot);
      result = invoke(ctx);
    } catch (...) {
      result = handler_->classify_exception(std::current_exception());
    }
    slot.end();
    if (result.ok()) {
      stats_.handled++;
      return Outcome::complete;
    }
    stats_.failed++;
    switch (on_failure(where(), is_timer, p, result.error(), attempt, rng)) {
      case Next::retry:
        ++attempt;
        stats_.retries++;
        continue;
      case Next::complete: return Outcome::complete;
      case Next::abandon: return Outcome::abandon;
      case Next::halt: return Outcome::halt;
      case Next::dead_letter:
        failure.error = result.error();
        failure.attempts = attempt + 1;
        return std::nullopt;
    }
  }
}

Outcome Engine::process(detail::Record& rec, PartitionState& p, detail::InvocationSlot& slot) {
  if (!rec.key_is_valid_utf8) {
    stats_.decode_failures++;
    auto e = Error::permanent("record key is not valid UTF-8", ErrorCode::decode_failed);
    log_->error("{}[{}]@{}: undecodable record: {}", p.topic, p.partition.value(), rec.offset.value(), e.message());
    return settings_.mode == Mode::low_latency ? dead_letter(rec, p, e, 0) : Outcome::complete;
  }
  if (settings_.codec == PayloadCodec::json && !rec.raw_payload().empty()) {
    const auto raw = rec.raw_payload();
    rec.payload = nlohmann::json::parse(raw.begin(), raw.end(), nullptr, /*allow_exceptions=*/false);
    if (rec.payload.is_discarded()) {
      stats_.decode_failures++;
      auto e = Error::permanent("payload is not valid JSON (" + std::to_string(raw.size()) + " bytes)",
                                ErrorCode::decode_failed);
      log_->error("{}[{}]@{} key '{}': undecodable record: {}; {}", p.topic, p.partition.value(), rec.offset.value(),
                  rec.key, e.message(),
                  settings_.mode == Mode::low_latency ? "sending it to the failure topic" : "committed and skipped");
      rec.payload = nullptr;
      return settings_.mode == Mode::low_latency ? dead_letter(rec, p, e, 0) : Outcome::complete;
    }
  }
  if (!type_allowed(settings_.allowed_events, rec.payload)) {
    stats_.filtered_event_type++;
    return Outcome::complete;
  }
  Failure failure;
  auto where = [&] { return fmt::format("{}[{}]@{} key '{}'", p.topic, p.partition.value(), rec.offset.value(), rec.key); };
  auto invoke = [&](Context& ctx) { return handler_->on_message(ctx, Message(rec)); };
  if (auto outcome = run_attempts(rec.key, p, slot, /*is_timer=*/false, where, invoke, failure)) return *outcome;
  return dead_letter(rec, p, *failure.error, failure.attempts);
}

Outcome Engine::process_timer(const timers::DueTimer& timer, PartitionState& p, detail::InvocationSlot& slot) {
  auto& timers = *p.timers;
  // Unscheduled after it fired (e.g. by a message of the key queued before
  // it): nothing to run, nothing to remove.
  if (!timers.begin(timer)) return Outcome::complete;
  const TimerTime due{std::chrono::seconds{timer.time}};
  stats_.timers_fired++;
  const auto lateness = clock_->system_now() - due;
  stats_.note_timer_lateness(std::chrono::duration_cast<std::chrono::milliseconds>(lateness));
  Failure failure;
  auto where = [&] {
    return fmt::format("{}[{}] timer {} s key '{}'", p.topic, p.partition.value(), timer.time, timer.key);
  };
  auto invoke = [&](Context& ctx) {
    return handler_->on_timer(ctx, Timer(p.topic, p.partition, timer.key, due, timer.type));
  };
  const auto outcome = run_attempts(timer.key, p, slot, /*is_timer=*/true, where, invoke, failure)
                           .value_or(Outcome::complete);
  if (outcome == Outcome::complete) {
    if (auto s = timers.complete(timer); !s) {
      log_->warn("{}: could not remove the completed timer from the store (retrying in the background; it may "
                 "fire again after a restart): {}",
                 where(), s.error().message());
    }
    timer_service_.notify_completed();
  } else {
    // Left in the store: the partition's next owner (or a restart) fires it.
    timers.abandon(timer);
  }
  return outcome;
}

// Decides what a failed attempt leads to, by mode and error class. When it
// answers `retry`, the backoff has already been waited.
Engine::Next Engine::on_failure(const std::string& where, bool is_timer, PartitionState& p, const Error& error,
                                int attempt, std::mt19937_64& rng) {
  const bool permanent = error.is_permanent() || handler_->is_permanent(error);
  if (error.is_terminal()) {
    log_->error("{}: terminal error, stopping the partition: {}", where, error.message());
    std::lock_guard l(p.mutex);
    p.halt_reason = error.message();
    return Next::halt;
  }
  bool revoked;
  {
    std::lock_guard l(p.mutex);
    revoked = p.revoked;
  }
  if (revoked || stopping_) {
    log_->info("{}: failed while {} ({}); leaving it uncommitted for redelivery", where,
               stopping_ ? "shutting down" : "revoking", error.message());
    return Next::abandon;
  }
  if (permanent) {
    if (settings_.mode == Mode::low_latency && !is_timer) return Next::dead_letter;
    log_->error("{}: permanent error, committing and moving on: {}", where, error.message());
    stats_.skipped_permanent++;
    return Next::complete;
  }
  if (settings_.mode == Mode::best_effort) {
    log_->warn("{}: transient error (best effort, not retried): {}", where, error.message());
    return Next::complete;
  }
  // Timers never go to the failure topic (there is no record to send): in
  // low-latency mode they keep retrying, as in Prosody.
  if (settings_.mode == Mode::low_latency && !is_timer && attempt >= settings_.max_retries) return Next::dead_letter;
  log_->warn("{}: transient error on attempt {}, retrying: {}", where, attempt + 1, error.message());
  return backoff(p, attempt, rng) ? Next::retry : Next::abandon;
}

bool Engine::backoff(PartitionState& p, int attempt, std::mt19937_64& rng) {
  const auto delay = settings_.retry.delay(attempt, rng);
  clock_->sleep_for(delay, p.revoke_source.get_token());
  return !p.revoke_source.stop_requested() && !stopping_;
}

Outcome Engine::dead_letter(detail::Record& rec, PartitionState& p, const Error& error, int attempts) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  if (!dead_letters_ || !settings_.failure_topic) {
    log_->error("{}[{}]@{}: no failure topic configured; leaving the record uncommitted", p.topic,
                p.partition.value(), rec.offset.value());
    return Outcome::halt;
  }
  Headers headers = rec.all_headers();
  auto add = [&](std::string name, std::string value) { headers.push_back(Header{std::move(name), std::move(value)}); };
  add("source-kind", "message");
  add("source-topic", p.topic);
  add("source-partition", std::to_string(p.partition.value()));
  add("source-offset", std::to_string(rec.offset.value()));
  add("source-timestamp",
      std::to_string(std::chrono::duration_cast<milliseconds>(rec.timestamp.time_since_epoch()).count()));
  add("source-group-id", settings_.group_id);
  add("source-error", error.message());
  add("prosody-error-class", std::string(to_string(error.error_class())));
  add("prosody-attempts", std::to_string(attempts));
  // Writing to the failure topic retries until it works or we lose the
  // partition: a record is never dropped because the DLQ was unavailable.
  for (int i = 0;; ++i) {
    auto r = dead_letters_->send(*settings_.failure_topic, rec.key, rec.raw_payload(), headers,
                                 p.revoke_source.get_token());
    if (r) {
      stats_.dead_lettered++;
      log_->warn("{}[{}]@{} key '{}' sent to failure topic '{}' after {} attempt(s): {}", p.topic, p.partition.value(),
                 rec.offset.value(), rec.key, *settings_.failure_topic, attempts, error.message());
      return Outcome::complete;
    }
    log_->error("writing to failure topic '{}' failed (attempt {}): {}", *settings_.failure_topic, i + 1,
                r.error().message());
    if (!backoff(p, i, rng)) return Outcome::abandon;
  }
}

}  // namespace prosody::engine
