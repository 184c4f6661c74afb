// Durable timers across a SIGKILL and across a rebalance, with the consumer
// in child processes and the broker in another process, so the broker and
// the SQLite timer file outlive the consumer.
//
//   Restart: 1,000 keys x 10 messages each schedule one timer (10k timers,
//   due 20-29 s after the start). The consumer is SIGKILLed once every
//   message is handled and before any timer is due; a fresh consumer must
//   fire every timer exactly once, in due order per key, never overlapping
//   the key's messages (a second batch of messages arrives while the timers
//   fire).
//   Rebalance: two consumers share the SQLite file; timers scheduled while
//   one consumer owned everything fire in whichever consumer owns the
//   partition when they are due, each exactly once.
//
// The binary runs against the out-of-process mock broker, or against a real
// broker when given --bootstrap (the integration label does that with
// PROSODY_IT_BOOTSTRAP).
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

#include "support/kafka_admin.h"
#include "support/process.h"
#include "support/test_support.h"

namespace {

using namespace std::chrono_literals;
using std::chrono::system_clock;

std::string g_self;
std::string g_bootstrap;  // a real broker; empty = start the mock broker

// ---------------------------------------------------------------- the child

// Logs "M key seq pid" per message and "T key time pid" per timer, one
// write(2) each (O_APPEND), so lines survive SIGKILL and never interleave.
class TimerLogger final : public prosody::EventHandler {
 public:
  explicit TimerLogger(int fd) : fd_(fd) {}

  prosody::HandlerResult on_message(prosody::Context& ctx, const prosody::Message& m) override {
    enter(m.key());
    const auto& p = m.payload();
    if (p.contains("due")) {
      if (auto s = ctx.schedule(system_clock::time_point(std::chrono::seconds(p.value("due", 0L)))); !s) {
        leave(m.key());
        return s;
      }
    }
    write_line("M " + m.key() + " " + std::to_string(p.value("seq", -1)));
    leave(m.key());
    return prosody::ok_status();
  }

  prosody::HandlerResult on_timer(prosody::Context&, const prosody::Timer& t) override {
    enter(t.key());
    write_line("T " + t.key() + " " + std::to_string(t.time().time_since_epoch().count()));
    leave(t.key());
    return prosody::ok_status();
  }

 private:
  void enter(const std::string& key) {
    std::lock_guard l(mutex_);
    if (++running_[key] > 1) write_line("OVERLAP " + key);
  }
  void leave(const std::string& key) {
    std::lock_guard l(mutex_);
    --running_[key];
  }
  void write_line(std::string line) {
    line += " " + std::to_string(::getpid()) + "\n";
    (void)!::write(fd_, line.data(), line.size());
  }

  int fd_;
  std::mutex mutex_;
  std::map<std::string, int> running_;
};

volatile sig_atomic_t g_term = 0;

int run_child(const std::string& bootstrap, const std::string& topic, const std::string& group,
              const std::string& out, const std::string& state_dir) {
  signal(SIGTERM, [](int) { g_term = 1; });
  // stdout is the pipe the parent reads "ready" from; logs go to stderr so
  // an unread pipe never blocks the child.
  const int ready_fd = ::dup(STDOUT_FILENO);
  ::dup2(STDERR_FILENO, STDOUT_FILENO);
  const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd < 0) return 3;
  prosody::Config c;
  c.with_bootstrap_servers(std::vector<std::string>{bootstrap})
      .with_group_id(group)
      .with_subscribed_topics(std::vector<std::string>{topic})
      .with_state_dir(state_dir)
      .with_probe_port(std::nullopt)
      .with_poll_interval(20ms)
      .with_commit_interval(200ms)
      .with_max_concurrency(8)
      .with_kafka_property("session.timeout.ms", "6000")
      .with_kafka_property("heartbeat.interval.ms", "500");
  auto client = prosody::Client::create(c);
  if (auto s = client->subscribe(std::make_shared<TimerLogger>(fd)); !s) {
    std::fprintf(stderr, "child subscribe: %s\n", s.error().message().c_str());
    return 4;
  }
  (void)!::write(ready_fd, "ready\n", 6);
  ::close(ready_fd);
  while (!g_term) std::this_thread::sleep_for(10ms);
  (void)client->unsubscribe();
  ::close(fd);
  return 0;
}

// ---------------------------------------------------------------- the test

struct Event {
  char kind;  // 'M', 'T' or 'O' (overlap)
  std::string key;
  long value;  // seq or timer time
  long pid;
};

