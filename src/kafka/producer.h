// librdkafka-backed implementation of prosody::Producer.
//
// The per-send path is kept to what librdkafka itself needs: a topic handle
// cached per topic name (no name copy, no lookup in librdkafka's topic list;
// the last topic used is checked first, without a lock or a hash), the
// `source-system` header added to a fresh list, a delivery state
// only when there is a callback to call or an event id to remember, taken
// from a pool rather than the allocator, and the clock read only once the
// local queue is full.
//
// Delivery reports arrive as librdkafka events on the delivery thread, which
// runs the callbacks at once but does not free the delivered records: it
// hands the spent events back ("retired") and the sending threads free them
// every few sends. The records were allocated by the senders, and freeing
// them on another thread made that thread and the sender contend for the
// allocator's arena lock on every record (72 % of the producer's context
// switches, bench/PROFILE.md finding 6). The delivery thread frees them
// itself when nobody sends (idle poll), when too many wait, and during
// flush (librdkafka counts a record as queued until it is freed).
//
// Delivery states are recycled, not freed: the delivery thread hands each
// event's states back (one atomic push per event, after the callbacks ran)
// and senders reuse them. They used to be freed with the records, which cost
// the senders a malloc, a free and a walk over cold memory per record (~20 %
// of the sending thread, bench/PROFILE.md finding 6). The pool grows to the
// most records ever in flight with a callback (at most
// queue.buffering.max.messages, ~64 bytes each) and is freed with the
// producer.
//
// Resends (Prosody's producer dedup, reference/prosody-internals.md §6):
// with a cache size above 0, a payload with a top-level string "id" is
// looked up by (topic, key, id) among the records this producer has
// delivered (an approximate LRU, middleware/dedup_cache.h, sized by
// `idempotence_cache_size`). A hit is not sent again: the send reports the
// partition and offset of the last acknowledged record of that id. A record
// is remembered only once the broker acknowledged it, so a failed send can
// be retried, and two sends of one id racing before the first
// acknowledgement both go out (consumer-side deduplication catches that
// one). The payload is not validated: the id is read the way the consumer's
// deduplication reads it (a payload cut off after its id still has it).
// Dead letters go through every_send(), which never skips: two failed
// messages of one key and id from different source topics or partitions
// are two dead letters.
//
// Thread safety: all public methods are safe from any thread. Delivery
// callbacks run on the producer's own delivery thread, skipped resends'
// too (queued to it); keep them short. The
// topic cache is guarded by a shared mutex (readers on a topic change, a
// writer only the first time a topic is seen) and publishes the last topic
// used through an atomic pointer; the retired events by their own mutex,
// which senders only ever try_lock; the state pool's free list by a mutex
// only senders take (the delivery thread returns states with a lock-free
// push, senders take them all at once).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "kafka/client_config.h"
#include "kafka/handles.h"
#include "middleware/dedup_cache.h"
#include "prosody/clock.h"
#include "prosody/producer.h"
#include "util/word_lock.h"

namespace prosody::kafka {

class KafkaProducer final : public Producer {
 public:
  // `resend_cache_size`: records remembered for skipping resends; 0 = off.
  static Result<std::unique_ptr<KafkaProducer>> create(const ProducerSettings& settings, std::string source_system,
                                                       std::chrono::milliseconds send_timeout,
                                                       std::shared_ptr<Clock> clock,
                                                       std::size_t resend_cache_size = 0);
  ~KafkaProducer() override;

  Result<Delivery> send(std::string_view topic, std::string_view key, std::string_view payload,
                        const Headers& headers, std::stop_token stop) override;
  Status send_async(std::string_view topic, std::string_view key, std::string_view payload, const Headers& headers,
                    DeliveryCallback on_delivery) override;
  Status flush(std::chrono::milliseconds timeout) override;
  const std::string& source_system() const override { return source_system_; }

  // This producer, without skipping resends (dead letters: see above).
  Producer& every_send() noexcept { return every_send_; }

 private:
  KafkaProducer(std::string source_system, std::chrono::milliseconds send_timeout, std::shared_ptr<Clock> clock,
                std::size_t resend_cache_size);
  Status enqueue(std::string_view topic, std::string_view key, std::string_view payload, const Headers& headers,
                 DeliveryCallback on_delivery, bool skip_resends);
  Result<Delivery> send_and_wait(std::string_view topic, std::string_view key, std::string_view payload,
                                 const Headers& headers, std::stop_token stop, bool skip_resends);
  // A skipped resend's report, for the delivery thread to give.
  void report_skipped(DeliveryCallback on_delivery, Delivery delivery);
  // Delivery thread: gives the queued reports of skipped resends.
  void give_skipped_reports();

