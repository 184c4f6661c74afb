// librdkafka-backed implementation of prosody::Producer.
//
// The per-send path is kept to what librdkafka itself needs: a topic handle
// cached per topic name (no name copy, no lookup in librdkafka's topic list),
// the `source-system` header copied from a prebuilt template, a delivery
// state only when there is a callback to call, and the clock read only once
// the local queue is full.
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
// Thread safety: all public methods are safe from any thread. Delivery
// callbacks run on the producer's own delivery thread; keep them short. The
// topic cache is guarded by a shared mutex (readers on every send, a writer
// only the first time a topic is seen); the retired events by their own
// mutex, which senders only ever try_lock.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "kafka/client_config.h"
#include "kafka/handles.h"
#include "prosody/clock.h"
#include "prosody/producer.h"

namespace prosody::kafka {

class KafkaProducer final : public Producer {
 public:
  static Result<std::unique_ptr<KafkaProducer>> create(const ProducerSettings& settings, std::string source_system,
                                                       std::chrono::milliseconds send_timeout,
                                                       std::shared_ptr<Clock> clock);
  ~KafkaProducer() override;

  Result<Delivery> send(std::string_view topic, std::string_view key, std::string_view payload,
                        const Headers& headers, std::stop_token stop) override;
  Status send_async(std::string_view topic, std::string_view key, std::string_view payload, const Headers& headers,
                    DeliveryCallback on_delivery) override;
  Status flush(std::chrono::milliseconds timeout) override;
  const std::string& source_system() const override { return source_system_; }

 private:
  KafkaProducer(std::string source_system, std::chrono::milliseconds send_timeout, std::shared_ptr<Clock> clock);
  Status enqueue(std::string_view topic, std::string_view key, std::string_view payload, const Headers& headers,
                 DeliveryCallback on_delivery);
  // Delivery thread: serves the main queue until stopped.
  void delivery_loop(std::stop_token token);
  void handle_event(rd_kafka_event_t* ev);
  struct DeliveryState;
  // Runs the record's callback; returns its (now empty) state for freeing.
  static DeliveryState* deliver(const rd_kafka_message_t& m);
  // A served DR event and the delivery states of its records (a list through
  // DeliveryState::next), waiting for a sender to free them.
  struct Spent {
    rd_kafka_event_t* event;
    DeliveryState* states;
  };
  static void release(const Spent& spent);
  // Delivery thread: hands a served event to the senders.
  void retire(Spent spent);
  // Frees the retired events; a sender passes wait=false and skips when the
  // delivery thread holds the lock. Returns whether anything was freed.
  bool free_retired(bool wait);
  // The cached handle of `topic`, created on first use; null (with the
  // librdkafka error) when librdkafka rejects the name.
  rd_kafka_topic_t* topic_handle(std::string_view topic, rd_kafka_resp_err_t& err);
  // The record's headers: the template's `source-system` plus the caller's
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

  const std::string source_system_;
  const std::chrono::milliseconds send_timeout_;
  const std::shared_ptr<Clock> clock_;
  HeadersHandle header_template_;  // just `source-system`; copied per record
  KafkaHandle handle_;
  // Declared after handle_: topic handles go before the rd_kafka_t they
  // belong to (the destructor also clears them explicitly after the flush).
  std::shared_mutex topics_mutex_;
  std::unordered_map<std::string, TopicHandle, NameHash, std::equal_to<>> topics_;  // guarded by topics_mutex_
  QueueHandle main_queue_;  // delivery-report events; destroyed before handle_
  std::mutex retired_mutex_;
  std::vector<Spent> retired_;              // guarded by retired_mutex_
  std::size_t retired_records_ = 0;         // guarded by retired_mutex_
  std::atomic<bool> has_retired_{false};    // hint for senders, read without the lock
  std::atomic<int> flushing_{0};            // > 0: the delivery thread frees at once
  std::stop_source stop_;
  std::jthread poller_;
};

}  // namespace prosody::kafka
