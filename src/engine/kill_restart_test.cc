// SIGKILL mid-stream, then restart: nothing is lost, and the only records
// handled twice are those above the committed offset at the moment of the
// kill (the uncommitted window).
//
// The broker must outlive the killed consumer, so it runs in its own process
// (prosody-mock-broker); the consumer is this binary re-executed with
// --child, appending "partition offset key seq" per handled record to a file.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include "support/kafka_admin.h"
#include "support/test_support.h"

namespace {

using namespace std::chrono_literals;
std::string g_self;

prosody::Config child_config(const std::string& bootstrap, const std::string& topic, const std::string& group) {
  prosody::Config c;
  c.with_bootstrap_servers(std::vector<std::string>{bootstrap})
      .with_group_id(group)
      .with_subscribed_topics(std::vector<std::string>{topic})
      .with_probe_port(std::nullopt)
      .with_poll_interval(20ms)
      .with_commit_interval(200ms)
      .with_max_concurrency(8)
      .with_kafka_property("session.timeout.ms", "6000")
      .with_kafka_property("heartbeat.interval.ms", "500");
  return c;
}

class AppendingHandler final : public prosody::EventHandler {
 public:
  explicit AppendingHandler(int fd) : fd_(fd) {}
  prosody::HandlerResult on_message(prosody::Context&, const prosody::Message& m) override {
    std::this_thread::sleep_for(200us);
    const std::string line = std::to_string(m.partition().value()) + " " + std::to_string(m.offset().value()) + " " +
                             m.key() + " " + std::to_string(m.payload().value("seq", -1)) + "\n";
    // One write(2) per record with O_APPEND: survives SIGKILL (kernel buffer).
    if (::write(fd_, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
      return prosody::Error::transient("write failed");
    }
    return prosody::ok_status();
  }

 private:
  int fd_;
};

volatile sig_atomic_t g_term = 0;

int run_child(const std::string& bootstrap, const std::string& topic, const std::string& group,
              const std::string& out) {
  signal(SIGTERM, [](int) { g_term = 1; });
  const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd < 0) return 3;
  auto client = prosody::Client::create(child_config(bootstrap, topic, group));
  if (auto s = client->subscribe(std::make_shared<AppendingHandler>(fd)); !s) {
    std::fprintf(stderr, "child subscribe: %s\n", s.error().message().c_str());
    return 4;
  }
  while (!g_term) std::this_thread::sleep_for(10ms);
  (void)client->unsubscribe();
  ::close(fd);
  return 0;
}

struct Process {
  pid_t pid = -1;
  int out_fd = -1;
};

Process spawn(const std::vector<std::string>& args) {
  int pipefd[2];
  if (pipe(pipefd) != 0) return {};
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(pipefd[1], STDOUT_FILENO);
    close(pipefd[0]);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(pipefd[1]);
  return Process{pid, pipefd[0]};
}

std::string read_line(int fd) {
  std::string line;
  char c;
  while (read(fd, &c, 1) == 1 && c != '\n') line.push_back(c);
  return line;
}

struct Line {
  int partition;
  long offset;
  std::string key;
  int seq;
};

std::vector<Line> read_lines(const std::string& path) {
  std::vector<Line> lines;
  std::ifstream in(path);
  Line l;
  while (in >> l.partition >> l.offset >> l.key >> l.seq) lines.push_back(l);
  return lines;
}

TEST(KillRestart, SigkillMidStreamThenRestartLosesNothing) {
  const std::string topic = prosody::testing::unique_name("kill");
  const std::string group = prosody::testing::unique_name("kill-g");
  const int partitions = 4;
  Process broker = spawn({PROSODY_MOCK_BROKER_PATH, "--topic", topic + ":" + std::to_string(partitions)});
  ASSERT_GT(broker.pid, 0);
  const std::string bootstrap = read_line(broker.out_fd);
  ASSERT_FALSE(bootstrap.empty()) << "mock broker did not start";

  prosody::Config pc;
  pc.with_bootstrap_servers(std::vector<std::string>{bootstrap}).with_source_system("kill-producer");
  auto producer_client = prosody::Client::create(pc);
  auto producer = producer_client->producer();
  ASSERT_TRUE(producer);
  const long n = 20000;
  ASSERT_EQ(prosody::testing::produce_sequenced(**producer, topic, n, 100), n);

  const std::string out = ::testing::TempDir() + "/" + topic + ".log";
  std::remove(out.c_str());
  Process child = spawn({g_self, "--child", bootstrap, topic, group, out});
  ASSERT_TRUE(prosody::testing::wait_until([&] { return read_lines(out).size() > 4000; }, 60s));
  kill(child.pid, SIGKILL);
  waitpid(child.pid, nullptr, 0);
  const auto before_kill = read_lines(out);
  const auto at_kill = prosody::testing::committed_offsets(bootstrap, topic, group, partitions);

  Process again = spawn({g_self, "--child", bootstrap, topic, group, out});
  const bool all = prosody::testing::wait_until(
      [&] {
        std::set<std::pair<std::string, int>> u;
        for (auto& l : read_lines(out)) u.insert({l.key, l.seq});
        return u.size() == static_cast<std::size_t>(n);
      },
      120s);
  kill(again.pid, SIGTERM);
  int status = 0;
  waitpid(again.pid, &status, 0);
  kill(broker.pid, SIGTERM);
  waitpid(broker.pid, nullptr, 0);
  ASSERT_TRUE(all) << "records lost after SIGKILL + restart";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);

  // Every record handled twice must lie in the uncommitted window at the kill.
  std::map<std::pair<int, long>, int> count;
  for (auto& l : read_lines(out)) count[{l.partition, l.offset}]++;
  long dups = 0;
  for (auto& [po, c] : count) {
    if (c > 1) {
      ++dups;
      auto it = at_kill.find(po.first);
      const long committed_offset = it == at_kill.end() ? -1 : it->second;
      EXPECT_GE(po.second, committed_offset) << "record below the committed offset was redone: partition "
                                             << po.first << " offset " << po.second;
    }
  }
  std::printf("kill test: %zu handled before kill, %ld re-handled after restart (uncommitted window)\n",
              before_kill.size(), dups);
}

}  // namespace

int main(int argc, char** argv) {
  char self[4096];
  const ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  g_self = len > 0 ? std::string(self, static_cast<std::size_t>(len)) : std::string(argv[0]);
  if (argc == 6 && std::string(argv[1]) == "--child") return run_child(argv[2], argv[3], argv[4], argv[5]);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
