// File: prosody/handler.h
//
// The user's event handler. `on_message` is called once per record and
// `on_timer` once per due timer (see prosody/timer.h), never concurrently for
// the same key, concurrently across keys, on the engine's worker threads; a
// key's messages and timers run in arrival/due order. Return ok_status() on success or an Error whose class tells
// the engine what to do:
//   transient  -> retried with backoff (pipeline: forever; low_latency:
//                 max_retries, then the failure topic; best_effort: logged)
//   permanent  -> not retried (logged; low_latency: failure topic)
//   terminal   -> the partition stops; is_stalled() reports it
// A handler that throws is caught at the boundary: the exception is turned
// into an error by `classify_exception`, which by default applies the
// handler's declarative `error_rules()` (transient unless a rule says
// otherwise), e.g. in the handler's constructor:
//   error_rules().permanent<std::invalid_argument>(HandlerMethod::on_message);
//
// Thread safety: called concurrently from several worker threads.
#pragma once

#include <exception>
#include <string>

#include "prosody/context.h"
#include "prosody/error_rules.h"
#include "prosody/message.h"
#include "prosody/result.h"
#include "prosody/timer.h"

namespace prosody {

using HandlerResult = Status;

class EventHandler {
 public:
  virtual ~EventHandler() = default;

  virtual HandlerResult on_message(Context& context, const Message& message) = 0;

  // Called when a timer scheduled through Context::schedule is due. The
  // default fails permanently (a handler that schedules timers must handle
  // them); the timer is then removed.
  virtual HandlerResult on_timer(Context& context, const Timer& timer);

  // Override to mark errors permanent that the handler returned as
  // transient (e.g. by inspecting the message text or code).
  virtual bool is_permanent(const Error& error) const { return error.is_permanent(); }

  // Maps an exception escaping on_message/on_timer to an error. Default:
  // error_rules().to_error(method, exception) — the declared class, else
  // transient, carrying what() for std::exception.
  virtual Error classify_exception(HandlerMethod method, std::exception_ptr exception) const;

  // Declarative exception classification (build it before subscribing;
  // it is read concurrently afterwards).
  ErrorRules& error_rules() { return error_rules_; }
  const ErrorRules& error_rules() const { return error_rules_; }

 private:
  ErrorRules error_rules_;
};

}  // namespace prosody
