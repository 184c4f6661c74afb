// CQL v4 request bodies (STARTUP, AUTH_RESPONSE, OPTIONS, QUERY, PREPARE,
// EXECUTE, BATCH) and response decoding (ERROR, READY, AUTHENTICATE, AUTH_*,
// SUPPORTED, RESULT of every kind).
//
// Thread safety: pure functions over value types.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cql/frame.h"
#include "cql/types.h"
#include "prosody/result.h"

namespace prosody::cql {

enum class Consistency : std::uint16_t {
  any = 0x0000,
  one = 0x0001,
  two = 0x0002,
  three = 0x0003,
  quorum = 0x0004,
  all = 0x0005,
  local_quorum = 0x0006,
  each_quorum = 0x0007,
  serial = 0x0008,
  local_serial = 0x0009,
  local_one = 0x000A,
};

struct ColumnSpec {
  std::string keyspace;
  std::string table;
  std::string name;
  DataType type;
};
using Columns = std::vector<ColumnSpec>;

// One page of rows. `columns` is shared with the prepared statement's cached
// metadata when the server skipped sending it.
struct Rows {
  std::shared_ptr<const Columns> columns;
  std::vector<std::vector<Value>> rows;
  std::optional<std::string> paging_state;  // more pages follow when set

  std::size_t size() const noexcept { return rows.size(); }
  bool empty() const noexcept { return rows.empty(); }
  // Column position by name, or -1.
  int column(std::string_view name) const noexcept;
  // rows[r][column(name)], or a null Value when the column is unknown.
  const Value& at(std::size_t r, std::string_view name) const noexcept;
};

struct PreparedResult {
  std::string id;
  Columns bind;                       // bound variables, in order
  std::vector<std::uint16_t> pk_indexes;  // bind positions of the partition key
  std::shared_ptr<const Columns> result;  // result columns (empty for writes)
};

struct Response {
  enum class Kind { ready, authenticate, auth_challenge, auth_success, supported, error, void_, rows, set_keyspace,
                    prepared, schema_change, event };
  Kind kind = Kind::void_;
  std::vector<std::string> warnings;
  std::string text;             // authenticator / keyspace / error message / schema change
  std::int32_t error_code = 0;  // Kind::error
  std::string unprepared_id;    // Kind::error with code Unprepared
  Rows rows;
  PreparedResult prepared;
};

struct QueryParams {
  Consistency consistency = Consistency::local_quorum;
  std::optional<Consistency> serial_consistency;  // LWT: serial or local_serial
  std::int32_t page_size = 5000;                  // <= 0: no paging
  std::optional<std::string> paging_state;
  std::optional<std::int64_t> timestamp;  // microseconds; client-side write time
  bool skip_metadata = false;             // EXECUTE with cached result metadata
};

std::vector<std::uint8_t> encode_startup(std::int16_t stream);
std::vector<std::uint8_t> encode_options(std::int16_t stream);
// SASL PLAIN token for PasswordAuthenticator: \0user\0password.
std::vector<std::uint8_t> encode_auth_response(std::int16_t stream, std::string_view user, std::string_view password);
std::vector<std::uint8_t> encode_prepare(std::int16_t stream, std::string_view cql);
Result<std::vector<std::uint8_t>> encode_query(std::int16_t stream, std::string_view cql, std::span<const Value> values,
                                               const QueryParams& p);
// `bind` are the prepared statement's variable types; values must match them.
Result<std::vector<std::uint8_t>> encode_execute(std::int16_t stream, std::string_view id,
                                                 std::span<const Value> values, const Columns& bind,
                                                 const QueryParams& p);

enum class BatchType : std::uint8_t { logged = 0, unlogged = 1, counter = 2 };
struct BatchEntry {
  std::string query_or_id;    // CQL text, or a prepared id
  bool prepared = false;
  const Columns* bind = nullptr;  // prepared: variable types
  std::vector<Value> values;
};
Result<std::vector<std::uint8_t>> encode_batch(std::int16_t stream, BatchType type,
                                               std::span<const BatchEntry> entries, const QueryParams& p);

// Decodes a response body. `cached` supplies result columns for rows sent
// without metadata (EXECUTE with skip_metadata).
Result<Response> decode_response(const FrameHeader& h, std::span<const std::uint8_t> body,
                                 const std::shared_ptr<const Columns>& cached = nullptr);

}  // namespace prosody::cql
