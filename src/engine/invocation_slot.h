// One worker's in-flight handler invocation: what it runs, since when, and
// the cancellation source the engine fires on timeout, revoke or shutdown.
// Context (public) is a thin view over a slot.
//
// Thread safety: the worker begins/ends invocations; the poll thread and
// the revoke path read the slot and request cancellation, all under `mutex`.
// The handler reads stop_token/reason through Context without the lock
// (the token is copied under the lock; the reason is atomic).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stop_token>

#include "engine/record.h"
#include "prosody/context.h"

namespace prosody::engine {
struct PartitionState;
}
namespace prosody::timers {
class TimerService;
}
namespace prosody::store {
struct DeferredTimer;
template <typename Entry>
class DeferStore;
using TimerDeferStore = DeferStore<DeferredTimer>;
}  // namespace prosody::store

namespace prosody::detail {

struct InvocationSlot {
  std::mutex mutex;
  std::stop_source stop{std::nostopstate};     // guarded by mutex
  // A token of `stop` was handed out (Context::stop_token), so the handler
  // may still hold it: the next invocation needs a source of its own.
  bool stop_shared = false;                    // guarded by mutex
  std::atomic<int> reason{0};                  // CancelReason
  std::chrono::steady_clock::time_point started{};  // guarded by mutex
  bool active = false;                         // guarded by mutex
  // What the handler is running for (a record or a timer). Set by the
  // worker before the call; the handler reads them through Context.
  const Key* key = nullptr;                    // guarded by mutex
  engine::PartitionState* partition = nullptr;  // guarded by mutex
  int attempt = 0;
  // Wakes the timer thread when a handler schedules something due soon.
  timers::TimerService* timer_service = nullptr;  // set once by the engine
  // Pipeline mode: the timer defer queue, so that Context reports a key's
  // deferred timers as still scheduled and can unschedule them. Set once by
  // the engine (null: no timer deferral).
  store::TimerDeferStore* timer_defer = nullptr;
  const std::string* group_id = nullptr;

  void begin(const Key& k, engine::PartitionState& p, int attempt_no, std::chrono::steady_clock::time_point now) {
    std::lock_guard l(mutex);
    // A fresh stop_source allocates its shared state; most handlers never
    // look at their token, so an unused, unfired source is reused.
    if (stop_shared || !stop.stop_possible() || stop.stop_requested()) {
      stop = std::stop_source();
      stop_shared = false;
    }
    reason.store(0, std::memory_order_relaxed);
    started = now;
    active = true;
    key = &k;
    partition = &p;
    attempt = attempt_no;
  }
  void end() {
    std::lock_guard l(mutex);
    active = false;  // cancel() needs an active slot, so the kept source cannot fire
    key = nullptr;
    partition = nullptr;
  }
  // Requests cancellation if active (and, if given, running on `p`).
  bool cancel(CancelReason why, const engine::PartitionState* p = nullptr) {
    std::lock_guard l(mutex);
    if (!active || (p && partition != p) || stop.stop_requested()) return false;
    reason.store(static_cast<int>(why), std::memory_order_relaxed);
    stop.request_stop();
    return true;
  }
  std::stop_token token() {
    std::lock_guard l(mutex);
    stop_shared = true;
    return stop.get_token();
  }
};

}  // namespace prosody::detail
