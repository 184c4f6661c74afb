#include "telemetry/probe_server.h"

#include <atomic>

#include <gtest/gtest.h>
#include <httplib.h>

namespace prosody::telemetry {
namespace {

TEST(ProbeServer, ReportsReadinessAndLiveness) {
  std::atomic<std::size_t> partitions{0};
  std::atomic<bool> stalled{false};
  ProbeServer server;
  ASSERT_TRUE(server.start(0, {[&] { return partitions.load(); }, [&] { return stalled.load(); }}, "127.0.0.1"));
  httplib::Client http("127.0.0.1", server.port());
  auto r = http.Get("/readyz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  partitions = 3;
  r = http.Get("/readyz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "3 partitions assigned\n");
  r = http.Get("/livez");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  stalled = true;
  r = http.Get("/livez");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  server.stop();
}

TEST(ProbeServer, PortInUseIsAClearError) {
  ProbeServer first;
  ASSERT_TRUE(first.start(0, {[] { return std::size_t{0}; }, [] { return false; }}, "127.0.0.1"));
  ProbeServer second;
  auto s = second.start(first.port(), {[] { return std::size_t{0}; }, [] { return false; }}, "127.0.0.1");
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message().find(std::to_string(first.port())), std::string::npos);
}

}  // namespace
}  // namespace prosody::telemetry
