#include <algorithm>
#include <condition_variable>
#include <optional>
#include <mutex>

#include "engine/invocation_slot.h"
#include "engine/partition_state.h"
#include "prosody/context.h"
#include "prosody/handler.h"
#include "store/defer_store.h"
#include "timers/timer_service.h"

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

void Context::on_cancel() const {
  auto token = stop_token();
  std::mutex m;
  std::condition_variable_any cv;
  std::unique_lock l(m);
  cv.wait(l, token, [] { return false; });
}

const Topic& Context::topic() const { return slot_->partition->topic; }
Partition Context::partition() const { return slot_->partition->partition; }
const Key& Context::key() const { return *slot_->key; }
int Context::attempt() const { return slot_->attempt; }

namespace {

timers::EpochSeconds epoch(TimerTime t) { return t.time_since_epoch().count(); }

}  // namespace

Status Context::schedule(std::chrono::system_clock::time_point time) {
  auto t = to_timer_time(time);
  if (!t) return t.error();
  auto s = slot_->partition->timers->schedule(key(), TimerType::application, epoch(*t));
  if (s && slot_->timer_service) slot_->timer_service->notify_scheduled(epoch(*t));
  return s;
}

namespace {

// Pipeline mode parks a key's failing application timers in the timer defer
// queue (TimerDefer). To the handler they are still scheduled: scheduled()
// reports them, and unschedule/clear remove them as well as live timers.
// Null when timers are not deferred (other modes).
std::optional<store::DeferSegment> defer_segment(const detail::InvocationSlot& slot) {
  if (!slot.timer_defer || !slot.group_id) return std::nullopt;
  return store::DeferSegment(*slot.group_id, slot.partition->topic, slot.partition->partition);
}

Status clear_deferred(detail::InvocationSlot& slot, const Key& key) {
  auto seg = defer_segment(slot);
  if (!seg) return ok_status();
  return slot.timer_defer->remove_key(*seg, key);
}

}  // namespace

Status Context::clear_and_schedule(std::chrono::system_clock::time_point time) {
  auto t = to_timer_time(time);
  if (!t) return t.error();
  // The new timer is stored first: a failure in between leaves an extra
  // timer, never none.
  auto s = slot_->partition->timers->clear_and_schedule(key(), TimerType::application, epoch(*t));
  if (s && slot_->timer_service) slot_->timer_service->notify_scheduled(epoch(*t));
  if (!s) return s;
  return clear_deferred(*slot_, key());
}

Status Context::unschedule(std::chrono::system_clock::time_point time) {
  auto t = to_timer_time(time);
  if (!t) return t.error();
  if (auto s = slot_->partition->timers->unschedule(key(), TimerType::application, epoch(*t)); !s) return s;
  auto seg = defer_segment(*slot_);
  if (!seg) return ok_status();
  auto head = slot_->timer_defer->remove(*seg, key(), epoch(*t));
  if (!head) return head.error();
  return ok_status();
}

Status Context::clear_scheduled() {
  if (auto s = slot_->partition->timers->clear(key(), TimerType::application); !s) return s;
  return clear_deferred(*slot_, key());
}

Result<std::vector<TimerTime>> Context::scheduled() const {
  auto times = slot_->partition->timers->scheduled(key(), TimerType::application);
  if (!times) return times.error();
  if (auto seg = defer_segment(*slot_)) {
    auto deferred = slot_->timer_defer->entries(*seg, key());
    if (!deferred) return deferred.error();
    for (const auto& e : *deferred) times->push_back(e.time);
    std::sort(times->begin(), times->end());
    times->erase(std::unique(times->begin(), times->end()), times->end());
  }
  std::vector<TimerTime> out;
  out.reserve(times->size());
  for (auto t : *times) out.push_back(TimerTime{std::chrono::seconds{t}});
  return out;
}

HandlerResult EventHandler::on_timer(Context& context, const Timer& timer) {
  return Error::permanent("a timer for key '" + context.key() + "' fired at " +
                              std::to_string(timer.time().time_since_epoch().count()) +
                              " s but the handler does not override on_timer",
                          ErrorCode::invalid_state);
}

Error EventHandler::classify_exception(HandlerMethod method, std::exception_ptr exception) const {
  return error_rules_.to_error(method, exception);
}

}  // namespace prosody
