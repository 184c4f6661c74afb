// The fair scheduler (Prosody's Dispatcher, internals §2b): decides which
// waiting handler call gets one of `max_concurrency` permits next.
//
// Fairness across keys - virtual time (VT). Each completed call adds its
// duration (permit grant -> release, on the injected clock) to its key's VT,
// kept for up to `cache_size` keys (key_table.h: a full set forgets its least
// recently used key; missing keys have VT 0). VTs decay
// with a fixed 120 s half-life (v * 2^(-dt/120 s)), the old value decayed
// before new time is added. A waiting request snapshots its key's VT when it
// enqueues; at selection the snapshot is decayed to now and
//   priority = VT - wait_weight * min(wait / max_wait, 1)^2      (seconds)
// so a key that ran a lot waits, but never forever: after max_wait it has the
// full boost. Lowest priority wins; ties go to the earlier request.
//
// Fairness across demand classes. Requests are Normal (first attempts) or
// Failure (retries, deferred retries). Completed time is also summed per
// class (decayed alike). When both classes wait, Normal's score is
// success_time / (1 - failure_weight) and Failure's is failure_time /
// failure_weight (a zero denominator scores infinity); the lower score wins,
// Normal on ties. With both saturated, Failure gets failure_weight of the
// handler time (30 % by default). When only one class waits it runs: the
// scheduler is work-conserving, a permit never idles while anyone waits.
//
// Usage (a worker thread):
//   auto permit = scheduler.acquire({tpk, DemandClass::normal}, stop);
//   if (!permit) return permit.error();      // cancelled while waiting
//   run_handler();                            // permit held throughout
//   // ~Permit: charges the elapsed time and hands the slot to the best waiter
//
// Event-driven callers use enqueue(), which returns a Ticket at once and
// calls `on_granted` when the permit is theirs; Ticket::take() then yields
// the Permit. Selection is O(log waiting) per grant while waits are short
// next to VT differences, up to O(waiting) when boosts dominate.
//
// Thread safety: every method of FairScheduler, Permit and Ticket is safe
// from any thread (one internal mutex, never held while calling back into
// user code). While nobody waits, acquire() takes a free permit with one
// atomic compare-and-swap and no lock (see in_use_); release() always locks,
// to charge the key and to hand the permit to a waiter. A granted waiter
// wakes on a futex of its own (util/futex.h) and returns without
// taking the mutex again. A single Permit or Ticket object is not itself
// shared between threads. The scheduler starts no threads and never sleeps;
// blocking is only acquire()/Ticket::wait() waiting for a grant. It must
// outlive every Permit and Ticket it issued.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stop_token>
#include <string_view>
#include <vector>

#include "middleware/key_table.h"
#include "middleware/topic_partition_key.h"
#include "prosody/clock.h"
#include "prosody/config.h"
#include "prosody/result.h"

namespace prosody::middleware {

enum class DemandClass { normal, failure };

std::string_view to_string(DemandClass c) noexcept;

struct SchedulerOptions {
  int max_concurrency = 32;                                     // max_concurrency
  double failure_weight = 0.3;                                  // scheduler_failure_weight
  std::chrono::nanoseconds max_wait = std::chrono::minutes(2);  // scheduler_max_wait
  double wait_weight = 200.0;                                   // scheduler_wait_weight
  std::size_t cache_size = 8192;                                // scheduler_cache_size

  static SchedulerOptions from_config(const Config& config);
};

// The scheduler tracks a key by its digest (topic_partition_key.h), so a
// request, a waiter and a permit carry 8 bytes instead of copies of the
// topic and key strings (two per handler call on the hot path).
struct ScheduledKey {
  ScheduledKey() = default;
  ScheduledKey(const TopicPartitionKey& key) noexcept : digest(middleware::digest(key)) {}  // NOLINT: implicit by design
  std::uint64_t digest = 0;
};

struct ScheduleRequest {
  ScheduledKey key;
  DemandClass demand = DemandClass::normal;
  // When the work became ready; the wait boost counts from here. Empty =
  // the clock's now() when the request reaches the scheduler.
  std::optional<Clock::steady_time> enqueued_at;
};

class FairScheduler {
 public:
  using time_point = Clock::steady_time;
  static constexpr std::chrono::seconds kHalfLife{120};

  class Permit;
  class Ticket;

