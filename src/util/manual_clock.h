// A simulated clock for tests: time moves only when advance() is called, and
// sleepers wake when the simulated time reaches their deadline.
//
// Thread safety: all methods are safe from any thread.
#pragma once

#include <condition_variable>
#include <mutex>

#include "prosody/clock.h"

namespace prosody::testing {

class ManualClock final : public Clock {
 public:
  steady_time now() const override {
    std::lock_guard l(m_);
    return steady_;
  }
  system_time system_now() const override {
    std::lock_guard l(m_);
    return system_;
  }
  bool sleep_until(steady_time deadline, std::stop_token stop) const override {
    std::unique_lock l(m_);
    ++sleepers_;
    cv_.notify_all();
    bool reached = cv_.wait(l, stop, [&] { return steady_ >= deadline; });
    --sleepers_;
    return reached;
  }
  void advance(std::chrono::nanoseconds d) {
    std::lock_guard l(m_);
    steady_ += std::chrono::duration_cast<steady_time::duration>(d);
    system_ += std::chrono::duration_cast<system_time::duration>(d);
    cv_.notify_all();
  }
  // Waits (really) until `n` threads are sleeping on this clock.
  void await_sleepers(int n) const {
    std::unique_lock l(m_);
    cv_.wait(l, [&] { return sleepers_ >= n; });
  }

 private:
  mutable std::mutex m_;
  mutable std::condition_variable_any cv_;
  mutable int sleepers_ = 0;
  steady_time steady_{std::chrono::hours(1)};
  system_time system_{std::chrono::sys_days{std::chrono::year{2026} / 1 / 1}};
};

}  // namespace prosody::testing
