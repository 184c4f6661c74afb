// librdkafka-backed implementation of prosody::Producer.
//
// The per-send path is kept to what librdkafka itself needs: a topic handle
// cached per topic name (no name copy, no lookup in librdkafka's topic list),
// the `source-system` header copied from a prebuilt template, a delivery
// state only when there is a callback to call, and the clock read only once
// the local queue is full.
//
// Thread safety: all public methods are safe from any thread. Delivery
// callbacks run on the producer's own poll thread; keep them short. The
// topic cache is guarded by a shared mutex (readers on every send, a writer
// only the first time a topic is seen).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>

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
  static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void*);
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
  std::stop_source stop_;
  std::jthread poller_;
};

}  // namespace prosody::kafka
