#include "timers/timer_service.h"

#include <algorithm>
#include <limits>

#include "prosody/logging.h"

namespace prosody::timers {
namespace {

std::int64_t epoch_ms(Clock::system_time t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

}  // namespace

TimerService::TimerService(std::shared_ptr<Clock> clock, std::chrono::seconds slab_size,
                           std::chrono::milliseconds heartbeat)
    : clock_(std::move(clock)), slab_size_(slab_size), heartbeat_(heartbeat), log_(prosody::logger()) {}

TimerService::~TimerService() { stop(); }

void TimerService::start() {
  thread_ = std::jthread([this](std::stop_token stop) { run(stop); });
}

void TimerService::stop() {
  if (!thread_.joinable()) return;
  thread_.request_stop();
  wake();
  thread_.join();
}

void TimerService::add(std::shared_ptr<PartitionTimers> timers, Deliver deliver) {
  {
    std::lock_guard l(mutex_);
    entries_.push_back(std::make_shared<Entry>(Entry{std::move(timers), std::move(deliver)}));
  }
  wake();
}

void TimerService::remove(const std::shared_ptr<PartitionTimers>& timers) {
  std::lock_guard l(mutex_);
  std::erase_if(entries_, [&](const auto& e) { return e->timers == timers; });
}

void TimerService::wake() {
  std::lock_guard l(mutex_);
  wake_requested_ = true;
  sleep_interrupt_.request_stop();
}

void TimerService::notify_scheduled(EpochSeconds time) {
  if (time * 1000 < planned_wake_ms_.load(std::memory_order_relaxed)) wake();
}

void TimerService::notify_completed() {
  if (backlogged_.exchange(false, std::memory_order_relaxed)) wake();
}

std::chrono::steady_clock::time_point TimerService::last_beat() const {
  return std::chrono::steady_clock::time_point(std::chrono::steady_clock::duration(last_beat_.load()));
}

EpochSeconds TimerService::draw_next_load(const PartitionTimers& timers, EpochSeconds now) {
  const auto owned = timers.owned_until().value_or(now);
  const std::int64_t slab = slab_size_.count();
  const std::int64_t min_preload = std::min<std::int64_t>(60, slab);
  std::uniform_int_distribution<std::int64_t> extra(0, std::max<std::int64_t>(0, slab - min_preload));
  const std::int64_t preload = min_preload + extra(rng_);
  return std::max(now, owned - preload);
}

std::int64_t TimerService::tick(std::int64_t now_ms) {
  const EpochSeconds now = now_ms / 1000;
  std::vector<std::shared_ptr<Entry>> entries;
  {
    std::lock_guard l(mutex_);
    entries = entries_;
  }
  std::int64_t wake_at = now_ms + heartbeat_.count();
  for (auto& e : entries) {
    if (now >= e->next_load_at) {
      // Load through the next slab boundary after the preload horizon.
      const auto horizon = std::max(now, e->timers->owned_until().value_or(now));
      if (auto s = e->timers->load_through(horizon); !s) {
        e->load_failures++;
        const auto retry_in = std::min<std::int64_t>(kMaxLoadRetryDelay.count(), 1LL << std::min(e->load_failures, 5));
        e->next_load_at = now + retry_in;
        log_->warn("timers {}: loading from the store failed (attempt {}), retrying in {} s: {}",
                   e->timers->segment().name(), e->load_failures, retry_in, s.error().message());
      } else {
        e->load_failures = 0;
        e->next_load_at = draw_next_load(*e->timers, now);
      }
    }
    wake_at = std::min(wake_at, e->next_load_at * 1000);
    e->timers->retry_deletes();
    for (auto& due : e->timers->take_due(now)) {
      auto copy = due;
      if (!e->deliver(e->timers, std::move(due))) e->timers->abandon(copy);
    }
    if (auto next = e->timers->next_due()) {
      if (*next > now) {
        wake_at = std::min(wake_at, *next * 1000);
      } else if (!e->timers->at_capacity()) {
        wake_at = now_ms;  // runs finished during this pass: hand out more at once
      } else {
        // Held back by backpressure: a finishing run wakes us
        // (notify_completed), else the next beat.
        backlogged_.store(true, std::memory_order_relaxed);
        wake_at = std::min(wake_at, now_ms + heartbeat_.count());
      }
    }
  }
  return wake_at;
}

void TimerService::run(std::stop_token stop) {
  while (!stop.stop_requested()) {
    last_beat_ = clock_->now().time_since_epoch().count();
    const auto now_ms = epoch_ms(clock_->system_now());
    // Published before the tick: a timer scheduled during the tick for a
    // time before the final wake-up still sees a later planned time and wakes us.
    planned_wake_ms_.store(std::numeric_limits<std::int64_t>::max(), std::memory_order_relaxed);
    const auto wake_at_ms = tick(now_ms);
    planned_wake_ms_.store(wake_at_ms, std::memory_order_relaxed);
    std::stop_token interrupt;
    {
      std::lock_guard l(mutex_);
      if (wake_requested_) {
        wake_requested_ = false;
        sleep_interrupt_ = std::stop_source();
        continue;
      }
      sleep_interrupt_ = std::stop_source();
      interrupt = sleep_interrupt_.get_token();
    }
    if (stop.stop_requested()) break;
    // The clock sleeps on steady time; convert the wall-clock wake-up.
    const auto delay = std::chrono::milliseconds(std::max<std::int64_t>(0, wake_at_ms - now_ms));
    if (delay.count() > 0) clock_->sleep_until(clock_->now() + delay, interrupt);
    std::lock_guard l(mutex_);
    wake_requested_ = false;
  }
}

}  // namespace prosody::timers
