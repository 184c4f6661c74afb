// A broker restart in the middle of a backlog (scripts/kafka restart: same
// data dir, cluster id and port). The consumer rides it out and resumes,
// the producer reconnects, and no record is lost; re-deliveries of
// uncommitted records are the only duplicates allowed.
//
// It restarts the broker that every integration test shares, so this binary's
// tests are registered RUN_SERIAL (see CMakeLists.txt) and are self-contained:
// the broker is back, on the same address, when they finish.
#include <cstdlib>

#include <gtest/gtest.h>

#include "support/kafka_admin.h"
#include "support/process.h"
#include "support/real_kafka.h"
#include "support/test_support.h"

#ifndef PROSODY_SOURCE_DIR
#error "PROSODY_SOURCE_DIR must point at the source tree (for scripts/kafka)"
#endif

namespace prosody {
namespace {

using namespace std::chrono_literals;
using testing::RecordingHandler;
using testing::run_command;
using testing::unique_name;
using testing::wait_until;

class BrokerRestart : public testing::RealKafkaTest {};

TEST_F(BrokerRestart, ConsumerAndProducerSurviveABrokerRestartWithoutLoss) {
  const auto topic = unique_name("restart");
  ASSERT_EQ(testing::create_topic(bootstrap(), topic, 4), "");
  const auto group = unique_name("g");

  Config pc;
  pc.with_bootstrap_servers(std::vector<std::string>{bootstrap()}).with_source_system("restart-producer");
  auto prod = Client::create(pc);
  auto p = prod->producer();
  ASSERT_TRUE(p);
  std::vector<int> seqs;
  const long backlog = 20000, after = 5000;
  const int keys = 400;
  ASSERT_EQ(testing::produce_sequenced(**p, topic, backlog, keys, 0, &seqs), backlog);

  // Slow enough (4 workers x 2 ms) that the backlog takes ~10 s, so the
  // restart lands in the middle of it.
  auto handler = std::make_shared<RecordingHandler>();
  handler->before = [](const Message&) { std::this_thread::sleep_for(2ms); };
  auto consumer = Client::create(consumer_config(topic, group).with_max_concurrency(4));
  ASSERT_TRUE(consumer->subscribe(handler));
  ASSERT_TRUE(wait_until([&] { return handler->unique_count() >= 3000; }, 60s)) << handler->unique_count();

  const auto before_restart = handler->unique_count();
  const auto t0 = std::chrono::steady_clock::now();
  auto r = run_command({std::string(PROSODY_SOURCE_DIR) + "/scripts/kafka", "restart"});
  const auto restart_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(r.exit_code, 0) << "scripts/kafka restart failed";
  ASSERT_FALSE(r.lines.empty());
  EXPECT_EQ(r.lines.back(), bootstrap()) << "the broker must come back on the same address";
  std::cerr << "broker restarted in " << restart_ms << " ms; " << before_restart << " of " << backlog
            << " handled before, " << handler->unique_count() << " after\n";
  EXPECT_LT(before_restart, static_cast<std::size_t>(backlog)) << "the restart should hit a live backlog";

  // The same producer reconnects and its records are acknowledged.
  ASSERT_EQ(testing::produce_sequenced(**p, topic, after, keys, backlog, &seqs), after);

  const auto total = static_cast<std::size_t>(backlog + after);
  ASSERT_TRUE(wait_until([&] { return handler->unique_count() == total; }, 180s))
      << handler->unique_count() << " of " << total;
  EXPECT_EQ(consumer->assigned_partition_count(), 4u);
  EXPECT_FALSE(consumer->is_stalled());
  ASSERT_TRUE(consumer->unsubscribe());
  EXPECT_EQ(handler->violations(), 0) << "a gap in some key's sequence: a record was lost or reordered";
  EXPECT_EQ(handler->overlaps(), 0);
  std::cerr << "duplicates after the restart: " << handler->duplicates() << "\n";

  // The broker kept the group's positions across the restart and has the final ones.
  auto committed = testing::committed_offsets(bootstrap(), topic, group, 4);
  long sum = 0;
  for (auto& [part, off] : committed) sum += std::max(off, 0L);
  EXPECT_EQ(sum, backlog + after);
}

}  // namespace
}  // namespace prosody
