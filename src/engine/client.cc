// prosody::Client: the producer plus the consumer-engine state machine.
#include <mutex>

#include <spdlog/spdlog.h>

#include "engine/consumer_engine.h"
#include "kafka/metadata.h"
#include "kafka/mock_cluster.h"
#include "kafka/producer.h"
#include "prosody/client.h"
#include "prosody/logging.h"
#include "store/store_selection.h"
#include "telemetry/probe_server.h"

namespace prosody {

std::string_view to_string(ConsumerState s) noexcept {
  switch (s) {
    case ConsumerState::unconfigured: return "unconfigured";
    case ConsumerState::configuration_failed: return "configuration_failed";
    case ConsumerState::configured: return "configured";
    case ConsumerState::running: return "running";
  }
  return "unknown";
}

namespace {

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
  return out;
}

class ClientImpl final : public Client {
 public:
  ClientImpl(Config config, std::shared_ptr<Clock> clock)
      : config_(std::move(config)), clock_(clock ? std::move(clock) : system_clock()) {
    const auto valid = config_.validate();
    if (!valid) {
      config_error_.emplace(valid.error());
      state_ = ConsumerState::configuration_failed;
    } else {
      state_ = ConsumerState::configured;
    }
    for (const auto& name : config_.inactive_options_in_use()) {
      prosody::logger()->warn(
          "option '{}' is set but its feature is not active in this version of prosody-cpp (see README)", name);
    }
  }

  ~ClientImpl() override { (void)unsubscribe(); }

  Status subscribe(std::shared_ptr<EventHandler> handler) override {
    std::lock_guard l(mutex_);
    if (!handler) return Error::permanent("subscribe: handler is null", ErrorCode::invalid_argument);
    if (config_error_) return *config_error_;
    if (auto s = config_.validate_for_consumer(); !s) {
      state_ = ConsumerState::configuration_failed;
      return s;
    }
    if (engine_) return Error::permanent("subscribe: already subscribed; unsubscribe first", ErrorCode::invalid_state);
    auto bootstrap = bootstrap_servers();
    if (!bootstrap) return std::move(bootstrap).error();
    // Every topic the consumer reads or writes must exist: in mock mode we
    // create them, against a real cluster a missing one is an error naming it.
    auto topics = config_.subscribed_topics();
    const bool dead_lettering = config_.mode() == Mode::low_latency;
    if (dead_lettering && config_.failure_topic()) topics.push_back(*config_.failure_topic());
    if (auto s = ensure_topics(topics, *bootstrap); !s) return s;
    Producer* dead_letters = nullptr;
    if (dead_lettering) {
      auto p = ensure_producer();
      if (!p) return std::move(p).error();
      // Never skipped as resends: two failed messages of one key and event
      // id from different topics or partitions are two dead letters.
      dead_letters = &static_cast<kafka::KafkaProducer*>(*p)->every_send();
    }
    auto timer_store = store::open_timer_store(config_);
    if (!timer_store) return std::move(timer_store).error();
    auto settings = engine::EngineSettings::from(config_, *bootstrap);
    settings.timer_store = std::move(*timer_store);
    if (config_.mode() == Mode::pipeline) {
      auto defer = store::open_defer_store(config_);
      if (!defer) return std::move(defer).error();
      auto loader = middleware::DeferLoader::start(middleware::DeferLoaderSettings::from(config_, *bootstrap), clock_);
      if (!loader) return std::move(loader).error();
      settings.defer_messages = std::move(defer->messages);
      settings.defer_timers = std::move(defer->timers);
      settings.defer_loader = std::shared_ptr<middleware::DeferLoader>(std::move(*loader));
      if (config_.idempotence_cache_size() > 0) {
        auto dedup = store::open_dedup_store(config_);
        if (!dedup) return std::move(dedup).error();
        settings.dedup_store = std::move(*dedup);
        prosody::logger()->info("deduplication ids are stored in {}", settings.dedup_store->describe());
      }
    }
    prosody::logger()->info("timers are stored in {}", settings.timer_store->describe());
    auto engine = engine::ConsumerEngine::start(std::move(settings), std::move(handler), clock_, dead_letters);
    if (!engine) return std::move(engine).error();
    engine_ = std::move(*engine);
    // Probes are for orchestrated deployments: off in mock mode (as Prosody).
    if (!config_.mock() && config_.probe_port()) {
      probes_ = std::make_unique<telemetry::ProbeServer>();
      auto* e = engine_.get();
      auto s = probes_->start(*config_.probe_port(), {[e] { return e->assigned_partition_count(); },
                                                      [e] { return e->is_stalled(); }});
      if (!s) {
        (void)engine_->shutdown();
        engine_.reset();
        probes_.reset();
        return s;
      }
    }
    state_ = ConsumerState::running;
    return {};
  }

