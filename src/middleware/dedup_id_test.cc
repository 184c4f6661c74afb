// Prosody's dedup id. The expected UUIDs were computed independently of this
// code by src/middleware/dedup_id_expected.py: Python's `xxhash` package
// from PyPI (its own bundled xxHash 0.8.4, not Debian's libxxhash 0.8.1)
// with the fields framed by `struct.pack('<I' / '<i' / '<q')` and the
// UUIDv8 bits set by hand:
//   python3 -m venv /tmp/v && /tmp/v/bin/pip install xxhash
//   /tmp/v/bin/python src/middleware/dedup_id_expected.py
#include "middleware/dedup_id.h"

#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <xxhash.h>

namespace prosody::middleware {
namespace {

DedupFields orders(std::optional<std::string_view> event_id, std::int64_t offset = 12345) {
  return DedupFields{"1", "orders-group", "orders", 7, "customer-42", event_id, offset};
}

TEST(DedupId, MatchesAnIndependentComputationForEventIdsAndOffsets) {
  EXPECT_EQ(dedup_id(orders("evt-123")).str(), "8157b962-a6c7-89f8-aa60-3cdcbf95f554");
  EXPECT_EQ(dedup_id(orders(std::nullopt, 12345)).str(), "b5756c4e-3ee9-857f-a73c-3e735d7fa031");
  auto v2 = orders(std::nullopt, 12345);
  v2.version = "2";
  EXPECT_EQ(dedup_id(v2).str(), "3f0835eb-333b-8845-aa56-11cf8a95fc32");
  // Negative partition and offset are written as two's complement.
  EXPECT_EQ(dedup_id(DedupFields{"1", "g", "t", -1, "", std::nullopt, -1}).str(),
            "79d876c7-f1ff-8dd4-b956-0ddc0f5aa633");
  // An empty event id is still an event id (flag 1, length 0).
  EXPECT_EQ(dedup_id(DedupFields{"1", "g", "t", 0, "k", std::string_view(""), 99}).str(),
            "9720bb81-66e3-8d07-a62d-d00b5f2ccfd3");
}

// By hand: the framed bytes of the first vector, hashed in one call, give
// low64 0xf899c7a662b95781 and high64 0x54f595bfdc3c602a. Little-endian,
// low first: 81 57 b9 62 a6 c7 99 f8 | 2a 60 3c dc bf 95 f5 54. Byte 6 (0x99)
// becomes 0x89 (version 8 in the high nibble) and byte 8 (0x2a = 0010 1010)
// becomes 0xaa (top bits 10: the RFC variant), giving
// 8157b962-a6c7-89f8-aa60-3cdcbf95f554.
TEST(DedupId, IsTheLittleEndianDigestWithVersion8AndTheRfcVariant) {
  std::string framed;
  auto u32 = [&](std::uint32_t v) {
    for (int i = 0; i < 4; ++i) framed += static_cast<char>((v >> (8 * i)) & 0xFF);
  };
  auto field = [&](std::string_view s) {
    u32(static_cast<std::uint32_t>(s.size()));
    framed += s;
  };
  field("1");
  field("orders-group");
  field("orders");
  u32(7);
  field("customer-42");
  framed += '\x01';
  field("evt-123");
  const XXH128_hash_t raw = XXH3_128bits(framed.data(), framed.size());
  EXPECT_EQ(raw.low64, 0xf899c7a662b95781ULL);
  EXPECT_EQ(raw.high64, 0x54f595bfdc3c602aULL);

  const auto id = dedup_id(orders("evt-123"));
  EXPECT_EQ(id.bytes[6], 0x89);
  EXPECT_EQ(id.bytes[8], 0xaa);
  for (std::size_t i = 0; i < 8; ++i) {
    if (i != 6) {
      EXPECT_EQ(id.bytes[i], static_cast<std::uint8_t>(raw.low64 >> (8 * i))) << i;
    }
    if (i != 0) {
      EXPECT_EQ(id.bytes[8 + i], static_cast<std::uint8_t>(raw.high64 >> (8 * i))) << 8 + i;
    }
  }
}

TEST(DedupId, EveryIdIsAVersion8RfcVariantUuid) {
  for (std::int64_t offset = 0; offset < 500; ++offset) {
    const auto id = dedup_id(orders(std::nullopt, offset));
    EXPECT_EQ(id.bytes[6] >> 4, 8) << offset;
    EXPECT_EQ(id.bytes[8] & 0xC0, 0x80) << offset;
  }
}

TEST(DedupId, AnEventIdMakesTheOffsetIrrelevantAndWithoutOneTheOffsetCounts) {
  EXPECT_EQ(dedup_id(orders("evt-1", 1)), dedup_id(orders("evt-1", 2)));
  EXPECT_NE(dedup_id(orders("evt-1", 1)), dedup_id(orders("evt-2", 1)));
  EXPECT_NE(dedup_id(orders(std::nullopt, 1)), dedup_id(orders(std::nullopt, 2)));
}

TEST(DedupId, EveryFieldCountsAndLengthPrefixesKeepFieldsApart) {
  std::set<store::DedupId> ids;
  const auto base = orders("e");
  ids.insert(dedup_id(base));
  auto changed = [&](auto mutate) {
    auto f = base;
    mutate(f);
    return ids.insert(dedup_id(f)).second;
  };
  EXPECT_TRUE(changed([](DedupFields& f) { f.version = "2"; }));
  EXPECT_TRUE(changed([](DedupFields& f) { f.group_id = "other"; }));
  EXPECT_TRUE(changed([](DedupFields& f) { f.topic = "other"; }));
  EXPECT_TRUE(changed([](DedupFields& f) { f.partition = 8; }));
  EXPECT_TRUE(changed([](DedupFields& f) { f.key = "other"; }));
  // Same concatenated bytes, different split between group and topic.
  EXPECT_NE(dedup_id(DedupFields{"1", "ab", "c", 0, "k", std::nullopt, 0}),
            dedup_id(DedupFields{"1", "a", "bc", 0, "k", std::nullopt, 0}));
}

TEST(JsonEventId, IsTheTopLevelIdWhenItIsAString) {
  EXPECT_EQ(json_event_id(nlohmann::json{{"id", "evt-9"}, {"type", "x"}}), "evt-9");
  EXPECT_EQ(json_event_id(nlohmann::json{{"id", 9}}), std::nullopt);  // Prosody: strings only
  EXPECT_EQ(json_event_id(nlohmann::json{{"data", {{"id", "nested"}}}}), std::nullopt);
  EXPECT_EQ(json_event_id(nlohmann::json::array({"id"})), std::nullopt);
  EXPECT_EQ(json_event_id(nlohmann::json()), std::nullopt);
}

TEST(ScanJsonEventId, FindsWhatTheDomWouldWithoutBuildingIt) {
  const std::vector<std::string> payloads = {
      R"({"id":"evt-9","type":"x"})",
      R"({"type":"x","data":{"id":"nested","list":[{"id":"deeper"}]},"id":"after-nesting"})",
      R"({"id":9})",
      R"({"id":null,"other":"x"})",
      R"({"id":{"value":"x"}})",
      R"({"data":{"id":"nested"}})",
      R"(["id","x"])",
      R"("id")",
      R"({})",
      R"({"id":"esc\"aped \u00e9"})",
      R"({"a":[1,2,{"id":"in-array"}],"id":"top"})",
      // The key spelled with escapes (only a \u escape can spell a letter).
      R"({"\u0069d":"escaped-key"})",
      R"({"i\u0064":"escaped-key-2","x":1})",
      // The leading-id shape, and its near misses that the parser decides.
      R"({"id":"lead"})",
      R"({"id":"lead" , "x":1})",
      R"({"id":"with\\backslash","x":1})",
      R"({"id":"","x":1})",
      R"({ "id":"spaced"})",
      R"({"ids":"not-it","id":"it"})",
      R"({"x":"\"id\"","y":2})",
      R"({"x":"no id here","y":[1,2]})",
  };
  for (const auto& p : payloads) {
    const auto dom = nlohmann::json::parse(p);
    const auto expected = json_event_id(dom);
    const auto scanned = scan_json_event_id(p);
    EXPECT_EQ(scanned.has_value(), expected.has_value()) << p;
    if (scanned && expected) {
      EXPECT_EQ(*scanned, *expected) << p;
    }
  }
  EXPECT_EQ(scan_json_event_id(R"({"id":"evt-9","type":"x"})"), "evt-9");
  EXPECT_EQ(scan_json_event_id(R"({"id":"esc\"aped"})"), "esc\"aped");
}

