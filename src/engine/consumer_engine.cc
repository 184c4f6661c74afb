#include "engine/engine_impl.h"

#include "kafka/client_config.h"
#include "prosody/logging.h"

namespace prosody::engine {

// ---------------------------------------------------------------- startup

Status Engine::init() {
  if (!settings_.timer_store) {
    return Error::permanent("consumer engine started without a timer store", ErrorCode::invalid_config);
  }
  auto conf = kafka::consumer_conf(settings_);
  if (!conf) return std::move(conf).error();
  rd_kafka_conf_set_opaque(conf->get(), this);
  rd_kafka_conf_set_rebalance_cb(conf->get(), &Engine::on_rebalance);
  char err[512];
  consumer_.reset(rd_kafka_new(RD_KAFKA_CONSUMER, conf->release(), err, sizeof err));
  if (!consumer_) return Error::permanent(std::string("cannot create Kafka consumer: ") + err, ErrorCode::invalid_config);
  rd_kafka_poll_set_consumer(consumer_.get());
  consumer_queue_.reset(rd_kafka_queue_get_consumer(consumer_.get()));
  rd_kafka_queue_cb_event_enable(consumer_queue_.get(), &Engine::on_queue_event, this);

  auto topics = kafka::make_partition_list(static_cast<int>(settings_.topics.size()));
  for (const auto& t : settings_.topics) rd_kafka_topic_partition_list_add(topics.get(), t.c_str(), RD_KAFKA_PARTITION_UA);
  if (auto e = rd_kafka_subscribe(consumer_.get(), topics.get()); e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Error::permanent("cannot subscribe to topics: " + kafka::err_text(e), ErrorCode::kafka);
  }
  if (auto s = build_stack(); !s) return s;
  last_poll_beat_ = clock_->now().time_since_epoch().count();
  timer_service_.start();
  for (std::size_t i = 0; i < slots_.size(); ++i) workers_.emplace_back([this, i] { worker_loop(i); });
  poll_thread_ = std::thread([this] { poll_loop(); });
  log_->info("consumer started: group '{}', topics [{}], mode {}, max_concurrency {}, max_uncommitted {}",
             settings_.group_id, fmt::join(settings_.topics, ", "), to_string(settings_.mode),
             settings_.max_concurrency, settings_.max_uncommitted);
  return {};
}

// ---------------------------------------------------------------- lifecycle

bool Engine::is_stalled() const {
  const auto now = clock_->now();
  const auto beat = steady::time_point(steady::duration(last_poll_beat_.load()));
  if (now - beat > settings_.stall_threshold) return true;
  // A handler that ignores cancellation keeps its key (and its partition's
  // commit position) stuck: past stall_threshold that is a stall.
  for (auto& slot : slots_) {
    std::lock_guard l(slot.mutex);
    if (slot.active && now - slot.started > settings_.stall_threshold) return true;
  }
  std::shared_lock l(partitions_mutex_);
  for (auto& [k, p] : partitions_) {
    std::lock_guard pl(p->mutex);
    if (p->halted) return true;
    if (auto since = p->tracker.oldest_uncommitted_since(); since && now - *since > settings_.stall_threshold) {
      return true;
    }
  }
  return false;
}

Status Engine::shutdown() {
  std::lock_guard l(shutdown_mutex_);
  if (shut_down_.exchange(true)) return {};
  shutdown_started_ = clock_->now().time_since_epoch().count();
  stopping_ = true;
  wake();
  if (poll_thread_.joinable()) poll_thread_.join();
  timer_service_.stop();  // every partition was revoked by the consumer close
  ready_.close();
  for (auto& w : workers_) w.join();
  // librdkafka's threads call on_queue_event until the handle is destroyed:
  // detach the callbacks and destroy the handle now, while the members the
  // callback touches (wake_mutex_, wake_cv_) are still alive.
  if (consumer_queue_) rd_kafka_queue_cb_event_enable(consumer_queue_.get(), nullptr, nullptr);
  {
    std::unique_lock lp(partitions_mutex_);
    for (auto& [k, p] : partitions_) {
      if (p->queue) rd_kafka_queue_cb_event_enable(p->queue.get(), nullptr, nullptr);
      p->queue.reset();
    }
    partitions_.clear();
  }
  consumer_queue_.reset();
  consumer_.reset();
  log_->info("consumer stopped: {} received, {} handled", stats_.received.load(), stats_.handled.load());
  return {};
}

Result<std::unique_ptr<ConsumerEngine>> ConsumerEngine::start(EngineSettings settings,
                                                               std::shared_ptr<EventHandler> handler,
                                                               std::shared_ptr<Clock> clock, Producer* dead_letters) {
  auto engine = std::make_unique<Engine>(std::move(settings), std::move(handler), std::move(clock), dead_letters);
  if (auto s = engine->init(); !s) return std::move(s).error();
  return std::unique_ptr<ConsumerEngine>(std::move(engine));
}

}  // namespace prosody::engine
