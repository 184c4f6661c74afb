// File: prosody/config.h
//
// Client configuration: every option of the Prosody option table, with the
// same snake_case names, defaults and PROSODY_* environment variables.
//
//   auto config = prosody::Config::from_env()          // defaults + PROSODY_*
//                     .with_group_id("orders")          // builder beats env
//                     .with_subscribed_topics("orders,refunds");
//   if (auto s = config.validate_for_consumer(); !s) {
//     std::cerr << s.error().message();                 // every problem at once
//   }
//
// Nothing here throws. Environment values that fail to parse are kept inside
// the Config and reported by validate(), so a typo in a deployment manifest is
// never silently replaced by a default. Secrets (cassandra_password and
// password/secret-like Kafka properties) never appear in to_string(),
// describe() or validation errors.
//
// Options whose feature is not implemented yet are still accepted (so one
// environment can drive every Prosody client), but inactive_options_in_use()
// names those set to a non-default value so the client can warn about them.
//
// Thread safety: Config is a plain value type and is not synchronized.
// Concurrent const access is safe; mutating one instance from several threads
// is not. Copy it to hand it to another thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "prosody/result.h"

namespace prosody {

// How failures are handled (see the Prosody docs for each mode).
enum class Mode { pipeline, low_latency, best_effort };
// How a handler's span is linked to the span that produced the record/timer.
enum class SpanRelation { child, follows_from };
// How message payloads are decoded before reaching the handler.
enum class PayloadCodec { json, raw };

std::string_view to_string(Mode m) noexcept;
std::string_view to_string(SpanRelation r) noexcept;
std::string_view to_string(PayloadCodec c) noexcept;

// Accepts pipeline | low_latency | best_effort (also low-latency, best-effort).
Result<Mode> parse_mode(std::string_view text);
// Accepts child | child_of | child-of | follows_from | follows-from.
Result<SpanRelation> parse_span_relation(std::string_view text);
// Accepts json | raw.
Result<PayloadCodec> parse_payload_codec(std::string_view text);

// humantime-style durations: "100ms", "1s", "5m", "24h", "7d", "2w", "1y",
// "1h 30m", "1h30m", "1.5s"; units ns, us/µs, ms, s, m, h, d, w, M (30 days),
// y (365 days) and their long forms (sec, seconds, min, hours, ...). A bare
// number means seconds ("30", "30.0"), as the Ruby client passes floats.
// Sub-millisecond remainders round UP ("250us" -> 1ms) so a non-zero duration
// never silently becomes zero. Negative values and values above 100 years are
// rejected (time arithmetic on nanosecond clocks would overflow).
Result<std::chrono::milliseconds> parse_duration(std::string_view text);
// Inverse of parse_duration for display: "1h 30m", "100ms", "0s".
std::string format_duration(std::chrono::milliseconds d);

// One row of the option table. Views point at static storage.
struct OptionInfo {
  std::string_view name;          // snake_case option / builder name
  std::string_view env_var;       // PROSODY_* variable read by from_env()
  std::string_view group;         // "Core", "Consumer", "Retry", ...
  std::string_view default_text;  // as documented, e.g. "5m", "<group_id>"
  std::string_view accepted;      // accepted values, e.g. ">= 1", "0 < x <= 1"
  std::string_view description;
  bool active;  // false: accepted and validated, but the feature is not built yet
};

// Every option (kafka pass-through properties are not rows; see README).
const std::vector<OptionInfo>& option_table();
// The table as markdown: Option | Environment variable | Default | Description | Status.
std::string option_table_markdown();

// Any std::chrono::duration, converted to milliseconds rounding up, so that
// with_poll_interval(250us) means 1ms rather than 0.
class ConfigDuration {
 public:
  template <class Rep, class Period>
  ConfigDuration(std::chrono::duration<Rep, Period> d)  // NOLINT: implicit by design
      : ms_(std::chrono::ceil<std::chrono::milliseconds>(d)) {}
  std::chrono::milliseconds get() const noexcept { return ms_; }

 private:
  std::chrono::milliseconds ms_;
};

namespace config_detail {
struct Access;  // the option table implementation (src/config/options.cc)
}

class Config {
 public:
  using Duration = std::chrono::milliseconds;
  using List = std::vector<std::string>;
  using EnvLookup = std::function<std::optional<std::string>(std::string_view)>;

  // Documented defaults; the environment is not read.
  Config() = default;

  // Defaults overlaid with PROSODY_* variables of the process environment,
  // including PROSODY_KAFKA_<NAME> pass-through properties.
  static Config from_env();
  // Same, reading variables through `lookup` (for tests). A lookup cannot
  // enumerate names, so no PROSODY_KAFKA_* properties are read this way.
  static Config from_env(const EnvLookup& lookup);
  // Same, from an explicit environment (kafka pass-through included).
  static Config from_env(const std::map<std::string, std::string>& environment);

