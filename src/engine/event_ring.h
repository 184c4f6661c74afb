// A FIFO of move-only values in one power-of-two array that grows by
// doubling and never shrinks: the per-key event queue. Unlike std::deque
// (which allocates a 512-byte block and its map when constructed) an empty
// ring owns nothing, and a ring that is reused (KeyQueues are recycled per
// partition) keeps its array, so a steady stream of one-record keys
// allocates nothing.
//
// Thread safety: none; the owning PartitionState's mutex guards it.
#pragma once

#include <cstddef>
#include <memory>
#include <utility>

namespace prosody::engine {

template <class T>
class EventRing {
 public:
  bool empty() const { return size_ == 0; }
  std::size_t size() const { return size_; }
  std::size_t capacity() const { return capacity_; }

  T& front() { return slots_[head_]; }

  void push_back(T value) {
    if (size_ == capacity_) grow();
    slots_[(head_ + size_) & (capacity_ - 1)] = std::move(value);
    ++size_;
  }

  void pop_front() {
    slots_[head_] = T{};  // release what the slot owns now, not when it is overwritten
    head_ = (head_ + 1) & (capacity_ - 1);
    --size_;
  }

  void clear() {
    while (!empty()) pop_front();
    head_ = 0;
  }

 private:
  void grow() {
    const std::size_t cap = capacity_ == 0 ? 4 : capacity_ * 2;
    auto next = std::make_unique<T[]>(cap);
    for (std::size_t i = 0; i < size_; ++i) next[i] = std::move(slots_[(head_ + i) & (capacity_ - 1)]);
    slots_ = std::move(next);
    capacity_ = cap;
    head_ = 0;
  }

  std::unique_ptr<T[]> slots_;
  std::size_t capacity_ = 0;  // 0 or a power of two
  std::size_t head_ = 0;
  std::size_t size_ = 0;
};

}  // namespace prosody::engine
