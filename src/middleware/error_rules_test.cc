#include "middleware/error_rules.h"

#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace prosody {
namespace {

using M = HandlerMethod;

template <typename E>
std::exception_ptr thrown(E e) {
  return std::make_exception_ptr(std::move(e));
}

struct ParseError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct StrictParseError : ParseError {
  using ParseError::ParseError;
};
struct VeryStrictParseError : StrictParseError {
  using StrictParseError::StrictParseError;
};
struct NotStd {
  int code;
};
struct Retryable {};
struct Fatal {};
struct RetryableAndFatal : Retryable, Fatal {};

// The seed's example: permanent :on_message, TypeError, NoMethodError;
// transient :on_message, JSON::ParserError; everything else transient.
TEST(ErrorRules, SeedExample) {
  ErrorRules rules;
  rules.permanent<std::invalid_argument, std::domain_error>(M::on_message).transient<ParseError>(M::on_message);
  EXPECT_EQ(rules.size(), 3u);
  EXPECT_EQ(rules.classify(M::on_message, thrown(std::invalid_argument("x"))), ErrorClass::permanent);
  EXPECT_EQ(rules.classify(M::on_message, thrown(std::domain_error("x"))), ErrorClass::permanent);
  EXPECT_EQ(rules.classify(M::on_message, thrown(ParseError("x"))), ErrorClass::transient);
  EXPECT_EQ(rules.match(M::on_message, thrown(ParseError("x"))), ErrorClass::transient);
  // Unclassified: transient by default, and match() says no rule applied.
  EXPECT_EQ(rules.classify(M::on_message, thrown(std::runtime_error("x"))), ErrorClass::transient);
  EXPECT_EQ(rules.match(M::on_message, thrown(std::runtime_error("x"))), std::nullopt);
}

TEST(ErrorRules, RulesApplyOnlyToTheirMethod) {
  ErrorRules rules;
  rules.permanent<std::invalid_argument>(M::on_message).terminal<std::logic_error>(M::on_timer);
  EXPECT_EQ(rules.classify(M::on_message, thrown(std::invalid_argument("x"))), ErrorClass::permanent);
  EXPECT_EQ(rules.classify(M::on_timer, thrown(std::invalid_argument("x"))), ErrorClass::terminal);
  EXPECT_EQ(rules.classify(M::on_message, thrown(std::length_error("x"))), ErrorClass::transient);
  EXPECT_EQ(rules.classify(M::on_timer, thrown(std::runtime_error("x"))), ErrorClass::transient);
}

TEST(ErrorRules, RuleForABaseMatchesDerivedTypes) {
  ErrorRules rules;
  rules.permanent<std::logic_error>(M::on_message);
  EXPECT_EQ(rules.classify(M::on_message, thrown(std::invalid_argument("x"))), ErrorClass::permanent);
  EXPECT_EQ(rules.classify(M::on_message, thrown(std::out_of_range("x"))), ErrorClass::permanent);
  EXPECT_EQ(rules.classify(M::on_message, thrown(std::runtime_error("x"))), ErrorClass::transient);
}

TEST(ErrorRules, MostSpecificRuleWinsInEitherDeclarationOrder) {
  ErrorRules base_first;
  base_first.transient<std::logic_error>(M::on_message).permanent<std::invalid_argument>(M::on_message);
  ErrorRules derived_first;
  derived_first.permanent<std::invalid_argument>(M::on_message).transient<std::logic_error>(M::on_message);
  for (const ErrorRules* rules : {&base_first, &derived_first}) {
    EXPECT_EQ(rules->classify(M::on_message, thrown(std::invalid_argument("x"))), ErrorClass::permanent);
    EXPECT_EQ(rules->classify(M::on_message, thrown(std::length_error("x"))), ErrorClass::transient);
  }
}

TEST(ErrorRules, DeepHierarchiesPickTheClosestMatchingAncestor) {
  ErrorRules rules;
  // Declared out of hierarchy order on purpose.
  rules.terminal<StrictParseError>(M::on_message)
      .transient<std::exception>(M::on_message)
      .permanent<ParseError>(M::on_message);
  EXPECT_EQ(rules.classify(M::on_message, thrown(VeryStrictParseError("x"))), ErrorClass::terminal);
  EXPECT_EQ(rules.classify(M::on_message, thrown(StrictParseError("x"))), ErrorClass::terminal);
  EXPECT_EQ(rules.classify(M::on_message, thrown(ParseError("x"))), ErrorClass::permanent);
  EXPECT_EQ(rules.classify(M::on_message, thrown(std::runtime_error("x"))), ErrorClass::transient);
  EXPECT_EQ(rules.match(M::on_message, thrown(std::runtime_error("x"))), ErrorClass::transient);
}

TEST(ErrorRules, UnrelatedMatchesAndDuplicatesGoToTheFirstDeclared) {
  ErrorRules a;
  a.permanent<Retryable>(M::on_message).terminal<Fatal>(M::on_message);
  EXPECT_EQ(a.classify(M::on_message, thrown(RetryableAndFatal{})), ErrorClass::permanent);
  ErrorRules b;
  b.terminal<Fatal>(M::on_message).permanent<Retryable>(M::on_message);
  EXPECT_EQ(b.classify(M::on_message, thrown(RetryableAndFatal{})), ErrorClass::terminal);
  ErrorRules twice;
  twice.permanent<ParseError>(M::on_message).transient<ParseError>(M::on_message);
  EXPECT_EQ(twice.classify(M::on_message, thrown(ParseError("x"))), ErrorClass::permanent);
}

// Specificity is decided among *matching* rules only: a more specific rule
// for an unrelated branch does not demote a matching one.
TEST(ErrorRules, NonMatchingRulesDoNotInterfere) {
  ErrorRules rules;
  rules.permanent<Retryable>(M::on_message).terminal<RetryableAndFatal>(M::on_timer);
  EXPECT_EQ(rules.classify(M::on_message, thrown(RetryableAndFatal{})), ErrorClass::permanent);
  EXPECT_EQ(rules.classify(M::on_timer, thrown(RetryableAndFatal{})), ErrorClass::terminal);
  EXPECT_EQ(rules.classify(M::on_timer, thrown(Retryable{})), ErrorClass::transient);
}

TEST(ErrorRules, NonStandardExceptionsCanBeClassified) {
  ErrorRules none;
  EXPECT_EQ(none.classify(M::on_message, thrown(42)), ErrorClass::transient);
  EXPECT_EQ(none.classify(M::on_message, thrown(NotStd{7})), ErrorClass::transient);
  ErrorRules rules;
  rules.permanent<int>(M::on_message).terminal<NotStd>(M::on_message);
  EXPECT_EQ(rules.classify(M::on_message, thrown(42)), ErrorClass::permanent);
  EXPECT_EQ(rules.classify(M::on_message, thrown(NotStd{7})), ErrorClass::terminal);
  EXPECT_EQ(rules.classify(M::on_message, thrown(std::string("text"))), ErrorClass::transient);
}

TEST(ErrorRules, EmptyExceptionPointerIsTransient) {
  ErrorRules rules;
  rules.permanent<std::exception>(M::on_message);
  EXPECT_EQ(rules.match(M::on_message, nullptr), std::nullopt);
  EXPECT_EQ(rules.classify(M::on_message, nullptr), ErrorClass::transient);
  EXPECT_EQ(rules.to_error(M::on_message, nullptr).message(), "on_message threw: no exception");
}

TEST(ErrorRules, ToErrorCarriesClassMethodAndWhat) {
  ErrorRules rules;
  rules.permanent<std::invalid_argument>(M::on_timer);
  const Error e = rules.to_error(M::on_timer, thrown(std::invalid_argument("bad payload")));
  EXPECT_TRUE(e.is_permanent());
  EXPECT_EQ(e.code(), ErrorCode::handler_failed);
  EXPECT_EQ(e.message(), "on_timer threw: bad payload");
  const Error other = rules.to_error(M::on_message, thrown(NotStd{1}));
  EXPECT_TRUE(other.is_transient());
  EXPECT_EQ(other.message(), "on_message threw: non-standard exception");
}

TEST(ErrorRules, CaughtExceptionFromAHandlerBoundary) {
  ErrorRules rules;
  rules.permanent<std::out_of_range>(M::on_message);
  auto handler = [] { return std::vector<int>{}.at(3); };
  std::exception_ptr caught;
  try {
    (void)handler();
  } catch (...) {
    caught = std::current_exception();
  }
  EXPECT_EQ(rules.classify(M::on_message, caught), ErrorClass::permanent);
}

TEST(ErrorRules, ConcurrentClassification) {
  ErrorRules rules;
  rules.permanent<std::invalid_argument>(M::on_message).terminal<ParseError>(M::on_message);
  const auto invalid = thrown(std::invalid_argument("x"));
  const auto parse = thrown(StrictParseError("y"));
  const auto other = thrown(std::runtime_error("z"));
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        if (rules.classify(M::on_message, invalid) != ErrorClass::permanent) ++wrong;
        if (rules.classify(M::on_message, parse) != ErrorClass::terminal) ++wrong;
        if (rules.classify(M::on_message, other) != ErrorClass::transient) ++wrong;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
}

TEST(ErrorRules, MethodNames) {
  EXPECT_EQ(to_string(M::on_message), "on_message");
  EXPECT_EQ(to_string(M::on_timer), "on_timer");
}

}  // namespace
}  // namespace prosody