std::vector<Event> read_events(const std::string& path) {
  std::vector<Event> events;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream s(line);
    std::string kind;
    Event e{};
    s >> kind >> e.key;
    if (kind == "OVERLAP") {
      e.kind = 'O';
      s >> e.pid;
    } else {
      e.kind = kind[0];
      s >> e.value >> e.pid;
    }
    events.push_back(e);
  }
  return events;
}

std::size_t count_kind(const std::vector<Event>& events, char kind) {
  return static_cast<std::size_t>(std::count_if(events.begin(), events.end(), [&](const Event& e) { return e.kind == kind; }));
}

class TimerProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    topic_ = prosody::testing::unique_name("timers-proc");
    group_ = prosody::testing::unique_name("timers-proc-g");
    dir_ = std::filesystem::path(::testing::TempDir()) / topic_;
    std::filesystem::create_directories(dir_);
    out_ = (dir_ / "events.log").string();
    if (g_bootstrap.empty()) {
      broker_ = std::make_unique<prosody::testing::ChildProcess>(
          std::vector<std::string>{PROSODY_MOCK_BROKER_PATH, "--topic", topic_ + ":" + std::to_string(kPartitions)});
      auto line = broker_->read_line();
      ASSERT_TRUE(line && !line->empty()) << "mock broker did not start";
      bootstrap_ = *line;
    } else {
      bootstrap_ = g_bootstrap;
      const auto error = prosody::testing::create_topic(bootstrap_, topic_, kPartitions);
      ASSERT_TRUE(error.empty()) << error;
    }
    prosody::Config pc;
    pc.with_bootstrap_servers(std::vector<std::string>{bootstrap_}).with_source_system("timer-test-producer");
    producer_client_ = prosody::Client::create(pc);
    auto p = producer_client_->producer();
    ASSERT_TRUE(p);
    producer_ = *p;
  }

  std::unique_ptr<prosody::testing::ChildProcess> start_consumer() {
    auto child = std::make_unique<prosody::testing::ChildProcess>(
        std::vector<std::string>{g_self, "--child", bootstrap_, topic_, group_, out_, dir_.string()});
    auto ready = child->read_line();
    EXPECT_EQ(ready.value_or(""), "ready");
    return child;
  }

  // `keys` keys x `per_key` messages; message `seq` of a key schedules a
  // timer at base + seq (when base is set).
  void produce(int keys, int per_key, int first_seq, std::optional<long> base) {
    std::atomic<long> acked{0}, failed{0};
    for (int s = first_seq; s < first_seq + per_key; ++s) {
      for (int k = 0; k < keys; ++k) {
        nlohmann::json payload{{"seq", s}};
        if (base) payload["due"] = *base + s;
        for (;;) {
          auto r = producer_->send_async(topic_, "key-" + std::to_string(k), payload.dump(), {},
                                         [&](prosody::Result<prosody::Delivery> d) { d ? ++acked : ++failed; });
          if (r) break;
          std::this_thread::sleep_for(5ms);
        }
      }
    }
    ASSERT_TRUE(producer_->flush(60s));
    ASSERT_EQ(failed.load(), 0);
  }

  static long now_s() {
    return std::chrono::duration_cast<std::chrono::seconds>(system_clock::now().time_since_epoch()).count();
  }

  static constexpr int kPartitions = 4;
  std::string topic_, group_, bootstrap_, out_;
  std::filesystem::path dir_;
  std::unique_ptr<prosody::testing::ChildProcess> broker_;
  std::shared_ptr<prosody::Client> producer_client_;
  prosody::Producer* producer_ = nullptr;
};

