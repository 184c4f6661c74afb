#include "prosody/config.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdlib>
#include <set>

#include "config/options.h"
#include "config/parse.h"

extern char** environ;  // POSIX; only read by Config::from_env()

namespace prosody {

using config_detail::Access;
using config_detail::find_option;
using config_detail::option_specs;
using config_detail::OptionSpec;

// ---- enums -------------------------------------------------------------------

std::string_view to_string(Mode m) noexcept {
  switch (m) {
    case Mode::pipeline: return "pipeline";
    case Mode::low_latency: return "low_latency";
    case Mode::best_effort: return "best_effort";
  }
  return "unknown";
}

std::string_view to_string(SpanRelation r) noexcept {
  switch (r) {
    case SpanRelation::child: return "child";
    case SpanRelation::follows_from: return "follows_from";
  }
  return "unknown";
}

std::string_view to_string(PayloadCodec c) noexcept {
  switch (c) {
    case PayloadCodec::json: return "json";
    case PayloadCodec::raw: return "raw";
  }
  return "unknown";
}

namespace {

Error invalid(std::string message) { return Error::permanent(std::move(message), ErrorCode::invalid_config); }

}  // namespace

Result<Mode> parse_mode(std::string_view t) {
  if (t == "pipeline") return Mode::pipeline;
  if (t == "low_latency" || t == "low-latency") return Mode::low_latency;
  if (t == "best_effort" || t == "best-effort") return Mode::best_effort;
  return invalid("unknown mode " + config_detail::quoted(t) + "; expected pipeline, low_latency or best_effort");
}

Result<SpanRelation> parse_span_relation(std::string_view t) {
  if (t == "child" || t == "child_of" || t == "child-of") return SpanRelation::child;
  if (t == "follows_from" || t == "follows-from") return SpanRelation::follows_from;
  return invalid("unknown span relation " + config_detail::quoted(t) + "; expected child or follows_from");
}

Result<PayloadCodec> parse_payload_codec(std::string_view t) {
  if (t == "json") return PayloadCodec::json;
  if (t == "raw") return PayloadCodec::raw;
  return invalid("unknown payload codec " + config_detail::quoted(t) + "; expected json or raw");
}

// ---- environment ---------------------------------------------------------------

namespace {

constexpr std::string_view kKafkaPrefix = "PROSODY_KAFKA_";

// PROSODY_KAFKA_SECURITY_PROTOCOL -> security.protocol
std::string kafka_property_from_env(std::string_view var) {
  std::string name(var.substr(kKafkaPrefix.size()));
  for (char& c : name) c = c == '_' ? '.' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name;
}

// Properties prosody sets itself; overriding them would break its offset
// handling or contradict a dedicated option.
constexpr std::array<std::pair<std::string_view, std::string_view>, 5> kManagedKafkaProperties{{
    {"bootstrap.servers", "use the bootstrap_servers option"},
    {"group.id", "use the group_id option"},
    {"client.id", "use the client_id option"},
    {"enable.auto.commit", "prosody commits offsets itself"},
    {"enable.auto.offset.store", "prosody stores offsets itself"},
}};

}  // namespace

void Access::apply_env(Config& c, const Config::EnvLookup& lookup,
                       const std::vector<std::pair<std::string, std::string>>& kafka_env) {
  for (const auto& spec : option_specs()) {
    const auto raw = lookup(spec.info.env_var);
    if (!raw) continue;
    // An empty variable (FOO= in a manifest) means "not set", not "empty".
    const auto text = config_detail::trim(*raw);
    if (text.empty()) continue;
    const std::string name(spec.info.name);
    if (auto s = spec.parse_into(c, text); !s) {
      std::string why = spec.secret ? std::string("invalid value ") + std::string(config_detail::kRedacted)
                                    : s.error().message();
      c.env_errors_[name] = name + " (from " + std::string(spec.info.env_var) + "): " + why;
      continue;
    }
    c.from_env_.insert(name);
    c.env_errors_.erase(name);
  }
  for (const auto& [var, value] : kafka_env) {
    if (!var.starts_with(kKafkaPrefix) || var.size() == kKafkaPrefix.size()) continue;
    const auto text = config_detail::trim(value);
    if (text.empty()) continue;
    c.kafka_properties_[kafka_property_from_env(var)] = std::string(text);
  }
}

Config Config::from_env(const EnvLookup& lookup) {
  Config c;
  Access::apply_env(c, lookup, {});
  return c;
}

Config Config::from_env(const std::map<std::string, std::string>& environment) {
  Config c;
  std::vector<std::pair<std::string, std::string>> kafka;
  for (const auto& [k, v] : environment) {
    if (k.starts_with(kKafkaPrefix)) kafka.emplace_back(k, v);
  }
  Access::apply_env(
      c,
      [&](std::string_view name) -> std::optional<std::string> {
        auto it = environment.find(std::string(name));
        if (it == environment.end()) return std::nullopt;
        return it->second;
      },
      kafka);
  return c;
}

Config Config::from_env() {
  std::vector<std::pair<std::string, std::string>> kafka;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string_view entry(*e);
    const auto eq = entry.find('=');
    if (eq == std::string_view::npos || !entry.starts_with(kKafkaPrefix)) continue;
    kafka.emplace_back(std::string(entry.substr(0, eq)), std::string(entry.substr(eq + 1)));
  }
  Config c;
  Access::apply_env(
      c,
      [](std::string_view name) -> std::optional<std::string> {
        const char* v = std::getenv(std::string(name).c_str());
        if (v == nullptr) return std::nullopt;
        return std::string(v);
      },
      kafka);
  return c;
}

