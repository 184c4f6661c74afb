// The fixture shared by the tests against a real Kafka broker. The broker
// is started by scripts/test (scripts/kafka) and its address arrives in
// PROSODY_IT_BOOTSTRAP; without it the tests fail, never skip.
#pragma once

#include <cstdlib>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "prosody/prosody.h"
#include "support/kafka_admin.h"
#include "support/test_support.h"

namespace prosody::testing {

inline std::string it_bootstrap() {
  const char* b = std::getenv("PROSODY_IT_BOOTSTRAP");
  return b ? b : "";
}

class RealKafkaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(bootstrap().empty()) << "PROSODY_IT_BOOTSTRAP is not set: run the suite through scripts/test, "
                                         "which starts a real Kafka broker";
  }

  static std::string bootstrap() { return it_bootstrap(); }

  // A new topic (auto-creation is off on the test broker).
  static std::string make_topic(int partitions, const std::string& prefix = "it") {
    auto name = unique_name(prefix);
    auto err = create_topic(bootstrap(), name, partitions);
    EXPECT_EQ(err, "") << "cannot create topic " << name;
    return name;
  }

  static Config consumer_config(const std::string& topic, const std::string& group) {
    using namespace std::chrono_literals;
    return test_consumer_config(topic, group)
        .with_bootstrap_servers(std::vector<std::string>{bootstrap()})
        .with_commit_interval(200ms)
        .with_shutdown_timeout(20s);
  }

  // A producer whose records the consumers under test do not skip.
  static std::shared_ptr<Client> producer_client(const std::string& source_system = "it-producer") {
    Config c;
    c.with_bootstrap_servers(std::vector<std::string>{bootstrap()}).with_source_system(source_system);
    return Client::create(c);
  }
};

}  // namespace prosody::testing
