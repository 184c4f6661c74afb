// librdkafka-backed implementation of prosody::Producer.
//
// Thread safety: all public methods are safe from any thread. Delivery
// callbacks run on the producer's own poll thread; keep them short.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <thread>

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

  const std::string source_system_;
  const std::chrono::milliseconds send_timeout_;
  const std::shared_ptr<Clock> clock_;
  KafkaHandle handle_;
  std::stop_source stop_;
  std::jthread poller_;
};

}  // namespace prosody::kafka