// ---- accessors ---------------------------------------------------------------

std::string Config::effective_source_system() const {
  if (source_system_) return *source_system_;
  return group_id_.value_or("");
}

Config::Duration Config::effective_timeout() const noexcept {
  if (timeout_) return *timeout_;
  // 80%, computed in integers: stall_threshold is at most 100 years of ms.
  return Duration(stall_threshold_.count() / 5 * 4 + stall_threshold_.count() % 5 * 4 / 5);
}

// ---- builder -------------------------------------------------------------------

void Config::mark_explicit(std::string_view option) {
  if (auto it = from_env_.find(option); it != from_env_.end()) from_env_.erase(it);
  if (auto it = env_errors_.find(option); it != env_errors_.end()) env_errors_.erase(it);
}

namespace {
std::vector<std::string> split(std::string_view comma_list) { return config_detail::parse_list(comma_list); }
}  // namespace

// One line per setter: store, then forget the environment's say on it.
#define PROSODY_SETTER(option, type, expr)        \
  Config& Config::with_##option(type v) {         \
    option##_ = expr;                             \
    mark_explicit(#option);                       \
    return *this;                                 \
  }

PROSODY_SETTER(bootstrap_servers, List, std::move(v))
PROSODY_SETTER(bootstrap_servers, std::string_view, split(v))
PROSODY_SETTER(group_id, std::optional<std::string>, std::move(v))
PROSODY_SETTER(subscribed_topics, List, std::move(v))
PROSODY_SETTER(subscribed_topics, std::string_view, split(v))
PROSODY_SETTER(allowed_events, List, std::move(v))
PROSODY_SETTER(allowed_events, std::string_view, split(v))
PROSODY_SETTER(source_system, std::optional<std::string>, std::move(v))
PROSODY_SETTER(mock, bool, v)
PROSODY_SETTER(mode, Mode, v)
PROSODY_SETTER(client_id, std::string, std::move(v))
PROSODY_SETTER(payload_codec, PayloadCodec, v)
PROSODY_SETTER(mock_partitions, int, v)
PROSODY_SETTER(state_dir, std::string, std::move(v))

