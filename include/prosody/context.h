// File: prosody/context.h
//
// Per-invocation handler context. It tells the handler when to stop
// (cancellation) and why: a per-message timeout, a partition revoke, or
// shutdown. A Context is valid only during the handler call it was passed
// to; do not keep it.
//
// Thread safety: the handler may read it from any thread it spawns while the
// call is in progress; cancellation is requested by the engine's threads.
#pragma once

#include <atomic>
#include <chrono>
#include <stop_token>

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

  const Topic& topic() const;
  Partition partition() const;
  const Key& key() const;
  // How many times this record has been attempted before (0 on first try).
  int attempt() const;

 private:
  detail::InvocationSlot* slot_;
};

}  // namespace prosody
