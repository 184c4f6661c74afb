// File: prosody/context.h
//
// Per-invocation handler context. It tells the handler when to stop
// (cancellation) and why: a per-message timeout, a partition revoke, or
// shutdown; and it manages the current key's timers (prosody/timer.h). A Context is valid only during the handler call it was passed
// to; do not keep it.
//
// Thread safety: the handler may read it from any thread it spawns while the
// call is in progress; cancellation is requested by the engine's threads.
#pragma once

#include <atomic>
#include <chrono>
#include <stop_token>
#include <vector>

#include "prosody/result.h"
#include "prosody/timer.h"
#include "prosody/types.h"

namespace prosody {

enum class CancelReason : int { none = 0, timeout, revoked, shutdown };

std::string_view to_string(CancelReason r) noexcept;

namespace detail {
struct InvocationSlot;
}

class Context {
 public:
  explicit Context(detail::InvocationSlot& slot) : slot_(&slot) {}

  // Becomes stop-requested when the engine wants this handler to finish.
  std::stop_token stop_token() const;
  bool should_cancel() const { return stop_token().stop_requested(); }
  CancelReason cancel_reason() const;
  // Blocks until cancellation is requested or `timeout` passes; returns true
  // if cancelled.
  bool wait_for_cancel(std::chrono::nanoseconds timeout) const;
  // Blocks until cancellation is requested (timeout, revoke or shutdown).
  void on_cancel() const;

  const Topic& topic() const;
  Partition partition() const;
  const Key& key() const;
  // How many times this record has been attempted before (0 on first try).
  int attempt() const;

  // ---- timers of the current key (application timers) -------------------
  // Times are rounded to whole seconds (half-up); times in the past fire
  // promptly. Each call writes the timer store before returning, so an
  // error (invalid time, store unavailable) means nothing changed, except
  // clear_and_schedule, which may leave the new time added and old ones in
  // place. Store errors are transient: returning them retries the event.
  Status schedule(std::chrono::system_clock::time_point time);
  // Schedules `time` and removes the key's other timers.
  Status clear_and_schedule(std::chrono::system_clock::time_point time);
  Status unschedule(std::chrono::system_clock::time_point time);
  Status clear_scheduled();
  // The key's pending timer times, ascending.
  Result<std::vector<TimerTime>> scheduled() const;

 private:
  detail::InvocationSlot* slot_;
};

}  // namespace prosody
