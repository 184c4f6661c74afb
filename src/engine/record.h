// The engine's view of one consumed record. It owns the librdkafka message
// (no copy of the payload is made) and, once asked for, the decoded payload.
// A Record is touched by one thread at a time: the poll thread fills it,
// hands it over under the partition mutex, and one worker processes it (the
// handler's Message reads it on that worker's thread).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "kafka/handles.h"
#include "prosody/message.h"
#include "prosody/types.h"

namespace prosody::detail {

struct Record {
  kafka::MessageHandle raw;
  const Topic* topic = nullptr;  // owned by the partition state, which outlives the record
  Partition partition;
  Offset offset;
  Key key;
  std::chrono::system_clock::time_point timestamp;
  bool key_is_valid_utf8 = true;
  // The decoded payload. Built lazily: the worker only *validates* the
  // payload (engine/json_check.h) and sets `payload_pending`; the DOM is
  // built on the first decoded_payload() call, i.e. when the handler calls
  // Message::payload(). A handler that never reads it costs no DOM. Code
  // that decodes eagerly (the defer layer's reloaded records) assigns
  // `payload` directly and leaves `payload_pending` false.
  mutable nlohmann::json payload;
  mutable bool payload_pending = false;
  mutable std::optional<Headers> headers;  // parsed on first use (given up front when owned)
  // Payload of a record that was not consumed by the engine (reloaded by
  // the defer loader): owned here instead of by a librdkafka message.
  std::string owned_payload;

  std::string_view raw_payload() const {
    if (!raw) return owned_payload;
    if (!raw->payload) return {};
    return {static_cast<const char*>(raw->payload), raw->len};
  }
  // The decoded payload (decoding it now if it is pending).
  const nlohmann::json& decoded_payload() const;
  const Headers& all_headers() const;
  std::optional<std::string_view> find_header(std::string_view name) const;
  // Same, for a NUL-terminated name: no copy (the poll thread's hot path).
  std::optional<std::string_view> find_header(const char* name) const;
};

using RecordPtr = std::unique_ptr<Record>;

// Builds a record from a consumed message (takes ownership).
RecordPtr make_record(kafka::MessageHandle message, const Topic* topic);

}  // namespace prosody::detail
