#include "prosody/logging.h"

#include <sstream>

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include "prosody/client.h"

namespace prosody {
namespace {

TEST(Logging, InjectedLoggerReceivesLibraryLogsAndNullRestoresTheDefault) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  set_logger(std::make_shared<spdlog::logger>("test", sink));
  // An option whose feature is not built yet is reported, not ignored.
  auto client = Client::create(Config().with_mock(true).with_telemetry_topic("events"));
  EXPECT_NE(out.str().find("telemetry_topic"), std::string::npos) << out.str();
  set_logger(nullptr);
  ASSERT_TRUE(logger());
  EXPECT_EQ(logger()->name(), "prosody");
}

}  // namespace
}  // namespace prosody
