#include "engine/record.h"

#include <gtest/gtest.h>

namespace prosody::detail {
namespace {

TEST(Record, APendingPayloadIsDecodedOnFirstUseAndKept) {
  Record r;
  r.owned_payload = R"({"type":"a.b","n":[1,2]})";
  r.payload_pending = true;
  EXPECT_TRUE(r.payload.is_null());  // nothing decoded before it is asked for
  const nlohmann::json& first = r.decoded_payload();
  EXPECT_FALSE(r.payload_pending);
  EXPECT_EQ(first.at("type"), "a.b");
  EXPECT_EQ(first.at("n").size(), 2u);
  EXPECT_EQ(&r.decoded_payload(), &first);  // the same value, not a second decode
  EXPECT_EQ(Message(r).payload(), first);
}

TEST(Record, APayloadAssignedEagerlyIsReturnedAsIs) {
  Record r;
  r.owned_payload = R"({"x":1})";
  r.payload = nlohmann::json{{"y", 2}};  // e.g. decoded by the defer layer
  EXPECT_EQ(r.decoded_payload(), (nlohmann::json{{"y", 2}}));
}

TEST(Record, NotPendingMeansNull) {
  Record r;  // empty payload, or the raw codec
  r.owned_payload = "not json at all";
  EXPECT_TRUE(Message(r).payload().is_null());
}

TEST(Record, APendingPayloadThatFailsToDecodeIsNullNeverDiscarded) {
  Record r;
  r.owned_payload = "{broken";
  r.payload_pending = true;  // the engine validates first, so this is defensive
  EXPECT_TRUE(r.decoded_payload().is_null());
}

}  // namespace
}  // namespace prosody::detail