TEST(ScanJsonEventId, TheLeadingIdShortcutRefusesWhatTheParserWould) {
  // A control character or invalid UTF-8 inside the id: the parser rejects
  // the string, so there is no id (the shortcut must not take it either).
  EXPECT_EQ(scan_json_event_id(std::string("{\"id\":\"a\nb\",\"x\":1}")), std::nullopt);
  EXPECT_EQ(scan_json_event_id(std::string("{\"id\":\"a\xff\",\"x\":1}")), std::nullopt);
  EXPECT_EQ(scan_json_event_id(std::string("{\"id\":\"caf\xc3\xa9\"}")), "caf\xc3\xa9");
  // No closing quote: not an id.
  EXPECT_EQ(scan_json_event_id(R"({"id":"open)"), std::nullopt);
  // Duplicate members: the first "id" counts (a DOM, and Prosody's serde,
  // keep the last; RFC 8259 says names SHOULD be unique).
  EXPECT_EQ(scan_json_event_id(R"({"id":"lead","id":"second"})"), "lead");
  EXPECT_EQ(scan_json_event_id(R"({ "id":"lead","id":"second"})"), "lead");
}

// The shortcut reads the id sixteen bytes at a time: every length around
// the block edges, with a byte that stops it (or needs the UTF-8 check) at
// every position, must agree with a full parse; and a plain id must be
// taken by the shortcut itself (a refusal would still pass the first check,
// the parser answering instead).
TEST(ScanJsonEventId, TheLeadingIdShortcutAgreesWithTheParserAcrossBlockEdges) {
  const std::vector<std::string> specials = {"", "\\\\", "\n", "\x01", "\x7f", "\xc3\xa9", "\xff", "\xe2\x82"};
  for (std::size_t length = 0; length <= 50; ++length) {
    for (const auto& special : specials) {
      for (std::size_t at = 0; at <= length; ++at) {
        std::string id(length, 'a');
        id.insert(at, special);
        const bool plain = special.empty() || special == "\x7f" || special == "\xc3\xa9";
        for (const std::string tail : {R"(","x":1})", R"("})", R"(" , "y":[1]})"}) {
          const std::string payload = R"({"id":")" + id + tail;
          // A control character or bad UTF-8 in the id makes the document
          // invalid: no id then, whichever path reads it.
          std::optional<std::string> expected;
          try {
            const auto dom = nlohmann::json::parse(payload);
            if (const auto e = json_event_id(dom)) expected = std::string(*e);
          } catch (const nlohmann::json::exception&) {
          }
          EXPECT_EQ(scan_json_event_id(payload), expected) << payload;
          if (plain) {
            EXPECT_EQ(leading_plain_event_id(payload), std::optional<std::string_view>(id)) << payload;
          }
        }
        // Cut off inside or right after the id: no closing quote, no id.
        EXPECT_EQ(leading_plain_event_id(R"({"id":")" + id), std::nullopt) << id;
        if (special.empty()) break;  // one position is enough for nothing inserted
      }
    }
  }
}

