// The hand-off from the poll thread to the workers: a FIFO of keys that have
// work and are not running. A key is in the queue at most once (the
// KeyQueue's `scheduled` flag, guarded by its partition's mutex, ensures it),
// which is what keeps one key's records from overlapping.
//
// Thread safety: all methods are safe from any thread.
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

namespace prosody::engine {

struct PartitionState;
struct KeyQueue;

struct ReadyItem {
  std::shared_ptr<PartitionState> partition;
  KeyQueue* key;
};

class ReadyQueue {
 public:
  void push(ReadyItem item) {
    {
      std::lock_guard l(mutex_);
      items_.push_back(std::move(item));
    }
    cv_.notify_one();
  }
  // One lock for a whole poll batch.
  void push_all(std::vector<ReadyItem>& batch) {
    if (batch.empty()) return;
    {
      std::lock_guard l(mutex_);
      for (auto& i : batch) items_.push_back(std::move(i));
    }
    // Wake one worker per item rather than all of them for every batch: the
    // bench driver's profile showed futex wake-ups of idle workers as a large
    // share of consumer CPU on 2 cores. (Issue 5 replaces this queue.)
    for (std::size_t i = 0; i < batch.size(); ++i) cv_.notify_one();
    batch.clear();
  }
  // Blocks until an item is available; nullopt once closed.
  std::optional<ReadyItem> pop() {
    std::unique_lock l(mutex_);
    cv_.wait(l, [&] { return closed_ || !items_.empty(); });
    if (closed_) return std::nullopt;
    ReadyItem item = std::move(items_.front());
    items_.pop_front();
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

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<ReadyItem> items_;  // guarded by mutex_
  bool closed_ = false;          // guarded by mutex_
};

}  // namespace prosody::engine
