#include "config/parse.h"

#include <charconv>
#include <cmath>
#include <limits>
#include <system_error>

namespace prosody::config_detail {
namespace {

Error bad(std::string what) { return Error::permanent(std::move(what), ErrorCode::invalid_config); }

bool is_space(char c) noexcept { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

}  // namespace

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

std::string quoted(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  out += '"';
  out += text;
  out += '"';
  return out;
}

Result<bool> parse_bool(std::string_view text) {
  if (text == "true") return true;
  if (text == "false") return false;
  return bad("expected exactly true or false, got " + quoted(text));
}

Result<int> parse_int(std::string_view text) {
  // from_chars accepts a leading '-' but not '+'; allow '+' for symmetry.
  std::string_view digits = text;
  if (!digits.empty() && digits.front() == '+') digits.remove_prefix(1);
  if (digits != text && !digits.empty() && digits.front() == '-') return bad("expected an integer, got " + quoted(text));
  std::int64_t v = 0;
  const auto* end = digits.data() + digits.size();
  auto [ptr, ec] = std::from_chars(digits.data(), end, v);
  if (digits.empty() || ptr != end || ec == std::errc::invalid_argument) {
    return bad("expected an integer, got " + quoted(text));
  }
  if (ec == std::errc::result_out_of_range || v < std::numeric_limits<int>::min() ||
      v > std::numeric_limits<int>::max()) {
    return bad("integer " + quoted(text) + " is out of range");
  }
  return static_cast<int>(v);
}

Result<double> parse_double(std::string_view text) {
  std::string_view digits = text;
  if (!digits.empty() && digits.front() == '+') digits.remove_prefix(1);
  if (digits != text && !digits.empty() && digits.front() == '-') return bad("expected a number, got " + quoted(text));
  double v = 0;
  const auto* end = digits.data() + digits.size();
  auto [ptr, ec] = std::from_chars(digits.data(), end, v);
  if (digits.empty() || ptr != end || ec != std::errc{} || !std::isfinite(v)) {
    return bad("expected a number, got " + quoted(text));
  }
  return v;
}

std::vector<std::string> parse_list(std::string_view text) {
  std::vector<std::string> out;
  while (true) {
    const auto comma = text.find(',');
    const auto item = trim(text.substr(0, comma));
    if (!item.empty()) out.emplace_back(item);
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return out;
}

std::string join_list(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += ',';
    out += item;
  }
  return out;
}

bool is_valid_topic_name(std::string_view name) noexcept {
  if (name.empty() || name.size() > 249 || name == "." || name == "..") return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::string format_double(double v) {
  char buf[64];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, v);
  if (ec != std::errc{}) return "nan";
  return std::string(buf, ptr);
}

}  // namespace prosody::config_detail