  FairScheduler(SchedulerOptions options, std::shared_ptr<const Clock> clock);
  FairScheduler(const FairScheduler&) = delete;
  FairScheduler& operator=(const FairScheduler&) = delete;
  ~FairScheduler();

  // Blocks until a permit is granted, or returns a Transient `cancelled`
  // error once `stop` is requested while still waiting. A grant that races
  // the stop request wins (the caller gets the permit and may check stop).
  Result<Permit> acquire(ScheduleRequest request, std::stop_token stop = {});

  // A permit now, if one is free and nobody waits: it never jumps the queue.
  std::optional<Permit> try_acquire(ScheduleRequest request);

  // Joins the queue without blocking. `on_granted` (optional) runs once,
  // outside the scheduler's lock, on the thread whose release (or this
  // enqueue, if a permit is free) granted it - possibly before enqueue
  // returns. It must be quick and must not destroy the Ticket.
  Ticket enqueue(ScheduleRequest request, std::function<void()> on_granted = {});

  struct Snapshot {
    int max_concurrency = 0;
    int in_use = 0;
    std::size_t waiting_normal = 0;
    std::size_t waiting_failure = 0;
    double success_seconds = 0;  // decayed class totals at the snapshot
    double failure_seconds = 0;
    std::size_t tracked_keys = 0;
  };
  Snapshot snapshot() const;

  // The key's VT in seconds, decayed to now (0 if not tracked).
  double virtual_time_seconds(const TopicPartitionKey& key) const;

  const SchedulerOptions& options() const noexcept { return options_; }

 private:
  struct Waiter;
  // Waiters of one demand class, indexed twice: by (VT snapshot, arrival)
  // to find the lowest VT at once, and by (ready time, arrival) to know the
  // largest wait boost anyone in the class has. Selection walks the VT
  // index only while a waiter there could still beat the best found, which
  // with ordinary waits (boosts far below VT differences) is one or two
  // entries instead of every waiter (best_in_locked; the full scan was 12 %
  // of the CPU with 300 threads waiting, bench/PROFILE.md "Session 6").
  struct VtPosition {
    double vt_scaled;
    std::uint64_t seq;
  };
  struct ByVirtualTime {
    using is_transparent = void;  // upper_bound by a bare position
    static VtPosition position(const Waiter* w) noexcept;
    bool operator()(VtPosition a, VtPosition b) const noexcept;
    bool operator()(const Waiter* a, const Waiter* b) const noexcept { return (*this)(position(a), position(b)); }
    bool operator()(const Waiter* a, VtPosition b) const noexcept { return (*this)(position(a), b); }
    bool operator()(VtPosition a, const Waiter* b) const noexcept { return (*this)(a, position(b)); }
  };
  using VtIndex = std::set<Waiter*, ByVirtualTime>;
  using WaitList = std::list<std::shared_ptr<Waiter>>;
  struct ClassQueue {
    WaitList by_ready_time;  // owns the waiters; sorted by (enqueued_at, seq)
    VtIndex by_vt;           // the same waiters by (vt_scaled, seq)
    bool empty() const noexcept { return by_ready_time.empty(); }
    void insert(std::shared_ptr<Waiter> w);
    std::shared_ptr<Waiter> erase(Waiter& w);
  };

  // A decaying accumulator: value as of `at`.
  struct Decayed {
    double value = 0;
    time_point at{};
    double at_time(time_point now) const noexcept;
    void add(double seconds, time_point now) noexcept;
  };

  void release(ScheduledKey key, DemandClass demand, time_point granted_at, std::optional<time_point> ended_at,
               bool charge);
  // Takes a free permit without the lock, if nobody waits.
  bool try_take_free_permit() noexcept;
  // Takes a free permit whether or not anyone waits (compare-and-swap);
  // callers under mutex_ use it after checking the wait lists themselves.
  bool take_free_permit() noexcept;
  // Grants free permits to the best waiters; returns those granted so the
  // caller can wake them after unlocking.
  void dispatch_locked(time_point now, std::vector<std::shared_ptr<Waiter>>& granted);
  std::shared_ptr<Waiter> pick_locked(time_point now);
  Waiter* best_in_locked(ClassQueue& queue, time_point now);
  ClassQueue& queue_of(const Waiter& w);
  void rebase_waiters_locked(time_point now);
  static void wake(std::vector<std::shared_ptr<Waiter>>& granted);
  std::shared_ptr<Waiter> make_waiter_locked(ScheduleRequest&& request, std::function<void()>&& on_granted,
                                             time_point now);
  Result<Permit> wait_for(const std::shared_ptr<Waiter>& waiter, std::stop_token stop);
  std::optional<Permit> take(const std::shared_ptr<Waiter>& waiter);
  void cancel(const std::shared_ptr<Waiter>& waiter);
  bool is_granted(const std::shared_ptr<Waiter>& waiter) const;

