#include "middleware/dedup_id.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <type_traits>

#include <nlohmann/json.hpp>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
// The state's layout, so it lives on the stack (no allocation per message).
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "util/utf8.h"

namespace prosody::middleware {
namespace {

// Appends integers little-endian whatever the host order. The fields go
// into a buffer on the stack and are hashed in one call; only fields too
// long for it switch to XXH3's streaming state (the same digest either way:
// XXH3 streams are defined to hash like their concatenation). Setting up the
// streaming state costs ~700 instructions, several times the one-shot hash
// of a typical (version, group, topic, key, id) (bench/PROFILE.md
// "Session 10").
class Hasher {
 public:
  Hasher() = default;
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;

  template <typename T>
  void integer(T v) {
    auto u = static_cast<std::make_unsigned_t<T>>(v);
    if constexpr (std::endian::native == std::endian::little) {
      bytes(&u, sizeof u);
    } else {
      unsigned char b[sizeof(T)];
      for (std::size_t i = 0; i < sizeof(T); ++i) {
        b[i] = static_cast<unsigned char>(u & 0xFF);
        u = static_cast<decltype(u)>(u >> 8);
      }
      bytes(b, sizeof b);
    }
  }
  void field(std::string_view s) {
    integer(static_cast<std::uint32_t>(s.size()));
    bytes(s.data(), s.size());
  }
  void bytes(const void* p, std::size_t n) {
    if (n == 0) return;  // an empty view may have no data pointer
    if (!streaming_ && used_ + n <= sizeof buffer_) {
      std::memcpy(buffer_ + used_, p, n);
      used_ += n;
      return;
    }
    if (!streaming_) {
      XXH3_INITSTATE(&state_);
      XXH3_128bits_reset(&state_);
      XXH3_128bits_update(&state_, buffer_, used_);
      streaming_ = true;
    }
    XXH3_128bits_update(&state_, p, n);
  }
  // The digest as 16 little-endian bytes, low 64 bits first.
  store::DedupId id() const {
    const XXH128_hash_t d = streaming_ ? XXH3_128bits_digest(&state_) : XXH3_128bits(buffer_, used_);
    store::DedupId out;
    if constexpr (std::endian::native == std::endian::little) {
      std::memcpy(out.bytes.data(), &d.low64, 8);
      std::memcpy(out.bytes.data() + 8, &d.high64, 8);
    } else {
      for (std::size_t i = 0; i < 8; ++i) {
        out.bytes[i] = static_cast<std::uint8_t>(d.low64 >> (8 * i));
        out.bytes[8 + i] = static_cast<std::uint8_t>(d.high64 >> (8 * i));
      }
    }
    return out;
  }

 private:
  unsigned char buffer_[512];
  std::size_t used_ = 0;
  bool streaming_ = false;
  XXH3_state_t state_;  // set up only once streaming_
};

// SAX consumer that finds the top-level "id" and stops the parse there
// (a callback returning false ends sax_parse early).
class EventIdScanner {
 public:
  using json = nlohmann::json;
  std::optional<std::string> id;

  bool null() { return scalar(); }
  bool boolean(bool) { return scalar(); }
  bool number_integer(json::number_integer_t) { return scalar(); }
  bool number_unsigned(json::number_unsigned_t) { return scalar(); }
  bool number_float(json::number_float_t, const json::string_t&) { return scalar(); }
  bool binary(json::binary_t&) { return scalar(); }
  bool string(json::string_t& v) {
    if (at_id()) {
      id = std::move(v);
      return false;
    }
    return true;
  }
  bool start_object(std::size_t) { return open(); }
  bool start_array(std::size_t) {
    if (depth_ == 0) return false;  // the payload is not an object: no id
    return open();
  }
  bool end_object() { return close(); }
  bool end_array() { return close(); }
  bool key(json::string_t& k) {
    id_is_next_ = depth_ == 1 && k == "id";
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) { return false; }

