#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "prosody/config.h"

namespace {

using namespace std::chrono_literals;
using prosody::format_duration;
using prosody::parse_duration;
using std::chrono::milliseconds;
using ::testing::HasSubstr;

milliseconds ok(std::string_view text) {
  auto r = parse_duration(text);
  EXPECT_TRUE(r.ok()) << text << ": " << (r.ok() ? "" : r.error().message());
  return r.ok() ? *r : milliseconds(-1);
}

TEST(Duration, ParsesEveryUnit) {
  EXPECT_EQ(ok("100ms"), 100ms);
  EXPECT_EQ(ok("1s"), 1s);
  EXPECT_EQ(ok("5m"), 5min);
  EXPECT_EQ(ok("24h"), 24h);
  EXPECT_EQ(ok("7d"), std::chrono::days(7));
  EXPECT_EQ(ok("2w"), std::chrono::days(14));
  EXPECT_EQ(ok("1M"), std::chrono::days(30));
  EXPECT_EQ(ok("1y"), std::chrono::days(365));
  EXPECT_EQ(ok("2000000us"), 2s);
  EXPECT_EQ(ok("3000000000ns"), 3s);
  EXPECT_EQ(ok("1\xC2\xB5s"), 1ms);  // µs, rounded up
}

TEST(Duration, ParsesLongUnitNames) {
  EXPECT_EQ(ok("2 minutes"), 2min);
  EXPECT_EQ(ok("1 hour 30 minutes"), 90min);
  EXPECT_EQ(ok("10sec"), 10s);
  EXPECT_EQ(ok("3 days"), std::chrono::days(3));
  EXPECT_EQ(ok("250msec"), 250ms);
}

TEST(Duration, ParsesCompoundValuesWithAndWithoutSpaces) {
  EXPECT_EQ(ok("1h 30m"), 90min);
  EXPECT_EQ(ok("1h30m"), 90min);
  EXPECT_EQ(ok("  1m 1s 1ms  "), 61001ms);
}

TEST(Duration, ParsesFractionsExactly) {
  EXPECT_EQ(ok("1.5s"), 1500ms);
  EXPECT_EQ(ok("0.1s"), 100ms);  // no floating-point drift to 101ms
  EXPECT_EQ(ok("0.25h"), 15min);
}

TEST(Duration, BareNumberMeansSeconds) {
  EXPECT_EQ(ok("30"), 30s);
  EXPECT_EQ(ok("30.0"), 30s);  // the Ruby client passes floats
  EXPECT_EQ(ok("0.5"), 500ms);
  EXPECT_EQ(ok("0"), 0ms);
}

TEST(Duration, RoundsSubMillisecondUp) {
  EXPECT_EQ(ok("250us"), 1ms);
  EXPECT_EQ(ok("1ns"), 1ms);
  EXPECT_EQ(ok("1500us"), 2ms);
  EXPECT_EQ(ok("0s"), 0ms);
  EXPECT_EQ(ok("0.0001"), 1ms);
}

TEST(Duration, RejectsBadTextNamingIt) {
  for (std::string_view bad : {"", "   ", "abc", "5x", "-1s", "-5", "1h 30", "s", "1..5s", "1e3", "5 parsecs",
                               "1h,30m", "200y", "99999999999999999999s"}) {
    SCOPED_TRACE(bad);
    auto r = parse_duration(bad);
    ASSERT_FALSE(r.ok());
    EXPECT_THAT(r.error().message(), HasSubstr("\"" + std::string(bad) + "\""));
    EXPECT_EQ(r.error().code(), prosody::ErrorCode::invalid_config);
  }
}

TEST(Duration, ExplainsTheProblem) {
  EXPECT_THAT(parse_duration("5x").error().message(), HasSubstr("unknown unit \"x\""));
  EXPECT_THAT(parse_duration("-1s").error().message(), HasSubstr("negative"));
  EXPECT_THAT(parse_duration("1h 30").error().message(), HasSubstr("no unit"));
  EXPECT_THAT(parse_duration("200y").error().message(), HasSubstr("100 years"));
}

TEST(Duration, FormatsReadably) {
  EXPECT_EQ(format_duration(0ms), "0s");
  EXPECT_EQ(format_duration(100ms), "100ms");
  EXPECT_EQ(format_duration(90min), "1h 30m");
  EXPECT_EQ(format_duration(std::chrono::days(7)), "7d");
  EXPECT_EQ(format_duration(std::chrono::days(365)), "1y");
  EXPECT_EQ(format_duration(1500ms), "1s 500ms");
}

TEST(Duration, FormatRoundTripsThroughParse) {
  for (milliseconds d : {0ms, 1ms, 999ms, 1000ms, 61001ms, milliseconds(std::chrono::hours(49)),
                         milliseconds(std::chrono::days(400)) + 3ms}) {
    EXPECT_EQ(ok(format_duration(d)), d) << format_duration(d);
  }
}

}  // namespace
