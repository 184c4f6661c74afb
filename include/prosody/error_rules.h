// File: prosody/error_rules.h
//
// Declarative classification of exceptions that escape a handler method, as
// in the Ruby client's `permanent :on_message, TypeError`:
//
//   prosody::ErrorRules rules;
//   rules.permanent<std::invalid_argument, std::out_of_range>(prosody::HandlerMethod::on_message)
//        .transient<MyTimeout>(prosody::HandlerMethod::on_message)
//        .permanent<std::logic_error>(prosody::HandlerMethod::on_timer);
//
//   ErrorClass c = rules.classify(HandlerMethod::on_message, std::current_exception());
//
// A rule for type E matches an exception of type E or of any type derived
// from E (like `catch (const E&)` and Ruby's is_a?), thrown by the named
// method only. Any type can be named, not only std::exception descendants
// (`rules.permanent<int>(...)` classifies `throw 42`).
//
// When several rules match, the most specific wins: a rule whose type
// derives from another matching rule's type beats it, whatever the order of
// declaration. Among matching rules none of which is more specific than
// another (unrelated bases of one exception, or one type declared twice),
// the first declared wins. An exception that no rule matches is transient,
// the client's documented default; so is an empty exception_ptr.
//
// Thread safety: build the rules first (not synchronized), then classify
// from any number of threads concurrently (const, no shared state).
#pragma once

#include <cstddef>
#include <exception>
#include <optional>
#include <string_view>
#include <type_traits>
#include <vector>

#include "prosody/result.h"

namespace prosody {

// The handler entry points an error can come from.
enum class HandlerMethod { on_message, on_timer };

std::string_view to_string(HandlerMethod m) noexcept;

class ErrorRules {
 public:
  template <typename... Exceptions>
  ErrorRules& permanent(HandlerMethod method) {
    (add(make_rule<Exceptions>(method, ErrorClass::permanent)), ...);
    return *this;
  }
  template <typename... Exceptions>
  ErrorRules& transient(HandlerMethod method) {
    (add(make_rule<Exceptions>(method, ErrorClass::transient)), ...);
    return *this;
  }
  // Stops the partition (see prosody/result.h); for corrupted-state errors.
  template <typename... Exceptions>
  ErrorRules& terminal(HandlerMethod method) {
    (add(make_rule<Exceptions>(method, ErrorClass::terminal)), ...);
    return *this;
  }

  // The class of the winning rule, or nullopt when no rule matches.
  std::optional<ErrorClass> match(HandlerMethod method, const std::exception_ptr& exception) const;

  // match(), defaulting to transient.
  ErrorClass classify(HandlerMethod method, const std::exception_ptr& exception) const;

  // classify() as an Error (code handler_failed) whose message carries
  // what() for std::exception, or says the exception was non-standard.
  Error to_error(HandlerMethod method, const std::exception_ptr& exception) const;

  std::size_t size() const noexcept { return rules_.size(); }
  bool empty() const noexcept { return rules_.empty(); }

 private:
  struct Rule {
    HandlerMethod method;
    ErrorClass error_class;
    // Does `catch (const E&)` catch this exception?
    bool (*catches)(const std::exception_ptr&);
    // Throws a null `const E*`. A pointer handler `catch (const B*)` catches
    // it exactly when E is B or derives (unambiguously, publicly) from B,
    // which is how rules learn their types' inheritance without RTTI tricks.
    void (*throw_pointer)();
    // Does `catch (const E*)` catch what `thrower` throws?
    bool (*catches_pointer)(void (*thrower)());
  };

  template <typename E>
  static bool catches_impl(const std::exception_ptr& exception) {
    try {
      std::rethrow_exception(exception);
    } catch (const E&) {
      return true;
    } catch (...) {
      return false;
    }
  }
  template <typename E>
  [[noreturn]] static void throw_pointer_impl() {
    throw static_cast<const E*>(nullptr);
  }
  template <typename E>
  static bool catches_pointer_impl(void (*thrower)()) {
    try {
      thrower();
    } catch (const E*) {
      return true;
    } catch (...) {
      return false;
    }
    return false;
  }
  template <typename E>
  static Rule make_rule(HandlerMethod method, ErrorClass error_class) {
    static_assert(!std::is_reference_v<E> && !std::is_pointer_v<E>, "name the exception type itself");
    return Rule{method, error_class, &catches_impl<E>, &throw_pointer_impl<E>, &catches_pointer_impl<E>};
  }

  void add(Rule rule);

  std::vector<Rule> rules_;
  // more_specific_[i][j]: rule i's type is a proper subtype of rule j's.
  std::vector<std::vector<bool>> more_specific_;
};

}  // namespace prosody
