#include "kafka/mock_cluster.h"

#include <limits>
#include <mutex>
#include <set>
#include <string>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "kafka/handles.h"

namespace prosody::kafka {

struct MockCluster::Impl {
  KafkaHandle owner;  // the mock cluster lives inside this (idle) handle
  rd_kafka_mock_cluster_t* cluster = nullptr;
  int brokers = 0;  // ids 1..brokers
  std::mutex mutex;
  std::set<std::string> topics;  // guarded by mutex
};

MockCluster::MockCluster(int brokers) : impl_(new Impl) {
  char err[256];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
  impl_->owner.reset(rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err));
  if (impl_->owner) impl_->cluster = rd_kafka_mock_cluster_new(impl_->owner.get(), brokers);
  impl_->brokers = brokers;
  if (impl_->cluster) bootstraps_ = rd_kafka_mock_cluster_bootstraps(impl_->cluster);
}

MockCluster::~MockCluster() {
  if (impl_->cluster) rd_kafka_mock_cluster_destroy(impl_->cluster);
  delete impl_;
}

MockCluster& MockCluster::instance() {
  // Intentionally leaked: clients may outlive static destruction order.
  static MockCluster* cluster = new MockCluster(3);
  return *cluster;
}

Status MockCluster::create_topic(std::string_view topic, int partitions) {
  if (!impl_->cluster) {
    return Error::terminal("the librdkafka mock cluster could not be created", ErrorCode::kafka);
  }
  std::lock_guard lock(impl_->mutex);
  std::string name(topic);
  if (impl_->topics.count(name)) return {};
  auto err = rd_kafka_mock_topic_create(impl_->cluster, name.c_str(), partitions, 1);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
    return Error::terminal("mock cluster: cannot create topic '" + name + "': " + err_text(err), ErrorCode::kafka);
  }
  impl_->topics.insert(std::move(name));
  return {};
}

Status MockCluster::set_round_trip_time(std::chrono::milliseconds rtt) {
  if (!impl_->cluster) {
    return Error::terminal("the librdkafka mock cluster could not be created", ErrorCode::kafka);
  }
  if (rtt.count() < 0 || rtt.count() > std::numeric_limits<int>::max()) {
    return Error::permanent("mock cluster: round trip time must be 0.." + std::to_string(std::numeric_limits<int>::max()) +
                                " ms, got " + std::to_string(rtt.count()),
                            ErrorCode::invalid_argument);
  }
  for (int id = 1; id <= impl_->brokers; ++id) {
    auto err = rd_kafka_mock_broker_set_rtt(impl_->cluster, id, static_cast<int>(rtt.count()));
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return Error::terminal("mock cluster: cannot set the round trip time of broker " + std::to_string(id) + ": " +
                                 err_text(err),
                             ErrorCode::kafka);
    }
  }
  return {};
}

}  // namespace prosody::kafka
