#include "cql/types.h"

#include <cstring>
#include <random>

#include "cql/errors.h"

namespace prosody::cql {
namespace {

constexpr int kMaxDepth = 16;

bool is_text(TypeId id) { return id == TypeId::varchar || id == TypeId::ascii; }

std::string span_str(std::span<const std::uint8_t> s) { return {reinterpret_cast<const char*>(s.data()), s.size()}; }

Error decode_error(const DataType& t, std::string what) {
  return protocol_error("cannot decode " + t.describe() + " value: " + what);
}

}  // namespace

std::string DataType::describe() const {
  switch (id) {
    case TypeId::ascii: return "ascii";
    case TypeId::bigint: return "bigint";
    case TypeId::blob: return "blob";
    case TypeId::boolean: return "boolean";
    case TypeId::counter: return "counter";
    case TypeId::decimal: return "decimal";
    case TypeId::double_: return "double";
    case TypeId::float_: return "float";
    case TypeId::int_: return "int";
    case TypeId::timestamp: return "timestamp";
    case TypeId::uuid: return "uuid";
    case TypeId::varchar: return "text";
    case TypeId::varint: return "varint";
    case TypeId::timeuuid: return "timeuuid";
    case TypeId::inet: return "inet";
    case TypeId::date: return "date";
    case TypeId::time: return "time";
    case TypeId::smallint: return "smallint";
    case TypeId::tinyint: return "tinyint";
    case TypeId::duration: return "duration";
    case TypeId::list: return "list<" + (params.empty() ? "?" : params[0].describe()) + ">";
    case TypeId::set: return "set<" + (params.empty() ? "?" : params[0].describe()) + ">";
    case TypeId::map:
      return "map<" + (params.size() < 2 ? "?" : params[0].describe() + ", " + params[1].describe()) + ">";
    case TypeId::udt: return "udt " + name;
    case TypeId::tuple: return "tuple";
    case TypeId::custom: return "custom " + name;
  }
  return "type " + std::to_string(static_cast<int>(id));
}

DataType read_type(BodyReader& in, int depth) {
  DataType t;
  if (depth > kMaxDepth) {
    in.fail();
    return t;
  }
  auto raw = in.u16();
  t.id = static_cast<TypeId>(raw);
  switch (t.id) {
    case TypeId::custom: t.name = in.string(); break;
    case TypeId::list:
    case TypeId::set: t.params.push_back(read_type(in, depth + 1)); break;
    case TypeId::map:
      t.params.push_back(read_type(in, depth + 1));
      t.params.push_back(read_type(in, depth + 1));
      break;
    case TypeId::udt: {
      auto ks = in.string();
      t.name = ks + "." + in.string();
      auto n = in.u16();
      for (std::uint16_t i = 0; i < n && in.ok(); ++i) {
        t.field_names.push_back(in.string());
        t.params.push_back(read_type(in, depth + 1));
      }
      break;
    }
    case TypeId::tuple: {
      auto n = in.u16();
      for (std::uint16_t i = 0; i < n && in.ok(); ++i) t.params.push_back(read_type(in, depth + 1));
      break;
    }
    default:
      if (raw > 0x0015 || raw == 0x000A) in.fail();  // 0x000A was text in v1/v2 only
      break;
  }
  return t;
}

Uuid Uuid::random() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  Uuid u;
  auto a = rng(), b = rng();
  std::memcpy(u.bytes.data(), &a, 8);
  std::memcpy(u.bytes.data() + 8, &b, 8);
  u.bytes[6] = static_cast<std::uint8_t>((u.bytes[6] & 0x0F) | 0x40);
  u.bytes[8] = static_cast<std::uint8_t>((u.bytes[8] & 0x3F) | 0x80);
  return u;
}

std::optional<Uuid> Uuid::parse(std::string_view s) {
  if (s.size() != 36) return std::nullopt;
  Uuid u;
  int nib = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return std::nullopt;
      continue;
    }
    int v;
    if (c >= '0' && c <= '9') v = c - '0';
    else if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') v = c - 'A' + 10;
    else return std::nullopt;
    auto& b = u.bytes[static_cast<std::size_t>(nib / 2)];
    b = static_cast<std::uint8_t>(nib % 2 == 0 ? v << 4 : b | v);
    ++nib;
  }
  return u;
}

