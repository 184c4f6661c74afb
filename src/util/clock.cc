#include "prosody/clock.h"

#include <condition_variable>
#include <mutex>

namespace prosody {
namespace {

class SystemClock final : public Clock {
 public:
  steady_time now() const override { return std::chrono::steady_clock::now(); }
  system_time system_now() const override { return std::chrono::system_clock::now(); }
  bool sleep_until(steady_time deadline, std::stop_token stop) const override {
    std::mutex m;
    std::condition_variable_any cv;
    std::unique_lock lock(m);
    // wait_until with a stop token returns early (false) when stop is requested.
    return !cv.wait_until(lock, stop, deadline, [] { return false; }) && !stop.stop_requested();
  }
};

}  // namespace

std::shared_ptr<Clock> system_clock() {
  static const auto clock = std::make_shared<SystemClock>();
  return clock;
}

}  // namespace prosody
