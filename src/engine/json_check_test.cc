#include "engine/json_check.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace prosody::engine {
namespace {

bool nlohmann_accepts(const std::string& s) { return nlohmann::json::accept(s.begin(), s.end()); }

const std::vector<std::string>& valid_documents() {
  static const std::vector<std::string> docs = {
      R"({"id":"42","type":"bench.event","seq":42,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"})",
      R"( { "a" : [ 1 , -2.5e-3 , 0 , 1E+2 , true , false , null ] , "b" : { } , "c" : [ ] } )",
      R"("just a string")",
      "123",
      "-0",
      "0.5",
      "null",
      R"({"nested":{"deeper":{"deepest":[[[[]]]]}}})",
      R"(["escapes \" \\ \/ \b \f \n \r \t \u00e9 \u20AC"])",
      "[\"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xED\x9F\xBF \xEF\xBF\xBD\"]",
      "{\"k\":\t\"v\"\r\n}",
      "[12345678901234567890123456789, 1.5e299, 1e-400]",
  };
  return docs;
}

TEST(JsonCheck, OrdinaryDocumentsTakeTheFastPath) {
  for (const auto& d : valid_documents()) {
    EXPECT_TRUE(surely_valid_json(d)) << d;
    EXPECT_TRUE(is_valid_json(d)) << d;
    EXPECT_TRUE(nlohmann_accepts(d)) << d;
  }
}

TEST(JsonCheck, RejectsInvalidDocuments) {
  const std::vector<std::string> bad = {
      "",
      "   ",
      "{",
      "}",
      "[1,]",
      "{\"a\":1,}",
      "{\"a\" 1}",
      "{a:1}",
      "[01]",
      "[1.]",
      "[.5]",
      "[1e]",
      "[+1]",
      "[-]",
      "tru",
      "nul",
      "[true false]",
      "\"unterminated",
      "\"bad escape \\x\"",
      "\"short \\u12\"",
      "\"raw control \x01\"",
      "\"overlong \xC0\xAF\"",
      "\"lone continuation \x80\"",
      "\"encoded surrogate \xED\xA0\x80\"",
      "\"past U+10FFFF \xF4\x90\x80\x80\"",
      "\"truncated \xE2\x82\"",
      "{} {}",
      "[1] x",
      "// comment\n1",
  };
  for (const auto& d : bad) {
    EXPECT_FALSE(surely_valid_json(d)) << d;
    EXPECT_FALSE(is_valid_json(d)) << d;
    EXPECT_FALSE(nlohmann_accepts(d)) << d;
  }
}

// Where the scanner does not replicate nlohmann it defers to it: the answer
// is nlohmann's either way.
TEST(JsonCheck, CornersAreDecidedByNlohmann) {
  const std::vector<std::string> corners = {
      "\xEF\xBB\xBF{\"bom\":1}",        // nlohmann skips a leading byte-order mark
      R"(["\ud83d\ude00"])",            // a valid surrogate pair
      R"(["\ud83d"])",                  // a lone high surrogate
      R"(["\ude00\ud83d"])",            // reversed pair
      "[1e400]",                        // overflows a double
      "[-1e400]",
      "[1e99999]",
      "[1e-99999]",
      std::string(300, '[') + std::string(300, ']'),  // deeper than the scanner's stack
      "[" + std::string(400, '9') + "]",              // 400-digit integer: ~1e400
      "[1.7976931348623157e308]",                      // the largest double: near the edge
      std::string("[1]\0trailing", 12),              // nlohmann's lexer ends the input at a NUL
  };
  for (const auto& d : corners) {
    EXPECT_FALSE(surely_valid_json(d)) << d;
    EXPECT_EQ(is_valid_json(d), nlohmann_accepts(d)) << d;
  }
}

// Random mutations of valid documents: the scanner never says yes where
// nlohmann says no, and the combined check always agrees with nlohmann.
TEST(JsonCheck, NeverAcceptsWhatNlohmannRejects) {
  std::mt19937_64 rng(12345);
  const std::string alphabet = "{}[]\",:\\/ -+.eE0123456789tfnulrasbu\t\n\x01\x7f\x80\xbf\xc3\xa9\xed\xef\xf0\xf4";
  int fast = 0, total = 0;
  for (const auto& seed : valid_documents()) {
    for (int round = 0; round < 4000; ++round) {
      std::string d = seed;
      const int edits = 1 + static_cast<int>(rng() % 3);
      for (int e = 0; e < edits; ++e) {
        const std::size_t pos = d.empty() ? 0 : rng() % (d.size() + 1);
        const char c = alphabet[rng() % alphabet.size()];
        switch (rng() % 3) {
          case 0: d.insert(d.begin() + static_cast<std::ptrdiff_t>(pos), c); break;
          case 1: if (pos < d.size()) d.erase(pos, 1); break;
          default: if (pos < d.size()) d[pos] = c; break;
        }
      }
      const bool nl = nlohmann_accepts(d);
      const bool sure = surely_valid_json(d);
      if (sure) {
        ++fast;
        EXPECT_TRUE(nl) << "scanner accepted what nlohmann rejects: " << d;
      }
      EXPECT_EQ(is_valid_json(d), nl) << d;
      ++total;
    }
  }
  EXPECT_GT(fast, total / 20);  // the mutations do produce valid documents the scanner takes
}

}  // namespace
}  // namespace prosody::engine
