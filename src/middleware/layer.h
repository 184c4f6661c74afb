// The middleware framework: an event (a record or a due timer) travels
// through a stack of layers, outermost first, to the handler. Each layer is
// one small class with one job (retry, failure topic, scheduling, ...); the
// stacks per mode are assembled by stack_builder.cc in Prosody's order
// (reference/prosody-internals.md §1).
//
// Contract of a layer: `handle(inv, next)` either calls `next(inv)` (maybe
// several times, e.g. Retry) and returns or transforms its result, or
// returns a result without calling inward (a short-circuit: Cancellation
// when the partition is going away, Monopolization for a hot key). The
// result is a Status whose error class is the whole protocol between layers:
//   ok         the event is done (commit it)
//   transient  not done; an outer layer may retry it; at the boundary it is
//              left uncommitted for redelivery (revoke/shutdown)
//   permanent  done, unsuccessfully (logged; DLQ in low-latency)
//   terminal   the partition must stop here
// Layers never throw; the innermost adapter turns handler exceptions into
// errors (ErrorRules) before any layer sees them.
//
// Thread safety: a Stack and its layers are shared by all worker threads;
// layers keep no per-event state outside the Invocation (which belongs to
// one worker for the duration of one event).
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <stop_token>
#include <vector>

#include "engine/record.h"
#include "middleware/fair_scheduler.h"
#include "middleware/topic_partition_key.h"
#include "prosody/clock.h"
#include "prosody/handler.h"
#include "prosody/result.h"
#include "timers/partition_timers.h"

namespace prosody::detail {
struct InvocationSlot;
}
namespace prosody::engine {
struct PartitionState;
}

namespace prosody::middleware {

enum class EventKind { message, timer };

// One event on its way through the stack. Owned by the worker running it.
struct Invocation {
  EventKind kind = EventKind::message;
  TopicPartitionKey tpk;
  engine::PartitionState* partition = nullptr;
  detail::Record* record = nullptr;               // messages
  const timers::DueTimer* timer = nullptr;        // timers
  detail::InvocationSlot* slot = nullptr;         // the worker's slot (Context, timeouts)
  std::stop_token stop;                           // revoke or shutdown: cut backoffs short, stop retrying
  // The partition gave up on work not yet started (drain budget spent,
  // partition lost or halted): do not start, stop waiting for a permit.
  // Revoke alone does not abandon: queued events still run so the
  // committed prefix stays contiguous and the next owner redoes nothing.
  std::stop_token abandon;
  const std::atomic<bool>* shutting_down = nullptr;
  DemandClass demand = DemandClass::normal;       // failure once retried
  // An error found before the handler could run (undecodable record): the
  // innermost adapter returns it instead of calling the handler, so the
  // outer layers treat it like a handler error (e.g. dead-letter it).
  std::optional<Error> precheck_error;
  // Set by FailureTopic once the handler has given up, so a retried write to
  // the failure topic does not run the handler again.
  std::optional<Error> dead_letter_pending;
  int handler_attempts = 0;                       // handler calls made so far (Context::attempt)
  // The clock, read once per step instead of once per layer (each read was
  // ~1 % of a cheap handler's CPU, and the three innermost layers read it
  // five times per call). Set by the scheduler layer when its permit came
  // at once: the moment it asked, which the timeout and telemetry layers
  // take as the call's start. Set by the telemetry layer when the handler
  // returns: the scheduler charges the key up to it.
  std::optional<Clock::steady_time> permit_granted_at;
  std::optional<Clock::steady_time> handler_ended_at;

  bool stopping() const { return stop.stop_requested() || (shutting_down && shutting_down->load()); }
  // "topic[partition]@offset key 'k'" or "topic[partition] timer <time> key 'k'", for logs.
  std::string describe() const;
};

class Stack;

// The rest of the stack below a layer. Cheap to copy; no allocation.
class Next {
 public:
  Next(const Stack& stack, std::size_t index) : stack_(&stack), index_(index) {}
  Status operator()(Invocation& inv) const;

 private:
  const Stack* stack_;
  std::size_t index_;
};

class Layer {
 public:
  virtual ~Layer() = default;
  virtual Status handle(Invocation& inv, const Next& next) const = 0;
  virtual std::string_view name() const = 0;
};

// What sits below the last layer: calls the user's handler.
class Innermost {
 public:
  virtual ~Innermost() = default;
  virtual Status invoke(Invocation& inv) const = 0;
};

class Stack {
 public:
  Stack(std::vector<std::unique_ptr<Layer>> layers, std::shared_ptr<Innermost> innermost)
      : layers_(std::move(layers)), innermost_(std::move(innermost)) {}

  Status run(Invocation& inv) const { return call(0, inv); }
  Status call(std::size_t index, Invocation& inv) const {
    if (index == layers_.size()) return innermost_->invoke(inv);
    return layers_[index]->handle(inv, Next(*this, index + 1));
  }
  // Layer names, outermost first (tests check the order per mode).
  std::vector<std::string_view> names() const;

 private:
  std::vector<std::unique_ptr<Layer>> layers_;
  std::shared_ptr<Innermost> innermost_;
};

inline Status Next::operator()(Invocation& inv) const { return stack_->call(index_, inv); }

}  // namespace prosody::middleware
