#include "engine/json_check.h"

#include <array>
#include <cstdint>

#include <nlohmann/json.hpp>

namespace prosody::engine {

namespace {

constexpr int kMaxDepth = 256;
// A number whose integer digits plus positive exponent stay within this is
// far from overflowing a double (~1.8e308); beyond it, nlohmann decides.
constexpr int kMaxMagnitude = 300;

// Bytes that stand for themselves inside a string: printable ASCII except
// the quote and the backslash.
constexpr auto kPlain = [] {
  std::array<bool, 256> t{};
  for (int c = 0x20; c < 0x80; ++c) t[static_cast<std::size_t>(c)] = c != '"' && c != '\\';
  return t;
}();

class Scanner {
 public:
  explicit Scanner(std::string_view s)
      : p_(reinterpret_cast<const unsigned char*>(s.data())), end_(p_ + s.size()) {}

  bool document() {
    enum class Next { value, key, after_value };
    char stack[kMaxDepth];  // '{' or '[' of each open container
    int depth = 0;
    Next next = Next::value;
    skip_ws();
    for (;;) {
      switch (next) {
        case Next::value:
          if (p_ == end_) return false;
          switch (*p_) {
            case '{':
            case '[': {
              const char open = static_cast<char>(*p_++);
              skip_ws();
              if (p_ < end_ && *p_ == (open == '{' ? '}' : ']')) {
                ++p_;
                next = Next::after_value;
                break;
              }
              if (depth == kMaxDepth) return false;
              stack[depth++] = open;
              next = open == '{' ? Next::key : Next::value;
              break;
            }
            case '"':
              if (!string()) return false;
              next = Next::after_value;
              break;
            case 't':
              if (!literal("true", 4)) return false;
              next = Next::after_value;
              break;
            case 'f':
              if (!literal("false", 5)) return false;
              next = Next::after_value;
              break;
            case 'n':
              if (!literal("null", 4)) return false;
              next = Next::after_value;
              break;
            default:
              if (!number()) return false;
              next = Next::after_value;
              break;
          }
          break;
        case Next::key:
          if (p_ == end_ || *p_ != '"' || !string()) return false;
          skip_ws();
          if (p_ == end_ || *p_ != ':') return false;
          ++p_;
          skip_ws();
          next = Next::value;
          break;
        case Next::after_value:
          skip_ws();
          if (depth == 0) return p_ == end_;
          if (p_ == end_) return false;
          if (*p_ == ',') {
            ++p_;
            skip_ws();
            next = stack[depth - 1] == '{' ? Next::key : Next::value;
          } else if (*p_ == (stack[depth - 1] == '{' ? '}' : ']')) {
            ++p_;
            --depth;
          } else {
            return false;
          }
          break;
      }
    }
  }

 private:
  void skip_ws() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }

  bool literal(const char* word, std::ptrdiff_t n) {
    if (end_ - p_ < n) return false;
    for (std::ptrdiff_t i = 0; i < n; ++i) {
      if (p_[i] != static_cast<unsigned char>(word[i])) return false;
    }
    p_ += n;
    return true;
  }

  static bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
  static bool is_hex(unsigned char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
  static bool in(unsigned char c, unsigned char lo, unsigned char hi) { return c >= lo && c <= hi; }

  // At the opening quote.
  bool string() {
    ++p_;
    while (p_ < end_) {
      // Runs of plain characters (most of a payload) in a tight loop.
      while (p_ < end_ && kPlain[*p_]) ++p_;
      if (p_ == end_) break;
      const unsigned char c = *p_;
      if (c == '"') {
        ++p_;
        return true;
      }
      if (c == '\\') {
        if (end_ - p_ < 2) return false;
        switch (p_[1]) {
          case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
            p_ += 2;
            continue;
          case 'u': {
            if (end_ - p_ < 6) return false;
            std::uint32_t cp = 0;
            for (int i = 2; i < 6; ++i) {
              const unsigned char h = p_[i];
              if (!is_hex(h)) return false;
              cp = (cp << 4) | static_cast<std::uint32_t>(is_digit(h) ? h - '0' : (h | 0x20) - 'a' + 10);
            }
            if (cp >= 0xD800 && cp <= 0xDFFF) return false;  // surrogate pairs: nlohmann decides
            p_ += 6;
            continue;
          }
          default:
            return false;
        }
      }
      if (c < 0x20) return false;  // control characters must be escaped
      if (c < 0x80) {
        ++p_;
        continue;
      }
      if (!utf8_sequence()) return false;
    }
    return false;  // unterminated
  }

  // A well-formed UTF-8 sequence (Unicode table 3-7: no overlongs, no
  // surrogates, nothing past U+10FFFF), the same rule nlohmann's lexer uses.
  bool utf8_sequence() {
    const unsigned char c = *p_;
    const std::ptrdiff_t left = end_ - p_;
    auto cont = [&](std::ptrdiff_t i, unsigned char lo = 0x80, unsigned char hi = 0xBF) {
      return i < left && in(p_[i], lo, hi);
    };
    std::ptrdiff_t n;
    if (in(c, 0xC2, 0xDF)) {
      n = cont(1) ? 2 : 0;
    } else if (c == 0xE0) {
      n = cont(1, 0xA0, 0xBF) && cont(2) ? 3 : 0;
    } else if (in(c, 0xE1, 0xEC) || c == 0xEE || c == 0xEF) {
      n = cont(1) && cont(2) ? 3 : 0;
    } else if (c == 0xED) {
      n = cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0;
    } else if (c == 0xF0) {
      n = cont(1, 0x90, 0xBF) && cont(2) && cont(3) ? 4 : 0;
    } else if (in(c, 0xF1, 0xF3)) {
      n = cont(1) && cont(2) && cont(3) ? 4 : 0;
    } else if (c == 0xF4) {
      n = cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0;
    } else {
      n = 0;
    }
    p_ += n;
    return n != 0;
  }

  bool number() {
    if (*p_ == '-') ++p_;
    if (p_ == end_ || !is_digit(*p_)) return false;
    int int_digits = 0;
    if (*p_ == '0') {
      ++p_;
      int_digits = 1;
    } else {
      while (p_ < end_ && is_digit(*p_)) {
        ++p_;
        ++int_digits;
      }
    }
    if (p_ < end_ && *p_ == '.') {
      ++p_;
      if (p_ == end_ || !is_digit(*p_)) return false;
      while (p_ < end_ && is_digit(*p_)) ++p_;
    }
    int exponent = 0;
    if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
      ++p_;
      bool negative = false;
      if (p_ < end_ && (*p_ == '+' || *p_ == '-')) negative = *p_++ == '-';
      if (p_ == end_ || !is_digit(*p_)) return false;
      int digits = 0;
      while (p_ < end_ && is_digit(*p_)) {
        if (++digits > 4) return false;  // huge exponents: nlohmann decides
        exponent = exponent * 10 + (*p_++ - '0');
      }
      if (negative) exponent = 0;  // underflow gives 0 or a subnormal: finite
    }
    return int_digits + exponent <= kMaxMagnitude;
  }

  const unsigned char* p_;
  const unsigned char* const end_;
};

}  // namespace

bool surely_valid_json(std::string_view text) noexcept { return Scanner(text).document(); }

bool is_valid_json(std::string_view text) {
  return surely_valid_json(text) || nlohmann::json::accept(text.begin(), text.end());
}

}  // namespace prosody::engine
