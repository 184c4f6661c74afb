// Frame and value codec against hand-assembled bytes (CQL v4 spec §1-§6).
#include <gtest/gtest.h>

#include "cql/errors.h"
#include "cql/frame.h"
#include "cql/messages.h"
#include "cql/types.h"

namespace prosody::cql {
namespace {

using Bytes = std::vector<std::uint8_t>;

Bytes bytes_of(std::string_view s) { return Bytes(s.begin(), s.end()); }
Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

FrameHeader response_header(Opcode op, std::size_t len, std::uint8_t fl = 0) {
  FrameHeader h;
  h.version = 0x84;
  h.flags = fl;
  h.stream = 3;
  h.opcode = op;
  h.length = static_cast<std::uint32_t>(len);
  return h;
}

TEST(CqlFrame, StartupFrameMatchesSpecBytes) {
  Bytes expected = cat({{0x04, 0x00, 0x00, 0x01, 0x01, 0x00, 0x00, 0x00, 0x16},  // header, body 22 bytes
                        {0x00, 0x01, 0x00, 0x0B},
                        bytes_of("CQL_VERSION"),
                        {0x00, 0x05},
                        bytes_of("3.0.0")});
  EXPECT_EQ(encode_startup(1), expected);
}

TEST(CqlFrame, AuthResponseCarriesSaslPlainToken) {
  Bytes expected = cat({{0x04, 0x00, 0x00, 0x02, 0x0F, 0x00, 0x00, 0x00, 0x0A},
                        {0x00, 0x00, 0x00, 0x06, 0x00, 'u', 0x00, 'p', 'w', 'd'}});
  EXPECT_EQ(encode_auth_response(2, "u", "pwd"), expected);
}

TEST(CqlFrame, QueryWithPageSizeAndLocalQuorum) {
  QueryParams p;  // LOCAL_QUORUM, page size 5000
  auto f = encode_query(7, "SELECT 1", {}, p);
  ASSERT_TRUE(f);
  Bytes expected = cat({{0x04, 0x00, 0x00, 0x07, 0x07, 0x00, 0x00, 0x00, 0x13},
                        {0x00, 0x00, 0x00, 0x08},
                        bytes_of("SELECT 1"),
                        {0x00, 0x06, 0x04, 0x00, 0x00, 0x13, 0x88}});
  EXPECT_EQ(*f, expected);
}

TEST(CqlFrame, ExecuteWithValuesSerialConsistencyAndTimestamp) {
  Columns bind = {{"ks", "t", "id", DataType{TypeId::int_}}, {"ks", "t", "v", DataType{TypeId::varchar}}};
  QueryParams p;
  p.consistency = Consistency::one;
  p.page_size = 0;
  p.serial_consistency = Consistency::local_serial;
  p.timestamp = 0x0102;
  p.skip_metadata = true;
  std::vector<Value> values = {Value(std::int32_t{5}), Value("ab")};
  auto f = encode_execute(-2, std::string("\xAA\xBB", 2), values, bind, p);
  ASSERT_TRUE(f);
  Bytes expected = cat({{0x04, 0x00, 0xFF, 0xFE, 0x0A, 0x00, 0x00, 0x00, 0x21},
                        {0x00, 0x02, 0xAA, 0xBB},              // id
                        {0x00, 0x01, 0x33},                    // ONE; values|skip_metadata|serial|timestamp
                        {0x00, 0x02},                          // 2 values
                        {0x00, 0x00, 0x00, 0x04, 0, 0, 0, 5},  // int 5
                        {0x00, 0x00, 0x00, 0x02, 'a', 'b'},    // text
                        {0x00, 0x09},                          // LOCAL_SERIAL
                        {0, 0, 0, 0, 0, 0, 0x01, 0x02}});
  EXPECT_EQ(*f, expected);
}

TEST(CqlFrame, ExecuteRejectsWrongArityAndOutOfRangeValues) {
  Columns bind = {{"ks", "t", "kind", DataType{TypeId::tinyint}}};
  std::vector<Value> none;
  EXPECT_FALSE(encode_execute(1, "id", none, bind, {}));
  std::vector<Value> big = {Value(std::int32_t{300})};
  auto f = encode_execute(1, "id", big, bind, {});
  ASSERT_FALSE(f);
  EXPECT_NE(f.error().message().find("out of range for tinyint"), std::string::npos);
  EXPECT_TRUE(f.error().is_permanent());
  std::vector<Value> wrong = {Value("text")};
  EXPECT_FALSE(encode_execute(1, "id", wrong, bind, {}));
}

TEST(CqlFrame, BatchOfPreparedAndPlainStatements) {
  Columns bind = {{"ks", "t", "id", DataType{TypeId::bigint}}};
  std::vector<BatchEntry> entries(2);
  entries[0].prepared = true;
  entries[0].query_or_id = "I";
  entries[0].bind = &bind;
  entries[0].values = {Value(std::int64_t{1})};
  entries[1].query_or_id = "Q";
  QueryParams p;
  auto f = encode_batch(4, BatchType::unlogged, entries, p);
  ASSERT_TRUE(f);
  Bytes expected = cat({{0x04, 0x00, 0x00, 0x04, 0x0D, 0x00, 0x00, 0x00, 0x20},
                        {0x01, 0x00, 0x02},                                   // unlogged, 2 statements
                        {0x01, 0x00, 0x01, 'I', 0x00, 0x01},                  // prepared id "I", 1 value
                        {0x00, 0x00, 0x00, 0x08, 0, 0, 0, 0, 0, 0, 0, 1},     // bigint 1
                        {0x00, 0x00, 0x00, 0x00, 0x01, 'Q', 0x00, 0x00},      // query "Q", 0 values
                        {0x00, 0x06, 0x00}});                                 // LOCAL_QUORUM, no flags
  EXPECT_EQ(*f, expected);
}

TEST(CqlFrame, HeaderDecodingValidatesVersionLengthAndOpcode) {
  std::array<std::uint8_t, 9> ok = {0x84, 0x00, 0x00, 0x05, 0x02, 0x00, 0x00, 0x00, 0x00};
  auto h = decode_header(ok);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->stream, 5);
  EXPECT_EQ(h->opcode, Opcode::ready);
  auto bad = ok;
  bad[0] = 0x83;  // v3 response
  EXPECT_FALSE(decode_header(bad));
  bad = ok;
  bad[5] = 0x20;  // 512 MiB body
  EXPECT_FALSE(decode_header(bad));
  bad = ok;
  bad[4] = 0x42;
  EXPECT_FALSE(decode_header(bad));
  bad = ok;
  bad[1] = flags::compression;
  EXPECT_FALSE(decode_header(bad));
}

TEST(CqlFrame, ValueEncodingOfCollectionsUdtsAndUuids) {
  BodyWriter w;
  DataType map_t{TypeId::map, {DataType{TypeId::varchar}, DataType{TypeId::varchar}}};
  ASSERT_TRUE(encode_value(w, Value(Map{{Value("a")}, {Value("b")}}), &map_t));
  EXPECT_EQ(w.buffer(), (Bytes{0, 0, 0, 0x0E, 0, 0, 0, 1, 0, 0, 0, 1, 'a', 0, 0, 0, 1, 'b'}));

  // key_timer_state-like UDT bound by name, field order from the type; the
  // missing field is null.
  DataType udt{TypeId::udt, {DataType{TypeId::boolean}, DataType{TypeId::int_}, map_t}, {"inline", "time", "span"},
               "ks.key_timer_state"};
  BodyWriter u;
  ASSERT_TRUE(encode_value(u, Value(Udt{{"time", "inline"}, {Value(std::int32_t{7}), Value(true)}}), &udt));
  EXPECT_EQ(u.buffer(), (Bytes{0, 0, 0, 0x11, 0, 0, 0, 1, 1, 0, 0, 0, 4, 0, 0, 0, 7, 0xFF, 0xFF, 0xFF, 0xFF}));

  auto id = Uuid::parse("00112233-4455-6677-8899-aabbccddeeff");
  ASSERT_TRUE(id);
  EXPECT_EQ(id->str(), "00112233-4455-6677-8899-aabbccddeeff");
  EXPECT_FALSE(Uuid::parse("00112233-4455-6677-8899-aabbccddeefg"));
  auto r = Uuid::random();
  EXPECT_EQ(r.bytes[6] >> 4, 4);
}

TEST(CqlFrame, ValueDecodingRoundTripsEveryUsedType) {
  DataType map_t{TypeId::map, {DataType{TypeId::tinyint}, DataType{TypeId::varchar}}};
  DataType udt{TypeId::udt, {DataType{TypeId::boolean}, DataType{TypeId::int_}}, {"inline", "time"}, "ks.t"};
  std::vector<std::pair<DataType, Value>> cases = {
      {DataType{TypeId::uuid}, Value(Uuid::random())},
      {DataType{TypeId::int_}, Value(std::int32_t{-5})},
      {DataType{TypeId::bigint}, Value(std::int64_t{1} << 40)},
      {DataType{TypeId::tinyint}, Value(std::int8_t{-3})},
      {DataType{TypeId::smallint}, Value(std::int16_t{1234})},
      {DataType{TypeId::varchar}, Value("héllo")},
      {DataType{TypeId::boolean}, Value(false)},
      {DataType{TypeId::timestamp}, Value(Timestamp{1700000000123})},
      {DataType{TypeId::double_}, Value(2.5)},
      {DataType{TypeId::blob}, Value(Blob{std::string("\0\1\2", 3)})},
      {DataType{TypeId::list, {DataType{TypeId::int_}}}, Value(List{Value(std::int32_t{1}), Value(std::int32_t{2})})},
      {map_t, Value(Map{{Value(std::int8_t{1})}, {Value("x")}})},
      {udt, Value(Udt{{"inline", "time"}, {Value(true), Value(std::int32_t{9})}})},
  };
  for (const auto& [type, value] : cases) {
    BodyWriter w;
    ASSERT_TRUE(encode_value(w, value, &type)) << type.describe();
    BodyReader in(w.buffer());
    bool null = false;
    auto content = in.bytes_view(null);
    ASSERT_TRUE(in.ok() && !null && in.at_end());
    auto back = decode_value(type, content);
    ASSERT_TRUE(back) << type.describe();
    EXPECT_EQ(*back, value) << type.describe();
  }
}

TEST(CqlFrame, DecodesErrorFramesIncludingUnprepared) {
  Bytes body = cat({{0x00, 0x00, 0x25, 0x00, 0x00, 0x02}, bytes_of("no"), {0x00, 0x02, 0xCA, 0xFE}});
  auto r = decode_response(response_header(Opcode::error, body.size()), body);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->kind, Response::Kind::error);
  EXPECT_EQ(r->error_code, 0x2500);
  EXPECT_EQ(r->text, "no");
  EXPECT_EQ(r->unprepared_id, std::string("\xCA\xFE", 2));

