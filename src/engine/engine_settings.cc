#include "engine/consumer_engine.h"

#include <algorithm>

namespace prosody::engine {

EngineSettings EngineSettings::from(const Config& c, const std::string& bootstrap_servers) {
  EngineSettings s;
  s.bootstrap_servers = bootstrap_servers;
  s.group_id = c.group_id().value_or("");
  s.client_id = c.client_id();
  s.topics = c.subscribed_topics();
  for (const auto& [k, v] : c.kafka_properties()) s.kafka_properties.emplace_back(k, v);
  s.mode = c.mode();
  s.codec = c.payload_codec();
  s.allowed_events = c.allowed_events();
  s.failure_topic = c.failure_topic();
  s.max_concurrency = static_cast<int>(c.max_concurrency());
  s.max_uncommitted = static_cast<int>(c.max_uncommitted());
  s.max_enqueued_per_key = static_cast<int>(c.max_enqueued_per_key());
  s.max_retries = static_cast<int>(c.max_retries());
  s.retry = BackoffPolicy{c.retry_base(), c.max_retry_delay()};
  s.poll_interval = c.poll_interval();
  s.commit_interval = c.commit_interval();
  s.shutdown_timeout = c.shutdown_timeout();
  s.stall_threshold = c.stall_threshold();
  s.timeout = c.effective_timeout();
  s.scheduler = middleware::SchedulerOptions::from_config(c);
  s.monopolization = middleware::MonopolizationOptions::from_config(c);
  s.failure_tracker = middleware::FailureTrackerOptions::from_config(c);
  s.defer_enabled = c.defer_enabled();
  s.idempotence_cache_size = c.idempotence_cache_size();
  s.idempotence_version = c.idempotence_version();
  s.defer_backoff = middleware::DeferBackoff::from_config(c);
  s.slab_size = std::max(std::chrono::seconds(1), std::chrono::duration_cast<std::chrono::seconds>(c.slab_size()));
  return s;
}

}  // namespace prosody::engine
