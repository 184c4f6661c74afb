// A Cassandra restart mid-run: requests fail (transient) while the node is
// down, the pool reconnects with backoff, and prepared statements work again
// afterwards. Restarts the shared test node, hence RUN_SERIAL.
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>

#include <gtest/gtest.h>

#include "cql/it_support.h"

namespace prosody::cql {
namespace {

TEST(CqlRestart, PoolReconnectsAfterCassandraRestart) {
  PROSODY_REQUIRE_CASSANDRA(o);
  o.reconnect_max = std::chrono::milliseconds(1000);
  auto s = Session::connect(o);
  ASSERT_TRUE(s) << s.error().message();
  it::ensure_keyspace(**s, "cql_it");
  ASSERT_TRUE((*s)->query("CREATE TABLE IF NOT EXISTS cql_it.restart (k int PRIMARY KEY, v int)"));
  auto ins = (*s)->prepare("INSERT INTO cql_it.restart (k, v) VALUES (?, ?)");
  auto sel = (*s)->prepare("SELECT v FROM cql_it.restart WHERE k = ?");
  ASSERT_TRUE(ins && sel);
  ASSERT_TRUE((*s)->execute(*ins, {std::int32_t{1}, std::int32_t{1}}));

  // Requests keep flowing while the node restarts in the background.
  auto started = std::chrono::steady_clock::now();
  std::atomic<bool> restarted{false};
  int restart_rc = -1;
  std::thread restart([&] {
    std::string cmd = std::string(PROSODY_SOURCE_DIR) + "/scripts/cassandra restart >/dev/null";
    restart_rc = std::system(cmd.c_str());
    restarted = true;
  });
  int failures = 0;
  Result<Rows> r = Error::transient("not tried");
  auto deadline = started + std::chrono::seconds(180);
  std::int32_t k = 100;
  while (std::chrono::steady_clock::now() < deadline) {
    bool after = restarted.load();
    r = (*s)->execute(*ins, {k++, std::int32_t{2}});
    if (r && after) break;
    if (!r) {
      EXPECT_TRUE(r.error().is_transient()) << r.error().message();
      ++failures;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  restart.join();
  ASSERT_EQ(restart_rc, 0) << "scripts/cassandra restart failed";
  auto restart_took = std::chrono::steady_clock::now() - started;
  // The node really went away: some requests failed, all transiently.
  EXPECT_GT(failures, 0);
  ASSERT_TRUE(r) << "no recovery after restart: " << r.error().message();
  auto back = (*s)->execute(*sel, {std::int32_t{1}});
  ASSERT_TRUE(back) << back.error().message();
  ASSERT_EQ(back->size(), 1u);
  EXPECT_EQ(back->rows[0][0], Value(std::int32_t{1}));
  std::printf("restart and recovery took %.1f s; %d request(s) failed transiently meanwhile\n",
              std::chrono::duration<double>(restart_took).count(), failures);
}

}  // namespace
}  // namespace prosody::cql
