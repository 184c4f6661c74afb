// File: prosody/producer.h
//
// An idempotent Kafka producer that never blocks the caller for longer than
// asked. Every record carries a `source-system` header (the configured source
// system, by default the group id) so consumers can recognise their own
// output and skip it (loop prevention).
//
//   send()        waits for the broker's acknowledgement (or the stop token)
//   send_async()  returns at once; the callback runs on the producer's
//                 delivery thread with the outcome
//
// If the local queue is full, send waits up to `send_timeout` for space and
// then fails with `queue_full` (transient). A stop token that fires while
// waiting for the acknowledgement returns `cancelled`; the record may still
// be delivered, exactly like an abandoned future.
//
// Resends are skipped (as in Prosody): a payload whose top-level "id" this
// producer has already delivered to the same topic and key is not sent
// again; the send succeeds with the delivered record's partition and offset
// (send_async's callback gets them on the delivery thread, like any
// outcome). Only acknowledged records are remembered, in an approximate LRU
// sized by `idempotence_cache_size` (0 turns this off).
//
// Thread safety: all methods are safe to call from any thread.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <stop_token>
#include <string_view>

#include <nlohmann/json.hpp>

#include "prosody/message.h"
#include "prosody/result.h"
#include "prosody/types.h"

namespace prosody {

class Config;

struct Delivery {
  Topic topic;
  Partition partition;
  Offset offset;
};

using DeliveryCallback = std::function<void(Result<Delivery>)>;

class Producer {
 public:
  virtual ~Producer() = default;

  // Builds a producer from the config (bootstrap servers, mock mode,
  // send_timeout, source_system, pass-through Kafka properties).
  static Result<std::unique_ptr<Producer>> create(const Config& config);

  // Sends raw bytes and waits for the acknowledgement.
  virtual Result<Delivery> send(std::string_view topic, std::string_view key, std::string_view payload,
                                const Headers& headers = {}, std::stop_token stop = {}) = 0;
  // Serialises `payload` as JSON and sends it.
  Result<Delivery> send_json(std::string_view topic, std::string_view key, const nlohmann::json& payload,
                             const Headers& headers = {}, std::stop_token stop = {}) {
    return send(topic, key, payload.dump(), headers, std::move(stop));
  }
  // Enqueues and returns; `on_delivery` (may be empty) gets the outcome later, once. Returns an
  // error only if the record could not be enqueued within send_timeout. A record still
  // undelivered when the producer is destroyed (after up to 10 s of flushing) is reported
  // as failed with ErrorCode::shut_down.
  virtual Status send_async(std::string_view topic, std::string_view key, std::string_view payload,
                            const Headers& headers, DeliveryCallback on_delivery) = 0;

  // Waits until every enqueued record is acknowledged or `timeout` passes.
  virtual Status flush(std::chrono::milliseconds timeout) = 0;

  virtual const std::string& source_system() const = 0;
};

}  // namespace prosody