  // ---- Core ---------------------------------------------------------------
  // Empty list = not set (required unless mock).
  const List& bootstrap_servers() const noexcept { return bootstrap_servers_; }
  const std::optional<std::string>& group_id() const noexcept { return group_id_; }
  const List& subscribed_topics() const noexcept { return subscribed_topics_; }
  // Empty = all events.
  const List& allowed_events() const noexcept { return allowed_events_; }
  const std::optional<std::string>& source_system() const noexcept { return source_system_; }
  // source_system, else group_id, else "".
  std::string effective_source_system() const;
  bool mock() const noexcept { return mock_; }
  Mode mode() const noexcept { return mode_; }
  // Empty = the host name, resolved by the client.
  const std::string& client_id() const noexcept { return client_id_; }
  PayloadCodec payload_codec() const noexcept { return payload_codec_; }
  int mock_partitions() const noexcept { return mock_partitions_; }
  // Empty = "<$XDG_STATE_HOME or ~/.local/state>/prosody", resolved at use time.
  const std::string& state_dir() const noexcept { return state_dir_; }
  // librdkafka properties passed through verbatim (name -> value).
  const std::map<std::string, std::string>& kafka_properties() const noexcept { return kafka_properties_; }

  // ---- Consumer -----------------------------------------------------------
  int max_concurrency() const noexcept { return max_concurrency_; }
  int max_uncommitted() const noexcept { return max_uncommitted_; }
  int max_enqueued_per_key() const noexcept { return max_enqueued_per_key_; }
  // Unset = 80% of stall_threshold; see effective_timeout().
  const std::optional<Duration>& timeout() const noexcept { return timeout_; }
  Duration effective_timeout() const noexcept;
  Duration commit_interval() const noexcept { return commit_interval_; }
  Duration poll_interval() const noexcept { return poll_interval_; }
  Duration shutdown_timeout() const noexcept { return shutdown_timeout_; }
  Duration stall_threshold() const noexcept { return stall_threshold_; }
  // nullopt = probe server disabled.
  const std::optional<int>& probe_port() const noexcept { return probe_port_; }
  const std::optional<std::string>& failure_topic() const noexcept { return failure_topic_; }
  int idempotence_cache_size() const noexcept { return idempotence_cache_size_; }
  const std::string& idempotence_version() const noexcept { return idempotence_version_; }
  Duration idempotence_ttl() const noexcept { return idempotence_ttl_; }
  Duration slab_size() const noexcept { return slab_size_; }
  SpanRelation message_spans() const noexcept { return message_spans_; }
  SpanRelation timer_spans() const noexcept { return timer_spans_; }

  // ---- Producer -----------------------------------------------------------
  Duration send_timeout() const noexcept { return send_timeout_; }

  // ---- Retry --------------------------------------------------------------
  int max_retries() const noexcept { return max_retries_; }
  Duration retry_base() const noexcept { return retry_base_; }
  Duration max_retry_delay() const noexcept { return max_retry_delay_; }

  // ---- Deferral -----------------------------------------------------------
  bool defer_enabled() const noexcept { return defer_enabled_; }
  Duration defer_base() const noexcept { return defer_base_; }
  Duration defer_max_delay() const noexcept { return defer_max_delay_; }
  double defer_failure_threshold() const noexcept { return defer_failure_threshold_; }
  Duration defer_failure_window() const noexcept { return defer_failure_window_; }
  int defer_cache_size() const noexcept { return defer_cache_size_; }
  int defer_store_cache_size() const noexcept { return defer_store_cache_size_; }
  Duration defer_seek_timeout() const noexcept { return defer_seek_timeout_; }
  int defer_discard_threshold() const noexcept { return defer_discard_threshold_; }

  // ---- Monopolization detection -------------------------------------------
  bool monopolization_enabled() const noexcept { return monopolization_enabled_; }
  double monopolization_threshold() const noexcept { return monopolization_threshold_; }
  Duration monopolization_window() const noexcept { return monopolization_window_; }
  int monopolization_cache_size() const noexcept { return monopolization_cache_size_; }

  // ---- Fair scheduling ----------------------------------------------------
  double scheduler_failure_weight() const noexcept { return scheduler_failure_weight_; }
  Duration scheduler_max_wait() const noexcept { return scheduler_max_wait_; }
  double scheduler_wait_weight() const noexcept { return scheduler_wait_weight_; }
  int scheduler_cache_size() const noexcept { return scheduler_cache_size_; }

