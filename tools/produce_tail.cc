// `prosody produce` and `prosody tail`: send records to a topic and print
// what a topic holds. Both read the PROSODY_* environment (bootstrap
// servers, mock mode, Kafka properties) like any client.
#include <atomic>
#include <csignal>
#include <iostream>
#include <thread>

#include <fmt/format.h>

#include "commands.h"
#include "prosody/prosody.h"

namespace prosody::cli {
namespace {

volatile std::sig_atomic_t g_interrupted = 0;
void on_signal(int) { g_interrupted = 1; }

struct ProduceOptions {
  std::string topic;
  std::string key;
  std::string payload;
  int count = 1;
  bool from_stdin = false;
};

int run_produce(const ProduceOptions& o) {
  auto client = Client::create(Config::from_env());
  auto producer = client->producer();
  if (!producer) {
    std::cerr << "prosody produce: " << producer.error().message() << "\n";
    return 2;
  }
  int sent = 0, failed = 0;
  auto send_one = [&](const std::string& key, const std::string& payload) {
    auto r = (*producer)->send(o.topic, key, payload);
    if (r) {
      ++sent;
    } else {
      ++failed;
      std::cerr << "prosody produce: " << r.error().message() << "\n";
    }
  };
  if (o.from_stdin) {
    // One record per line: "key<TAB>payload".
    std::string line;
    while (std::getline(std::cin, line)) {
      const auto tab = line.find('\t');
      if (tab == std::string::npos) {
        std::cerr << "prosody produce: skipping line without a TAB between key and payload\n";
        ++failed;
        continue;
      }
      send_one(line.substr(0, tab), line.substr(tab + 1));
    }
  } else {
    for (int i = 0; i < o.count; ++i) send_one(o.key, o.payload);
  }
  std::cerr << fmt::format("prosody produce: {} sent, {} failed\n", sent, failed);
  return failed == 0 ? 0 : 1;
}

struct TailOptions {
  std::string topic;
  std::string group = "prosody-tail";
  long count = -1;
};

class PrintingHandler final : public EventHandler {
 public:
  HandlerResult on_message(Context&, const Message& m) override {
    nlohmann::json line = {{"topic", m.topic()},
                           {"partition", m.partition().value()},
                           {"offset", m.offset().value()},
                           {"key", m.key()},
                           {"timestamp_ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                                                m.timestamp().time_since_epoch()).count()}};
    if (!m.payload().is_null()) {
      line["payload"] = m.payload();
    } else {
      line["payload_raw"] = std::string(m.raw_payload());
    }
    for (const auto& h : m.headers()) line["headers"][h.name] = h.value;
    {
      std::lock_guard l(mutex_);
      std::cout << line.dump() << std::endl;
    }
    ++printed_;
    return ok_status();
  }
  long printed() const { return printed_; }

 private:
  std::mutex mutex_;
  std::atomic<long> printed_{0};
};

int run_tail(const TailOptions& o) {
  auto config = Config::from_env()
                    .with_group_id(o.group)
                    .with_subscribed_topics(std::vector<std::string>{o.topic})
                    .with_max_concurrency(1)
                    .with_probe_port(std::nullopt);
  // Tail shows everything, including records this tool's group produced.
  config.with_source_system(o.group + "-tail-reader");
  auto client = Client::create(config);
  auto handler = std::make_shared<PrintingHandler>();
  if (auto s = client->subscribe(handler); !s) {
    std::cerr << "prosody tail: " << s.error().message() << "\n";
    return 2;
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  while (!g_interrupted && (o.count < 0 || handler->printed() < o.count)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  (void)client->unsubscribe();
  return 0;
}

}  // namespace

std::function<int()> add_produce(CLI::App& app) {
  auto* cmd = app.add_subcommand("produce", "send records (PROSODY_BOOTSTRAP_SERVERS or PROSODY_MOCK)");
  auto o = std::make_shared<ProduceOptions>();
  cmd->add_option("--topic", o->topic, "topic")->required();
  cmd->add_option("--key", o->key, "record key");
  cmd->add_option("--payload", o->payload, "record payload (JSON text)");
  cmd->add_option("--count", o->count, "send the record this many times")->check(CLI::Range(1, 100'000'000));
  cmd->add_flag("--stdin", o->from_stdin, "read 'key<TAB>payload' lines from standard input");
  return [o] { return run_produce(*o); };
}

std::function<int()> add_tail(CLI::App& app) {
  auto* cmd = app.add_subcommand("tail", "print a topic's records as JSON lines");
  auto o = std::make_shared<TailOptions>();
  cmd->add_option("--topic", o->topic, "topic")->required();
  cmd->add_option("--group", o->group, "consumer group (its committed offsets are used)");
  cmd->add_option("--count", o->count, "stop after this many records");
  return [o] { return run_tail(*o); };
}

}  // namespace prosody::cli
