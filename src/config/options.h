// The option table: one data-driven row per Config option, carrying the
// documentation (OptionInfo) plus how to parse, render and check the field.
// from_env(), set_option(), validate(), describe(), inactive_options_in_use()
// and the README table are all loops over this table, so adding an option is
// one row here plus its member/getter/setter in prosody/config.h.
//
// Thread safety: the table is built once (function-local static) and is
// immutable afterwards.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "prosody/config.h"

namespace prosody::config_detail {

struct OptionSpec {
  OptionInfo info;
  // Value must never be printed (describe, option_text, errors).
  bool secret = false;
  // Parses trimmed, non-empty `text` (environment syntax, `none` included
  // where the option is optional) and stores it. On error nothing is stored.
  std::function<Status(Config&, std::string_view)> parse_into;
  // The stored value in environment syntax; round-trips through parse_into.
  std::function<std::string(const Config&)> format;
  // nullopt: acceptable. "": out of range, say "must be <accepted>".
  // Otherwise: the specific problem (e.g. which list element is bad).
  std::function<std::optional<std::string>(const Config&)> check;
};

const std::vector<OptionSpec>& option_specs();
// nullptr for an unknown option name.
const OptionSpec* find_option(std::string_view name);

// Config's friend: the only code outside Config that touches its fields.
struct Access {
  static std::vector<OptionSpec> build_specs();  // options.cc
  // Overlays table options read through `lookup`, and the given
  // (PROSODY_KAFKA_<NAME>, value) pairs, onto `c`.            config.cc
  static void apply_env(Config& c, const Config::EnvLookup& lookup,
                        const std::vector<std::pair<std::string, std::string>>& kafka_env);
  // One line per problem shared by producers and consumers.  config.cc
  static std::vector<std::string> problems(const Config& c);
};

// Kafka properties whose values are secrets (credentials, private keys).
bool is_secret_kafka_property(std::string_view name);

inline constexpr std::string_view kRedacted = "[redacted]";
// Cassandra's maximum TTL: 20 years of 365 days.
inline constexpr std::chrono::seconds kCassandraMaxTtl{630'720'000};

}  // namespace prosody::config_detail