  // every_send(): the same producer with skip_resends off.
  class EverySend final : public Producer {
   public:
    explicit EverySend(KafkaProducer& owner) : owner_(owner) {}
    Result<Delivery> send(std::string_view topic, std::string_view key, std::string_view payload,
                          const Headers& headers, std::stop_token stop) override {
      return owner_.send_and_wait(topic, key, payload, headers, std::move(stop), false);
    }
    Status send_async(std::string_view topic, std::string_view key, std::string_view payload, const Headers& headers,
                      DeliveryCallback on_delivery) override {
      return owner_.enqueue(topic, key, payload, headers, std::move(on_delivery), false);
    }
    Status flush(std::chrono::milliseconds timeout) override { return owner_.flush(timeout); }
    const std::string& source_system() const override { return owner_.source_system(); }

   private:
    KafkaProducer& owner_;
  };
  // Delivery thread: serves the main queue until stopped.
  void delivery_loop(std::stop_token token);
  void handle_event(rd_kafka_event_t* ev);
  struct DeliveryState;
  // Runs the record's callback; returns its (now empty) state for reuse.
  // `topic` caches the name of the last topic handle seen in this event.
  DeliveryState* deliver(const rd_kafka_message_t& m, const rd_kafka_topic_t*& rkt, const char*& topic);
  // A sender's state for `cb` (may be empty) and the record's resend id
  // (remembered once delivered), from the pool.
  DeliveryState* acquire_state(DeliveryCallback&& cb, const std::optional<store::DedupId>& resend_id);
  // Back to the pool: a chain through DeliveryState::next, callbacks empty.
  // Delivery thread (lock-free push) and senders (a state never sent).
  void recycle_states(DeliveryState* head, DeliveryState* tail);
  // Delivery thread: hands a served event to the senders.
  void retire(rd_kafka_event_t* event);
  // Frees the retired events; a sender passes wait=false and skips when the
  // delivery thread holds the lock. Returns whether anything was freed.
  bool free_retired(bool wait);
  // The cached handle of `topic`, created on first use; null (with the
  // librdkafka error) when librdkafka rejects the name.
  rd_kafka_topic_t* topic_handle(std::string_view topic, rd_kafka_resp_err_t& err);
  // The record's headers: our `source-system` plus the caller's
  // (a caller's own `source-system` is dropped: ours drives loop prevention).
  rd_kafka_headers_t* make_headers(const Headers& headers) const;

  struct TopicDeleter {
    void operator()(rd_kafka_topic_t* t) const noexcept { rd_kafka_topic_destroy(t); }
  };
  using TopicHandle = std::unique_ptr<rd_kafka_topic_t, TopicDeleter>;
  // Heterogeneous lookup: a send looks its topic up by string_view, no copy.
  struct NameHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };

  using TopicMap = std::unordered_map<std::string, TopicHandle, NameHash, std::equal_to<>>;

  // Where a delivered record went: what a skipped resend reports.
  struct SentRecord {
    Partition partition{-1};
    Offset offset{-1};
  };

  const std::string source_system_;
  const std::chrono::milliseconds send_timeout_;
  const std::shared_ptr<Clock> clock_;
  // Delivered records by producer_dedup_id; null when resends are not
  // skipped. Senders look up, the delivery thread inserts (its own locks).
  const std::unique_ptr<middleware::IdCache<SentRecord>> sent_;
  EverySend every_send_{*this};
  std::mutex skipped_mutex_;
  std::vector<std::pair<DeliveryCallback, Delivery>> skipped_;  // guarded by skipped_mutex_
  std::atomic<std::size_t> skipped_unreported_{0};  // queued or being given; flush waits for 0
  // The state pool. Declared before handle_: the states of records still
  // queued when librdkafka is destroyed stay valid until it is gone. (The
  // destructor purges what its flush left, so normally there are none; if
  // even the purged reports are not served in time, those callbacks are
  // dropped uncalled and freed with the pool.)
  // Taken by every send with a callback or resend id: the one-word lock
  // (two inline atomics) rather than std::mutex (two pthread calls).
  util::WordLock states_mutex_;                                 // senders only
  std::vector<std::unique_ptr<DeliveryState[]>> state_blocks_;  // guarded by states_mutex_
  DeliveryState* free_states_ = nullptr;                        // guarded by states_mutex_
  std::atomic<DeliveryState*> returned_states_{nullptr};        // pushed by the delivery thread
  KafkaHandle handle_;
  // Declared after handle_: topic handles go before the rd_kafka_t they
  // belong to (the destructor also clears them explicitly after the flush).
  std::shared_mutex topics_mutex_;
  TopicMap topics_;  // guarded by topics_mutex_
  // The entry of the topic sent to last (map nodes never move, entries are
  // only erased by the destructor): a send to the same topic reads it
  // without taking topics_mutex_.
  std::atomic<const TopicMap::value_type*> last_topic_{nullptr};
  QueueHandle main_queue_;  // delivery-report events; destroyed before handle_
  std::mutex retired_mutex_;
  std::vector<rd_kafka_event_t*> retired_;  // guarded by retired_mutex_
  std::size_t retired_records_ = 0;         // guarded by retired_mutex_
  std::atomic<bool> has_retired_{false};    // hint for senders, read without the lock
  std::atomic<int> flushing_{0};            // > 0: the delivery thread frees at once
  std::stop_source stop_;
  std::jthread poller_;
};

}  // namespace prosody::kafka
