#include "prosody/timer.h"

#include <fmt/format.h>

namespace prosody {

std::string_view to_string(TimerType t) noexcept {
  switch (t) {
    case TimerType::application: return "application";
    case TimerType::deferred_message: return "deferredMessage";
    case TimerType::deferred_timer: return "deferredTimer";
  }
  return "unknown";
}

Result<TimerTime> to_timer_time(std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  // Half-up rounding to whole seconds, as Prosody does: 1.5 s -> 2 s.
  const auto ms = duration_cast<milliseconds>(t.time_since_epoch()).count();
  if (ms < 0) {
    return Error::permanent(fmt::format("timer time {} ms is before the Unix epoch; timers must be in "
                                        "1970-01-01T00:00:00Z .. 9999-12-31T23:59:59Z",
                                        ms),
                            ErrorCode::invalid_argument);
  }
  const auto secs = seconds{(ms + 500) / 1000};
  const TimerTime rounded{secs};
  if (rounded > kMaxTimerTime) {
    return Error::permanent(fmt::format("timer time {} s after the epoch is beyond 9999-12-31T23:59:59Z, the "
                                        "latest supported time",
                                        secs.count()),
                            ErrorCode::invalid_argument);
  }
  return rounded;
}

}  // namespace prosody