TEST_F(TimerProcessTest, SigkillBeforeTimersAreDueThenRestartFiresEveryTimerOnce) {
  constexpr int kKeys = 1000, kPerKey = 10;
  auto first = start_consumer();
  const long base = now_s() + 25;
  produce(kKeys, kPerKey, 0, base);
  ASSERT_TRUE(prosody::testing::wait_until(
      [&] { return count_kind(read_events(out_), 'M') >= static_cast<std::size_t>(kKeys * kPerKey); }, 60s))
      << "the first consumer did not handle every message";
  ASSERT_LT(now_s(), base) << "too slow: timers became due before the kill (machine overloaded?)";
  first->signal(SIGKILL);
  first->wait();
  const auto before = read_events(out_);
  ASSERT_EQ(count_kind(before, 'T'), 0u) << "no timer may fire before it is due";

  auto second = start_consumer();
  // More messages for every key while the timers fire: they interleave
  // with the timers in the key's queue but never overlap them.
  while (now_s() < base + 4) std::this_thread::sleep_for(100ms);
  produce(kKeys, 1, 100, std::nullopt);
  const bool all = prosody::testing::wait_until(
      [&] {
        std::set<std::pair<std::string, long>> fired;
        for (const auto& e : read_events(out_)) {
          if (e.kind == 'T') fired.insert({e.key, e.value});
        }
        return fired.size() == static_cast<std::size_t>(kKeys * kPerKey);
      },
      120s);
  second->signal(SIGTERM);
  EXPECT_EQ(second->wait(), 0);
  ASSERT_TRUE(all) << "timers lost across the SIGKILL";

  const auto events = read_events(out_);
  EXPECT_EQ(count_kind(events, 'O'), 0u) << "a key's timer overlapped one of its messages";
  std::map<std::pair<std::string, long>, int> fired_count;
  std::map<std::string, long> last_time;
  std::size_t late_messages = 0;
  for (const auto& e : events) {
    if (e.kind == 'T') {
      fired_count[{e.key, e.value}]++;
      EXPECT_GE(e.value, base) << "unexpected timer time";
      auto [it, fresh] = last_time.try_emplace(e.key, e.value);
      if (!fresh) {
        EXPECT_GT(e.value, it->second) << "key " << e.key << " timers out of due order";
        it->second = e.value;
      }
    } else if (e.kind == 'M' && e.value == 100) {
      ++late_messages;
    }
  }
  for (const auto& [timer, n] : fired_count) {
    EXPECT_EQ(n, 1) << "timer " << timer.first << "@" << timer.second << " fired " << n << " times";
  }
  EXPECT_GE(late_messages, static_cast<std::size_t>(kKeys));
  std::printf("restart test: %zu messages before the kill, %zu timers fired once each after the restart\n",
              count_kind(before, 'M'), fired_count.size());
}

TEST_F(TimerProcessTest, TimersMoveWithTheirPartitionToAnotherConsumerSharingTheStore) {
  constexpr int kKeys = 200, kPerKey = 3;
  auto a = start_consumer();
  const long base = now_s() + 25;
  produce(kKeys, kPerKey, 0, base);
  ASSERT_TRUE(prosody::testing::wait_until(
      [&] { return count_kind(read_events(out_), 'M') >= static_cast<std::size_t>(kKeys * kPerKey); }, 60s));
  // B joins: the group rebalances and B takes some of A's partitions,
  // together with their stored timers.
  auto b = start_consumer();
  const bool all = prosody::testing::wait_until(
      [&] { return count_kind(read_events(out_), 'T') >= static_cast<std::size_t>(kKeys * kPerKey); }, 90s);
  a->signal(SIGTERM);
  b->signal(SIGTERM);
  EXPECT_EQ(a->wait(), 0);
  EXPECT_EQ(b->wait(), 0);
  ASSERT_TRUE(all) << "timers lost in the rebalance";
  const auto events = read_events(out_);
  std::map<std::pair<std::string, long>, int> fired_count;
  std::map<long, std::size_t> by_pid;
  for (const auto& e : events) {
    if (e.kind != 'T') continue;
    fired_count[{e.key, e.value}]++;
    by_pid[e.pid]++;
  }
  EXPECT_EQ(fired_count.size(), static_cast<std::size_t>(kKeys * kPerKey));
  for (const auto& [timer, n] : fired_count) EXPECT_EQ(n, 1) << timer.first << "@" << timer.second;
  EXPECT_EQ(by_pid.size(), 2u) << "timers should have fired in both consumers";
  EXPECT_TRUE(by_pid.contains(b->pid())) << "the joining consumer fired none of the moved timers";
  EXPECT_EQ(count_kind(events, 'O'), 0u);
}

}  // namespace

int main(int argc, char** argv) {
  char self[4096];
  const ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  g_self = len > 0 ? std::string(self, static_cast<std::size_t>(len)) : std::string(argv[0]);
  if (argc == 7 && std::string(argv[1]) == "--child") return run_child(argv[2], argv[3], argv[4], argv[5], argv[6]);
  ::testing::InitGoogleTest(&argc, argv);
  // --real: run against the real broker named by PROSODY_IT_BOOTSTRAP.
  if (argc > 1 && std::string(argv[argc - 1]) == "--real") {
    const char* env = std::getenv("PROSODY_IT_BOOTSTRAP");
    if (!env || !*env) {
      std::printf("PROSODY_IT_BOOTSTRAP is not set: skipping the real-broker run\n");
      return 0;
    }
    g_bootstrap = env;
  }
  return RUN_ALL_TESTS();
}