std::string Uuid::str() const {
  static const char* hex = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
    out += hex[bytes[i] >> 4];
    out += hex[bytes[i] & 15];
  }
  return out;
}

bool Map::operator==(const Map& o) const { return keys == o.keys && values == o.values; }
bool Udt::operator==(const Udt& o) const { return names == o.names && values == o.values; }

std::optional<std::int64_t> Value::as_int() const noexcept {
  return std::visit(
      [](const auto& x) -> std::optional<std::int64_t> {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::int8_t> || std::is_same_v<T, std::int16_t> ||
                      std::is_same_v<T, std::int32_t> || std::is_same_v<T, std::int64_t>) {
          return static_cast<std::int64_t>(x);
        } else if constexpr (std::is_same_v<T, Timestamp>) {
          return x.millis;
        } else {
          return std::nullopt;
        }
      },
      v);
}

namespace {

// Writes a [bytes] length placeholder, returns its position for patching.
std::size_t begin_value(BodyWriter& out) {
  auto pos = out.size();
  out.i32(0);
  return pos;
}
void end_value(BodyWriter& out, std::size_t pos) {
  out.patch_i32(pos, static_cast<std::int32_t>(out.size() - pos - 4));
}

Status mismatch(const Value& v, const DataType* t) {
  static const char* kinds[] = {"null", "bool", "tinyint", "smallint", "int", "bigint", "double", "text",
                                "blob", "uuid", "timestamp", "list", "map", "udt"};
  return usage_error(std::string("cannot bind a ") + kinds[v.v.index()] + " value to a column of type " +
                     (t ? t->describe() : "?"));
}

Status encode_int(BodyWriter& out, std::int64_t x, TypeId id, const Value& v, const DataType* t) {
  auto fits = [&](std::int64_t lo, std::int64_t hi) { return x >= lo && x <= hi; };
  switch (id) {
    case TypeId::tinyint:
      if (!fits(INT8_MIN, INT8_MAX)) return usage_error("value " + std::to_string(x) + " out of range for tinyint");
      out.i32(1);
      out.byte(static_cast<std::uint8_t>(x));
      return {};
    case TypeId::smallint:
      if (!fits(INT16_MIN, INT16_MAX)) return usage_error("value " + std::to_string(x) + " out of range for smallint");
      out.i32(2);
      out.u16(static_cast<std::uint16_t>(x));
      return {};
    case TypeId::int_:
      if (!fits(INT32_MIN, INT32_MAX)) return usage_error("value " + std::to_string(x) + " out of range for int");
      out.i32(4);
      out.i32(static_cast<std::int32_t>(x));
      return {};
    case TypeId::bigint:
    case TypeId::counter:
    case TypeId::timestamp:
      out.i32(8);
      out.i64(x);
      return {};
    default: return mismatch(v, t);
  }
}

// The column type to encode a value with when no metadata is known.
TypeId natural_type(const Value& v) {
  switch (v.v.index()) {
    case 1: return TypeId::boolean;
    case 2: return TypeId::tinyint;
    case 3: return TypeId::smallint;
    case 4: return TypeId::int_;
    case 5: return TypeId::bigint;
    case 6: return TypeId::double_;
    case 7: return TypeId::varchar;
    case 8: return TypeId::blob;
    case 9: return TypeId::uuid;
    case 10: return TypeId::timestamp;
    case 11: return TypeId::list;
    case 12: return TypeId::map;
    case 13: return TypeId::udt;
  }
  return TypeId::blob;
}

}  // namespace

