#include "middleware/dedup_id.h"

#include <type_traits>

#include <nlohmann/json.hpp>
// The state's layout, so it lives on the stack (no allocation per message).
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

namespace prosody::middleware {
namespace {

// Appends integers little-endian whatever the host order, and streams
// into an XXH3 state (no copy of the fields into one buffer).
class Hasher {
 public:
  Hasher() {
    XXH3_INITSTATE(&state_);
    XXH3_128bits_reset(&state_);
  }
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;

  template <typename T>
  void integer(T v) {
    unsigned char b[sizeof(T)];
    auto u = static_cast<std::make_unsigned_t<T>>(v);
    for (std::size_t i = 0; i < sizeof(T); ++i) {
      b[i] = static_cast<unsigned char>(u & 0xFF);
      u = static_cast<decltype(u)>(u >> 8);
    }
    bytes(b, sizeof b);
  }
  void field(std::string_view s) {
    integer(static_cast<std::uint32_t>(s.size()));
    bytes(s.data(), s.size());
  }
  void bytes(const void* p, std::size_t n) { XXH3_128bits_update(&state_, p, n); }
  XXH128_hash_t digest() const { return XXH3_128bits_digest(&state_); }

 private:
  XXH3_state_t state_;
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
  const XXH128_hash_t d = h.digest();
  store::DedupId id;
  for (std::size_t i = 0; i < 8; ++i) {
    id.bytes[i] = static_cast<std::uint8_t>(d.low64 >> (8 * i));
    id.bytes[8 + i] = static_cast<std::uint8_t>(d.high64 >> (8 * i));
  }
  id.bytes[6] = static_cast<std::uint8_t>((id.bytes[6] & 0x0F) | 0x80);  // version 8
  id.bytes[8] = static_cast<std::uint8_t>((id.bytes[8] & 0x3F) | 0x80);  // variant 10xx
  return id;
}

std::optional<std::string_view> json_event_id(const nlohmann::json& payload) {
  if (!payload.is_object()) return std::nullopt;
  auto it = payload.find("id");
  if (it == payload.end() || !it->is_string()) return std::nullopt;
  return std::string_view(it->get_ref<const std::string&>());
}

}  // namespace prosody::middleware

namespace prosody::middleware {

std::optional<std::string> scan_json_event_id(std::string_view encoded) {
  EventIdScanner scanner;
  (void)nlohmann::json::sax_parse(encoded.begin(), encoded.end(), &scanner);
  return std::move(scanner.id);
}

}  // namespace prosody::middleware
