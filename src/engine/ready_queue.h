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
    bool wake;
    {
      std::lock_guard l(mutex_);
      items_.push_back(std::move(item));
      wake = claim_wakeup_locked();
    }
    if (wake) cv_.notify_one();
  }

  // One lock and at most one wake-up for a whole batch. Clears `batch`.
  void push_all(std::vector<ReadyItem>& batch) {
    if (batch.empty()) return;
    bool wake;
    {
      std::lock_guard l(mutex_);
      items_.insert(items_.end(), std::make_move_iterator(batch.begin()), std::make_move_iterator(batch.end()));
      wake = claim_wakeup_locked();
    }
    batch.clear();
    if (wake) cv_.notify_one();
  }

  // Blocks until an item is available; nullopt once closed.
  std::optional<ReadyItem> pop() {
    std::unique_lock l(mutex_);
    while (!closed_ && items_.empty()) {
      ++idle_;
      cv_.wait(l);
      --idle_;
      if (signals_ > 0) --signals_;
    }
    if (closed_) return std::nullopt;
    ReadyItem item = std::move(items_.front());
    items_.pop_front();
    // Pass the baton: more work is waiting and someone sleeps.
    const bool wake = !items_.empty() && claim_wakeup_locked();
    l.unlock();
    if (wake) cv_.notify_one();
    return item;
  }

  void close() {
    {
      std::lock_guard l(mutex_);
      closed_ = true;
      items_.clear();
    }
    cv_.notify_all();
  }

  // For tests and diagnostics.
  std::size_t size() const {
    std::lock_guard l(mutex_);
    return items_.size();
  }
  int idle_workers() const {
    std::lock_guard l(mutex_);
    return idle_;
  }

 private:
  // True if the caller must notify one sleeper. Caller holds mutex_.
  bool claim_wakeup_locked() {
    if (signals_ > 0 || idle_ == 0) return false;
    ++signals_;
    return true;
  }

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<ReadyItem> items_;  // guarded by mutex_
  int idle_ = 0;                 // guarded: workers waiting in pop()
  int signals_ = 0;              // guarded: wake-ups sent and not yet received (<= idle_)
  bool closed_ = false;          // guarded
};

}  // namespace prosody::engine
