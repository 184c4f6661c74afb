// prosody-mock-broker: librdkafka's mock cluster in a process of its own.
//
// Kill tests need a broker that survives the consumer being SIGKILLed; the
// in-process mock cluster would die with it. This program creates a mock
// cluster, creates the requested topics, prints the bootstrap address on
// stdout (one line) and serves until SIGINT/SIGTERM.
//
//   prosody-mock-broker --brokers 3 --topic events:8 --topic dlq:1 [--rtt-ms 20]
#include <csignal>
#include <cstdio>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "kafka/mock_cluster.h"

namespace {
volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Run librdkafka's mock Kafka cluster as a standalone process"};
  int brokers = 3;
  std::vector<std::string> topics;
  int rtt_ms = 0;
  app.add_option("--brokers", brokers, "number of mock brokers")->check(CLI::Range(1, 16));
  app.add_option("--topic", topics, "topic to create, as name:partitions (repeatable)");
  app.add_option("--rtt-ms", rtt_ms, "delay every broker response by this many ms (a slow broker)")
      ->check(CLI::NonNegativeNumber);
  CLI11_PARSE(app, argc, argv);

  prosody::kafka::MockCluster cluster(brokers);
  if (cluster.bootstrap_servers().empty()) {
    std::cerr << "prosody-mock-broker: could not create the mock cluster\n";
    return 1;
  }
  for (const auto& spec : topics) {
    const auto colon = spec.rfind(':');
    const std::string name = spec.substr(0, colon);
    int partitions = 1;
    if (colon != std::string::npos) {
      try {
        partitions = std::stoi(spec.substr(colon + 1));
      } catch (...) {
        std::cerr << "prosody-mock-broker: bad --topic '" << spec << "': expected name:partitions\n";
        return 2;
      }
    }
    if (auto s = cluster.create_topic(name, partitions); !s) {
      std::cerr << "prosody-mock-broker: " << s.error().message() << "\n";
      return 1;
    }
  }
  if (rtt_ms > 0) {
    if (auto s = cluster.set_round_trip_time(std::chrono::milliseconds(rtt_ms)); !s) {
      std::cerr << "prosody-mock-broker: " << s.error().message() << "\n";
      return 1;
    }
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::cout << cluster.bootstrap_servers() << std::endl;
  while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  return 0;
}
