// Builds librdkafka configurations for our consumer and producer from the
// resolved settings, applying the project's defaults first and the user's
// pass-through properties last (so users can override anything).
//
// Thread safety: pure functions.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "kafka/handles.h"
#include "prosody/result.h"

namespace prosody::engine {
struct EngineSettings;
}

namespace prosody::kafka {

struct ProducerSettings {
  std::string bootstrap_servers;
  std::string client_id;
  std::vector<std::pair<std::string, std::string>> kafka_properties;
  bool idempotent = true;
};

Result<ConfHandle> consumer_conf(const engine::EngineSettings& settings);
Result<ConfHandle> producer_conf(const ProducerSettings& settings);
// The defer loader's consumer (middleware/defer_loader.h): point lookups by
// manual assignment under `group_id`, never committing, small fetches. The
// connection's pass-through properties apply, except that what makes it a
// non-committing, earliest-resetting consumer cannot be overridden.
Result<ConfHandle> defer_loader_conf(const ProducerSettings& connection, const std::string& group_id);

// Sets one property, naming it in the error; secrets are not echoed.
Status set_property(rd_kafka_conf_t* conf, const std::string& name, const std::string& value);

// Routes librdkafka's log lines to our logger.
void install_log_callback(rd_kafka_conf_t* conf);

std::string default_client_id();

}  // namespace prosody::kafka