TEST(ProducerDedupId, TopicKeyAndIdEachCountAndTheirBoundariesToo) {
  const auto base = producer_dedup_id("t", "k", "e");
  EXPECT_EQ(base, producer_dedup_id("t", "k", "e"));
  EXPECT_NE(base, producer_dedup_id("t2", "k", "e"));
  EXPECT_NE(base, producer_dedup_id("t", "k2", "e"));
  EXPECT_NE(base, producer_dedup_id("t", "k", "e2"));
  // Length prefixes: moving a byte across a field boundary is a new id.
  EXPECT_NE(producer_dedup_id("ab", "c", "e"), producer_dedup_id("a", "bc", "e"));
  EXPECT_NE(producer_dedup_id("t", "ke", ""), producer_dedup_id("t", "k", "e"));
}

// The fields of one id are hashed in one call while they fit the stack
// buffer and streamed past it; both must give the one-shot hash of the
// length-prefixed concatenation.
TEST(ProducerDedupId, LongFieldsHashLikeTheirConcatenation) {
  auto expected = [](std::string_view topic, std::string_view key, std::string_view event_id) {
    std::string all;
    for (auto f : {topic, key, event_id}) {
      const auto n = static_cast<std::uint32_t>(f.size());
      for (int i = 0; i < 4; ++i) all.push_back(static_cast<char>((n >> (8 * i)) & 0xFF));
      all.append(f);
    }
    const XXH128_hash_t d = XXH3_128bits(all.data(), all.size());
    store::DedupId id;
    for (std::size_t i = 0; i < 8; ++i) {
      id.bytes[i] = static_cast<std::uint8_t>(d.low64 >> (8 * i));
      id.bytes[8 + i] = static_cast<std::uint8_t>(d.high64 >> (8 * i));
    }
    return id;
  };
  const std::string long_key(700, 'k'), long_id(3000, 'e');
  EXPECT_EQ(producer_dedup_id("t", "k", "e"), expected("t", "k", "e"));
  EXPECT_EQ(producer_dedup_id("t", long_key, "e"), expected("t", long_key, "e"));
  EXPECT_EQ(producer_dedup_id("t", "k", long_id), expected("t", "k", long_id));
  EXPECT_EQ(producer_dedup_id("t", long_key, long_id), expected("t", long_key, long_id));
}

TEST(ScanJsonEventId, InvalidJsonHasNoId) {
  EXPECT_EQ(scan_json_event_id("not json"), std::nullopt);
  EXPECT_EQ(scan_json_event_id(R"({"type":)"), std::nullopt);
  EXPECT_EQ(scan_json_event_id(""), std::nullopt);
  // The id comes before the damage: it is taken (the engine has validated
  // the payload before the layer runs, so this only matters for callers
  // that did not).
  EXPECT_EQ(scan_json_event_id(R"({"id":"x", broken)"), "x");
}

}  // namespace
}  // namespace prosody::middleware
