#include "cql/messages.h"

#include "cql/errors.h"

namespace prosody::cql {
namespace {

namespace qflags {
constexpr std::uint8_t values = 0x01;
constexpr std::uint8_t skip_metadata = 0x02;
constexpr std::uint8_t page_size = 0x04;
constexpr std::uint8_t paging_state = 0x08;
constexpr std::uint8_t serial = 0x10;
constexpr std::uint8_t timestamp = 0x20;
}  // namespace qflags

namespace mflags {
constexpr std::int32_t global_table_spec = 0x0001;
constexpr std::int32_t has_more_pages = 0x0002;
constexpr std::int32_t no_metadata = 0x0004;
}  // namespace mflags

// <consistency><flags>[values][page size][paging state][serial][timestamp]
Status write_params(BodyWriter& w, std::span<const Value> values, const Columns* bind, const QueryParams& p) {
  w.u16(static_cast<std::uint16_t>(p.consistency));
  std::uint8_t f = 0;
  if (!values.empty()) f |= qflags::values;
  if (p.skip_metadata) f |= qflags::skip_metadata;
  if (p.page_size > 0) f |= qflags::page_size;
  if (p.paging_state) f |= qflags::paging_state;
  if (p.serial_consistency) f |= qflags::serial;
  if (p.timestamp) f |= qflags::timestamp;
  w.byte(f);
  if (!values.empty()) {
    if (bind && bind->size() != values.size()) {
      return usage_error("statement has " + std::to_string(bind->size()) + " bind markers but " +
                         std::to_string(values.size()) + " values were given");
    }
    w.u16(static_cast<std::uint16_t>(values.size()));
    for (std::size_t i = 0; i < values.size(); ++i) {
      if (auto st = encode_value(w, values[i], bind ? &(*bind)[i].type : nullptr); !st) {
        if (!bind) return st;
        return usage_error("bind marker " + std::to_string(i) + " (" + (*bind)[i].name + "): " + st.error().message());
      }
    }
  } else if (bind && !bind->empty()) {
    return usage_error("statement has " + std::to_string(bind->size()) + " bind markers but no values were given");
  }
  if (p.page_size > 0) w.i32(p.page_size);
  if (p.paging_state) w.bytes(*p.paging_state);
  if (p.serial_consistency) w.u16(static_cast<std::uint16_t>(*p.serial_consistency));
  if (p.timestamp) w.i64(*p.timestamp);
  return {};
}

Columns read_columns(BodyReader& in, std::int32_t flags, std::int32_t count) {
  Columns cols;
  std::string gks, gtable;
  if (flags & mflags::global_table_spec) {
    gks = in.string();
    gtable = in.string();
  }
  // Each column spec takes at least 4 bytes, so a huge count fails fast.
  if (count < 0 || static_cast<std::size_t>(count) > in.remaining() / 4 + 1) {
    in.fail();
    return cols;
  }
  cols.reserve(static_cast<std::size_t>(count));
  for (std::int32_t i = 0; i < count && in.ok(); ++i) {
    ColumnSpec c;
    if (flags & mflags::global_table_spec) {
      c.keyspace = gks;
      c.table = gtable;
    } else {
      c.keyspace = in.string();
      c.table = in.string();
    }
    c.name = in.string();
    c.type = read_type(in);
    cols.push_back(std::move(c));
  }
  return cols;
}

Status read_rows(BodyReader& in, Rows& out, const std::shared_ptr<const Columns>& cached) {
  auto flags = in.i32();
  auto count = in.i32();
  if (flags & mflags::has_more_pages) out.paging_state = in.bytes();
  if (flags & mflags::no_metadata) {
    if (!cached) return protocol_error("rows without metadata and no cached metadata");
    if (static_cast<std::size_t>(count) != cached->size()) {
      return protocol_error("rows have " + std::to_string(count) + " columns, cached metadata " +
                            std::to_string(cached->size()));
    }
    out.columns = cached;
  } else {
    out.columns = std::make_shared<const Columns>(read_columns(in, flags, count));
  }
  auto nrows = in.i32();
  if (!in.ok() || nrows < 0) return protocol_error("malformed rows result");
  const auto& cols = *out.columns;
  // Every cell is at least its 4-byte length; rows without columns do not
  // exist (and would let a few bytes claim millions of rows).
  if (cols.empty() && nrows > 0) return protocol_error("rows result with no columns");
  if (!cols.empty() && static_cast<std::size_t>(nrows) > in.remaining() / (4 * cols.size())) {
    return protocol_error("row count " + std::to_string(nrows) + " exceeds the frame");
  }
  out.rows.reserve(static_cast<std::size_t>(nrows));
  for (std::int32_t r = 0; r < nrows; ++r) {
    std::vector<Value> row;
    row.reserve(cols.size());
    for (const auto& c : cols) {
      bool null = false;
      auto cell = in.bytes_view(null);
      if (!in.ok()) return protocol_error("truncated row " + std::to_string(r));
      if (null) {
        row.emplace_back();
        continue;
      }
      auto v = decode_value(c.type, cell);
      if (!v) return std::move(v).error();
      row.push_back(std::move(v).value());
    }
    out.rows.push_back(std::move(row));
  }
  return {};
}

Status read_prepared(BodyReader& in, PreparedResult& out) {
  out.id = in.short_bytes();
  auto flags = in.i32();
  auto count = in.i32();
  auto pk_count = in.i32();
  if (!in.ok() || pk_count < 0 || pk_count > 1024) return protocol_error("malformed prepared metadata");
  for (std::int32_t i = 0; i < pk_count; ++i) out.pk_indexes.push_back(in.u16());
  out.bind = read_columns(in, flags, count);
  auto rflags = in.i32();
  auto rcount = in.i32();
  if (rflags & mflags::has_more_pages) (void)in.bytes();
  Columns result;
  if (!(rflags & mflags::no_metadata)) result = read_columns(in, rflags, rcount);
  out.result = std::make_shared<const Columns>(std::move(result));
  if (!in.ok()) return protocol_error("malformed prepared result");
  for (auto i : out.pk_indexes) {
    if (i >= out.bind.size()) return protocol_error("partition key index out of range");
  }
  return {};
}

std::string read_schema_change(BodyReader& in) {
  auto change = in.string();
  auto target = in.string();
  auto ks = in.string();
  std::string out = change + " " + target + " " + ks;
  if (target == "TABLE" || target == "TYPE") {
    out += "." + in.string();
  } else if (target == "FUNCTION" || target == "AGGREGATE") {
    out += "." + in.string();
    (void)in.string_list();
  }
  return out;
}

}  // namespace

int Rows::column(std::string_view name) const noexcept {
  if (!columns) return -1;
  for (std::size_t i = 0; i < columns->size(); ++i) {
    if ((*columns)[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

const Value& Rows::at(std::size_t r, std::string_view name) const noexcept {
  static const Value null;
  auto c = column(name);
  if (c < 0 || r >= rows.size()) return null;
  return rows[r][static_cast<std::size_t>(c)];
}

std::vector<std::uint8_t> encode_startup(std::int16_t stream) {
  BodyWriter w(Opcode::startup, stream);
  w.string_map({{"CQL_VERSION", "3.0.0"}});
  return std::move(w).finish();
}

std::vector<std::uint8_t> encode_options(std::int16_t stream) { return BodyWriter(Opcode::options, stream).finish(); }

std::vector<std::uint8_t> encode_auth_response(std::int16_t stream, std::string_view user, std::string_view password) {
  BodyWriter w(Opcode::auth_response, stream);
  std::string token;
  token.reserve(user.size() + password.size() + 2);
  token += '\0';
  token += user;
  token += '\0';
  token += password;
  w.bytes(token);
  return std::move(w).finish();
}

std::vector<std::uint8_t> encode_prepare(std::int16_t stream, std::string_view cql) {
  BodyWriter w(Opcode::prepare, stream);
  w.long_string(cql);
  return std::move(w).finish();
}

Result<std::vector<std::uint8_t>> encode_query(std::int16_t stream, std::string_view cql,
                                               std::span<const Value> values, const QueryParams& p) {
  BodyWriter w(Opcode::query, stream);
  w.long_string(cql);
  QueryParams q = p;
  q.skip_metadata = false;  // a QUERY has no cached metadata to skip to
  if (auto st = write_params(w, values, nullptr, q); !st) return std::move(st).error();
  return std::move(w).finish();
}

Result<std::vector<std::uint8_t>> encode_execute(std::int16_t stream, std::string_view id,
                                                 std::span<const Value> values, const Columns& bind,
                                                 const QueryParams& p) {
  BodyWriter w(Opcode::execute, stream);
  w.short_bytes(id);
  if (auto st = write_params(w, values, &bind, p); !st) return std::move(st).error();
  return std::move(w).finish();
}

Result<std::vector<std::uint8_t>> encode_batch(std::int16_t stream, BatchType type,
                                               std::span<const BatchEntry> entries, const QueryParams& p) {
  if (entries.empty()) return usage_error("empty batch");
  if (entries.size() > 0xFFFF) return usage_error("batch of more than 65535 statements");
  BodyWriter w(Opcode::batch, stream);
  w.byte(static_cast<std::uint8_t>(type));
  w.u16(static_cast<std::uint16_t>(entries.size()));
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const auto& e = entries[i];
    w.byte(e.prepared ? 1 : 0);
    if (e.prepared) w.short_bytes(e.query_or_id);
    else w.long_string(e.query_or_id);
    if (e.bind && e.bind->size() != e.values.size()) {
      return usage_error("batch statement " + std::to_string(i) + " has " + std::to_string(e.bind->size()) +
                         " bind markers but " + std::to_string(e.values.size()) + " values");
    }
    w.u16(static_cast<std::uint16_t>(e.values.size()));
    for (std::size_t j = 0; j < e.values.size(); ++j) {
      if (auto st = encode_value(w, e.values[j], e.bind ? &(*e.bind)[j].type : nullptr); !st) {
        return usage_error("batch statement " + std::to_string(i) + ": " + st.error().message());
      }
    }
  }
  w.u16(static_cast<std::uint16_t>(p.consistency));
  std::uint8_t f = 0;
  if (p.serial_consistency) f |= qflags::serial;
  if (p.timestamp) f |= qflags::timestamp;
  w.byte(f);
  if (p.serial_consistency) w.u16(static_cast<std::uint16_t>(*p.serial_consistency));
  if (p.timestamp) w.i64(*p.timestamp);
  return std::move(w).finish();
}

Result<Response> decode_response(const FrameHeader& h, std::span<const std::uint8_t> body,
                                 const std::shared_ptr<const Columns>& cached) {
  BodyReader in(body);
  Response r;
  // Envelope extras precede the message, in this order.
  if (h.flags & flags::tracing) (void)in.take(16);
  if (h.flags & flags::warning) r.warnings = in.string_list();
  if (h.flags & flags::custom_payload) {
    auto n = in.u16();
    for (std::uint16_t i = 0; i < n && in.ok(); ++i) {
      (void)in.string();
      (void)in.bytes();
    }
  }
  if (!in.ok()) return protocol_error("malformed frame envelope");
  using K = Response::Kind;
  switch (h.opcode) {
    case Opcode::ready: r.kind = K::ready; break;
    case Opcode::authenticate:
      r.kind = K::authenticate;
      r.text = in.string();
      break;
    case Opcode::auth_challenge:
      r.kind = K::auth_challenge;
      r.text = in.bytes().value_or("");
      break;
    case Opcode::auth_success:
      r.kind = K::auth_success;
      (void)in.bytes();
      break;
    case Opcode::supported: {
      r.kind = K::supported;
      for (auto& [k, vs] : in.string_multimap()) {
        r.text += k + "=";
        for (auto& v : vs) r.text += v + ",";
        r.text += ";";
      }
      break;
    }
    case Opcode::error:
      r.kind = K::error;
      r.error_code = in.i32();
      r.text = in.string();
      if (r.error_code == static_cast<std::int32_t>(ServerCode::unprepared)) r.unprepared_id = in.short_bytes();
      // Other codes carry details (consistency, counts) we do not need: the
      // message already states them.
      break;
    case Opcode::event:
      r.kind = K::event;
      break;
    case Opcode::result: {
      auto kind = in.i32();
      switch (kind) {
        case 1: r.kind = K::void_; break;
        case 2: {
          r.kind = K::rows;
          if (auto st = read_rows(in, r.rows, cached); !st) return std::move(st).error();
          break;
        }
        case 3:
          r.kind = K::set_keyspace;
          r.text = in.string();
          break;
        case 4: {
          r.kind = K::prepared;
          if (auto st = read_prepared(in, r.prepared); !st) return std::move(st).error();
          break;
        }
        case 5:
          r.kind = K::schema_change;
          r.text = read_schema_change(in);
          break;
        default: return protocol_error("unknown result kind " + std::to_string(kind));
      }
      break;
    }
    default:
      return protocol_error("unexpected response opcode " + std::to_string(static_cast<int>(h.opcode)));
  }
  if (!in.ok()) return protocol_error("truncated response body (opcode " + std::to_string(static_cast<int>(h.opcode)) + ")");
  return r;
}

}  // namespace prosody::cql
