// File: prosody/timer.h
//
// Durable per-key timers. A handler schedules a time for the key it is
// handling (Context::schedule); at that time the engine calls
// EventHandler::on_timer for the key, in the same per-key queue as the key's
// messages, so a key's timers and messages never run at the same time.
// Timers survive restarts and rebalances (they are stored per partition and
// reloaded by whichever consumer owns the partition) and fire at least once:
// a timer is removed only when its on_timer call completes.
//
// Precision is one second: times are rounded half-up to whole seconds, as
// in Prosody. The supported range is 1970-01-01T00:00:00Z up to
// 9999-12-31T23:59:59Z; times are 64-bit seconds, so there is no 2038 wrap.
//
// Thread safety: plain values.
#pragma once

#include <chrono>
#include <cstdint>
#include <string_view>

#include "prosody/result.h"
#include "prosody/types.h"

namespace prosody {

// Whole seconds since the Unix epoch (UTC).
using TimerTime = std::chrono::sys_seconds;

// Application timers are the user's; the other two are kept by the defer
// middleware for failing keys and never reach on_timer.
enum class TimerType : std::uint8_t { application = 0, deferred_message = 1, deferred_timer = 2 };

std::string_view to_string(TimerType t) noexcept;

inline constexpr TimerTime kMinTimerTime{std::chrono::seconds{0}};
inline constexpr TimerTime kMaxTimerTime{std::chrono::seconds{253402300799}};  // 9999-12-31T23:59:59Z

// Rounds to whole seconds (half-up) and checks the supported range. The
// error names the offending time and the range.
Result<TimerTime> to_timer_time(std::chrono::system_clock::time_point t);

// What on_timer receives.
class Timer {
 public:
  Timer(const Topic& topic, Partition partition, const Key& key, TimerTime time, TimerType type)
      : topic_(&topic), partition_(partition), key_(&key), time_(time), type_(type) {}

  const Topic& topic() const { return *topic_; }
  Partition partition() const { return partition_; }
  const Key& key() const { return *key_; }
  TimerTime time() const { return time_; }
  TimerType type() const { return type_; }

 private:
  const Topic* topic_;
  Partition partition_;
  const Key* key_;
  TimerTime time_;
  TimerType type_;
};

}  // namespace prosody