  const SchedulerOptions options_;
  const std::shared_ptr<const Clock> clock_;

  mutable std::mutex mutex_;
  // Permits held. Taken by compare-and-swap (lock-free while nobody
  // waits), given back only under mutex_. waiting_ mirrors the two lists'
  // total, written under mutex_: the lock-free path reads it first and backs
  // off to the lock when anyone waits, so it never jumps the queue. A
  // request that finds no free permit enqueues under mutex_ and re-checks
  // in_use_ there, and every release hands out permits under mutex_, so no
  // waiter is left behind with a permit free.
  std::atomic<int> in_use_{0};
  std::atomic<std::size_t> waiting_{0};
  std::uint64_t next_seq_ = 0;                                     // guarded by mutex_
  ClassQueue waiting_normal_;                                      // guarded by mutex_
  ClassQueue waiting_failure_;                                     // guarded by mutex_
  Decayed success_time_;                                           // guarded by mutex_
  Decayed failure_time_;                                           // guarded by mutex_
  KeyTable<Decayed> vt_;                                           // guarded by mutex_, by digest()
  // Waiters keep their VT snapshot scaled to this instant, so ranking them
  // needs one exp2 per grant instead of one per waiter (best_in_locked).
  time_point decay_base_{};                                        // guarded by mutex_
};

// The right to run one handler call. Releasing (explicitly or on
// destruction) charges grant->release time to the key and class and wakes
// the best waiter. Movable, not copyable.
class FairScheduler::Permit {
 public:
  Permit() = default;
  Permit(Permit&& other) noexcept;
  Permit& operator=(Permit&& other) noexcept;
  Permit(const Permit&) = delete;
  Permit& operator=(const Permit&) = delete;
  ~Permit() { release(); }

  bool valid() const noexcept { return scheduler_ != nullptr; }
  void release();
  // Gives the slot back without charging (the call never ran, e.g. the
  // engine dropped the work after the grant).
  void release_uncharged();

  // Same as release(), with the clock already read by the caller at the
  // end of the call (one read instead of two on the hot path).
  void release_at(time_point now);

  DemandClass demand() const noexcept { return demand_; }
  time_point granted_at() const noexcept { return granted_at_; }
  // Granted at once, without waiting: granted_at() is then the moment the
  // caller asked, so the caller may use it as "now".
  bool immediate() const noexcept { return immediate_; }

 private:
  friend class FairScheduler;
  Permit(FairScheduler* s, const ScheduleRequest& request, time_point granted_at, bool immediate)
      : scheduler_(s), key_(request.key), demand_(request.demand), granted_at_(granted_at), immediate_(immediate) {}

  FairScheduler* scheduler_ = nullptr;
  ScheduledKey key_;
  DemandClass demand_ = DemandClass::normal;
  time_point granted_at_{};
  bool immediate_ = false;
};

// A place in the queue. Destroying (or cancel()ing) it leaves the queue, or
// returns an untaken grant uncharged. Movable, not copyable.
class FairScheduler::Ticket {
 public:
  Ticket() = default;
  Ticket(Ticket&&) noexcept = default;
  Ticket& operator=(Ticket&& other) noexcept;
  Ticket(const Ticket&) = delete;
  Ticket& operator=(const Ticket&) = delete;
  ~Ticket() { cancel(); }

  bool valid() const noexcept { return waiter_ != nullptr; }
  bool granted() const;
  // The permit, once granted (then the ticket is spent); empty before.
  std::optional<Permit> take();
  // Blocks like acquire().
  Result<Permit> wait(std::stop_token stop = {});
  void cancel();

 private:
  friend class FairScheduler;
  Ticket(FairScheduler* s, std::shared_ptr<Waiter> w) : scheduler_(s), waiter_(std::move(w)) {}

  FairScheduler* scheduler_ = nullptr;
  std::shared_ptr<Waiter> waiter_;
};

}  // namespace prosody::middleware