Status encode_value(BodyWriter& out, const Value& v, const DataType* t) {
  if (v.is_null()) {
    out.null_bytes();
    return {};
  }
  TypeId id = t ? t->id : natural_type(v);
  if (auto i = v.as_int(); i && !std::holds_alternative<Timestamp>(v.v)) return encode_int(out, *i, id, v, t);
  if (auto* ts = v.get<Timestamp>()) {
    if (id != TypeId::timestamp && id != TypeId::bigint) return mismatch(v, t);
    out.i32(8);
    out.i64(ts->millis);
    return {};
  }
  if (auto* b = v.get<bool>()) {
    if (id != TypeId::boolean) return mismatch(v, t);
    out.i32(1);
    out.byte(*b ? 1 : 0);
    return {};
  }
  if (auto* d = v.get<double>()) {
    if (id == TypeId::double_) {
      std::uint64_t bits;
      std::memcpy(&bits, d, 8);
      out.i32(8);
      out.i64(static_cast<std::int64_t>(bits));
      return {};
    }
    if (id == TypeId::float_) {
      auto f = static_cast<float>(*d);
      std::uint32_t bits;
      std::memcpy(&bits, &f, 4);
      out.i32(4);
      out.i32(static_cast<std::int32_t>(bits));
      return {};
    }
    return mismatch(v, t);
  }
  if (auto* s = v.get<std::string>()) {
    if (!is_text(id) && id != TypeId::blob) return mismatch(v, t);
    out.bytes(*s);
    return {};
  }
  if (auto* b = v.get<Blob>()) {
    if (id != TypeId::blob && id != TypeId::custom) return mismatch(v, t);
    out.bytes(b->bytes);
    return {};
  }
  if (auto* u = v.get<Uuid>()) {
    if (id != TypeId::uuid && id != TypeId::timeuuid) return mismatch(v, t);
    out.i32(16);
    out.raw(std::span<const std::uint8_t>(u->bytes));
    return {};
  }
  if (auto* l = v.get<List>()) {
    if (id != TypeId::list && id != TypeId::set) return mismatch(v, t);
    const DataType* elem = t && !t->params.empty() ? &t->params[0] : nullptr;
    auto pos = begin_value(out);
    out.i32(static_cast<std::int32_t>(l->size()));
    for (const auto& e : *l) {
      if (auto st = encode_value(out, e, elem); !st) return st;
    }
    end_value(out, pos);
    return {};
  }
  if (auto* m = v.get<Map>()) {
    if (id != TypeId::map || m->keys.size() != m->values.size()) return mismatch(v, t);
    const DataType* kt = t && t->params.size() == 2 ? &t->params[0] : nullptr;
    const DataType* vt = t && t->params.size() == 2 ? &t->params[1] : nullptr;
    auto pos = begin_value(out);
    out.i32(static_cast<std::int32_t>(m->keys.size()));
    for (std::size_t i = 0; i < m->keys.size(); ++i) {
      if (auto st = encode_value(out, m->keys[i], kt); !st) return st;
      if (auto st = encode_value(out, m->values[i], vt); !st) return st;
    }
    end_value(out, pos);
    return {};
  }
  if (auto* u = v.get<Udt>()) {
    if (id != TypeId::udt) return mismatch(v, t);
    auto pos = begin_value(out);
    if (!t) {
      for (const auto& f : u->values) {
        if (auto st = encode_value(out, f, nullptr); !st) return st;
      }
    } else {
      // Named fields bind by name (missing ones are null); unnamed by position.
      for (std::size_t i = 0; i < t->params.size(); ++i) {
        const Value* field = nullptr;
        if (u->names.empty()) {
          if (i < u->values.size()) field = &u->values[i];
        } else {
          for (std::size_t j = 0; j < u->names.size() && j < u->values.size(); ++j) {
            if (u->names[j] == t->field_names[i]) field = &u->values[j];
          }
        }
        if (!field) {
          out.null_bytes();
        } else if (auto st = encode_value(out, *field, &t->params[i]); !st) {
          return st;
        }
      }
      if (u->names.empty() && u->values.size() > t->params.size()) {
        return usage_error("too many fields for " + t->describe());
      }
    }
    end_value(out, pos);
    return {};
  }
  return mismatch(v, t);
}

