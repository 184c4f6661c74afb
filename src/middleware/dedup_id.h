// The deduplication id of a message, computed exactly as Prosody does
// (reference/prosody-internals.md §2f), so C++ and Rust consumers of one
// group share `deduplication` rows in Cassandra:
//
//   xxh3-128 (seed 0) over, in order,
//     u32 length + bytes of the idempotence version,
//     u32 length + bytes of the group id,
//     u32 length + bytes of the topic,
//     i32 partition,
//     u32 length + bytes of the key,
//     then either u8 1 + u32 length + bytes of the event id
//             or  u8 0 + i64 offset,
//   every integer little-endian (Rust's Hasher::write_* on x86 and ARM);
//   the 128-bit digest as 16 little-endian bytes (low 64 bits first) made a
//   UUIDv8: byte 6's high nibble = 8, byte 8's top bits = 10 (RFC 9562).
//
// The event id is the payload's top-level "id" when it is a JSON string
// (json_event_id); messages without one are identified by their offset, so
// only a redelivery of the same record matches. Changing
// `idempotence_version` changes every id (cache busting).
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "store/dedup_store.h"

namespace prosody::middleware {

struct DedupFields {
  std::string_view version;                  // idempotence_version
  std::string_view group_id;
  std::string_view topic;
  std::int32_t partition = 0;
  std::string_view key;
  std::optional<std::string_view> event_id;  // wins over the offset when set
  std::int64_t offset = 0;
};

store::DedupId dedup_id(const DedupFields& fields);

// The producer's resend key (reference/prosody-internals.md §6): xxh3-128
// over u32 length + bytes of the topic, the key and the event id. It only
// ever lives in the producer's memory, so it is not made a UUID.
store::DedupId producer_dedup_id(std::string_view topic, std::string_view key, std::string_view event_id);

// Prosody's JSON event id: the top-level "id" member when it is a string.
// The view points into `payload`.
std::optional<std::string_view> json_event_id(const nlohmann::json& payload);

// The same id read straight from the encoded payload, without building a
// DOM (a handler that never reads its payload pays for no DOM): a SAX pass
// that stops at the top-level "id". Nullopt when there is none, it is not a
// string, or the payload is not valid JSON. Of duplicate "id" members the
// first counts (a DOM keeps the last).
std::optional<std::string> scan_json_event_id(std::string_view encoded);
// The same without a copy when it can: the view points into `encoded`, or
// into `scratch` when the id had to be decoded (escapes).
std::optional<std::string_view> find_json_event_id(std::string_view encoded, std::string& scratch);

// find_json_event_id's shortcut (public for its tests): the `<id>` of a
// payload starting `{"id":"<id>"` and going on with `,` or `}`, the id free
// of escapes and control characters and valid UTF-8; nullopt for anything
// else (the parser then decides).
std::optional<std::string_view> leading_plain_event_id(std::string_view encoded);

}  // namespace prosody::middleware
