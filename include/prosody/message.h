// File: prosody/message.h
//
// A consumed Kafka record as a handler sees it: coordinates, key, timestamp,
// headers, the raw payload bytes and (with the default JSON codec) the
// decoded payload. A Message is only valid during the handler call that
// received it; copy what you need to keep.
//
// Thread safety: read-only; may be read from the handler's thread only.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "prosody/types.h"

namespace prosody {

struct Header {
  std::string name;
  std::string value;  // raw bytes
  bool operator==(const Header&) const = default;
};
using Headers = std::vector<Header>;

namespace detail {
struct Record;
}

class Message {
 public:
  explicit Message(const detail::Record& record) : record_(&record) {}

  const Topic& topic() const;
  Partition partition() const;
  Offset offset() const;
  const Key& key() const;
  std::chrono::system_clock::time_point timestamp() const;
  // The payload exactly as it was on the wire.
  std::string_view raw_payload() const;
  // The decoded JSON payload; null for an empty payload or the raw codec.
  // Decoded on the first call and kept for later calls: a handler that never
  // calls it pays no decode. The engine has already checked, before calling
  // the handler, that the payload is valid JSON (an invalid one never
  // reaches the handler: see docs/failure-handling.md), so this cannot fail.
  const nlohmann::json& payload() const;
  const Headers& headers() const;
  // The last header with this name, if any.
  std::optional<std::string_view> header(std::string_view name) const;

 private:
  const detail::Record* record_;
};

}  // namespace prosody