  Status unsubscribe() override {
    std::lock_guard l(mutex_);
    if (!engine_) return {};
    if (probes_) probes_->stop();
    probes_.reset();
    auto s = engine_->shutdown();
    last_stats_ = engine_->stats();
    engine_.reset();
    state_ = ConsumerState::configured;
    return s;
  }

  ConsumerState consumer_state() const override {
    std::lock_guard l(mutex_);
    return state_;
  }
  std::size_t assigned_partition_count() const override {
    std::lock_guard l(mutex_);
    return engine_ ? engine_->assigned_partition_count() : 0;
  }
  bool is_stalled() const override {
    std::lock_guard l(mutex_);
    return engine_ && engine_->is_stalled();
  }
  std::string source_system() const override { return config_.effective_source_system(); }
  ConsumerStats stats() const override {
    std::lock_guard l(mutex_);
    return engine_ ? engine_->stats() : last_stats_;
  }

  Result<Delivery> send(std::string_view topic, std::string_view key, std::string_view payload, const Headers& headers,
                        std::stop_token stop) override {
    auto p = producer();
    if (!p) return std::move(p).error();
    return (*p)->send(topic, key, payload, headers, std::move(stop));
  }

  Result<Producer*> producer() override {
    std::lock_guard l(producer_mutex_);
    return ensure_producer_locked();
  }

 private:
  Status ensure_topics(const std::vector<std::string>& topics, const std::string& bootstrap) const {
    if (!config_.mock()) return kafka::check_topics_exist(producer_settings(bootstrap), topics, std::chrono::seconds(30));
    for (const auto& t : topics) {
      if (t.empty() || t[0] == '^') continue;  // regex subscriptions name no topic
      if (auto s = kafka::MockCluster::instance().create_topic(t, config_.mock_partitions()); !s) return s;
    }
    return {};
  }

  Result<Producer*> ensure_producer() {
    std::lock_guard l(producer_mutex_);
    return ensure_producer_locked();
  }

  Result<Producer*> ensure_producer_locked() {
    if (producer_) return producer_.get();
    if (auto s = config_.validate(); !s) return std::move(s).error();
    auto bootstrap = bootstrap_servers();
    if (!bootstrap) return std::move(bootstrap).error();
    // One size for both caches, as in Prosody: the consumer's dedup cache and
    // the producer's record of what it delivered (resends are skipped).
    auto p = kafka::KafkaProducer::create(producer_settings(*bootstrap), config_.effective_source_system(),
                                          config_.send_timeout(), clock_,
                                          static_cast<std::size_t>(config_.idempotence_cache_size()));
    if (!p) return std::move(p).error();
    producer_ = std::move(*p);
    return producer_.get();
  }

  Result<std::string> bootstrap_servers() const {
    if (config_.mock()) return kafka::MockCluster::instance().bootstrap_servers();
    const auto& servers = config_.bootstrap_servers();
    if (servers.empty()) {
      return Error::permanent("bootstrap_servers is not set (PROSODY_BOOTSTRAP_SERVERS)", ErrorCode::invalid_config);
    }
    return join(servers);
  }

  kafka::ProducerSettings producer_settings(const std::string& bootstrap) const {
    kafka::ProducerSettings s;
    s.bootstrap_servers = bootstrap;
    s.client_id = config_.client_id();
    for (const auto& [k, v] : config_.kafka_properties()) s.kafka_properties.emplace_back(k, v);
    return s;
  }

  const Config config_;
  const std::shared_ptr<Clock> clock_;
  std::optional<Error> config_error_;

  mutable std::mutex mutex_;
  ConsumerState state_ = ConsumerState::unconfigured;       // guarded by mutex_
  std::unique_ptr<engine::ConsumerEngine> engine_;          // guarded by mutex_
  std::unique_ptr<telemetry::ProbeServer> probes_;          // guarded by mutex_
  ConsumerStats last_stats_;                                // guarded by mutex_

  std::mutex producer_mutex_;
  std::unique_ptr<kafka::KafkaProducer> producer_;  // guarded by producer_mutex_
};

}  // namespace

std::shared_ptr<Client> Client::create(Config config, std::shared_ptr<Clock> clock) {
  return std::make_shared<ClientImpl>(std::move(config), std::move(clock));
}

}  // namespace prosody
