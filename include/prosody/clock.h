// File: prosody/clock.h
//
// Time is injected so that retry backoff, handler timeouts and stall
// detection can be tested with a simulated clock instead of sleeps.
//
// Thread safety: implementations must be safe to call from any thread.
#pragma once

#include <chrono>
#include <memory>
#include <stop_token>

namespace prosody {

class Clock {
 public:
  using steady_time = std::chrono::steady_clock::time_point;
  using system_time = std::chrono::system_clock::time_point;

  virtual ~Clock() = default;
  virtual steady_time now() const = 0;
  virtual system_time system_now() const = 0;
  // Blocks until `deadline` or until `stop` is requested. Returns true when
  // the deadline was reached, false when stopped early.
  virtual bool sleep_until(steady_time deadline, std::stop_token stop) const = 0;

  bool sleep_for(std::chrono::nanoseconds d, std::stop_token stop) const {
    return sleep_until(now() + d, std::move(stop));
  }
};

// The real clocks. Shared, stateless.
std::shared_ptr<Clock> system_clock();

}  // namespace prosody
