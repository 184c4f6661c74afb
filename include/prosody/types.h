// File: prosody/types.h
//
// Strong types for the Kafka coordinates that flow through the API, so a
// partition number can never be passed where an offset is expected.
//
// Thread safety: value types.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>
#include <string>

namespace prosody {

// A strongly typed integer wrapper: explicit construction, explicit access.
template <typename Tag, typename Rep>
class StrongInt {
 public:
  constexpr StrongInt() = default;
  constexpr explicit StrongInt(Rep v) : value_(v) {}
  constexpr Rep value() const noexcept { return value_; }
  constexpr auto operator<=>(const StrongInt&) const = default;

 private:
  Rep value_{};
};

struct PartitionTag {};
struct OffsetTag {};

using Partition = StrongInt<PartitionTag, std::int32_t>;
using Offset = StrongInt<OffsetTag, std::int64_t>;

// Topic names and keys are strings; keys must be valid UTF-8 on the wire.
using Topic = std::string;
using Key = std::string;

}  // namespace prosody

template <typename Tag, typename Rep>
struct std::hash<prosody::StrongInt<Tag, Rep>> {
  std::size_t operator()(const prosody::StrongInt<Tag, Rep>& v) const noexcept {
    return std::hash<Rep>{}(v.value());
  }
};
