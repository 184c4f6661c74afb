// libFuzzer target for the CQL response decoder (built by scripts/fuzz-cql,
// not by CMake). Input layout: a 9-byte frame header, then the body. Every
// response kind is decoded, with and without cached result metadata, and
// the body is also read as a type descriptor followed by a value of it.
// Any crash, sanitizer report or hang is a bug: a server's bytes must never
// do more than produce an error.
#include <cstddef>
#include <cstdint>
#include <span>

#include "cql/frame.h"
#include "cql/messages.h"
#include "cql/types.h"

using namespace prosody::cql;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < kHeaderSize) return 0;
  std::span<const std::uint8_t, kHeaderSize> head(data, kHeaderSize);
  std::span<const std::uint8_t> body(data + kHeaderSize, size - kHeaderSize);

  auto h = decode_header(head);
  FrameHeader forced;
  if (h) {
    forced = *h;
  } else {
    // Still exercise the body decoders with the opcode and flags given.
    forced.flags = static_cast<std::uint8_t>(data[1] & ~flags::compression);
    forced.opcode = static_cast<Opcode>(data[4] % 0x11);
  }
  forced.length = static_cast<std::uint32_t>(body.size());
  (void)decode_response(forced, body);
  static const auto cached = std::make_shared<const Columns>(
      Columns{{"ks", "t", "a", DataType{TypeId::int_}},
              {"ks", "t", "b", DataType{TypeId::map, {DataType{TypeId::varchar}, DataType{TypeId::blob}}}}});
  (void)decode_response(forced, body, cached);

  BodyReader in(body);
  auto type = read_type(in);
  if (in.ok()) {
    bool null = false;
    auto value = in.bytes_view(null);
    if (in.ok() && !null) {
      auto v = decode_value(type, value);
      // Whatever decodes must encode again under the same type.
      if (v) {
        BodyWriter w;
        (void)encode_value(w, *v, &type);
      }
    }
  }
  return 0;
}