PROSODY_SETTER(max_concurrency, int, v)
PROSODY_SETTER(max_uncommitted, int, v)
PROSODY_SETTER(max_enqueued_per_key, int, v)
PROSODY_SETTER(timeout, ConfigDuration, v.get())
PROSODY_SETTER(timeout, std::nullopt_t, std::optional<Duration>(v))
PROSODY_SETTER(commit_interval, ConfigDuration, v.get())
PROSODY_SETTER(poll_interval, ConfigDuration, v.get())
PROSODY_SETTER(shutdown_timeout, ConfigDuration, v.get())
PROSODY_SETTER(stall_threshold, ConfigDuration, v.get())
PROSODY_SETTER(probe_port, std::optional<int>, v)
PROSODY_SETTER(failure_topic, std::optional<std::string>, std::move(v))
PROSODY_SETTER(idempotence_cache_size, int, v)
PROSODY_SETTER(idempotence_version, std::string, std::move(v))
PROSODY_SETTER(idempotence_ttl, ConfigDuration, v.get())
PROSODY_SETTER(slab_size, ConfigDuration, v.get())
PROSODY_SETTER(message_spans, SpanRelation, v)
PROSODY_SETTER(timer_spans, SpanRelation, v)

PROSODY_SETTER(send_timeout, ConfigDuration, v.get())

PROSODY_SETTER(max_retries, int, v)
PROSODY_SETTER(retry_base, ConfigDuration, v.get())
PROSODY_SETTER(max_retry_delay, ConfigDuration, v.get())

PROSODY_SETTER(defer_enabled, bool, v)
PROSODY_SETTER(defer_base, ConfigDuration, v.get())
PROSODY_SETTER(defer_max_delay, ConfigDuration, v.get())
PROSODY_SETTER(defer_failure_threshold, double, v)
PROSODY_SETTER(defer_failure_window, ConfigDuration, v.get())
PROSODY_SETTER(defer_cache_size, int, v)
PROSODY_SETTER(defer_store_cache_size, int, v)
PROSODY_SETTER(defer_seek_timeout, ConfigDuration, v.get())
PROSODY_SETTER(defer_discard_threshold, int, v)

PROSODY_SETTER(monopolization_enabled, bool, v)
PROSODY_SETTER(monopolization_threshold, double, v)
PROSODY_SETTER(monopolization_window, ConfigDuration, v.get())
PROSODY_SETTER(monopolization_cache_size, int, v)

PROSODY_SETTER(scheduler_failure_weight, double, v)
PROSODY_SETTER(scheduler_max_wait, ConfigDuration, v.get())
PROSODY_SETTER(scheduler_wait_weight, double, v)
PROSODY_SETTER(scheduler_cache_size, int, v)

PROSODY_SETTER(cassandra_nodes, List, std::move(v))
PROSODY_SETTER(cassandra_nodes, std::string_view, split(v))
PROSODY_SETTER(cassandra_keyspace, std::string, std::move(v))
PROSODY_SETTER(cassandra_user, std::optional<std::string>, std::move(v))
PROSODY_SETTER(cassandra_password, std::optional<std::string>, std::move(v))
PROSODY_SETTER(cassandra_datacenter, std::optional<std::string>, std::move(v))
PROSODY_SETTER(cassandra_rack, std::optional<std::string>, std::move(v))
PROSODY_SETTER(cassandra_retention, ConfigDuration, v.get())

PROSODY_SETTER(telemetry_topic, std::string, std::move(v))
PROSODY_SETTER(telemetry_enabled, bool, v)

#undef PROSODY_SETTER

Config& Config::with_kafka_property(std::string name, std::string value) {
  kafka_properties_[std::move(name)] = std::move(value);
  return *this;
}

