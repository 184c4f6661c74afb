// humantime-style duration parsing and formatting (declared in
// prosody/config.h). Arithmetic is exact integer nanoseconds in 128 bits, so
// "0.1s" is exactly 100ms (floating point would give 100.000...1 and round up
// to 101ms).
#include <array>
#include <string>

#include "config/parse.h"
#include "prosody/config.h"

namespace prosody {
namespace {

using i128 = __int128;

constexpr i128 kNs = 1;
constexpr i128 kUs = 1000 * kNs;
constexpr i128 kMs = 1000 * kUs;
constexpr i128 kSec = 1000 * kMs;
constexpr i128 kMin = 60 * kSec;
constexpr i128 kHour = 60 * kMin;
constexpr i128 kDay = 24 * kHour;
constexpr i128 kWeek = 7 * kDay;
constexpr i128 kMonth = 30 * kDay;  // humantime uses 30.44d; whole days are easier to reason about
constexpr i128 kYear = 365 * kDay;  // matches the 630,720,000 s (= 20 * 365d) Cassandra limit
// Larger values would overflow time_point arithmetic on nanosecond clocks.
constexpr i128 kMaxDuration = 100 * kYear;

struct Unit {
  std::string_view name;
  i128 ns;
};

constexpr std::array kUnits{
    Unit{"ns", kNs},        Unit{"nsec", kNs},        Unit{"nanos", kNs},
    Unit{"us", kUs},        Unit{"\xC2\xB5s", kUs},   Unit{"usec", kUs},       Unit{"micros", kUs},
    Unit{"ms", kMs},        Unit{"msec", kMs},        Unit{"millis", kMs},
    Unit{"s", kSec},        Unit{"sec", kSec},        Unit{"secs", kSec},      Unit{"second", kSec},
    Unit{"seconds", kSec},  Unit{"m", kMin},          Unit{"min", kMin},       Unit{"mins", kMin},
    Unit{"minute", kMin},   Unit{"minutes", kMin},    Unit{"h", kHour},        Unit{"hr", kHour},
    Unit{"hrs", kHour},     Unit{"hour", kHour},      Unit{"hours", kHour},    Unit{"d", kDay},
    Unit{"day", kDay},      Unit{"days", kDay},       Unit{"w", kWeek},        Unit{"week", kWeek},
    Unit{"weeks", kWeek},   Unit{"M", kMonth},        Unit{"month", kMonth},   Unit{"months", kMonth},
    Unit{"y", kYear},       Unit{"year", kYear},      Unit{"years", kYear},
};

Error bad(std::string_view text, std::string_view why) {
  return Error::permanent("invalid duration " + config_detail::quoted(text) + ": " + std::string(why) +
                              " (examples: 100ms, 1s, 5m, 1h 30m, 7d, 1y; a bare number means seconds)",
                          ErrorCode::invalid_config);
}

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
bool is_unit_char(char c) noexcept {
  // Letters plus the two UTF-8 bytes of 'µ'.
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '\xC2' || c == '\xB5';
}

// A decimal number "123" or "1.25", as an exact fraction whole + num/den.
struct Decimal {
  i128 whole = 0;
  i128 num = 0;
  i128 den = 1;
};

// Consumes a number at the front of `s`; nullopt when there is none or it is
// too long to be a sensible duration.
std::optional<Decimal> take_number(std::string_view& s) {
  Decimal d;
  std::size_t i = 0;
  std::size_t whole_digits = 0;
  for (; i < s.size() && is_digit(s[i]); ++i, ++whole_digits) {
    if (whole_digits >= 18) return std::nullopt;
    d.whole = d.whole * 10 + (s[i] - '0');
  }
  std::size_t frac_digits = 0;
  if (i < s.size() && s[i] == '.') {
    ++i;
    for (; i < s.size() && is_digit(s[i]); ++i, ++frac_digits) {
      if (frac_digits >= 18) return std::nullopt;
      d.num = d.num * 10 + (s[i] - '0');
      d.den *= 10;
    }
  }
  if (whole_digits == 0 && frac_digits == 0) return std::nullopt;
  s.remove_prefix(i);
  return d;
}

std::optional<i128> unit_ns(std::string_view name) {
  for (const auto& u : kUnits) {
    if (u.name == name) return u.ns;
  }
  return std::nullopt;
}

i128 ceil_div(i128 a, i128 b) { return (a + b - 1) / b; }

}  // namespace

Result<std::chrono::milliseconds> parse_duration(std::string_view text) {
  std::string_view s = config_detail::trim(text);
  if (s.empty()) return bad(text, "empty");
  if (s.front() == '-') return bad(text, "durations cannot be negative");

  // A bare number is seconds ("30", "30.0"), as the Ruby client sends floats.
  {
    std::string_view rest = s;
    if (auto n = take_number(rest); n && rest.empty()) {
      const i128 ns = n->whole * kSec + ceil_div(n->num * kSec, n->den);
      if (ns > kMaxDuration) return bad(text, "longer than 100 years");
      return std::chrono::milliseconds(static_cast<std::int64_t>(ceil_div(ns, kMs)));
    }
  }

  i128 total = 0;
  while (!s.empty()) {
    auto n = take_number(s);
    if (!n) {
      return bad(text, s.front() == '-' ? "durations cannot be negative"
                                        : "expected a number at " + config_detail::quoted(s));
    }
    // Tolerate "1 s" as well as "1s".
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    std::size_t len = 0;
    while (len < s.size() && is_unit_char(s[len])) ++len;
    const std::string_view unit = s.substr(0, len);
    if (unit.empty()) return bad(text, "a number has no unit");
    const auto scale = unit_ns(unit);
    if (!scale) {
      return bad(text, "unknown unit " + config_detail::quoted(unit) + " (use ns, us, ms, s, m, h, d, w, M, y)");
    }
    s.remove_prefix(len);
    total += n->whole * *scale + ceil_div(n->num * *scale, n->den);
    if (total > kMaxDuration) return bad(text, "longer than 100 years");
    s = config_detail::trim(s);
  }
  return std::chrono::milliseconds(static_cast<std::int64_t>(ceil_div(total, kMs)));
}

std::string format_duration(std::chrono::milliseconds d) {
  if (d.count() < 0) return "-" + format_duration(-d);
  if (d.count() == 0) return "0s";
  struct Part {
    std::int64_t ms;
    const char* suffix;
  };
  static constexpr std::array<Part, 6> parts{Part{365LL * 86'400'000, "y"}, Part{86'400'000, "d"},
                                              Part{3'600'000, "h"},         Part{60'000, "m"},
                                              Part{1'000, "s"},             Part{1, "ms"}};
  std::int64_t left = d.count();
  std::string out;
  for (const auto& p : parts) {
    if (left < p.ms) continue;
    if (!out.empty()) out += ' ';
    out += std::to_string(left / p.ms);
    out += p.suffix;
    left %= p.ms;
  }
  return out;
}

}  // namespace prosody
