// Fires the timers of every owned partition on time. One thread per
// consumer: it loads each partition's near future from the store (slab by
// slab, ahead of time), hands due timers to the engine through `deliver`,
// retries failed store deletes, and sleeps on the injected Clock until the
// next due time, the next load, or a wake-up (a handler scheduled something
// earlier, a partition was added or removed).
//
// Load schedule (Prosody's): before a slab begins, load it `preload` early,
// where preload = 60 s + uniform(0, slab_size - 60 s) is re-drawn after each
// load, so a fleet does not hit the store at the same instant.
//
// Thread safety: add/remove/wake/stop from any thread; `deliver` is called
// on the service thread, never with the service's lock held.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <stop_token>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

#include "prosody/clock.h"
#include "timers/partition_timers.h"

namespace prosody::timers {

class TimerService {
 public:
  // Called with each due timer. Returns false if the partition can no
  // longer take it (revoked, halted): the timer is abandoned here and stays
  // in the store for the partition's next owner.
  using Deliver = std::function<bool(const std::shared_ptr<PartitionTimers>&, DueTimer)>;

  // A failed slab load is retried after 2 s, 4 s, then every 5 s. Capped
  // low because timers of a slab that is not loaded cannot fire: after a
  // store outage (a Cassandra restart) they are late by up to this much
  // once the store answers again, and a retry costs one read per partition.
  static constexpr std::chrono::seconds kMaxLoadRetryDelay{5};

  TimerService(std::shared_ptr<Clock> clock, std::chrono::seconds slab_size, std::chrono::milliseconds heartbeat);
  ~TimerService();
  TimerService(const TimerService&) = delete;
  TimerService& operator=(const TimerService&) = delete;

  void start();
  void stop();

  void add(std::shared_ptr<PartitionTimers> timers, Deliver deliver);
  void remove(const std::shared_ptr<PartitionTimers>& timers);
  // Re-evaluates the sleep now.
  void wake();
  // A handler scheduled `time`: wakes the service only if it would
  // otherwise sleep past it (cheap when it would not).
  void notify_scheduled(EpochSeconds time);
  // A fired timer finished: wakes the service only if due timers were held
  // back by backpressure.
  void notify_completed();

  // Last time the service loop ran (steady clock ticks), for stall checks.
  std::chrono::steady_clock::time_point last_beat() const;

 private:
  struct Entry {
    std::shared_ptr<PartitionTimers> timers;
    Deliver deliver;
    EpochSeconds next_load_at = 0;  // epoch seconds; 0 = load now
    int load_failures = 0;
  };

  void run(std::stop_token stop);
  // One pass over the partitions; returns the epoch time (ms) to wake at.
  std::int64_t tick(std::int64_t now_ms);
  EpochSeconds draw_next_load(const PartitionTimers& timers, EpochSeconds now);

  const std::shared_ptr<Clock> clock_;
  const std::chrono::seconds slab_size_;
  const std::chrono::milliseconds heartbeat_;
  const std::shared_ptr<spdlog::logger> log_;

  mutable std::mutex mutex_;
  std::vector<std::shared_ptr<Entry>> entries_;  // guarded
  std::stop_source sleep_interrupt_;             // guarded: replaced before each sleep
  bool wake_requested_ = false;                  // guarded
  std::mt19937_64 rng_{std::random_device{}()};  // service thread only
  std::atomic<std::chrono::steady_clock::rep> last_beat_{0};
  std::atomic<std::int64_t> planned_wake_ms_{0};  // epoch ms the service sleeps until
  std::atomic<bool> backlogged_{false};           // due timers held back by backpressure
  std::jthread thread_;
};

}  // namespace prosody::timers
