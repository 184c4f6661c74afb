// The process-wide librdkafka mock cluster used by mock mode
// (PROSODY_MOCK=true): three in-process brokers, created on first use and
// kept for the life of the process, so every client of the process (consumer,
// producer, failure-topic producer) talks to the same "Kafka".
//
// Thread safety: all functions are safe from any thread.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "prosody/result.h"

namespace prosody::kafka {

class MockCluster {
 public:
  // The shared cluster of this process (created on first call).
  static MockCluster& instance();

  // Comma-separated bootstrap servers of the mock brokers.
  const std::string& bootstrap_servers() const { return bootstraps_; }

  // Creates a topic; creating an existing topic is a no-op.
  Status create_topic(std::string_view topic, int partitions);

  // Delays every broker's responses by `rtt` (librdkafka's simulated round
  // trip time; zero removes it): a slow or distant broker for tests and
  // benchmarks, with fetch responses arriving late and in larger batches.
  Status set_round_trip_time(std::chrono::milliseconds rtt);

  MockCluster(const MockCluster&) = delete;
  MockCluster& operator=(const MockCluster&) = delete;

  // Standalone clusters (the out-of-process mock broker program).
  explicit MockCluster(int brokers);
  ~MockCluster();

 private:
  struct Impl;
  Impl* impl_;
  std::string bootstraps_;
};

}  // namespace prosody::kafka