 private:
  bool at_id() const { return depth_ == 1 && id_is_next_; }
  // A non-string "id" means no event id; any other top-level scalar
  // (the payload itself) too.
  bool scalar() { return depth_ != 0 && !at_id(); }
  bool open() {
    if (at_id()) return false;
    ++depth_;
    id_is_next_ = false;
    return true;
  }
  bool close() {
    --depth_;
    return depth_ != 0;  // the top-level object ended without an id
  }
  int depth_ = 0;
  bool id_is_next_ = false;
};

}  // namespace

store::DedupId dedup_id(const DedupFields& f) {
  Hasher h;
  h.field(f.version);
  h.field(f.group_id);
  h.field(f.topic);
  h.integer(f.partition);
  h.field(f.key);
  if (f.event_id) {
    h.integer(std::uint8_t{1});
    h.field(*f.event_id);
  } else {
    h.integer(std::uint8_t{0});
    h.integer(f.offset);
  }
  store::DedupId id = h.id();
  id.bytes[6] = static_cast<std::uint8_t>((id.bytes[6] & 0x0F) | 0x80);  // version 8
  id.bytes[8] = static_cast<std::uint8_t>((id.bytes[8] & 0x3F) | 0x80);  // variant 10xx
  return id;
}

store::DedupId producer_dedup_id(std::string_view topic, std::string_view key, std::string_view event_id) {
  Hasher h;
  h.field(topic);
  h.field(key);
  h.field(event_id);
  return h.id();
}

std::optional<std::string_view> json_event_id(const nlohmann::json& payload) {
  if (!payload.is_object()) return std::nullopt;
  auto it = payload.find("id");
  if (it == payload.end() || !it->is_string()) return std::nullopt;
  return std::string_view(it->get_ref<const std::string&>());
}

}  // namespace prosody::middleware

namespace prosody::middleware {

namespace {

// Where the id starting at `p` stops: the first '"', '\\' or control
// character before `end` (or `end`). `non_ascii` is set when a byte before
// that is >= 0x80. Sixteen bytes at a time where SSE2 is there (every
// x86-64 with GCC or Clang): a UUID id is 36 bytes, four vector operations
// per block instead of three compares per byte (bench/PROFILE.md
// "Session 12").
const char* id_stop(const char* p, const char* end, bool& non_ascii) {
  unsigned char seen = 0;  // the OR of the bytes passed: >= 0x80 means non-ASCII
#if defined(__SSE2__)
  const __m128i quote = _mm_set1_epi8('"');
  const __m128i backslash = _mm_set1_epi8('\\');
  const __m128i last_control = _mm_set1_epi8(0x1F);
  for (; end - p >= 16; p += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    // c <= 0x1F unsigned: max(c, 0x1F) == 0x1F.
    const __m128i control = _mm_cmpeq_epi8(_mm_max_epu8(v, last_control), last_control);
    const __m128i stop = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)), control);
    const auto stops = static_cast<unsigned>(_mm_movemask_epi8(stop));
    const auto high = static_cast<unsigned>(_mm_movemask_epi8(v));  // the top bit of each byte
    if (stops != 0) {
      const int at = std::countr_zero(stops);
      non_ascii = seen >= 0x80 || (high & ((1U << at) - 1U)) != 0;
      return p + at;
    }
    if (high != 0) seen = 0x80;
  }
#endif
  for (; p != end; ++p) {
    const auto c = static_cast<unsigned char>(*p);
    if (c == '"' || c == '\\' || c < 0x20) break;
    seen |= c;
  }
  non_ascii = seen >= 0x80;
  return p;
}

}  // namespace

// Reads no further than the id, like the SAX pass it stands in for.
std::optional<std::string_view> leading_plain_event_id(std::string_view encoded) {
  constexpr std::string_view kLeadingId = R"({"id":")";
  if (!encoded.starts_with(kLeadingId)) return std::nullopt;
  const char* const begin = encoded.data() + kLeadingId.size();
  const char* const end = encoded.data() + encoded.size();
  bool non_ascii = false;
  const char* p = id_stop(begin, end, non_ascii);
  if (p == end || *p != '"') return std::nullopt;  // unterminated, or an escape or control character
  const std::string_view id(begin, static_cast<std::size_t>(p - begin));
  for (++p; p != end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'); ++p) {
  }
  if (p == end || (*p != ',' && *p != '}')) return std::nullopt;
  if (non_ascii && !util::is_valid_utf8(id)) return std::nullopt;
  return id;
}

std::optional<std::string_view> find_json_event_id(std::string_view encoded, std::string& scratch) {
  // Two shapes answered without the parser (every message of a pipeline
  // consumer and every send of a producer asks), cheapest first:
  //  - `{"id":"<id>",...` (leading_plain_event_id);
  //  - neither `"id"` nor a `\u` escape anywhere: no member can be named
  //    "id" (only a \u escape spells a letter another way).
  // Anything else, whitespace before the id included, goes to the SAX pass.
  if (const auto id = leading_plain_event_id(encoded)) return id;
  constexpr auto npos = std::string_view::npos;
  if (encoded.find("\"id\"") == npos && encoded.find("\\u") == npos) return std::nullopt;
  EventIdScanner scanner;
  (void)nlohmann::json::sax_parse(encoded.begin(), encoded.end(), &scanner);
  if (!scanner.id) return std::nullopt;
  scratch = std::move(*scanner.id);
  return std::string_view(scratch);
}

std::optional<std::string> scan_json_event_id(std::string_view encoded) {
  std::string scratch;
  const auto id = find_json_event_id(encoded, scratch);
  if (!id) return std::nullopt;
  return std::string(*id);
}

}  // namespace prosody::middleware