  // ---- Cassandra ----------------------------------------------------------
  const List& cassandra_nodes() const noexcept { return cassandra_nodes_; }
  const std::string& cassandra_keyspace() const noexcept { return cassandra_keyspace_; }
  const std::optional<std::string>& cassandra_user() const noexcept { return cassandra_user_; }
  const std::optional<std::string>& cassandra_password() const noexcept { return cassandra_password_; }
  const std::optional<std::string>& cassandra_datacenter() const noexcept { return cassandra_datacenter_; }
  const std::optional<std::string>& cassandra_rack() const noexcept { return cassandra_rack_; }
  Duration cassandra_retention() const noexcept { return cassandra_retention_; }

  // ---- Telemetry ----------------------------------------------------------
  const std::string& telemetry_topic() const noexcept { return telemetry_topic_; }
  bool telemetry_enabled() const noexcept { return telemetry_enabled_; }

  // ---- Builder ------------------------------------------------------------
  // Each setter overrides (and forgets any parse error of) the environment
  // value of that option. Out-of-range values are accepted here and reported
  // by validate(). List setters also take one comma-separated string.
  Config& with_bootstrap_servers(List v);
  Config& with_bootstrap_servers(std::initializer_list<std::string> v) { return with_bootstrap_servers(List(v)); }
  Config& with_bootstrap_servers(std::string_view comma_list);
  Config& with_group_id(std::optional<std::string> v);
  Config& with_subscribed_topics(List v);
  Config& with_subscribed_topics(std::initializer_list<std::string> v) { return with_subscribed_topics(List(v)); }
  Config& with_subscribed_topics(std::string_view comma_list);
  Config& with_allowed_events(List v);
  Config& with_allowed_events(std::initializer_list<std::string> v) { return with_allowed_events(List(v)); }
  Config& with_allowed_events(std::string_view comma_list);
  Config& with_source_system(std::optional<std::string> v);
  Config& with_mock(bool v);
  Config& with_mode(Mode v);
  Config& with_client_id(std::string v);
  Config& with_payload_codec(PayloadCodec v);
  Config& with_mock_partitions(int v);
  Config& with_state_dir(std::string v);
  // Sets one librdkafka property, overriding PROSODY_KAFKA_<NAME>.
  Config& with_kafka_property(std::string name, std::string value);

  Config& with_max_concurrency(int v);
  Config& with_max_uncommitted(int v);
  Config& with_max_enqueued_per_key(int v);
  Config& with_timeout(ConfigDuration v);
  Config& with_timeout(std::nullopt_t);  // back to 80% of stall_threshold
  Config& with_commit_interval(ConfigDuration v);
  Config& with_poll_interval(ConfigDuration v);
  Config& with_shutdown_timeout(ConfigDuration v);
  Config& with_stall_threshold(ConfigDuration v);
  Config& with_probe_port(std::optional<int> v);  // nullopt disables
  Config& with_failure_topic(std::optional<std::string> v);
  Config& with_idempotence_cache_size(int v);
  Config& with_idempotence_version(std::string v);
  Config& with_idempotence_ttl(ConfigDuration v);
  Config& with_slab_size(ConfigDuration v);
  Config& with_message_spans(SpanRelation v);
  Config& with_timer_spans(SpanRelation v);

  Config& with_send_timeout(ConfigDuration v);

  Config& with_max_retries(int v);
  Config& with_retry_base(ConfigDuration v);
  Config& with_max_retry_delay(ConfigDuration v);

  Config& with_defer_enabled(bool v);
  Config& with_defer_base(ConfigDuration v);
  Config& with_defer_max_delay(ConfigDuration v);
  Config& with_defer_failure_threshold(double v);
  Config& with_defer_failure_window(ConfigDuration v);
  Config& with_defer_cache_size(int v);
  Config& with_defer_store_cache_size(int v);
  Config& with_defer_seek_timeout(ConfigDuration v);
  Config& with_defer_discard_threshold(int v);

  Config& with_monopolization_enabled(bool v);
  Config& with_monopolization_threshold(double v);
  Config& with_monopolization_window(ConfigDuration v);
  Config& with_monopolization_cache_size(int v);

  Config& with_scheduler_failure_weight(double v);
  Config& with_scheduler_max_wait(ConfigDuration v);
  Config& with_scheduler_wait_weight(double v);
  Config& with_scheduler_cache_size(int v);

  Config& with_cassandra_nodes(List v);
  Config& with_cassandra_nodes(std::initializer_list<std::string> v) { return with_cassandra_nodes(List(v)); }
  Config& with_cassandra_nodes(std::string_view comma_list);
  Config& with_cassandra_keyspace(std::string v);
  Config& with_cassandra_user(std::optional<std::string> v);
  Config& with_cassandra_password(std::optional<std::string> v);
  Config& with_cassandra_datacenter(std::optional<std::string> v);
  Config& with_cassandra_rack(std::optional<std::string> v);
  Config& with_cassandra_retention(ConfigDuration v);

  Config& with_telemetry_topic(std::string v);
  Config& with_telemetry_enabled(bool v);

