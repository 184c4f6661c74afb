#include "prosody/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <map>
#include <set>

namespace {

using namespace std::chrono_literals;
using prosody::Config;
using prosody::Mode;
using prosody::option_table;
using prosody::PayloadCodec;
using prosody::SpanRelation;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::UnorderedElementsAre;

using Env = std::map<std::string, std::string>;

Config::EnvLookup lookup_in(const Env& env) {
  return [env](std::string_view name) -> std::optional<std::string> {
    auto it = env.find(std::string(name));
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
}

// A config that passes validate_for_consumer(), to break one field at a time.
Config valid_consumer() {
  Config c;
  c.with_bootstrap_servers("localhost:9092").with_group_id("g").with_subscribed_topics("orders");
  return c;
}

std::string error_of(const prosody::Status& s) { return s.ok() ? std::string() : s.error().message(); }

// Stored value of every option in a default Config, in environment syntax.
// Mirrors the seed option tables; every table row must be listed here.
const std::map<std::string, std::string>& expected_defaults() {
  static const std::map<std::string, std::string> m = {
      {"bootstrap_servers", "none"},
      {"group_id", "none"},
      {"subscribed_topics", "none"},
      {"allowed_events", "none"},
      {"source_system", "none"},
      {"mock", "false"},
      {"mode", "pipeline"},
      {"client_id", ""},
      {"payload_codec", "json"},
      {"mock_partitions", "3"},
      {"state_dir", ""},
      {"max_concurrency", "32"},
      {"max_uncommitted", "64"},
      {"max_enqueued_per_key", "8"},
      {"timeout", "none"},
      {"commit_interval", "1s"},
      {"poll_interval", "100ms"},
      {"shutdown_timeout", "30s"},
      {"stall_threshold", "5m"},
      {"probe_port", "8000"},
      {"failure_topic", "none"},
      {"idempotence_cache_size", "8192"},
      {"idempotence_version", "1"},
      {"idempotence_ttl", "7d"},
      {"slab_size", "1h"},
      {"message_spans", "child"},
      {"timer_spans", "follows_from"},
      {"send_timeout", "1s"},
      {"max_retries", "3"},
      {"retry_base", "20ms"},
      {"max_retry_delay", "5m"},
      {"defer_enabled", "true"},
      {"defer_base", "1s"},
      {"defer_max_delay", "1d"},
      {"defer_failure_threshold", "0.9"},
      {"defer_failure_window", "5m"},
      {"defer_cache_size", "1024"},
      {"defer_store_cache_size", "8192"},
      {"defer_seek_timeout", "30s"},
      {"defer_discard_threshold", "100"},
      {"monopolization_enabled", "true"},
      {"monopolization_threshold", "0.9"},
      {"monopolization_window", "5m"},
      {"monopolization_cache_size", "8192"},
      {"scheduler_failure_weight", "0.3"},
      {"scheduler_max_wait", "2m"},
      {"scheduler_wait_weight", "200"},
      {"scheduler_cache_size", "8192"},
      {"cassandra_nodes", "none"},
      {"cassandra_keyspace", "prosody"},
      {"cassandra_user", "none"},
      {"cassandra_password", "none"},
      {"cassandra_datacenter", "none"},
      {"cassandra_rack", "none"},
      {"cassandra_retention", "1y"},
      {"telemetry_topic", "prosody.telemetry-events"},
      {"telemetry_enabled", "true"},
  };
  return m;
}

// option -> {environment text, resulting option_text}; all non-default.
const std::map<std::string, std::pair<std::string, std::string>>& env_samples() {
  static const std::map<std::string, std::pair<std::string, std::string>> m = {
      {"bootstrap_servers", {"k1:9092, k2:9092", "k1:9092,k2:9092"}},
      {"group_id", {"orders", "orders"}},
      {"subscribed_topics", {"a, b", "a,b"}},
      {"allowed_events", {"user.,account.", "user.,account."}},
      {"source_system", {"svc", "svc"}},
      {"mock", {"true", "true"}},
      {"mode", {"low-latency", "low_latency"}},
      {"client_id", {"host-1", "host-1"}},
      {"payload_codec", {"raw", "raw"}},
      {"mock_partitions", {"7", "7"}},
      {"state_dir", {"/var/lib/prosody", "/var/lib/prosody"}},
      {"max_concurrency", {"5", "5"}},
      {"max_uncommitted", {"6", "6"}},
      {"max_enqueued_per_key", {"2", "2"}},
      {"timeout", {"45s", "45s"}},
      {"commit_interval", {"2s", "2s"}},
      {"poll_interval", {"50ms", "50ms"}},
      {"shutdown_timeout", {"1m", "1m"}},
      {"stall_threshold", {"10m", "10m"}},
      {"probe_port", {"none", "none"}},
      {"failure_topic", {"dlq", "dlq"}},
      {"idempotence_cache_size", {"0", "0"}},
      {"idempotence_version", {"2", "2"}},
      {"idempotence_ttl", {"604801", "7d 1s"}},
      {"slab_size", {"30m", "30m"}},
      {"message_spans", {"follows_from", "follows_from"}},
      {"timer_spans", {"child", "child"}},
      {"send_timeout", {"3s", "3s"}},
      {"max_retries", {"0", "0"}},
      {"retry_base", {"1.5s", "1s 500ms"}},
      {"max_retry_delay", {"1h", "1h"}},
      {"defer_enabled", {"false", "false"}},
      {"defer_base", {"2s", "2s"}},
      {"defer_max_delay", {"48h", "2d"}},
      {"defer_failure_threshold", {"0.5", "0.5"}},
      {"defer_failure_window", {"1m", "1m"}},
      {"defer_cache_size", {"10", "10"}},
      {"defer_store_cache_size", {"11", "11"}},
      {"defer_seek_timeout", {"1m", "1m"}},
      {"defer_discard_threshold", {"5", "5"}},
      {"monopolization_enabled", {"false", "false"}},
      {"monopolization_threshold", {"0.5", "0.5"}},
      {"monopolization_window", {"1m", "1m"}},
      {"monopolization_cache_size", {"12", "12"}},
      {"scheduler_failure_weight", {"0.1", "0.1"}},
      {"scheduler_max_wait", {"1m", "1m"}},
      {"scheduler_wait_weight", {"50.5", "50.5"}},
      {"scheduler_cache_size", {"13", "13"}},
      {"cassandra_nodes", {"c1:9042,c2:9042", "c1:9042,c2:9042"}},
      {"cassandra_keyspace", {"ks", "ks"}},
      {"cassandra_user", {"bob", "bob"}},
      {"cassandra_password", {"hunter2", "[redacted]"}},
      {"cassandra_datacenter", {"dc1", "dc1"}},
      {"cassandra_rack", {"r1", "r1"}},
      {"cassandra_retention", {"30d", "30d"}},
      {"telemetry_topic", {"tele", "tele"}},
      {"telemetry_enabled", {"false", "false"}},
  };
  return m;
}

TEST(Config, TableListsEveryOptionOnce) {
  std::set<std::string_view> names;
  std::set<std::string_view> envs;
  for (const auto& o : option_table()) {
    EXPECT_TRUE(names.insert(o.name).second) << o.name;
    EXPECT_TRUE(envs.insert(o.env_var).second) << o.env_var;
    EXPECT_TRUE(o.env_var.starts_with("PROSODY_")) << o.env_var;
    EXPECT_FALSE(o.description.empty()) << o.name;
    EXPECT_FALSE(o.accepted.empty()) << o.name;
    EXPECT_TRUE(expected_defaults().contains(std::string(o.name))) << "no expected default for " << o.name;
    EXPECT_TRUE(env_samples().contains(std::string(o.name))) << "no env sample for " << o.name;
  }
  EXPECT_EQ(names.size(), expected_defaults().size());
}

TEST(Config, DefaultsOfEveryOptionMatchTheSeeds) {
  const Config c;
  for (const auto& [name, text] : expected_defaults()) {
    EXPECT_EQ(c.option_text(name), text) << name;
  }
}

TEST(Config, TypedDefaults) {
  const Config c;
  EXPECT_THAT(c.bootstrap_servers(), IsEmpty());
  EXPECT_FALSE(c.group_id());
  EXPECT_FALSE(c.mock());
  EXPECT_EQ(c.mode(), Mode::pipeline);
  EXPECT_EQ(c.payload_codec(), PayloadCodec::json);
  EXPECT_EQ(c.max_concurrency(), 32);
  EXPECT_EQ(c.max_uncommitted(), 64);
  EXPECT_EQ(c.max_enqueued_per_key(), 8);
  EXPECT_EQ(c.mock_partitions(), 3);
  EXPECT_EQ(c.commit_interval(), 1s);
  EXPECT_EQ(c.poll_interval(), 100ms);
  EXPECT_EQ(c.shutdown_timeout(), 30s);
  EXPECT_EQ(c.stall_threshold(), 5min);
  EXPECT_EQ(c.effective_timeout(), 4min);  // 80% of stall_threshold
  EXPECT_EQ(c.probe_port(), 8000);
  EXPECT_EQ(c.send_timeout(), 1s);
  EXPECT_EQ(c.max_retries(), 3);
  EXPECT_EQ(c.retry_base(), 20ms);
  EXPECT_EQ(c.max_retry_delay(), 5min);
  EXPECT_EQ(c.idempotence_ttl(), std::chrono::seconds(604800));
  EXPECT_EQ(c.defer_max_delay(), 24h);
  EXPECT_EQ(c.defer_store_cache_size(), 8192);
  EXPECT_DOUBLE_EQ(c.defer_failure_threshold(), 0.9);
  EXPECT_DOUBLE_EQ(c.scheduler_failure_weight(), 0.3);
  EXPECT_DOUBLE_EQ(c.scheduler_wait_weight(), 200.0);
  EXPECT_EQ(c.message_spans(), SpanRelation::child);
  EXPECT_EQ(c.timer_spans(), SpanRelation::follows_from);
  EXPECT_EQ(c.cassandra_retention(), std::chrono::days(365));
  EXPECT_EQ(c.telemetry_topic(), "prosody.telemetry-events");
  EXPECT_THAT(c.kafka_properties(), IsEmpty());
}

TEST(Config, EnvironmentVariableNamesFollowTheReference) {
  std::map<std::string_view, std::string_view> env;
  for (const auto& o : option_table()) env[o.name] = o.env_var;
  EXPECT_EQ(env["max_retry_delay"], "PROSODY_RETRY_MAX_DELAY");
  EXPECT_EQ(env["defer_store_cache_size"], "PROSODY_DEFER_STORE_CACHE_SIZE");
  EXPECT_EQ(env["max_enqueued_per_key"], "PROSODY_MAX_ENQUEUED_PER_KEY");
  EXPECT_EQ(env["mode"], "PROSODY_MODE");
  EXPECT_EQ(env["cassandra_retention"], "PROSODY_CASSANDRA_RETENTION");
}

TEST(Config, EveryOptionFallsBackToItsEnvironmentVariable) {
  for (const auto& o : option_table()) {
    SCOPED_TRACE(o.name);
    const auto& [text, expected] = env_samples().at(std::string(o.name));
    const Config c = Config::from_env(lookup_in({{std::string(o.env_var), text}}));
    EXPECT_EQ(c.option_text(o.name), expected);
    EXPECT_NE(expected, expected_defaults().at(std::string(o.name))) << "sample must differ from the default";
    // Nothing else changed.
    for (const auto& other : option_table()) {
      if (other.name == o.name) continue;
      EXPECT_EQ(c.option_text(other.name), expected_defaults().at(std::string(other.name))) << other.name;
    }
  }
}

TEST(Config, TypedValuesFromEnvironment) {
  const Config c = Config::from_env(lookup_in({{"PROSODY_BOOTSTRAP_SERVERS", " k1:9092 , k2:9092 ,"},
                                               {"PROSODY_RETRY_MAX_DELAY", "1h"},
                                               {"PROSODY_CASSANDRA_PASSWORD", "hunter2"},
                                               {"PROSODY_PROBE_PORT", "9100"},
                                               {"PROSODY_MODE", "best-effort"},
                                               {"PROSODY_TIMEOUT", "30.0"}}));
  EXPECT_THAT(c.bootstrap_servers(), ElementsAre("k1:9092", "k2:9092"));
  EXPECT_EQ(c.max_retry_delay(), 1h);
  EXPECT_EQ(c.cassandra_password(), "hunter2");
  EXPECT_EQ(c.probe_port(), 9100);
  EXPECT_EQ(c.mode(), Mode::best_effort);
  EXPECT_EQ(c.effective_timeout(), 30s);
}

TEST(Config, BuilderOverridesEnvironment) {
  Config c = Config::from_env(lookup_in({{"PROSODY_MAX_CONCURRENCY", "5"}, {"PROSODY_GROUP_ID", "env-group"}}));
  c.with_max_concurrency(9).with_group_id("code-group");
  EXPECT_EQ(c.max_concurrency(), 9);
  EXPECT_EQ(c.group_id(), "code-group");
}

TEST(Config, BuilderSupersedesAnEnvironmentParseError) {
  Config c = Config::from_env(lookup_in({{"PROSODY_MAX_CONCURRENCY", "lots"}}));
  c.with_mock(true);
  EXPECT_THAT(error_of(c.validate()), HasSubstr("PROSODY_MAX_CONCURRENCY"));
  c.with_max_concurrency(4);
  EXPECT_TRUE(c.validate().ok()) << error_of(c.validate());
}

TEST(Config, EnvironmentParseErrorsAreReportedByValidate) {
  const Config c = Config::from_env(lookup_in({{"PROSODY_MOCK", "true"},
                                               {"PROSODY_MAX_CONCURRENCY", "lots"},
                                               {"PROSODY_POLL_INTERVAL", "5 fortnights"},
                                               {"PROSODY_DEFER_ENABLED", "yes"}}));
  // The bad values did not replace the defaults silently...
  EXPECT_EQ(c.max_concurrency(), 32);
  // ...and are all reported.
  const auto msg = error_of(c.validate());
  EXPECT_THAT(msg, HasSubstr("3 problems"));
  EXPECT_THAT(msg, HasSubstr("max_concurrency (from PROSODY_MAX_CONCURRENCY)"));
  EXPECT_THAT(msg, HasSubstr("\"lots\""));
  EXPECT_THAT(msg, HasSubstr("poll_interval (from PROSODY_POLL_INTERVAL)"));
  EXPECT_THAT(msg, HasSubstr("\"5 fortnights\""));
  EXPECT_THAT(msg, HasSubstr("defer_enabled (from PROSODY_DEFER_ENABLED)"));
  ASSERT_FALSE(c.validate().ok());
  EXPECT_TRUE(c.validate().error().is_permanent());
  EXPECT_EQ(c.validate().error().code(), prosody::ErrorCode::invalid_config);
}

TEST(Config, EmptyEnvironmentValueMeansUnset) {
  const Config c = Config::from_env(lookup_in({{"PROSODY_MAX_CONCURRENCY", ""}, {"PROSODY_GROUP_ID", "  "}}));
  EXPECT_EQ(c.max_concurrency(), 32);
  EXPECT_FALSE(c.group_id());
}

TEST(Config, BooleansMustBeExactlyTrueOrFalse) {
  EXPECT_TRUE(Config::from_env(lookup_in({{"PROSODY_MOCK", "true"}})).mock());
  EXPECT_FALSE(Config::from_env(lookup_in({{"PROSODY_MOCK", "false"}})).mock());
  for (const char* bad : {"TRUE", "True", "1", "yes", "on", "t"}) {
    SCOPED_TRACE(bad);
    const Config c = Config::from_env(lookup_in({{"PROSODY_MOCK", bad}}));
    EXPECT_FALSE(c.mock());
    EXPECT_THAT(error_of(c.validate()), HasSubstr("mock (from PROSODY_MOCK): expected exactly true or false"));
  }
}

TEST(Config, NoneUnsetsOptionalValues) {
  const Config c = Config::from_env(lookup_in({{"PROSODY_PROBE_PORT", "none"},
                                               {"PROSODY_TIMEOUT", "none"},
                                               {"PROSODY_GROUP_ID", "none"},
                                               {"PROSODY_ALLOWED_EVENTS", "none"},
                                               {"PROSODY_CLIENT_ID", "none"}}));
  EXPECT_FALSE(c.probe_port());
  EXPECT_FALSE(c.timeout());
  EXPECT_FALSE(c.group_id());
  EXPECT_THAT(c.allowed_events(), IsEmpty());
  EXPECT_EQ(c.client_id(), "");
  EXPECT_FALSE(Config::from_env(lookup_in({{"PROSODY_PROBE_PORT", "false"}})).probe_port());

  Config b;
  ASSERT_TRUE(b.set_option("timeout", "10s").ok());
  ASSERT_TRUE(b.set_option("timeout", "none").ok());
  EXPECT_FALSE(b.timeout());
}

TEST(Config, NoneIsNotAValueForRequiredOptions) {
  const Config c = Config::from_env(lookup_in({{"PROSODY_MAX_CONCURRENCY", "none"}, {"PROSODY_MOCK", "true"}}));
  EXPECT_THAT(error_of(c.validate()), HasSubstr("max_concurrency (from PROSODY_MAX_CONCURRENCY)"));
}

TEST(Config, ListsAreCommaSeparatedAndTrimmed) {
  Config c;
  c.with_subscribed_topics(" a , b ,, c ");
  EXPECT_THAT(c.subscribed_topics(), ElementsAre("a", "b", "c"));
  c.with_subscribed_topics({"x", "y"});
  EXPECT_THAT(c.subscribed_topics(), ElementsAre("x", "y"));
  c.with_allowed_events(std::vector<std::string>{"user."});
  EXPECT_THAT(c.allowed_events(), ElementsAre("user."));
  const Config e = Config::from_env(lookup_in({{"PROSODY_CASSANDRA_NODES", "  c1:9042 ,c2:9042  "}}));
  EXPECT_THAT(e.cassandra_nodes(), ElementsAre("c1:9042", "c2:9042"));
}

TEST(Config, EnumsParseAndPrint) {
  EXPECT_EQ(*prosody::parse_mode("low-latency"), Mode::low_latency);
  EXPECT_EQ(*prosody::parse_mode("low_latency"), Mode::low_latency);
  EXPECT_EQ(*prosody::parse_mode("best-effort"), Mode::best_effort);
  EXPECT_EQ(*prosody::parse_mode("pipeline"), Mode::pipeline);
  EXPECT_THAT(prosody::parse_mode("fast").error().message(), HasSubstr("\"fast\""));
  EXPECT_EQ(*prosody::parse_span_relation("follows_from"), SpanRelation::follows_from);
  EXPECT_EQ(*prosody::parse_span_relation("child"), SpanRelation::child);
  EXPECT_FALSE(prosody::parse_span_relation("sibling").ok());
  EXPECT_EQ(*prosody::parse_payload_codec("raw"), PayloadCodec::raw);
  EXPECT_FALSE(prosody::parse_payload_codec("avro").ok());
  EXPECT_EQ(prosody::to_string(Mode::best_effort), "best_effort");
  EXPECT_EQ(prosody::to_string(SpanRelation::follows_from), "follows_from");
  EXPECT_EQ(prosody::to_string(PayloadCodec::json), "json");
}

TEST(Config, KafkaPropertiesPassThroughFromEnvironment) {
  const Config c = Config::from_env(Env{{"PROSODY_KAFKA_SECURITY_PROTOCOL", "SASL_SSL"},
                                        {"PROSODY_KAFKA_SESSION_TIMEOUT_MS", " 6000 "},
                                        {"PROSODY_KAFKA_", "ignored"},
                                        {"PROSODY_GROUP_ID", "g"}});
  EXPECT_THAT(c.kafka_properties(),
              UnorderedElementsAre(std::pair<const std::string, std::string>{"security.protocol", "SASL_SSL"},
                                   std::pair<const std::string, std::string>{"session.timeout.ms", "6000"}));
  EXPECT_EQ(c.group_id(), "g");
}

TEST(Config, KafkaPropertiesFromProcessEnvironment) {
  ::setenv("PROSODY_KAFKA_FETCH_MIN_BYTES", "42", 1);
  ::setenv("PROSODY_MAX_UNCOMMITTED", "77", 1);
  const Config c = Config::from_env();
  ::unsetenv("PROSODY_KAFKA_FETCH_MIN_BYTES");
  ::unsetenv("PROSODY_MAX_UNCOMMITTED");
  EXPECT_EQ(c.kafka_properties().at("fetch.min.bytes"), "42");
  EXPECT_EQ(c.max_uncommitted(), 77);
}

TEST(Config, BuilderKafkaPropertyOverridesEnvironment) {
  Config c = Config::from_env(Env{{"PROSODY_KAFKA_SECURITY_PROTOCOL", "SSL"}});
  c.with_kafka_property("security.protocol", "PLAINTEXT");
  EXPECT_EQ(c.kafka_properties().at("security.protocol"), "PLAINTEXT");
}

TEST(Config, RejectsNegativeConcurrency) {
  Config c = valid_consumer();
  c.with_max_concurrency(-1);
  EXPECT_THAT(error_of(c.validate()), HasSubstr("max_concurrency: got \"-1\"; must be >= 1"));
}

// {option, bad value in set_option syntax}; each must fail validate() and the
// message must name the option.
const std::vector<std::pair<std::string, std::string>>& bad_values() {
  static const std::vector<std::pair<std::string, std::string>> v = {
      {"max_concurrency", "0"},
      {"max_uncommitted", "0"},
      {"max_enqueued_per_key", "0"},
      {"mock_partitions", "0"},
      {"timeout", "0s"},
      {"commit_interval", "0s"},
      {"poll_interval", "0ms"},
      {"stall_threshold", "0s"},
      {"probe_port", "65536"},
      {"probe_port", "-1"},
      {"failure_topic", "dead letters"},
      {"subscribed_topics", "ok,not ok"},
      {"subscribed_topics", "^"},
      {"idempotence_cache_size", "-1"},
      {"idempotence_ttl", "59s"},
      {"idempotence_ttl", "630720001s"},
      {"slab_size", "0s"},
      {"send_timeout", "0s"},
      {"max_retries", "-1"},
      {"retry_base", "0s"},
      {"max_retry_delay", "0s"},
      {"defer_base", "999ms"},
      {"defer_max_delay", "0s"},
      {"defer_failure_threshold", "0"},
      {"defer_failure_threshold", "1.01"},
      {"defer_failure_window", "0s"},
      {"defer_cache_size", "0"},
      {"defer_store_cache_size", "0"},
      {"defer_seek_timeout", "0s"},
      {"defer_discard_threshold", "-1"},
      {"monopolization_threshold", "0"},
      {"monopolization_threshold", "2"},
      {"monopolization_window", "0s"},
      {"monopolization_cache_size", "0"},
      {"scheduler_failure_weight", "1"},
      {"scheduler_failure_weight", "-0.1"},
      {"scheduler_max_wait", "0s"},
      {"scheduler_wait_weight", "-1"},
      {"scheduler_cache_size", "0"},
      {"cassandra_retention", "0s"},
      {"cassandra_retention", "630720001s"},
      {"telemetry_topic", "a/b"},
      {"telemetry_topic", ".."},
  };
  return v;
}

TEST(Config, EveryBadValueIsRejectedNamingTheField) {
  for (const auto& [name, text] : bad_values()) {
    SCOPED_TRACE(name + "=" + text);
    Config c = valid_consumer();
    ASSERT_TRUE(c.set_option(name, text).ok()) << error_of(c.set_option(name, text));
    const auto msg = error_of(c.validate());
    EXPECT_THAT(msg, HasSubstr(name + ": got "));
    EXPECT_THAT(msg, HasSubstr("1 problem"));
  }
}

TEST(Config, BadValuesFromEnvironmentNameTheVariable) {
  for (const auto& [name, text] : bad_values()) {
    SCOPED_TRACE(name + "=" + text);
    std::string env_var;
    for (const auto& o : option_table()) {
      if (o.name == name) env_var = o.env_var;
    }
    const Config c = Config::from_env(lookup_in({{env_var, text}, {"PROSODY_MOCK", "true"}}));
    EXPECT_THAT(error_of(c.validate()), HasSubstr(name + " (from " + env_var + "): got "));
  }
}

TEST(Config, EmptyStringsAreRejected) {
  Config c = valid_consumer();
  c.with_group_id("").with_source_system("").with_cassandra_keyspace("").with_idempotence_version("");
  const auto msg = error_of(c.validate());
  EXPECT_THAT(msg, HasSubstr("4 problems"));
  EXPECT_THAT(msg, HasSubstr("group_id: got \"\""));
  EXPECT_THAT(msg, HasSubstr("source_system: got \"\""));
  EXPECT_THAT(msg, HasSubstr("cassandra_keyspace: got \"\""));
  EXPECT_THAT(msg, HasSubstr("idempotence_version: got \"\""));
}

TEST(Config, SetOptionReportsParseErrorsImmediately) {
  Config c;
  const auto s = c.set_option("max_concurrency", "ten");
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.error().message(), HasSubstr("max_concurrency"));
  EXPECT_THAT(s.error().message(), HasSubstr("\"ten\""));
  EXPECT_EQ(c.set_option("no_such_option", "1").error().code(), prosody::ErrorCode::invalid_argument);
  EXPECT_FALSE(c.set_option("max_concurrency", " ").ok());
  EXPECT_FALSE(c.set_option("max_concurrency", "99999999999").ok());
  EXPECT_FALSE(c.set_option("scheduler_wait_weight", "nan").ok());
  ASSERT_TRUE(c.set_option("kafka.linger.ms", "5").ok());
  EXPECT_EQ(c.kafka_properties().at("linger.ms"), "5");
}

TEST(Config, ValidateReportsSeveralBadFieldsAtOnce) {
  Config c = valid_consumer();
  c.with_max_concurrency(0).with_scheduler_failure_weight(1.5).with_probe_port(70000).with_poll_interval(0ms);
  const auto msg = error_of(c.validate());
  EXPECT_THAT(msg, HasSubstr("4 problems"));
  EXPECT_THAT(msg, HasSubstr("max_concurrency: got \"0\"; must be >= 1"));
  EXPECT_THAT(msg, HasSubstr("scheduler_failure_weight: got \"1.5\"; must be 0 <= x < 1"));
  EXPECT_THAT(msg, HasSubstr("probe_port: got \"70000\"; must be 0..65535"));
  EXPECT_THAT(msg, HasSubstr("poll_interval: got \"0s\"; must be duration > 0"));
}

TEST(Config, RetryBaseMustNotExceedMaxRetryDelay) {
  Config c = valid_consumer();
  c.with_retry_base(10s).with_max_retry_delay(5s);
  EXPECT_THAT(error_of(c.validate()), HasSubstr("retry_base: got 10s; must be <= max_retry_delay (5s)"));
  c.with_max_retry_delay(10s);
  EXPECT_TRUE(c.validate().ok());
}

TEST(Config, DeferBaseMustNotExceedDeferMaxDelay) {
  Config c = valid_consumer();
  c.with_defer_base(2h).with_defer_max_delay(1h);
  EXPECT_THAT(error_of(c.validate()), HasSubstr("defer_base: got 2h; must be <= defer_max_delay (1h)"));
}

TEST(Config, BootstrapServersRequiredUnlessMock) {
  Config c;
  EXPECT_THAT(error_of(c.validate()), HasSubstr("bootstrap_servers (PROSODY_BOOTSTRAP_SERVERS): not set"));
  c.with_mock(true);
  EXPECT_TRUE(c.validate().ok());
  c.with_mock(false).with_bootstrap_servers("k:9092");
  EXPECT_TRUE(c.validate().ok());
}

TEST(Config, ConsumerNeedsGroupAndTopics) {
  Config c;
  c.with_mock(true);
  const auto msg = error_of(c.validate_for_consumer());
  EXPECT_THAT(msg, HasSubstr("group_id (PROSODY_GROUP_ID): not set"));
  EXPECT_THAT(msg, HasSubstr("subscribed_topics (PROSODY_SUBSCRIBED_TOPICS): not set"));
  EXPECT_TRUE(c.validate().ok()) << "producer-only use needs neither";
  EXPECT_TRUE(valid_consumer().validate_for_consumer().ok()) << error_of(valid_consumer().validate_for_consumer());
}

TEST(Config, LowLatencyModeRequiresFailureTopic) {
  Config c = valid_consumer();
  c.with_mode(Mode::low_latency);
  EXPECT_THAT(error_of(c.validate_for_consumer()), HasSubstr("failure_topic (PROSODY_FAILURE_TOPIC): not set"));
  c.with_failure_topic("orders.dlq");
  EXPECT_TRUE(c.validate_for_consumer().ok());
}

TEST(Config, RegexSubscriptionsAreAccepted) {
  Config c = valid_consumer();
  c.with_subscribed_topics("^orders\\..*,plain");
  EXPECT_TRUE(c.validate_for_consumer().ok()) << error_of(c.validate_for_consumer());
}

TEST(Config, ManagedKafkaPropertiesCannotBeOverridden) {
  Config c = valid_consumer();
  c.with_kafka_property("group.id", "other").with_kafka_property("enable.auto.offset.store", "true");
  const auto msg = error_of(c.validate());
  EXPECT_THAT(msg, HasSubstr("kafka.group.id: cannot be overridden; use the group_id option"));
  EXPECT_THAT(msg, HasSubstr("kafka.enable.auto.offset.store"));
  EXPECT_THAT(msg, Not(HasSubstr("other")));
}

TEST(Config, SecretsNeverAppearInDescribeOrErrors) {
  Config c = Config::from_env(Env{{"PROSODY_CASSANDRA_PASSWORD", "hunter2"},
                                  {"PROSODY_KAFKA_SASL_PASSWORD", "pw-kafka"},
                                  {"PROSODY_KAFKA_SASL_JAAS_CONFIG", "jaas-secret"},
                                  {"PROSODY_KAFKA_SSL_KEY_PEM", "key-material"},
                                  {"PROSODY_KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET", "oauth-secret"},
                                  {"PROSODY_KAFKA_SECURITY_PROTOCOL", "SASL_SSL"}});
  c.with_kafka_property("my.custom.secret", "custom-secret").with_max_concurrency(0);
  const std::string described = c.to_string();
  const std::string error = error_of(c.validate_for_consumer());
  ASSERT_FALSE(error.empty());
  for (const auto& secret : {"hunter2", "pw-kafka", "jaas-secret", "key-material", "oauth-secret", "custom-secret"}) {
    EXPECT_THAT(described, Not(HasSubstr(secret)));
    EXPECT_THAT(error, Not(HasSubstr(secret)));
  }
  EXPECT_THAT(described, HasSubstr("cassandra_password = [redacted]"));
  EXPECT_THAT(described, HasSubstr("kafka.sasl.password = [redacted]"));
  EXPECT_THAT(described, HasSubstr("kafka.security.protocol = SASL_SSL"));
  EXPECT_EQ(c.option_text("cassandra_password"), "[redacted]");
  EXPECT_EQ(c.option_text("kafka.sasl.jaas.config"), "[redacted]");
  EXPECT_EQ(c.option_text("kafka.security.protocol"), "SASL_SSL");
  // The getter still hands the real value to the code that needs it.
  EXPECT_EQ(c.cassandra_password(), "hunter2");
}

TEST(Config, DescribeListsEveryOptionWithItsEffectiveValue) {
  Config c;
  c.with_group_id("orders").with_stall_threshold(10min);
  const std::string d = "\n" + c.describe();
  for (const auto& o : option_table()) {
    EXPECT_THAT(d, HasSubstr("\n" + std::string(o.name) + " = ")) << o.name;
  }
  EXPECT_THAT(d, HasSubstr("timeout = 8m (80% of stall_threshold)"));
  EXPECT_THAT(d, HasSubstr("source_system = orders (group_id)"));
  EXPECT_THAT(d, HasSubstr("allowed_events = (all)"));
  EXPECT_THAT(d, HasSubstr("telemetry_enabled = true  [not yet active]"));
  EXPECT_THAT(d, HasSubstr("defer_enabled = true\n"));
  EXPECT_THAT(d, HasSubstr("max_concurrency = 32\n"));
}

TEST(Config, InactiveOptionsInUse) {
  Config c;
  EXPECT_THAT(c.inactive_options_in_use(), IsEmpty());
  c.with_max_concurrency(3).with_mode(Mode::best_effort).with_kafka_property("linger.ms", "1");
  EXPECT_THAT(c.inactive_options_in_use(), IsEmpty()) << "active options never count";
  c.with_telemetry_topic("prosody.telemetry-events").with_telemetry_enabled(true);
  EXPECT_THAT(c.inactive_options_in_use(), IsEmpty()) << "explicitly set to the default";
  c.with_idempotence_version("2").with_telemetry_topic("events").with_telemetry_enabled(false);
  EXPECT_THAT(c.inactive_options_in_use(), UnorderedElementsAre("telemetry_topic", "telemetry_enabled"));

  const Config e = Config::from_env(lookup_in({{"PROSODY_SLAB_SIZE", "2h"}, {"PROSODY_TELEMETRY_TOPIC", "t"}}));
  EXPECT_THAT(e.inactive_options_in_use(), UnorderedElementsAre("telemetry_topic"));
}

TEST(Config, ActiveFlagsMatchTheBrief) {
  const std::set<std::string_view> active = {
      "bootstrap_servers", "group_id",         "subscribed_topics", "allowed_events",  "source_system",
      "mock",              "mode",             "max_concurrency",   "max_uncommitted", "max_enqueued_per_key",
      "timeout",           "commit_interval",  "poll_interval",     "shutdown_timeout", "stall_threshold",
      "probe_port",        "send_timeout",     "max_retries",       "retry_base",      "max_retry_delay",
      "failure_topic",     "payload_codec",    "mock_partitions",   "client_id",       "state_dir",
      "slab_size",         "monopolization_enabled", "monopolization_threshold", "monopolization_window",
      "monopolization_cache_size", "scheduler_failure_weight", "scheduler_max_wait", "scheduler_wait_weight",
      "scheduler_cache_size", "cassandra_nodes", "cassandra_keyspace", "cassandra_user", "cassandra_password", "cassandra_datacenter", "cassandra_rack", "cassandra_retention",
      "defer_enabled", "defer_base", "defer_max_delay", "defer_failure_threshold",
      "defer_failure_window", "defer_cache_size", "defer_store_cache_size", "defer_seek_timeout",
      "defer_discard_threshold", "idempotence_version", "idempotence_cache_size", "idempotence_ttl"};
  for (const auto& o : option_table()) EXPECT_EQ(o.active, active.contains(o.name)) << o.name;
}

TEST(Config, EffectiveTimeoutAndSourceSystem) {
  Config c;
  c.with_stall_threshold(1s);
  EXPECT_EQ(c.effective_timeout(), 800ms);
  c.with_timeout(3s);
  EXPECT_EQ(c.effective_timeout(), 3s);
  c.with_timeout(std::nullopt);
  EXPECT_EQ(c.effective_timeout(), 800ms);

  EXPECT_EQ(c.effective_source_system(), "");
  c.with_group_id("g");
  EXPECT_EQ(c.effective_source_system(), "g");
  c.with_source_system("svc");
  EXPECT_EQ(c.effective_source_system(), "svc");
}

TEST(Config, DurationSettersAcceptAnyChronoDuration) {
  Config c;
  c.with_poll_interval(250us);  // rounds up, never to zero
  EXPECT_EQ(c.poll_interval(), 1ms);
  c.with_commit_interval(std::chrono::duration<double>(1.5));
  EXPECT_EQ(c.commit_interval(), 1500ms);
  c.with_stall_threshold(2min).with_cassandra_retention(std::chrono::days(30));
  EXPECT_EQ(c.stall_threshold(), 120s);
  EXPECT_EQ(c.cassandra_retention(), std::chrono::days(30));
}

TEST(Config, ProbePortCanBeDisabled) {
  Config c;
  c.with_probe_port(std::nullopt);
  EXPECT_FALSE(c.probe_port());
  c.with_probe_port(9000);
  EXPECT_EQ(c.probe_port(), 9000);
}

TEST(Config, IsACopyableValue) {
  Config a = valid_consumer();
  Config b = a;
  EXPECT_EQ(a, b);
  b.with_max_concurrency(1);
  EXPECT_NE(a, b);
  EXPECT_EQ(a.max_concurrency(), 32);
}

TEST(Config, MarkdownTableHasEveryOptionAndStatus) {
  const std::string md = prosody::option_table_markdown();
  EXPECT_THAT(md, HasSubstr("| Option | Environment variable | Default | Description | Status |"));
  for (const auto& o : option_table()) {
    EXPECT_THAT(md, HasSubstr("| `" + std::string(o.name) + "` | `" + std::string(o.env_var) + "` |"));
  }
  EXPECT_THAT(md, HasSubstr("PROSODY_KAFKA_<NAME>"));
  EXPECT_THAT(md, HasSubstr("| not yet active |"));
}

TEST(Config, ReadmeOptionTablesAreCurrent) {
  const auto here = std::filesystem::path(__FILE__).parent_path();
  for (const auto& readme : {here / "README.md", here / ".." / ".." / "README.md"}) {
    std::ifstream in(readme);
    ASSERT_TRUE(in) << "README not found at " << readme;
    std::stringstream text;
    text << in.rdbuf();
    EXPECT_THAT(text.str(), HasSubstr(prosody::option_table_markdown()))
        << "regenerate the option table in " << readme << " with `prosody config --markdown`";
  }
}

}  // namespace
