#include "cql/frame.h"

#include <cstring>

#include "cql/errors.h"

namespace prosody::cql {

Result<FrameHeader> decode_header(std::span<const std::uint8_t, kHeaderSize> b) {
  FrameHeader h;
  h.version = b[0];
  h.flags = b[1];
  h.stream = static_cast<std::int16_t>(load_u16(&b[2]));
  h.opcode = static_cast<Opcode>(b[4]);
  h.length = load_u32(&b[5]);
  if (h.version != (kProtocolVersion | kResponseBit)) {
    return protocol_error("unexpected frame version byte " + std::to_string(h.version) +
                          " (expected a CQL v4 response)");
  }
  if (h.flags & flags::compression) return protocol_error("compressed frame received, but no compression was negotiated");
  if (h.length > kMaxBodySize) return protocol_error("frame body of " + std::to_string(h.length) + " bytes exceeds 256 MiB");
  if (b[4] > static_cast<std::uint8_t>(Opcode::auth_success)) {
    return protocol_error("unknown opcode " + std::to_string(b[4]));
  }
  return h;
}

BodyWriter::BodyWriter(Opcode op, std::int16_t stream) : framed_(true) {
  out_.reserve(64);
  out_.push_back(kProtocolVersion);
  out_.push_back(0);
  u16(static_cast<std::uint16_t>(stream));
  out_.push_back(static_cast<std::uint8_t>(op));
  i32(0);
}

void BodyWriter::u16(std::uint16_t v) {
  out_.push_back(static_cast<std::uint8_t>(v >> 8));
  out_.push_back(static_cast<std::uint8_t>(v));
}

void BodyWriter::i32(std::int32_t v) {
  auto u = static_cast<std::uint32_t>(v);
  for (int s = 24; s >= 0; s -= 8) out_.push_back(static_cast<std::uint8_t>(u >> s));
}

void BodyWriter::i64(std::int64_t v) {
  auto u = static_cast<std::uint64_t>(v);
  for (int s = 56; s >= 0; s -= 8) out_.push_back(static_cast<std::uint8_t>(u >> s));
}

void BodyWriter::raw(std::span<const std::uint8_t> bytes) { out_.insert(out_.end(), bytes.begin(), bytes.end()); }

void BodyWriter::raw(std::string_view bytes) {
  auto p = reinterpret_cast<const std::uint8_t*>(bytes.data());
  out_.insert(out_.end(), p, p + bytes.size());
}

void BodyWriter::string(std::string_view s) {
  u16(static_cast<std::uint16_t>(s.size()));
  raw(s);
}

void BodyWriter::long_string(std::string_view s) {
  i32(static_cast<std::int32_t>(s.size()));
  raw(s);
}

void BodyWriter::bytes(std::string_view b) {
  i32(static_cast<std::int32_t>(b.size()));
  raw(b);
}

void BodyWriter::short_bytes(std::string_view b) {
  u16(static_cast<std::uint16_t>(b.size()));
  raw(b);
}

void BodyWriter::string_map(const std::map<std::string, std::string>& m) {
  u16(static_cast<std::uint16_t>(m.size()));
  for (const auto& [k, v] : m) {
    string(k);
    string(v);
  }
}

void BodyWriter::patch_i32(std::size_t pos, std::int32_t v) {
  auto u = static_cast<std::uint32_t>(v);
  for (int i = 0; i < 4; ++i) out_[pos + i] = static_cast<std::uint8_t>(u >> (24 - 8 * i));
}

std::vector<std::uint8_t> BodyWriter::finish() && {
  if (framed_) patch_i32(5, static_cast<std::int32_t>(out_.size() - kHeaderSize));
  return std::move(out_);
}

bool BodyReader::need(std::size_t n) noexcept {
  if (!ok_ || remaining() < n) {
    ok_ = false;
    return false;
  }
  return true;
}

std::uint8_t BodyReader::byte() {
  if (!need(1)) return 0;
  return in_[pos_++];
}

std::uint16_t BodyReader::u16() {
  if (!need(2)) return 0;
  auto v = load_u16(&in_[pos_]);
  pos_ += 2;
  return v;
}

std::int32_t BodyReader::i32() {
  if (!need(4)) return 0;
  auto v = static_cast<std::int32_t>(load_u32(&in_[pos_]));
  pos_ += 4;
  return v;
}

std::int64_t BodyReader::i64() {
  if (!need(8)) return 0;
  auto v = static_cast<std::int64_t>(load_u64(&in_[pos_]));
  pos_ += 8;
  return v;
}

std::span<const std::uint8_t> BodyReader::take(std::size_t n) {
  if (!need(n)) return {};
  auto s = in_.subspan(pos_, n);
  pos_ += n;
  return s;
}

static std::string to_string(std::span<const std::uint8_t> s) {
  return {reinterpret_cast<const char*>(s.data()), s.size()};
}

std::string BodyReader::string() { return to_string(take(u16())); }

std::string BodyReader::long_string() {
  auto n = i32();
  if (n < 0) {
    fail();
    return {};
  }
  return to_string(take(static_cast<std::size_t>(n)));
}

std::span<const std::uint8_t> BodyReader::bytes_view(bool& null) {
  auto n = i32();
  null = n < 0;
  if (null) return {};
  return take(static_cast<std::size_t>(n));
}

std::optional<std::string> BodyReader::bytes() {
  bool null = false;
  auto v = bytes_view(null);
  if (null || !ok_) return std::nullopt;
  return to_string(v);
}

std::string BodyReader::short_bytes() { return to_string(take(u16())); }

std::vector<std::string> BodyReader::string_list() {
  std::vector<std::string> out;
  auto n = u16();
  for (std::uint16_t i = 0; i < n && ok_; ++i) out.push_back(string());
  return out;
}

std::map<std::string, std::string> BodyReader::string_map() {
  std::map<std::string, std::string> out;
  auto n = u16();
  for (std::uint16_t i = 0; i < n && ok_; ++i) {
    auto k = string();
    out[std::move(k)] = string();
  }
  return out;
}

std::map<std::string, std::vector<std::string>> BodyReader::string_multimap() {
  std::map<std::string, std::vector<std::string>> out;
  auto n = u16();
  for (std::uint16_t i = 0; i < n && ok_; ++i) {
    auto k = string();
    out[std::move(k)] = string_list();
  }
  return out;
}

std::string BodyReader::inet() {
  auto n = byte();
  if (n != 4 && n != 16) {
    fail();
    return {};
  }
  auto addr = take(n);
  auto port = i32();
  if (!ok_) return {};
  std::string out;
  if (n == 4) {
    out = std::to_string(addr[0]) + "." + std::to_string(addr[1]) + "." + std::to_string(addr[2]) + "." +
          std::to_string(addr[3]);
  } else {
    static const char* hex = "0123456789abcdef";
    for (int i = 0; i < 16; i += 2) {
      if (i) out += ':';
      for (int j = i; j < i + 2; ++j) {
        out += hex[addr[j] >> 4];
        out += hex[addr[j] & 15];
      }
    }
    out = "[" + out + "]";
  }
  return out + ":" + std::to_string(port);
}

}  // namespace prosody::cql