  // Generic string form of the builder (same syntax as the environment,
  // including `none`), for bindings and CLIs. Parse errors are returned
  // immediately; unknown names are invalid_argument.
  Status set_option(std::string_view name, std::string_view text);
  // The stored value of `name` in environment syntax ("5m", "a,b", "none"),
  // secrets shown as "[redacted]"; nullopt for an unknown name.
  std::optional<std::string> option_text(std::string_view name) const;

  // ---- Validation ---------------------------------------------------------
  // Checks every field and the producer prerequisites (bootstrap_servers
  // unless mock). Reports all problems at once: one permanent/invalid_config
  // Error, one line per problem, naming the field (and its environment
  // variable when the value came from there), the bad value and what is
  // accepted. Also reports environment values that failed to parse.
  Status validate() const;
  // validate() plus what subscribing needs: group_id, subscribed_topics, and
  // failure_topic in low_latency mode.
  Status validate_for_consumer() const;

  // Names of options set to a non-default value whose feature is not active
  // in this build, so callers can warn instead of silently ignoring them.
  std::vector<std::string> inactive_options_in_use() const;

  // Every option and its effective value, one "name = value" line each, then
  // "kafka.<property> = value" lines. Secrets are "[redacted]".
  std::string describe() const;
  std::string to_string() const { return describe(); }

  bool operator==(const Config&) const = default;

 private:
  friend struct config_detail::Access;

  // Bookkeeping for a builder call: the value no longer comes from the
  // environment, and an earlier env parse error for it no longer matters.
  void mark_explicit(std::string_view option);

  List bootstrap_servers_;
  std::optional<std::string> group_id_;
  List subscribed_topics_;
  List allowed_events_;
  std::optional<std::string> source_system_;
  bool mock_ = false;
  Mode mode_ = Mode::pipeline;
  std::string client_id_;
  PayloadCodec payload_codec_ = PayloadCodec::json;
  int mock_partitions_ = 3;
  std::string state_dir_;
  std::map<std::string, std::string> kafka_properties_;

  int max_concurrency_ = 32;
  int max_uncommitted_ = 64;
  int max_enqueued_per_key_ = 8;
  std::optional<Duration> timeout_;
  Duration commit_interval_ = std::chrono::seconds(1);
  Duration poll_interval_ = std::chrono::milliseconds(100);
  Duration shutdown_timeout_ = std::chrono::seconds(30);
  Duration stall_threshold_ = std::chrono::minutes(5);
  std::optional<int> probe_port_ = 8000;
  std::optional<std::string> failure_topic_;
  int idempotence_cache_size_ = 8192;
  std::string idempotence_version_ = "1";
  Duration idempotence_ttl_ = std::chrono::days(7);
  Duration slab_size_ = std::chrono::hours(1);
  SpanRelation message_spans_ = SpanRelation::child;
  SpanRelation timer_spans_ = SpanRelation::follows_from;

  Duration send_timeout_ = std::chrono::seconds(1);

  int max_retries_ = 3;
  Duration retry_base_ = std::chrono::milliseconds(20);
  Duration max_retry_delay_ = std::chrono::minutes(5);

  bool defer_enabled_ = true;
  Duration defer_base_ = std::chrono::seconds(1);
  Duration defer_max_delay_ = std::chrono::hours(24);
  double defer_failure_threshold_ = 0.9;
  Duration defer_failure_window_ = std::chrono::minutes(5);
  int defer_cache_size_ = 1024;
  int defer_store_cache_size_ = 8192;
  Duration defer_seek_timeout_ = std::chrono::seconds(30);
  int defer_discard_threshold_ = 100;

  bool monopolization_enabled_ = true;
  double monopolization_threshold_ = 0.9;
  Duration monopolization_window_ = std::chrono::minutes(5);
  int monopolization_cache_size_ = 8192;

  double scheduler_failure_weight_ = 0.3;
  Duration scheduler_max_wait_ = std::chrono::minutes(2);
  double scheduler_wait_weight_ = 200.0;
  int scheduler_cache_size_ = 8192;

  List cassandra_nodes_;
  std::string cassandra_keyspace_ = "prosody";
  std::optional<std::string> cassandra_user_;
  std::optional<std::string> cassandra_password_;
  std::optional<std::string> cassandra_datacenter_;
  std::optional<std::string> cassandra_rack_;
  Duration cassandra_retention_ = std::chrono::days(365);

  std::string telemetry_topic_ = "prosody.telemetry-events";
  bool telemetry_enabled_ = true;

  // Options whose current value came from the environment.
  std::set<std::string, std::less<>> from_env_;
  // Option name -> why its environment value was rejected (never the value
  // itself for secrets). Reported by validate().
  std::map<std::string, std::string, std::less<>> env_errors_;
};

}  // namespace prosody