Result<Value> decode_value(const DataType& t, std::span<const std::uint8_t> b, int depth) {
  if (depth > kMaxDepth) return decode_error(t, "nested too deeply");
  auto fixed = [&](std::size_t n) { return b.size() == n; };
  switch (t.id) {
    case TypeId::boolean:
      if (!fixed(1)) return decode_error(t, "size " + std::to_string(b.size()));
      return Value(b[0] != 0);
    case TypeId::tinyint:
      if (!fixed(1)) return decode_error(t, "size " + std::to_string(b.size()));
      return Value(static_cast<std::int8_t>(b[0]));
    case TypeId::smallint:
      if (!fixed(2)) return decode_error(t, "size " + std::to_string(b.size()));
      return Value(static_cast<std::int16_t>(load_u16(b.data())));
    case TypeId::int_:
      if (!fixed(4)) return decode_error(t, "size " + std::to_string(b.size()));
      return Value(static_cast<std::int32_t>(load_u32(b.data())));
    case TypeId::bigint:
    case TypeId::counter:
      if (!fixed(8)) return decode_error(t, "size " + std::to_string(b.size()));
      return Value(static_cast<std::int64_t>(load_u64(b.data())));
    case TypeId::timestamp:
      if (!fixed(8)) return decode_error(t, "size " + std::to_string(b.size()));
      return Value(Timestamp{static_cast<std::int64_t>(load_u64(b.data()))});
    case TypeId::double_: {
      if (!fixed(8)) return decode_error(t, "size " + std::to_string(b.size()));
      auto bits = load_u64(b.data());
      double d;
      std::memcpy(&d, &bits, 8);
      return Value(d);
    }
    case TypeId::float_: {
      if (!fixed(4)) return decode_error(t, "size " + std::to_string(b.size()));
      auto bits = load_u32(b.data());
      float f;
      std::memcpy(&f, &bits, 4);
      return Value(static_cast<double>(f));
    }
    case TypeId::uuid:
    case TypeId::timeuuid: {
      if (!fixed(16)) return decode_error(t, "size " + std::to_string(b.size()));
      Uuid u;
      std::memcpy(u.bytes.data(), b.data(), 16);
      return Value(u);
    }
    case TypeId::varchar:
    case TypeId::ascii: return Value(span_str(b));
    case TypeId::list:
    case TypeId::set:
    case TypeId::map: {
      if (t.params.size() != (t.id == TypeId::map ? 2u : 1u)) return decode_error(t, "bad type parameters");
      BodyReader in(b);
      auto n = in.i32();
      // Each element takes at least 4 bytes: bounds n before reserving.
      if (!in.ok() || n < 0 || static_cast<std::size_t>(n) > in.remaining() / 4) {
        return decode_error(t, "bad element count");
      }
      List items;
      Map map;
      for (std::int32_t i = 0; i < n; ++i) {
        for (std::size_t part = 0; part < t.params.size(); ++part) {
          bool null = false;
          auto e = in.bytes_view(null);
          if (!in.ok()) return decode_error(t, "truncated element");
          Value ev;
          if (!null) {
            auto r = decode_value(t.params[part], e, depth + 1);
            if (!r) return std::move(r).error();
            ev = std::move(r).value();
          }
          if (t.id != TypeId::map) items.push_back(std::move(ev));
          else if (part == 0) map.keys.push_back(std::move(ev));
          else map.values.push_back(std::move(ev));
        }
      }
      if (!in.at_end()) return decode_error(t, "trailing bytes");
      if (t.id == TypeId::map) return Value(std::move(map));
      return Value(std::move(items));
    }
    case TypeId::udt: {
      BodyReader in(b);
      Udt u;
      // Fields added to the type later are absent from older values.
      for (std::size_t i = 0; i < t.params.size() && !in.at_end(); ++i) {
        bool null = false;
        auto e = in.bytes_view(null);
        if (!in.ok()) return decode_error(t, "truncated field");
        Value fv;
        if (!null) {
          auto r = decode_value(t.params[i], e, depth + 1);
          if (!r) return std::move(r).error();
          fv = std::move(r).value();
        }
        u.names.push_back(t.field_names[i]);
        u.values.push_back(std::move(fv));
      }
      if (!in.at_end()) return decode_error(t, "trailing bytes");
      return Value(std::move(u));
    }
    default: return Value(Blob{span_str(b)});  // blob and types the schema never uses
  }
}

}  // namespace prosody::cql
