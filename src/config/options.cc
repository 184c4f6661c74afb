#include "config/options.h"

#include <algorithm>
#include <cctype>
#include <type_traits>

#include "config/parse.h"

namespace prosody::config_detail {
namespace {

using std::chrono::milliseconds;
using List = std::vector<std::string>;

template <class T>
using Check = std::function<std::optional<std::string>(const T&)>;
template <class T>
using Parser = std::function<Result<T>(std::string_view)>;

// ---- parsing per field type ------------------------------------------------

template <class T>
struct Tag {};

Result<int> parse_value(std::string_view t, Tag<int>) { return parse_int(t); }
Result<double> parse_value(std::string_view t, Tag<double>) { return parse_double(t); }
Result<bool> parse_value(std::string_view t, Tag<bool>) { return parse_bool(t); }
Result<milliseconds> parse_value(std::string_view t, Tag<milliseconds>) { return parse_duration(t); }
Result<std::string> parse_value(std::string_view t, Tag<std::string>) { return std::string(t); }
Result<Mode> parse_value(std::string_view t, Tag<Mode>) { return parse_mode(t); }
Result<SpanRelation> parse_value(std::string_view t, Tag<SpanRelation>) { return parse_span_relation(t); }
Result<PayloadCodec> parse_value(std::string_view t, Tag<PayloadCodec>) { return parse_payload_codec(t); }
Result<List> parse_value(std::string_view t, Tag<List>) {
  if (t == "none") return List{};
  return parse_list(t);
}
template <class T>
Result<std::optional<T>> parse_value(std::string_view t, Tag<std::optional<T>>) {
  if (t == "none") return std::optional<T>{};
  auto r = parse_value(t, Tag<T>{});
  if (!r) return std::move(r).error();
  return std::optional<T>(std::move(*r));
}

// ---- rendering per field type (environment syntax) ----------------------------

std::string format_value(int v) { return std::to_string(v); }
std::string format_value(double v) { return format_double(v); }
std::string format_value(bool v) { return v ? "true" : "false"; }
std::string format_value(milliseconds v) { return format_duration(v); }
std::string format_value(const std::string& v) { return v; }
std::string format_value(Mode v) { return std::string(to_string(v)); }
std::string format_value(SpanRelation v) { return std::string(to_string(v)); }
std::string format_value(PayloadCodec v) { return std::string(to_string(v)); }
std::string format_value(const List& v) { return v.empty() ? "none" : join_list(v); }
template <class T>
std::string format_value(const std::optional<T>& v) {
  return v ? format_value(*v) : "none";
}

// ---- a row -----------------------------------------------------------------

template <class T>
OptionSpec option(OptionInfo info, T Config::*member, Check<T> check = {}, Parser<T> parser = {}) {
  if (!parser) parser = [](std::string_view t) { return parse_value(t, Tag<T>{}); };
  OptionSpec spec;
  spec.info = info;
  spec.parse_into = [member, parser](Config& c, std::string_view text) -> Status {
    auto r = parser(text);
    if (!r) return std::move(r).error();
    c.*member = std::move(*r);
    return {};
  };
  spec.format = [member](const Config& c) { return format_value(c.*member); };
  if (check) {
    spec.check = [member, check](const Config& c) { return check(c.*member); };
  } else {
    spec.check = [](const Config&) { return std::optional<std::string>{}; };
  }
  return spec;
}

OptionSpec secret(OptionSpec spec) {
  spec.secret = true;
  return spec;
}

// ---- checks ----------------------------------------------------------------
// Returning "" means "out of range" and the caller prints the accepted text.

const std::optional<std::string> kOk;
const std::optional<std::string> kOutOfRange = std::string();

// Durations longer than this overflow nanosecond time_point arithmetic.
constexpr milliseconds kMaxDuration = std::chrono::days(36'500);

Check<int> at_least(int lo) {
  return [lo](const int& v) { return v >= lo ? kOk : kOutOfRange; };
}

Check<milliseconds> duration_between(milliseconds lo, milliseconds hi) {
  return [lo, hi](const milliseconds& v) { return v >= lo && v <= hi ? kOk : kOutOfRange; };
}
Check<milliseconds> positive_duration() { return duration_between(milliseconds(1), kMaxDuration); }
Check<milliseconds> non_negative_duration() { return duration_between(milliseconds(0), kMaxDuration); }

Check<double> fraction_open_closed() {  // (0, 1]
  return [](const double& v) { return v > 0.0 && v <= 1.0 ? kOk : kOutOfRange; };
}
Check<double> fraction_closed_open() {  // [0, 1)
  return [](const double& v) { return v >= 0.0 && v < 1.0 ? kOk : kOutOfRange; };
}
Check<double> non_negative_number() {
  return [](const double& v) { return v >= 0.0 ? kOk : kOutOfRange; };
}

Check<std::string> non_empty() {
  return [](const std::string& v) { return v.empty() ? kOutOfRange : kOk; };
}
Check<std::optional<std::string>> non_empty_if_set() {
  return [](const std::optional<std::string>& v) { return v && v->empty() ? kOutOfRange : kOk; };
}

std::string bad_topic(std::string_view name) {
  return quoted(name) +
         " is not a valid Kafka topic name (1-249 characters of A-Z a-z 0-9 . _ -, not \".\" or \"..\")";
}
Check<std::string> topic_name() {
  return [](const std::string& v) { return is_valid_topic_name(v) ? kOk : std::optional(bad_topic(v)); };
}
Check<std::optional<std::string>> optional_topic_name() {
  return [](const std::optional<std::string>& v) {
    return !v || is_valid_topic_name(*v) ? kOk : std::optional(bad_topic(*v));
  };
}
Check<List> topic_list() {
  return [](const List& v) -> std::optional<std::string> {
    for (const auto& t : v) {
      if (t.size() > 1 && t.front() == '^') continue;  // regex subscription
      if (!is_valid_topic_name(t)) return bad_topic(t) + " and does not start with ^ (regex)";
    }
    return kOk;
  };
}
Check<List> no_empty_items() {
  return [](const List& v) {
    return std::any_of(v.begin(), v.end(), [](const std::string& s) { return s.empty(); })
               ? std::optional<std::string>("contains an empty entry")
               : kOk;
  };
}

Check<std::optional<int>> port() {
  return [](const std::optional<int>& v) { return !v || (*v >= 0 && *v <= 65535) ? kOk : kOutOfRange; };
}

// ---- custom parsers ----------------------------------------------------------

// probe_port: `none` or `false` disables the probe server.
Result<std::optional<int>> parse_port(std::string_view t) {
  if (t == "none" || t == "false") return std::optional<int>{};
  auto r = parse_int(t);
  if (!r) return std::move(r).error();
  return std::optional<int>(*r);
}

// client_id / state_dir: empty means "derive at use time"; `none` restores that.
Result<std::string> parse_defaultable_string(std::string_view t) {
  if (t == "none") return std::string();
  return std::string(t);
}

}  // namespace

std::vector<OptionSpec> Access::build_specs() {
  using C = Config;
  std::vector<OptionSpec> t;
  // clang-format off
  // ---- Core
  t.push_back(option(OptionInfo{"bootstrap_servers", "PROSODY_BOOTSTRAP_SERVERS", "Core", "-",
      "comma list of host:port; required unless mock", "Kafka servers to connect to", true},
      &C::bootstrap_servers_, no_empty_items()));
  t.push_back(option(OptionInfo{"group_id", "PROSODY_GROUP_ID", "Core", "-",
      "non-empty string; required to subscribe", "Consumer group name", true},
      &C::group_id_, non_empty_if_set()));
  t.push_back(option(OptionInfo{"subscribed_topics", "PROSODY_SUBSCRIBED_TOPICS", "Core", "-",
      "comma list of topic names or ^regex; required to subscribe", "Topics to read from", true},
      &C::subscribed_topics_, topic_list()));
  t.push_back(option(OptionInfo{"allowed_events", "PROSODY_ALLOWED_EVENTS", "Core", "(all)",
      "comma list of prefixes", "Only process events matching these prefixes", true},
      &C::allowed_events_));
  t.push_back(option(OptionInfo{"source_system", "PROSODY_SOURCE_SYSTEM", "Core", "<group_id>",
      "non-empty string", "Tag for outgoing messages (prevents reprocessing)", true},
      &C::source_system_, non_empty_if_set()));
  t.push_back(option(OptionInfo{"mock", "PROSODY_MOCK", "Core", "false",
      "true or false", "Use in-memory Kafka for testing", true},
      &C::mock_));
  t.push_back(option(OptionInfo{"mode", "PROSODY_MODE", "Core", "pipeline",
      "pipeline, low_latency or best_effort", "Failure handling mode", true},
      &C::mode_));
  t.push_back(option(OptionInfo{"client_id", "PROSODY_CLIENT_ID", "Core", "<hostname>",
      "string", "Kafka client.id", true},
      &C::client_id_, Check<std::string>{}, Parser<std::string>{parse_defaultable_string}));
  t.push_back(option(OptionInfo{"payload_codec", "PROSODY_PAYLOAD_CODEC", "Core", "json",
      "json or raw", "How message payloads are decoded for handlers", true},
      &C::payload_codec_));
  t.push_back(option(OptionInfo{"mock_partitions", "PROSODY_MOCK_PARTITIONS", "Core", "3",
      ">= 1", "Partitions per topic created in mock mode", true},
      &C::mock_partitions_, at_least(1)));
  t.push_back(option(OptionInfo{"state_dir", "PROSODY_STATE_DIR", "Core", "<$XDG_STATE_HOME or ~/.local/state>/prosody",
      "directory path", "Directory for local persistent state (the SQLite timer store when Cassandra is not configured)", true},
      &C::state_dir_, Check<std::string>{}, Parser<std::string>{parse_defaultable_string}));
  // ---- Consumer
  t.push_back(option(OptionInfo{"max_concurrency", "PROSODY_MAX_CONCURRENCY", "Consumer", "32",
      ">= 1", "Max messages being processed simultaneously", true},
      &C::max_concurrency_, at_least(1)));
  t.push_back(option(OptionInfo{"max_uncommitted", "PROSODY_MAX_UNCOMMITTED", "Consumer", "64",
      ">= 1", "Max queued messages before pausing consumption", true},
      &C::max_uncommitted_, at_least(1)));
  t.push_back(option(OptionInfo{"max_enqueued_per_key", "PROSODY_MAX_ENQUEUED_PER_KEY", "Consumer", "8",
      ">= 1", "Max messages queued behind one key before pausing its partition", true},
      &C::max_enqueued_per_key_, at_least(1)));
  t.push_back(option(OptionInfo{"timeout", "PROSODY_TIMEOUT", "Consumer", "80% of stall_threshold",
      "duration > 0, or none", "Cancel handler if it runs longer than this", true},
      &C::timeout_, Check<std::optional<milliseconds>>{[](const std::optional<milliseconds>& v) {
        return !v || positive_duration()(*v) == kOk ? kOk : kOutOfRange; }}));
  t.push_back(option(OptionInfo{"commit_interval", "PROSODY_COMMIT_INTERVAL", "Consumer", "1s",
      "duration > 0", "How often to save progress to Kafka", true},
      &C::commit_interval_, positive_duration()));
  t.push_back(option(OptionInfo{"poll_interval", "PROSODY_POLL_INTERVAL", "Consumer", "100ms",
      "duration > 0", "How often to fetch new messages from Kafka", true},
      &C::poll_interval_, positive_duration()));
  t.push_back(option(OptionInfo{"shutdown_timeout", "PROSODY_SHUTDOWN_TIMEOUT", "Consumer", "30s",
      "duration >= 0", "Shutdown budget; handlers run freely until cancellation fires near the end of the timeout", true},
      &C::shutdown_timeout_, non_negative_duration()));
  t.push_back(option(OptionInfo{"stall_threshold", "PROSODY_STALL_THRESHOLD", "Consumer", "5m",
      "duration > 0", "Report unhealthy if no progress for this long", true},
      &C::stall_threshold_, positive_duration()));
  t.push_back(option(OptionInfo{"probe_port", "PROSODY_PROBE_PORT", "Consumer", "8000",
      "0..65535, or none/false to disable", "HTTP port for health checks", true},
      &C::probe_port_, port(), Parser<std::optional<int>>{parse_port}));
  t.push_back(option(OptionInfo{"failure_topic", "PROSODY_FAILURE_TOPIC", "Consumer", "-",
      "topic name; required in low_latency mode", "Send unprocessable messages here (dead letter queue)", true},
      &C::failure_topic_, optional_topic_name()));
  t.push_back(option(OptionInfo{"idempotence_cache_size", "PROSODY_IDEMPOTENCE_CACHE_SIZE", "Consumer", "8192",
      ">= 0 (0 disables deduplication)",
      "Global shared cache capacity for message deduplication; also the producer's memory of delivered ids (resends of a "
      "delivered (topic, key, id) are skipped)",
      true},
      &C::idempotence_cache_size_, at_least(0)));
  t.push_back(option(OptionInfo{"idempotence_version", "PROSODY_IDEMPOTENCE_VERSION", "Consumer", "1",
      "non-empty string", "Version string for cache-busting dedup hashes", true},
      &C::idempotence_version_, non_empty()));
  t.push_back(option(OptionInfo{"idempotence_ttl", "PROSODY_IDEMPOTENCE_TTL", "Consumer", "7d",
      "1m <= duration <= 630720000s", "TTL for dedup records in Cassandra", true},
      &C::idempotence_ttl_, duration_between(std::chrono::minutes(1), kCassandraMaxTtl)));
  t.push_back(option(OptionInfo{"slab_size", "PROSODY_SLAB_SIZE", "Consumer", "1h",
      "duration > 0", "Timer storage granularity (rarely needs changing)", true},
      &C::slab_size_, positive_duration()));
  t.push_back(option(OptionInfo{"message_spans", "PROSODY_MESSAGE_SPANS", "Consumer", "child",
      "child or follows_from", "Span linking for message execution", false},
      &C::message_spans_));
  t.push_back(option(OptionInfo{"timer_spans", "PROSODY_TIMER_SPANS", "Consumer", "follows_from",
      "child or follows_from", "Span linking for timer execution", false},
      &C::timer_spans_));
  // ---- Producer
  t.push_back(option(OptionInfo{"send_timeout", "PROSODY_SEND_TIMEOUT", "Producer", "1s",
      "duration > 0", "Give up sending after this long", true},
      &C::send_timeout_, positive_duration()));
  // ---- Retry
  t.push_back(option(OptionInfo{"max_retries", "PROSODY_MAX_RETRIES", "Retry", "3",
      ">= 0", "Give up after this many attempts", true},
      &C::max_retries_, at_least(0)));
  t.push_back(option(OptionInfo{"retry_base", "PROSODY_RETRY_BASE", "Retry", "20ms",
      "duration > 0 and <= max_retry_delay", "Wait this long before first retry", true},
      &C::retry_base_, positive_duration()));
  t.push_back(option(OptionInfo{"max_retry_delay", "PROSODY_RETRY_MAX_DELAY", "Retry", "5m",
      "duration > 0", "Never wait longer than this", true},
      &C::max_retry_delay_, positive_duration()));
  // ---- Deferral
  t.push_back(option(OptionInfo{"defer_enabled", "PROSODY_DEFER_ENABLED", "Deferral", "true",
      "true or false", "Enable deferral for new messages", true},
      &C::defer_enabled_));
  t.push_back(option(OptionInfo{"defer_base", "PROSODY_DEFER_BASE", "Deferral", "1s",
      "duration >= 1s and <= defer_max_delay", "Wait this long before first deferred retry", true},
      &C::defer_base_, duration_between(std::chrono::seconds(1), kMaxDuration)));
  t.push_back(option(OptionInfo{"defer_max_delay", "PROSODY_DEFER_MAX_DELAY", "Deferral", "24h",
      "duration > 0", "Never wait longer than this", true},
      &C::defer_max_delay_, positive_duration()));
  t.push_back(option(OptionInfo{"defer_failure_threshold", "PROSODY_DEFER_FAILURE_THRESHOLD", "Deferral", "0.9",
      "0 < x <= 1", "Disable deferral when failure rate exceeds this", true},
      &C::defer_failure_threshold_, fraction_open_closed()));
  t.push_back(option(OptionInfo{"defer_failure_window", "PROSODY_DEFER_FAILURE_WINDOW", "Deferral", "5m",
      "duration > 0", "Measure failure rate over this time window", true},
      &C::defer_failure_window_, positive_duration()));
  t.push_back(option(OptionInfo{"defer_cache_size", "PROSODY_DEFER_CACHE_SIZE", "Deferral", "1024",
      ">= 1", "Track this many deferred keys in memory", true},
      &C::defer_cache_size_, at_least(1)));
  t.push_back(option(OptionInfo{"defer_store_cache_size", "PROSODY_DEFER_STORE_CACHE_SIZE", "Deferral", "8192",
      ">= 1", "Maximum deferred store cache entries per Cassandra defer store", true},
      &C::defer_store_cache_size_, at_least(1)));
  t.push_back(option(OptionInfo{"defer_seek_timeout", "PROSODY_DEFER_SEEK_TIMEOUT", "Deferral", "30s",
      "duration > 0", "Timeout when loading deferred messages", true},
      &C::defer_seek_timeout_, positive_duration()));
  t.push_back(option(OptionInfo{"defer_discard_threshold", "PROSODY_DEFER_DISCARD_THRESHOLD", "Deferral", "100",
      ">= 0", "Read optimization (rarely needs changing)", true},
      &C::defer_discard_threshold_, at_least(0)));
  // ---- Monopolization detection
  t.push_back(option(OptionInfo{"monopolization_enabled", "PROSODY_MONOPOLIZATION_ENABLED", "Monopolization", "true",
      "true or false", "Enable hot key protection", true},
      &C::monopolization_enabled_));
  t.push_back(option(OptionInfo{"monopolization_threshold", "PROSODY_MONOPOLIZATION_THRESHOLD", "Monopolization", "0.9",
      "0 < x <= 1", "Max handler time as fraction of window", true},
      &C::monopolization_threshold_, fraction_open_closed()));
  t.push_back(option(OptionInfo{"monopolization_window", "PROSODY_MONOPOLIZATION_WINDOW", "Monopolization", "5m",
      "duration > 0", "Measurement window", true},
      &C::monopolization_window_, positive_duration()));
  t.push_back(option(OptionInfo{"monopolization_cache_size", "PROSODY_MONOPOLIZATION_CACHE_SIZE", "Monopolization",
      "8192", ">= 1", "Max distinct keys to track", true},
      &C::monopolization_cache_size_, at_least(1)));
  // ---- Fair scheduling
  t.push_back(option(OptionInfo{"scheduler_failure_weight", "PROSODY_SCHEDULER_FAILURE_WEIGHT", "Scheduler", "0.3",
      "0 <= x < 1", "Fraction of processing time reserved for retries", true},
      &C::scheduler_failure_weight_, fraction_closed_open()));
  t.push_back(option(OptionInfo{"scheduler_max_wait", "PROSODY_SCHEDULER_MAX_WAIT", "Scheduler", "2m",
      "duration > 0", "Messages waiting this long get maximum priority", true},
      &C::scheduler_max_wait_, positive_duration()));
  t.push_back(option(OptionInfo{"scheduler_wait_weight", "PROSODY_SCHEDULER_WAIT_WEIGHT", "Scheduler", "200.0",
      ">= 0", "Priority boost for waiting messages (higher = more aggressive)", true},
      &C::scheduler_wait_weight_, non_negative_number()));
  t.push_back(option(OptionInfo{"scheduler_cache_size", "PROSODY_SCHEDULER_CACHE_SIZE", "Scheduler", "8192",
      ">= 1", "Max distinct keys to track", true},
      &C::scheduler_cache_size_, at_least(1)));
  // ---- Cassandra
  t.push_back(option(OptionInfo{"cassandra_nodes", "PROSODY_CASSANDRA_NODES", "Cassandra", "-",
      "comma list of host:port", "Servers to connect to (host:port)", true},
      &C::cassandra_nodes_, no_empty_items()));
  t.push_back(option(OptionInfo{"cassandra_keyspace", "PROSODY_CASSANDRA_KEYSPACE", "Cassandra", "prosody",
      "non-empty string", "Keyspace name", true},
      &C::cassandra_keyspace_, non_empty()));
  t.push_back(option(OptionInfo{"cassandra_user", "PROSODY_CASSANDRA_USER", "Cassandra", "-",
      "string", "Username", true},
      &C::cassandra_user_));
  t.push_back(secret(option(OptionInfo{"cassandra_password", "PROSODY_CASSANDRA_PASSWORD", "Cassandra", "-",
      "string", "Password (never printed)", true},
      &C::cassandra_password_)));
  t.push_back(option(OptionInfo{"cassandra_datacenter", "PROSODY_CASSANDRA_DATACENTER", "Cassandra", "-",
      "string", "Prefer this datacenter for queries", true},
      &C::cassandra_datacenter_));
  t.push_back(option(OptionInfo{"cassandra_rack", "PROSODY_CASSANDRA_RACK", "Cassandra", "-",
      "string", "Prefer this rack for queries", true},
      &C::cassandra_rack_));
  t.push_back(option(OptionInfo{"cassandra_retention", "PROSODY_CASSANDRA_RETENTION", "Cassandra", "1y",
      "0 < duration <= 630720000s", "Delete data older than this", true},
      &C::cassandra_retention_, duration_between(milliseconds(1), kCassandraMaxTtl)));
  // ---- Telemetry
  t.push_back(option(OptionInfo{"telemetry_topic", "PROSODY_TELEMETRY_TOPIC", "Telemetry", "prosody.telemetry-events",
      "topic name", "Kafka topic to produce telemetry events to", false},
      &C::telemetry_topic_, topic_name()));
  t.push_back(option(OptionInfo{"telemetry_enabled", "PROSODY_TELEMETRY_ENABLED", "Telemetry", "true",
      "true or false", "Enable or disable the telemetry emitter", false},
      &C::telemetry_enabled_));
  // clang-format on
  return t;
}

const std::vector<OptionSpec>& option_specs() {
  static const std::vector<OptionSpec> specs = Access::build_specs();
  return specs;
}

const OptionSpec* find_option(std::string_view name) {
  for (const auto& s : option_specs()) {
    if (s.info.name == name) return &s;
  }
  return nullptr;
}

bool is_secret_kafka_property(std::string_view name) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (std::string_view needle : {"password", "secret", "sasl.jaas", "sasl.oauthbearer", "ssl.key"}) {
    if (lower.find(needle) != std::string::npos) return true;
  }
  return false;
}

}  // namespace prosody::config_detail

namespace prosody {

const std::vector<OptionInfo>& option_table() {
  static const std::vector<OptionInfo> table = [] {
    std::vector<OptionInfo> out;
    for (const auto& s : config_detail::option_specs()) out.push_back(s.info);
    return out;
  }();
  return table;
}

}  // namespace prosody
