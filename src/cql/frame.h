// CQL native protocol v4 framing: the 9-byte header, and the primitive body
// notations of the spec ([int], [short], [string], [long string], [bytes],
// [short bytes], [string map], [string list], [inet]) as a writer and a
// bounds-checked reader.
//
// The reader never trusts a length from the wire: every read checks the
// remaining input and fails (sets `ok() == false`) instead of reading past
// the end, so a hostile or corrupt frame is a decode error, never UB. This is
// the surface the fuzz target (frame_fuzz.cc) exercises.
//
// Thread safety: value types; no shared state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "prosody/result.h"

namespace prosody::cql {

inline constexpr std::uint8_t kProtocolVersion = 0x04;
inline constexpr std::uint8_t kResponseBit = 0x80;
inline constexpr std::size_t kHeaderSize = 9;
// The spec caps frame bodies at 256 MiB; anything larger is corrupt.
inline constexpr std::uint32_t kMaxBodySize = 256u << 20;

enum class Opcode : std::uint8_t {
  error = 0x00,
  startup = 0x01,
  ready = 0x02,
  authenticate = 0x03,
  options = 0x05,
  supported = 0x06,
  query = 0x07,
  result = 0x08,
  prepare = 0x09,
  execute = 0x0A,
  register_ = 0x0B,
  event = 0x0C,
  batch = 0x0D,
  auth_challenge = 0x0E,
  auth_response = 0x0F,
  auth_success = 0x10,
};

namespace flags {
inline constexpr std::uint8_t compression = 0x01;
inline constexpr std::uint8_t tracing = 0x02;
inline constexpr std::uint8_t custom_payload = 0x04;
inline constexpr std::uint8_t warning = 0x08;
}  // namespace flags

struct FrameHeader {
  std::uint8_t version = kProtocolVersion;
  std::uint8_t flags = 0;
  std::int16_t stream = 0;
  Opcode opcode = Opcode::options;
  std::uint32_t length = 0;
};

// Parses a response header. Rejects anything but a v4 response, unknown
// compression (we never ask for it) and oversized bodies.
Result<FrameHeader> decode_header(std::span<const std::uint8_t, kHeaderSize> bytes);

// Appends big-endian primitives; `finish` patches the header's length field.
class BodyWriter {
 public:
  // Starts a request frame with its header (length patched by finish()).
  BodyWriter(Opcode op, std::int16_t stream);
  // A bare writer without a header (values, routing keys).
  BodyWriter() = default;

  void byte(std::uint8_t v) { out_.push_back(v); }
  void u16(std::uint16_t v);
  void i32(std::int32_t v);
  void i64(std::int64_t v);
  void raw(std::span<const std::uint8_t> bytes);
  void raw(std::string_view bytes);
  void string(std::string_view s);       // [string]: u16 length
  void long_string(std::string_view s);  // [long string]: i32 length
  void bytes(std::string_view b);        // [bytes]: i32 length
  void null_bytes() { i32(-1); }         // [bytes] null
  void short_bytes(std::string_view b);  // [short bytes]: u16 length
  void string_map(const std::map<std::string, std::string>& m);

  std::size_t size() const noexcept { return out_.size(); }
  // Overwrites 4 bytes at `pos` (a length reserved earlier).
  void patch_i32(std::size_t pos, std::int32_t v);
  std::vector<std::uint8_t> finish() &&;
  std::vector<std::uint8_t>& buffer() noexcept { return out_; }

 private:
  std::vector<std::uint8_t> out_;
  bool framed_ = false;
};

// Reads body notations; once a read fails every later read fails too, and the
// caller checks ok() (or error()) once at the end of a message.
class BodyReader {
 public:
  explicit BodyReader(std::span<const std::uint8_t> in) : in_(in) {}

  bool ok() const noexcept { return ok_; }
  std::size_t remaining() const noexcept { return in_.size() - pos_; }
  bool at_end() const noexcept { return pos_ == in_.size(); }
  void fail() noexcept { ok_ = false; }

  std::uint8_t byte();
  std::uint16_t u16();
  std::int32_t i32();
  std::int64_t i64();
  std::string string();
  std::string long_string();
  // [bytes]: nullopt for a null (negative length).
  std::optional<std::string> bytes();
  // [bytes] as a view into the input (valid while the input lives); `null` set
  // for a negative length.
  std::span<const std::uint8_t> bytes_view(bool& null);
  std::string short_bytes();
  std::vector<std::string> string_list();
  std::map<std::string, std::string> string_map();
  std::map<std::string, std::vector<std::string>> string_multimap();
  // [inet]: 1-byte size, 4 or 16 address bytes, then an [int] port.
  std::string inet();
  std::span<const std::uint8_t> take(std::size_t n);

 private:
  bool need(std::size_t n) noexcept;

  std::span<const std::uint8_t> in_;
  std::size_t pos_ = 0;
  bool ok_ = true;
};

// Big-endian helpers shared with the value codec.
inline std::uint16_t load_u16(const std::uint8_t* p) { return static_cast<std::uint16_t>(p[0] << 8 | p[1]); }
inline std::uint32_t load_u32(const std::uint8_t* p) {
  return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | p[3];
}
inline std::uint64_t load_u64(const std::uint8_t* p) {
  return std::uint64_t{load_u32(p)} << 32 | load_u32(p + 4);
}

}  // namespace prosody::cql
