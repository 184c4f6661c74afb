// Topic existence checks against the cluster's metadata, so a consumer or
// producer pointed at a missing topic fails at start with the topic named,
// instead of silently waiting.
//
// Thread safety: stateless; safe from any thread.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "kafka/client_config.h"
#include "prosody/result.h"

namespace prosody::kafka {

// Returns an error naming every topic of `topics` that does not exist.
// Regex subscriptions (starting with '^') are not checked.
Status check_topics_exist(const ProducerSettings& connection, const std::vector<std::string>& topics,
                          std::chrono::milliseconds timeout);

}  // namespace prosody::kafka
