#include "prosody/result.h"

#include <string>

namespace prosody {

std::string_view to_string(ErrorClass c) noexcept {
  switch (c) {
    case ErrorClass::transient: return "transient";
    case ErrorClass::permanent: return "permanent";
    case ErrorClass::terminal: return "terminal";
  }
  return "unknown";
}

std::string_view to_string(ErrorCode c) noexcept {
  switch (c) {
    case ErrorCode::unknown: return "unknown";
    case ErrorCode::invalid_config: return "invalid_config";
    case ErrorCode::invalid_argument: return "invalid_argument";
    case ErrorCode::invalid_state: return "invalid_state";
    case ErrorCode::decode_failed: return "decode_failed";
    case ErrorCode::handler_failed: return "handler_failed";
    case ErrorCode::cancelled: return "cancelled";
    case ErrorCode::timed_out: return "timed_out";
    case ErrorCode::queue_full: return "queue_full";
    case ErrorCode::kafka: return "kafka";
    case ErrorCode::topic_missing: return "topic_missing";
    case ErrorCode::message_too_large: return "message_too_large";
    case ErrorCode::shut_down: return "shut_down";
    case ErrorCode::store: return "store";
  }
  return "unknown";
}

std::string Error::describe() const {
  std::string out;
  out.append(to_string(class_)).append("/").append(to_string(code_)).append(": ").append(message_);
  return out;
}

}  // namespace prosody
