#include "kafka/client_config.h"

#include <unistd.h>

#include <spdlog/spdlog.h>

#include "engine/consumer_engine.h"
#include "prosody/logging.h"

namespace prosody::kafka {
namespace {

bool is_secret(const std::string& name) {
  for (const char* s : {"password", "secret", "sasl.jaas", "sasl.oauthbearer", "ssl.key"}) {
    if (name.find(s) != std::string::npos) return true;
  }
  return false;
}

void log_cb(const rd_kafka_t*, int level, const char* fac, const char* buf) {
  auto l = prosody::logger();
  const auto lvl = level <= 3 ? spdlog::level::err : level <= 4 ? spdlog::level::warn
                 : level <= 6 ? spdlog::level::info : spdlog::level::debug;
  l->log(lvl, "librdkafka {}: {}", fac, buf);
}

Status set_properties(rd_kafka_conf_t* conf, const std::vector<std::pair<std::string, std::string>>& props) {
  for (const auto& [k, v] : props) {
    if (auto s = set_property(conf, k, v); !s) return s;
  }
  return {};
}

}  // namespace

std::string default_client_id() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') return "prosody";
  return host;
}

Status set_property(rd_kafka_conf_t* conf, const std::string& name, const std::string& value) {
  char err[512];
  if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
    return Error::permanent("Kafka property '" + name + "' = '" + (is_secret(name) ? "[redacted]" : value) +
                                "' rejected: " + err,
                            ErrorCode::invalid_config);
  }
  return {};
}

void install_log_callback(rd_kafka_conf_t* conf) { rd_kafka_conf_set_log_cb(conf, &log_cb); }

Result<ConfHandle> consumer_conf(const engine::EngineSettings& s) {
  ConfHandle conf(rd_kafka_conf_new());
  install_log_callback(conf.get());
  const std::vector<std::pair<std::string, std::string>> defaults = {
      {"bootstrap.servers", s.bootstrap_servers},
      {"group.id", s.group_id},
      {"client.id", s.client_id.empty() ? default_client_id() : s.client_id},
      // We store offsets ourselves (the contiguous completed prefix) and let
      // librdkafka commit the stored ones on its interval.
      {"enable.auto.commit", "true"},
      {"auto.commit.interval.ms", std::to_string(s.commit_interval.count())},
      {"enable.auto.offset.store", "false"},
      {"auto.offset.reset", "earliest"},
      {"partition.assignment.strategy", "cooperative-sticky"},
      {"enable.partition.eof", "false"},
      // librdkafka's per-partition prefetch is what holds records while the
      // engine is not reading a full partition: keep it bounded so a slow
      // handler over a huge backlog costs little memory.
      {"queued.max.messages.kbytes", "4096"},
      {"queued.min.messages", "10000"},
  };
  if (auto st = set_properties(conf.get(), defaults); !st) return std::move(st).error();
  if (auto st = set_properties(conf.get(), s.kafka_properties); !st) return std::move(st).error();
  return Result<ConfHandle>(std::move(conf));
}

Result<ConfHandle> producer_conf(const ProducerSettings& s) {
  ConfHandle conf(rd_kafka_conf_new());
  install_log_callback(conf.get());
  std::vector<std::pair<std::string, std::string>> defaults = {
      {"bootstrap.servers", s.bootstrap_servers},
      {"client.id", s.client_id.empty() ? default_client_id() : s.client_id},
      {"enable.idempotence", s.idempotent ? "true" : "false"},
      {"compression.codec", "lz4"},
      // The Java client's partitioner (murmur2): a key lands on the same
      // partition whichever client produced it, so per-key order holds in a
      // topic written by Java, kafkajs and prosody-cpp producers alike.
      {"partitioner", "murmur2_random"},
  };
  if (auto st = set_properties(conf.get(), defaults); !st) return std::move(st).error();
  // Consumer-only pass-through properties would make librdkafka warn on a
  // producer; skip the well-known consumer ones.
  for (const auto& [k, v] : s.kafka_properties) {
    if (k == "session.timeout.ms" || k == "heartbeat.interval.ms" || k == "max.poll.interval.ms" ||
        k == "auto.offset.reset" || k == "fetch.wait.max.ms" || k.rfind("partition.assignment", 0) == 0 ||
        k == "group.instance.id" || k == "queued.max.messages.kbytes" || k == "queued.min.messages" ||
        k == "fetch.min.bytes") {
      continue;
    }
    if (auto st = set_property(conf.get(), k, v); !st) return std::move(st).error();
  }
  return Result<ConfHandle>(std::move(conf));
}

Result<ConfHandle> defer_loader_conf(const ProducerSettings& s, const std::string& group_id) {
  ConfHandle conf(rd_kafka_conf_new());
  install_log_callback(conf.get());
  const std::vector<std::pair<std::string, std::string>> defaults = {
      {"bootstrap.servers", s.bootstrap_servers},
      {"client.id", s.client_id.empty() ? default_client_id() : s.client_id},
      // Point lookups gain nothing from prefetching: fetch little (librdkafka
      // still fetches a larger record whole). Prosody also sets
      // queued.min.messages=1, but librdkafka 2.0 pauses a partition's
      // fetching for a fixed 1 s whenever its queue reaches that threshold
      // (fetch.queue.backoff.ms only arrives in 2.1), which made every
      // seek or read-forward cost a second; the byte cap bounds the queue.
      {"queued.min.messages", "100000"},
      {"queued.max.messages.kbytes", "1024"},
      {"fetch.message.max.bytes", "16384"},
      {"fetch.max.bytes", "1048576"},
      {"fetch.wait.max.ms", "100"},
      {"enable.partition.eof", "false"},
  };
  if (auto st = set_properties(conf.get(), defaults); !st) return std::move(st).error();
  for (const auto& [k, v] : s.kafka_properties) {
    // Producer-only settings would only make librdkafka warn.
    if (k == "acks" || k == "linger.ms" || k == "compression.codec" || k == "compression.type" ||
        k.rfind("enable.idempotence", 0) == 0 || k == "partitioner" || k.rfind("partition.assignment", 0) == 0 ||
        k == "group.instance.id") {
      continue;
    }
    if (auto st = set_property(conf.get(), k, v); !st) return std::move(st).error();
  }
  const std::vector<std::pair<std::string, std::string>> enforced = {
      {"group.id", group_id},
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      // A deleted target offset resets to the log start; the first record to
      // arrive then proves the target gone.
      {"auto.offset.reset", "earliest"},
  };
  if (auto st = set_properties(conf.get(), enforced); !st) return std::move(st).error();
  return Result<ConfHandle>(std::move(conf));
}

}  // namespace prosody::kafka
