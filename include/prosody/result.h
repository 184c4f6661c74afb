// File: prosody/result.h
//
// Error vocabulary for the message path. Nothing in the public API throws;
// fallible calls return `Result<T>` (or `Status` for `Result<void>`), and
// every error carries a class that tells the engine what to do with it:
//
//   transient  - may succeed if retried (network blip, store timeout)
//   permanent  - will never succeed (bad payload, business rule violated)
//   terminal   - stop processing the partition (corrupted state, fencing)
//
// Usage:
//   prosody::Result<int> parse(std::string_view s);
//   auto r = parse("42");
//   if (!r) log(r.error().message());
//
// Thread safety: value types; safe to copy and move across threads.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace prosody {

enum class ErrorClass { transient, permanent, terminal };

std::string_view to_string(ErrorClass c) noexcept;

// Machine-readable reason; the message carries the human detail.
enum class ErrorCode {
  unknown,
  invalid_config,
  invalid_argument,
  invalid_state,
  decode_failed,
  handler_failed,
  cancelled,
  timed_out,
  queue_full,
  kafka,
  topic_missing,
  message_too_large,
  shut_down,
  store,  // a timer/defer/dedup store failed (transient when a retry may succeed)
};

std::string_view to_string(ErrorCode c) noexcept;

class [[nodiscard]] Error {
 public:
  Error(ErrorClass cls, ErrorCode code, std::string message)
      : class_(cls), code_(code), message_(std::move(message)) {}

  static Error transient(std::string message, ErrorCode code = ErrorCode::handler_failed) {
    return {ErrorClass::transient, code, std::move(message)};
  }
  static Error permanent(std::string message, ErrorCode code = ErrorCode::handler_failed) {
    return {ErrorClass::permanent, code, std::move(message)};
  }
  static Error terminal(std::string message, ErrorCode code = ErrorCode::handler_failed) {
    return {ErrorClass::terminal, code, std::move(message)};
  }

  ErrorClass error_class() const noexcept { return class_; }
  ErrorCode code() const noexcept { return code_; }
  const std::string& message() const noexcept { return message_; }
  bool is_transient() const noexcept { return class_ == ErrorClass::transient; }
  bool is_permanent() const noexcept { return class_ == ErrorClass::permanent; }
  bool is_terminal() const noexcept { return class_ == ErrorClass::terminal; }

  // "<class>/<code>: <message>", for logs.
  std::string describe() const;

 private:
  ErrorClass class_;
  ErrorCode code_;
  std::string message_;
};

// A value or an Error. Reading value() of a failed result is a programming
// error (asserted in debug builds), never an exception.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : state_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool ok() const noexcept { return state_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  T& value() & { assert(ok()); return std::get<0>(state_); }
  const T& value() const& { assert(ok()); return std::get<0>(state_); }
  T&& value() && { assert(ok()); return std::get<0>(std::move(state_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const& { assert(!ok()); return std::get<1>(state_); }
  Error&& error() && { assert(!ok()); return std::get<1>(std::move(state_)); }

 private:
  std::variant<T, Error> state_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::in_place, std::move(error)) {}  // NOLINT

  bool ok() const noexcept { return !error_.has_value(); }
  explicit operator bool() const noexcept { return ok(); }
  const Error& error() const& { assert(!ok()); return *error_; }
  Error&& error() && { assert(!ok()); return std::move(*error_); }

 private:
  std::optional<Error> error_;
};

using Status = Result<void>;

inline Status ok_status() { return {}; }

}  // namespace prosody
