// Text parsers shared by the environment reader and Config::set_option.
// Every error names the offending text so a bad deployment value is easy to
// find. Secrets never reach these functions' error paths as values: callers
// redact before composing messages for secret options.
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "prosody/result.h"

namespace prosody::config_detail {

// Leading/trailing ASCII whitespace removed.
std::string_view trim(std::string_view s) noexcept;

// Exactly "true" or "false" (no 1/0/yes/no: an ambiguous flag is an error).
Result<bool> parse_bool(std::string_view text);

// Decimal integer in [INT32_MIN, INT32_MAX]; no sign-less junk, no spaces.
Result<int> parse_int(std::string_view text);

// Finite decimal number ("0.9", "200", "1e3").
Result<double> parse_double(std::string_view text);

// Comma-separated, each element trimmed, empty elements dropped.
std::vector<std::string> parse_list(std::string_view text);

// Elements joined with ",".
std::string join_list(const std::vector<std::string>& items);

// Kafka topic names: 1..249 chars of [A-Za-z0-9._-], not "." or "..".
bool is_valid_topic_name(std::string_view name) noexcept;

// Shortest round-trippable decimal rendering ("0.9", "200").
std::string format_double(double v);

// `text` in double quotes, for error messages.
std::string quoted(std::string_view text);

}  // namespace prosody::config_detail
