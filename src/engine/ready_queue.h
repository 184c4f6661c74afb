// The hand-off from the poll thread to the workers: a FIFO of keys that have
// work and are not running. A key is in the queue at most once (the
// KeyQueue's `scheduled` flag, guarded by its partition's mutex, ensures it),
// which is what keeps one key's records from overlapping.
//
// Wake-ups are the expensive part of a hand-off (a futex syscall for the
// pusher and a context switch for the woken thread), so the queue keeps at
// most one of them in flight: a push wakes one sleeping worker only if no
// wake-up is already on its way, and a worker that takes an item and leaves
// more behind wakes the next one (a chain). Workers that are awake take the
// remaining items without sleeping. On 2 cores with cheap handlers the chain
// stops after a few links because the awake workers drain the queue faster
// than sleepers can be woken; with slow handlers it wakes every idle worker
// one after another, a few microseconds apart.
//
// Liveness: an item never waits while a worker sleeps unwoken. Whenever
// items are queued and a worker is idle, either a wake-up is in flight
// (`signals_` > 0), and the worker it reaches re-checks after taking an item,
// or every idle worker has already been asked.
//
// Thread safety: all methods are safe from any thread.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

namespace prosody::engine {

struct PartitionState;
struct KeyQueue;

struct ReadyItem {
  std::shared_ptr<PartitionState> partition;
  KeyQueue* key = nullptr;
};

class ReadyQueue {
 public:
  void push(ReadyItem item) {
    Sleeper* wake;
    {
      std::lock_guard l(mutex_);
      items_.push_back(std::move(item));
      wake = claim_wakeup_locked();
    }
    if (wake != nullptr) wake->cv.notify_one();
  }

  // One lock and at most one wake-up for a whole batch. Clears `batch`.
  void push_all(std::vector<ReadyItem>& batch) {
    if (batch.empty()) return;
    Sleeper* wake;
    {
      std::lock_guard l(mutex_);
      items_.insert(items_.end(), std::make_move_iterator(batch.begin()), std::make_move_iterator(batch.end()));
      wake = claim_wakeup_locked();
    }
    batch.clear();
    if (wake != nullptr) wake->cv.notify_one();
  }

  // Blocks until an item is available; nullopt once closed.
  std::optional<ReadyItem> pop() {
    std::unique_lock l(mutex_);
    while (!closed_ && items_.empty()) {
      Sleeper* me = spare_sleeper_locked();
      sleeping_.push_back(me);
      me->cv.wait(l, [&] { return me->woken || closed_; });
      if (me->woken) {
        me->woken = false;
        --signals_;
      } else {
        std::erase(sleeping_, me);
      }
      spare_.push_back(me);
    }
    if (closed_) return std::nullopt;
    ReadyItem item = std::move(items_.front());
    items_.pop_front();
    // Pass the baton: more work is waiting and someone sleeps.
    Sleeper* next = items_.empty() ? nullptr : claim_wakeup_locked();
    l.unlock();
    if (next != nullptr) next->cv.notify_one();
    return item;
  }

  void close() {
    std::vector<Sleeper*> asleep;
    {
      std::lock_guard l(mutex_);
      closed_ = true;
      items_.clear();
      asleep = sleeping_;
    }
    // Sleepers belong to the queue, so they outlive this call (see Sleeper).
    for (Sleeper* s : asleep) s->cv.notify_one();
  }

  // For tests and diagnostics.
  std::size_t size() const {
    std::lock_guard l(mutex_);
    return items_.size();
  }
  int idle_workers() const {
    std::lock_guard l(mutex_);
    return static_cast<int>(sleeping_.size()) + signals_;
  }

 private:
  // One waiting worker's wake-up slot. Slots are owned by the queue and
  // recycled, never freed before it, so a waker may notify after unlocking:
  // if the slot's sleeper already left (a spurious wake-up that saw
  // `woken`) and another worker took the slot, that one wakes spuriously
  // and waits again.
  struct Sleeper {
    std::condition_variable cv;
    bool woken = false;  // guarded by mutex_
  };

  Sleeper* spare_sleeper_locked() {
    if (spare_.empty()) {
      all_sleepers_.push_back(std::make_unique<Sleeper>());
      return all_sleepers_.back().get();
    }
    Sleeper* s = spare_.back();
    spare_.pop_back();
    return s;
  }

  // The sleeper the caller must notify (after unlocking), or nullptr when a
  // wake-up is already on its way or nobody sleeps. Caller holds mutex_.
  // The most recently idle worker goes first: its stack and cache are still
  // warm, and the rest stay asleep instead of taking turns (a FIFO wake-up
  // rotated work through every one of 4 x max_concurrency threads,
  // migrating them between cores).
  Sleeper* claim_wakeup_locked() {
    if (signals_ > 0 || sleeping_.empty()) return nullptr;
    Sleeper* s = sleeping_.back();
    sleeping_.pop_back();
    s->woken = true;
    ++signals_;
    return s;
  }

  mutable std::mutex mutex_;
  std::deque<ReadyItem> items_;                         // guarded by mutex_
  std::vector<std::unique_ptr<Sleeper>> all_sleepers_;  // guarded; every slot ever made
  std::vector<Sleeper*> spare_;                         // guarded; slots not in use
  std::vector<Sleeper*> sleeping_;                      // guarded; waiting workers, most recent last
  int signals_ = 0;                                     // guarded: wake-ups sent and not yet received
  bool closed_ = false;                                 // guarded
};

}  // namespace prosody::engine
