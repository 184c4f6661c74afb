// CQL error vocabulary: the server's ERROR frame codes and their mapping to
// prosody::Error with a class the engine acts on (transient = retry may
// succeed, permanent = never will).
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "prosody/result.h"

namespace prosody::cql {

// The code every CQL error carries (one place to change it).
inline constexpr ErrorCode kCqlErrorCode = ErrorCode::unknown;

enum class ServerCode : std::int32_t {
  server_error = 0x0000,
  protocol_error = 0x000A,
  bad_credentials = 0x0100,
  unavailable = 0x1000,
  overloaded = 0x1001,
  is_bootstrapping = 0x1002,
  truncate_error = 0x1003,
  write_timeout = 0x1100,
  read_timeout = 0x1200,
  read_failure = 0x1300,
  function_failure = 0x1400,
  write_failure = 0x1500,
  syntax_error = 0x2000,
  unauthorized = 0x2100,
  invalid = 0x2200,
  config_error = 0x2300,
  already_exists = 0x2400,
  unprepared = 0x2500,
};

std::string_view server_code_name(std::int32_t code) noexcept;

// Whether retrying the same request (same or another node) may succeed.
bool is_transient(std::int32_t code) noexcept;

// "<Name> (0x1100): <message>" as a prosody::Error with the right class.
// Bad credentials get a message naming the user and the fix.
Error server_error(std::int32_t code, std::string_view message);

// Malformed frame from the server: the connection is unusable (transient: a
// new connection may work).
Error protocol_error(std::string message);
// Socket, DNS and connection-level failures.
Error connection_error(std::string message);
Error timeout_error(std::string message);
// Misuse of the API (bad value for a column, wrong arity).
Error usage_error(std::string message);

}  // namespace prosody::cql
