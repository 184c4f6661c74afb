// CQL data types and values: the [option] type descriptors of result and
// prepared metadata, a `Value` variant for the types Prosody's schema uses
// (uuid, int, bigint, tinyint, smallint, text, boolean, timestamp, double,
// blob, list/set, map, frozen UDTs), and the [value] codec between them.
//
// Types the schema never uses (decimal, varint, inet, duration, custom...)
// decode to a Blob of their raw bytes instead of failing the whole row.
//
// Thread safety: value types; no shared state.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "cql/frame.h"
#include "prosody/result.h"

namespace prosody::cql {

enum class TypeId : std::uint16_t {
  custom = 0x0000,
  ascii = 0x0001,
  bigint = 0x0002,
  blob = 0x0003,
  boolean = 0x0004,
  counter = 0x0005,
  decimal = 0x0006,
  double_ = 0x0007,
  float_ = 0x0008,
  int_ = 0x0009,
  timestamp = 0x000B,
  uuid = 0x000C,
  varchar = 0x000D,
  varint = 0x000E,
  timeuuid = 0x000F,
  inet = 0x0010,
  date = 0x0011,
  time = 0x0012,
  smallint = 0x0013,
  tinyint = 0x0014,
  duration = 0x0015,
  list = 0x0020,
  map = 0x0021,
  set = 0x0022,
  udt = 0x0030,
  tuple = 0x0031,
};

struct DataType {
  TypeId id = TypeId::blob;
  std::vector<DataType> params;          // list/set: 1, map: 2, udt: fields, tuple: elements
  std::vector<std::string> field_names;  // udt only
  std::string name;                      // udt: "keyspace.type"; custom: Java class

  std::string describe() const;
};

// Reads an [option] type; nested types are limited in depth (a corrupt frame
// cannot recurse without bound).
DataType read_type(BodyReader& in, int depth = 0);

struct Null {
  bool operator==(const Null&) const = default;
};

struct Uuid {
  std::array<std::uint8_t, 16> bytes{};
  static Uuid random();                                  // version 4
  static std::optional<Uuid> parse(std::string_view s);  // 8-4-4-4-12 hex
  std::string str() const;
  auto operator<=>(const Uuid&) const = default;
};

struct Timestamp {
  std::int64_t millis = 0;  // since the Unix epoch
  auto operator<=>(const Timestamp&) const = default;
};

struct Blob {
  std::string bytes;
  bool operator==(const Blob&) const = default;
};

struct Value;
using List = std::vector<Value>;  // list and set
struct Map {
  std::vector<Value> keys;
  std::vector<Value> values;
  bool operator==(const Map&) const;
};
// A UDT by field name; unnamed fields bind by position.
struct Udt {
  std::vector<std::string> names;
  std::vector<Value> values;
  bool operator==(const Udt&) const;
};

struct Value {
  using Variant = std::variant<Null, bool, std::int8_t, std::int16_t, std::int32_t, std::int64_t, double, std::string,
                               Blob, Uuid, Timestamp, List, Map, Udt>;
  Variant v;

  Value() = default;
  template <typename T>
    requires std::is_constructible_v<Variant, T&&> && (!std::is_same_v<std::decay_t<T>, Value>)
  Value(T&& x) : v(std::forward<T>(x)) {}  // NOLINT: values are built inline in calls
  Value(const char* s) : v(std::string(s)) {}  // NOLINT

  bool is_null() const noexcept { return std::holds_alternative<Null>(v); }
  template <typename T>
  const T* get() const noexcept {
    return std::get_if<T>(&v);
  }
  // Any integer kind widened to int64 (nullopt for non-integers and null).
  std::optional<std::int64_t> as_int() const noexcept;
  bool operator==(const Value& o) const { return v == o.v; }
};

// Appends `value` as a [bytes] value of column type `type` (nullptr: the
// value's own kind decides, for unprepared queries). Integers are range
// checked against narrower columns; a wrong kind is a usage error.
Status encode_value(BodyWriter& out, const Value& value, const DataType* type);

// Decodes the content of one [bytes] value (null handled by the caller).
Result<Value> decode_value(const DataType& type, std::span<const std::uint8_t> bytes, int depth = 0);

}  // namespace prosody::cql