  auto bad = server_error(0x0100, "Provided username x and/or password are incorrect");
  EXPECT_TRUE(bad.is_permanent());
  EXPECT_NE(bad.message().find("authentication failed"), std::string::npos);
  EXPECT_TRUE(server_error(0x1100, "timeout").is_transient());
  EXPECT_TRUE(server_error(0x1000, "unavailable").is_transient());
  EXPECT_TRUE(server_error(0x2000, "syntax").is_permanent());
  EXPECT_EQ(server_error(0x2200, "bad").message(), "Cassandra Invalid query (0x2200): bad");
}

TEST(CqlFrame, DecodesRowsWithGlobalSpecPagingStateAndWarnings) {
  Bytes body = cat({{0x00, 0x01, 0x00, 0x01}, bytes_of("w"),        // warnings: ["w"]
                    {0x00, 0x00, 0x00, 0x02},                         // RESULT kind Rows
                    {0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x02},  // global spec | more pages, 2 columns
                    {0x00, 0x00, 0x00, 0x02, 'p', 's'},                // paging state
                    {0x00, 0x02, 'k', 's', 0x00, 0x01, 't'},           // ks.t
                    {0x00, 0x02, 'i', 'd', 0x00, 0x09},                // id int
                    {0x00, 0x01, 'v', 0x00, 0x0D},                     // v text
                    {0x00, 0x00, 0x00, 0x02},                          // 2 rows
                    {0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0, 1, 'a'},
                    {0, 0, 0, 4, 0, 0, 0, 2, 0xFF, 0xFF, 0xFF, 0xFF}});
  auto r = decode_response(response_header(Opcode::result, body.size(), flags::warning), body);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->warnings, std::vector<std::string>{"w"});
  ASSERT_EQ(r->rows.size(), 2u);
  EXPECT_EQ(r->rows.paging_state, "ps");
  EXPECT_EQ((*r->rows.columns)[1].table, "t");
  EXPECT_EQ(r->rows.at(0, "v"), Value("a"));
  EXPECT_TRUE(r->rows.at(1, "v").is_null());
  EXPECT_EQ(r->rows.at(1, "id"), Value(std::int32_t{2}));

  // Truncating the body anywhere is an error, never a crash.
  for (std::size_t n = 0; n < body.size(); ++n) {
    auto cut = std::span<const std::uint8_t>(body.data(), n);
    EXPECT_FALSE(decode_response(response_header(Opcode::result, n, flags::warning), cut)) << n;
  }
}

