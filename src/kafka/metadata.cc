#include "kafka/metadata.h"

#include <set>

namespace prosody::kafka {

Status check_topics_exist(const ProducerSettings& connection, const std::vector<std::string>& topics,
                          std::chrono::milliseconds timeout) {
  std::vector<std::string> wanted;
  for (const auto& t : topics) {
    if (!t.empty() && t[0] != '^') wanted.push_back(t);
  }
  if (wanted.empty()) return {};
  ProducerSettings plain = connection;
  plain.idempotent = false;  // a throwaway handle: no producer id needed
  auto conf = producer_conf(plain);
  if (!conf) return std::move(conf).error();
  char err[512];
  KafkaHandle rk(rd_kafka_new(RD_KAFKA_PRODUCER, conf->release(), err, sizeof err));
  if (!rk) return Error::permanent(std::string("cannot create Kafka client: ") + err, ErrorCode::invalid_config);
  const rd_kafka_metadata_t* md = nullptr;
  const auto e = rd_kafka_metadata(rk.get(), 1, nullptr, &md, static_cast<int>(timeout.count()));
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Error::transient("cannot read cluster metadata from '" + connection.bootstrap_servers +
                                "' within " + std::to_string(timeout.count()) + " ms: " + rd_kafka_err2str(e),
                            ErrorCode::kafka);
  }
  std::set<std::string> present;
  for (int i = 0; i < md->topic_cnt; ++i) {
    if (md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR) present.insert(md->topics[i].topic);
  }
  rd_kafka_metadata_destroy(md);
  std::string missing;
  for (const auto& t : wanted) {
    if (!present.count(t)) missing += (missing.empty() ? "'" : ", '") + t + "'";
  }
  if (!missing.empty()) {
    return Error::permanent("topic(s) " + missing + " do not exist on '" + connection.bootstrap_servers +
                                "' (create them first; automatic topic creation is not used)",
                            ErrorCode::topic_missing);
  }
  return {};
}

}  // namespace prosody::kafka
