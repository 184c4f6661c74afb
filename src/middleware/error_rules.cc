#include "middleware/error_rules.h"

#include <cassert>

namespace prosody {

std::string_view to_string(HandlerMethod m) noexcept {
  switch (m) {
    case HandlerMethod::on_message:
      return "on_message";
    case HandlerMethod::on_timer:
      return "on_timer";
  }
  return "unknown";
}

void ErrorRules::add(Rule rule) {
  const std::size_t n = rules_.size();
  // Learn how the new rule's type relates to every earlier one, once, here,
  // so classify() only rethrows the exception being classified.
  std::vector<bool> row(n + 1, false);
  for (std::size_t j = 0; j < n; ++j) {
    const bool new_is_a_j = rules_[j].catches_pointer(rule.throw_pointer);
    const bool j_is_a_new = rule.catches_pointer(rules_[j].throw_pointer);
    row[j] = new_is_a_j && !j_is_a_new;
    more_specific_[j].push_back(j_is_a_new && !new_is_a_j);
  }
  rules_.push_back(rule);
  more_specific_.push_back(std::move(row));
}

std::optional<ErrorClass> ErrorRules::match(HandlerMethod method, const std::exception_ptr& exception) const {
  if (!exception) return std::nullopt;
  std::vector<std::size_t> matched;
  for (std::size_t i = 0; i < rules_.size(); ++i) {
    if (rules_[i].method == method && rules_[i].catches(exception)) matched.push_back(i);
  }
  // The first (in declaration order) matching rule that no other matching
  // rule is more specific than.
  for (std::size_t i : matched) {
    bool beaten = false;
    for (std::size_t j : matched) {
      if (more_specific_[j][i]) {
        beaten = true;
        break;
      }
    }
    if (!beaten) return rules_[i].error_class;
  }
  return std::nullopt;
}

ErrorClass ErrorRules::classify(HandlerMethod method, const std::exception_ptr& exception) const {
  return match(method, exception).value_or(ErrorClass::transient);
}

Error ErrorRules::to_error(HandlerMethod method, const std::exception_ptr& exception) const {
  return Error(classify(method, exception), ErrorCode::handler_failed,
               std::string(to_string(method)) + " threw: " + middleware::describe_exception(exception));
}

namespace middleware {

std::string describe_exception(const std::exception_ptr& exception) {
  if (!exception) return "no exception";
  try {
    std::rethrow_exception(exception);
  } catch (const std::exception& e) {
    try {
      return e.what();
    } catch (...) {
      return "exception";  // what() copy failed: out of memory
    }
  } catch (...) {
    return "non-standard exception";
  }
}

}  // namespace middleware
}  // namespace prosody