Status Config::set_option(std::string_view name, std::string_view text) {
  if (name.starts_with("kafka.") && name.size() > 6) {
    with_kafka_property(std::string(name.substr(6)), std::string(text));
    return {};
  }
  const OptionSpec* spec = find_option(name);
  if (spec == nullptr) {
    return Error::permanent("unknown option " + config_detail::quoted(name), ErrorCode::invalid_argument);
  }
  const auto trimmed = config_detail::trim(text);
  if (trimmed.empty()) return invalid(std::string(name) + ": empty value");
  if (auto s = spec->parse_into(*this, trimmed); !s) {
    if (spec->secret) return invalid(std::string(name) + ": invalid value " + std::string(config_detail::kRedacted));
    return invalid(std::string(name) + ": " + s.error().message());
  }
  mark_explicit(name);
  return {};
}

std::optional<std::string> Config::option_text(std::string_view name) const {
  if (name.starts_with("kafka.")) {
    const auto it = kafka_properties_.find(std::string(name.substr(6)));
    if (it == kafka_properties_.end()) return std::nullopt;
    if (config_detail::is_secret_kafka_property(it->first)) return std::string(config_detail::kRedacted);
    return it->second;
  }
  const OptionSpec* spec = find_option(name);
  if (spec == nullptr) return std::nullopt;
  auto text = spec->format(*this);
  if (spec->secret && text != "none") return std::string(config_detail::kRedacted);
  return text;
}

// ---- validation ----------------------------------------------------------------

namespace {

std::string plural(std::size_t n) { return n == 1 ? "1 problem" : std::to_string(n) + " problems"; }

Status report(const std::vector<std::string>& problems) {
  if (problems.empty()) return {};
  std::string msg = "invalid configuration (" + plural(problems.size()) + "):";
  for (const auto& p : problems) msg += "\n  - " + p;
  return invalid(std::move(msg));
}

}  // namespace

std::vector<std::string> Access::problems(const Config& c) {
  std::vector<std::string> out;
  const auto label = [&c](std::string_view option) {
    std::string s(option);
    if (c.from_env_.contains(option)) {
      if (const auto* spec = find_option(option)) s += " (from " + std::string(spec->info.env_var) + ")";
    }
    return s;
  };

  // Options already reported; relations involving them are not re-checked.
  std::set<std::string_view> reported;
  for (const auto& spec : option_specs()) {
    // A value that failed to parse left the default in place; report the
    // parse failure rather than re-checking the default.
    if (auto it = c.env_errors_.find(spec.info.name); it != c.env_errors_.end()) {
      out.push_back(it->second);
      reported.insert(spec.info.name);
      continue;
    }
    const auto problem = spec.check(c);
    if (!problem) continue;
    reported.insert(spec.info.name);
    const std::string shown = spec.secret ? std::string(config_detail::kRedacted) : spec.format(c);
    out.push_back(label(spec.info.name) + ": got " + config_detail::quoted(shown) + "; " +
                  (problem->empty() ? "must be " + std::string(spec.info.accepted) : *problem));
  }

  // Relations between fields, only when both sides are fine on their own.
  const auto parsed = [&reported](std::string_view a, std::string_view b) {
    return !reported.contains(a) && !reported.contains(b);
  };
  if (parsed("retry_base", "max_retry_delay") && c.retry_base_ > c.max_retry_delay_) {
    out.push_back(label("retry_base") + ": got " + format_duration(c.retry_base_) + "; must be <= " +
                  label("max_retry_delay") + " (" + format_duration(c.max_retry_delay_) + ")");
  }
  if (parsed("defer_base", "defer_max_delay") && c.defer_base_ > c.defer_max_delay_) {
    out.push_back(label("defer_base") + ": got " + format_duration(c.defer_base_) + "; must be <= " +
                  label("defer_max_delay") + " (" + format_duration(c.defer_max_delay_) + ")");
  }

  for (const auto& [name, value] : c.kafka_properties_) {
    if (config_detail::trim(name).empty()) {
      out.push_back("kafka property with an empty name");
      continue;
    }
    for (const auto& [managed, why] : kManagedKafkaProperties) {
      if (name == managed) out.push_back("kafka." + name + ": cannot be overridden; " + std::string(why));
    }
  }

  if (!c.mock_ && c.bootstrap_servers_.empty() && !c.env_errors_.contains("bootstrap_servers")) {
    out.push_back("bootstrap_servers (PROSODY_BOOTSTRAP_SERVERS): not set; required unless mock is true");
  }
  return out;
}

