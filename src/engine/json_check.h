// Checks that a payload is valid JSON without building a DOM, so the engine
// can keep its contract (an undecodable payload never reaches a handler)
// while decoding lazily, only when the handler calls Message::payload().
//
// Two steps: a single-pass scanner that allocates nothing and answers "surely
// valid" for ordinary documents, and nlohmann's own `accept` for everything
// the scanner is not sure about (invalid input, and the corners where it
// would have to replicate nlohmann exactly: a byte-order mark, \u surrogate
// escapes, numbers that might overflow a double, nesting deeper than 256).
// The scanner only ever says yes to input nlohmann accepts, so the answer is
// always nlohmann's: a payload that passes is one payload() can decode.
//
// Thread safety: pure functions.
#pragma once

#include <string_view>

namespace prosody::engine {

// True only if `text` is one JSON value (RFC 8259, UTF-8) that nlohmann
// parses; false means "not sure", not "invalid".
bool surely_valid_json(std::string_view text) noexcept;

// Whether nlohmann::json::parse accepts `text` (fast path first).
bool is_valid_json(std::string_view text);

}  // namespace prosody::engine