TEST(CqlFrame, DecodesPreparedResultAndUsesCachedMetadata) {
  Bytes body = cat({{0x00, 0x00, 0x00, 0x04},              // Prepared
                    {0x00, 0x01, 0x7F},                    // id
                    {0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00},
                    {0x00, 0x02, 'k', 's', 0x00, 0x01, 't', 0x00, 0x02, 'i', 'd', 0x00, 0x0C},  // id uuid
                    {0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01},  // result: global, 1 column
                    {0x00, 0x02, 'k', 's', 0x00, 0x01, 't', 0x00, 0x01, 'n', 0x00, 0x02}});  // n bigint
  auto r = decode_response(response_header(Opcode::result, body.size()), body);
  ASSERT_TRUE(r) << r.error().message();
  ASSERT_EQ(r->kind, Response::Kind::prepared);
  EXPECT_EQ(r->prepared.id, "\x7F");
  ASSERT_EQ(r->prepared.bind.size(), 1u);
  EXPECT_EQ(r->prepared.bind[0].type.id, TypeId::uuid);
  EXPECT_EQ(r->prepared.pk_indexes, std::vector<std::uint16_t>{0});
  ASSERT_EQ(r->prepared.result->size(), 1u);

  // Rows without metadata (skip_metadata) decode with the cached columns.
  Bytes rows = {0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 9};
  auto rr = decode_response(response_header(Opcode::result, rows.size()), rows, r->prepared.result);
  ASSERT_TRUE(rr) << rr.error().message();
  EXPECT_EQ(rr->rows.at(0, "n"), Value(std::int64_t{9}));
  EXPECT_FALSE(decode_response(response_header(Opcode::result, rows.size()), rows));
}

TEST(CqlFrame, DecodingRejectsHostileCountsAndDepth) {
  // Found by scripts/fuzz-cql: zero columns but 0x00410000 rows made a
  // 30-byte frame allocate millions of rows.
  Bytes empty_rows = {0, 0, 0, 2, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0x41, 0, 0};
  EXPECT_FALSE(decode_response(response_header(Opcode::result, empty_rows.size()), empty_rows));
  // A list claiming 2^31-1 elements in 8 bytes.
  DataType list_t{TypeId::list, {DataType{TypeId::int_}}};
  Bytes huge = {0x7F, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0};
  EXPECT_FALSE(decode_value(list_t, huge));
  // Types nested 40 deep.
  Bytes deep;
  for (int i = 0; i < 40; ++i) deep.insert(deep.end(), {0x00, 0x20});
  deep.insert(deep.end(), {0x00, 0x09});
  BodyReader in(deep);
  (void)read_type(in);
  EXPECT_FALSE(in.ok());
}

}  // namespace
}  // namespace prosody::cql
