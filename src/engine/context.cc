#include <condition_variable>
#include <mutex>

#include "engine/invocation_slot.h"
#include "prosody/context.h"
#include "prosody/handler.h"

namespace prosody {

std::string_view to_string(CancelReason r) noexcept {
  switch (r) {
    case CancelReason::none: return "none";
    case CancelReason::timeout: return "timeout";
    case CancelReason::revoked: return "revoked";
    case CancelReason::shutdown: return "shutdown";
  }
  return "unknown";
}

std::stop_token Context::stop_token() const { return slot_->token(); }

CancelReason Context::cancel_reason() const {
  return static_cast<CancelReason>(slot_->reason.load(std::memory_order_relaxed));
}

bool Context::wait_for_cancel(std::chrono::nanoseconds timeout) const {
  auto token = stop_token();
  std::mutex m;
  std::condition_variable_any cv;
  std::unique_lock l(m);
  return cv.wait_for(l, token, timeout, [] { return false; }) || token.stop_requested();
}

const Topic& Context::topic() const { return *slot_->record->topic; }
Partition Context::partition() const { return slot_->record->partition; }
const Key& Context::key() const { return slot_->record->key; }
int Context::attempt() const { return slot_->attempt; }

Error EventHandler::classify_exception(std::exception_ptr exception) const {
  try {
    std::rethrow_exception(exception);
  } catch (const std::exception& e) {
    return Error::transient(std::string("handler threw: ") + e.what());
  } catch (...) {
    return Error::transient("handler threw a non-standard exception");
  }
}

}  // namespace prosody