Status Config::validate() const { return report(Access::problems(*this)); }

Status Config::validate_for_consumer() const {
  auto out = Access::problems(*this);
  if (!group_id_ && !env_errors_.contains("group_id")) {
    out.push_back("group_id (PROSODY_GROUP_ID): not set; required to subscribe");
  }
  if (subscribed_topics_.empty() && !env_errors_.contains("subscribed_topics")) {
    out.push_back("subscribed_topics (PROSODY_SUBSCRIBED_TOPICS): not set; required to subscribe");
  }
  if (mode_ == Mode::low_latency && !failure_topic_ && !env_errors_.contains("failure_topic")) {
    out.push_back("failure_topic (PROSODY_FAILURE_TOPIC): not set; required in low_latency mode");
  }
  return report(out);
}

// ---- introspection -------------------------------------------------------------

std::vector<std::string> Config::inactive_options_in_use() const {
  static const Config defaults;
  std::vector<std::string> out;
  for (const auto& spec : option_specs()) {
    if (spec.info.active) continue;
    if (spec.format(*this) != spec.format(defaults)) out.emplace_back(spec.info.name);
  }
  return out;
}

std::string Config::describe() const {
  std::string out;
  for (const auto& spec : option_specs()) {
    const std::string_view name = spec.info.name;
    std::string value = spec.format(*this);
    if (spec.secret && value != "none") {
      value = config_detail::kRedacted;
    } else if (name == "timeout" && !timeout_) {
      value = format_duration(effective_timeout()) + " (80% of stall_threshold)";
    } else if (name == "source_system" && !source_system_) {
      value = group_id_ ? *group_id_ + " (group_id)" : "none";
    } else if (name == "client_id" && client_id_.empty()) {
      value = "(hostname)";
    } else if (name == "state_dir" && state_dir_.empty()) {
      value = "($XDG_STATE_HOME or ~/.local/state)/prosody";
    } else if (name == "allowed_events" && allowed_events_.empty()) {
      value = "(all)";
    } else if (name == "probe_port" && !probe_port_) {
      value = "none (disabled)";
    }
    out += std::string(name) + " = " + value;
    if (!spec.info.active) out += "  [not yet active]";
    out += '\n';
  }
  for (const auto& [name, value] : kafka_properties_) {
    out += "kafka." + name + " = " +
           (config_detail::is_secret_kafka_property(name) ? std::string(config_detail::kRedacted) : value) + '\n';
  }
  return out;
}

std::string option_table_markdown() {
  const auto cell = [](std::string_view text) {
    std::string out;
    for (char c : text) {
      if (c == '|') out += '\\';
      out += c;
    }
    return out;
  };
  std::string out =
      "| Option | Environment variable | Default | Description | Status |\n"
      "|---|---|---|---|---|\n";
  for (const auto& o : option_table()) {
    // Code spans keep "<group_id>"-style defaults from rendering as HTML.
    const std::string def = o.default_text == "-" ? "-" : "`" + cell(o.default_text) + "`";
    out += "| `" + cell(o.name) + "` | `" + cell(o.env_var) + "` | " + def + " | " +
           cell(o.description) + " (accepted: " + cell(o.accepted) + ") | " +
           (o.active ? "active" : "not yet active") + " |\n";
  }
  out +=
      "| `kafka.<property>` (`with_kafka_property`) | `PROSODY_KAFKA_<NAME>` | - | Any librdkafka property, passed "
      "through verbatim; the variable name maps to the property lower-cased with `_` replaced by `.` "
      "(`PROSODY_KAFKA_SECURITY_PROTOCOL` = `security.protocol`); values of names containing password, secret, "
      "sasl.jaas, sasl.oauthbearer or ssl.key are never printed | active |\n";
  return out;
}

}  // namespace prosody
