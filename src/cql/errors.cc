#include "cql/errors.h"

#include <cstdio>

namespace prosody::cql {

std::string_view server_code_name(std::int32_t code) noexcept {
  switch (static_cast<ServerCode>(code)) {
    case ServerCode::server_error: return "Server error";
    case ServerCode::protocol_error: return "Protocol error";
    case ServerCode::bad_credentials: return "Bad credentials";
    case ServerCode::unavailable: return "Unavailable";
    case ServerCode::overloaded: return "Overloaded";
    case ServerCode::is_bootstrapping: return "Is bootstrapping";
    case ServerCode::truncate_error: return "Truncate error";
    case ServerCode::write_timeout: return "Write timeout";
    case ServerCode::read_timeout: return "Read timeout";
    case ServerCode::read_failure: return "Read failure";
    case ServerCode::function_failure: return "Function failure";
    case ServerCode::write_failure: return "Write failure";
    case ServerCode::syntax_error: return "Syntax error";
    case ServerCode::unauthorized: return "Unauthorized";
    case ServerCode::invalid: return "Invalid query";
    case ServerCode::config_error: return "Config error";
    case ServerCode::already_exists: return "Already exists";
    case ServerCode::unprepared: return "Unprepared";
  }
  return "Unknown error";
}

bool is_transient(std::int32_t code) noexcept {
  switch (static_cast<ServerCode>(code)) {
    case ServerCode::server_error:
    case ServerCode::unavailable:
    case ServerCode::overloaded:
    case ServerCode::is_bootstrapping:
    case ServerCode::truncate_error:
    case ServerCode::write_timeout:
    case ServerCode::read_timeout:
    case ServerCode::read_failure:
    case ServerCode::write_failure:
    case ServerCode::unprepared:  // re-preparing fixes it
      return true;
    default:
      return false;
  }
}

Error server_error(std::int32_t code, std::string_view message) {
  char hex[16];
  std::snprintf(hex, sizeof hex, "0x%04X", static_cast<unsigned>(code));
  std::string text = "Cassandra ";
  text += server_code_name(code);
  text += " (";
  text += hex;
  text += "): ";
  text += message;
  if (code == static_cast<std::int32_t>(ServerCode::bad_credentials)) {
    text += " (authentication failed: check cassandra_user / cassandra_password)";
    return Error::permanent(std::move(text), ErrorCode::invalid_config);
  }
  if (code == static_cast<std::int32_t>(ServerCode::write_timeout) ||
      code == static_cast<std::int32_t>(ServerCode::read_timeout)) {
    return Error::transient(std::move(text), ErrorCode::timed_out);
  }
  if (is_transient(code)) return Error::transient(std::move(text), kCqlErrorCode);
  return Error::permanent(std::move(text), kCqlErrorCode);
}

Error protocol_error(std::string message) {
  return Error::transient("CQL protocol error: " + message, ErrorCode::decode_failed);
}

Error connection_error(std::string message) {
  return Error::transient("Cassandra connection: " + message, kCqlErrorCode);
}

Error timeout_error(std::string message) { return Error::transient(std::move(message), ErrorCode::timed_out); }

Error usage_error(std::string message) {
  return Error::permanent("CQL: " + message, ErrorCode::invalid_argument);
}

}  // namespace prosody::cql
