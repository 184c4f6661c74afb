#include "engine/engine_impl.h"

#include "kafka/client_config.h"
#include "prosody/logging.h"

namespace prosody::engine {

// ---------------------------------------------------------------- poll thread

void Engine::wake() {
  if (!wake_pending_.exchange(true)) {
    { std::lock_guard l(wake_mutex_); }
    wake_cv_.notify_one();
  }
}

void Engine::wait_for_work() {
  std::unique_lock l(wake_mutex_);
  wake_cv_.wait_for(l, settings_.poll_interval, [&] { return wake_pending_.load() || stopping_.load(); });
  wake_pending_ = false;
}

void Engine::poll_loop() {
  while (!stopping_) {
    last_poll_beat_ = clock_->now().time_since_epoch().count();
    drain_main_queue();
    const bool got = read_partitions();
    store_offsets();
    fire_timeouts();
    if (!got) wait_for_work();
  }
  // Close: librdkafka revokes every partition through on_rebalance (which
  // drains and commits each), then leaves the group.
  store_offsets();
  if (auto e = rd_kafka_consumer_close(consumer_.get()); e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    log_->warn("consumer close: {}", kafka::err_text(e));
  }
}

void Engine::drain_main_queue() {
  // Rebalances and errors arrive here (partition queues are read directly).
  while (rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer_.get(), 0)) {
    kafka::MessageHandle msg(m);
    if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      // A record on the main queue means its partition queue was not split
      // off (should not happen); process it anyway rather than drop it.
      const char* topic = rd_kafka_topic_name(msg->rkt);
      std::shared_ptr<PartitionState> p;
      {
        std::shared_lock l(partitions_mutex_);
        auto it = partitions_.find({topic, msg->partition});
        if (it != partitions_.end()) p = it->second;
      }
      if (p) {
        std::vector<ReadyItem> ready;
        ingest(*p, p, detail::make_record(std::move(msg), &p->topic), ready);
        ready_.push_all(ready);
      } else {
        log_->warn("record {}[{}]@{} arrived for an unassigned partition; it will be re-read by its owner", topic,
                   msg->partition, msg->offset);
      }
    } else if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      const bool fatal = msg->err == RD_KAFKA_RESP_ERR__FATAL;
      log_->log(fatal ? spdlog::level::err : spdlog::level::warn, "consumer error: {}: {}",
                kafka::err_text(msg->err), rd_kafka_message_errstr(msg.get()));
      if (msg->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || msg->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC) {
        stats_.topic_errors++;
      }
    }
  }
}

bool Engine::read_partitions() {
  std::vector<std::shared_ptr<PartitionState>> parts;
  {
    std::shared_lock l(partitions_mutex_);
    parts.reserve(partitions_.size());
    for (auto& [k, p] : partitions_) parts.push_back(p);
  }
  bool got_any = false;
  constexpr int kBatch = 512;
  rd_kafka_message_t* batch[kBatch];
  std::vector<detail::RecordPtr> records;
  records.reserve(kIngestChunk);
  std::vector<ReadyItem> ready;
  for (auto& p : parts) {
    int capacity;
    {
      std::lock_guard l(p->mutex);
      const bool blocked = !p->parked.empty() || p->halted || p->revoked;
      capacity = blocked ? 0 : settings_.max_uncommitted - static_cast<int>(p->tracker.uncommitted());
    }
    if (capacity > 0) {
      const int n = static_cast<int>(
          rd_kafka_consume_batch_queue(p->queue.get(), 0, batch, static_cast<size_t>(std::min(capacity, kBatch))));
      for (int i = 0; i < n; ++i) {
        kafka::MessageHandle msg(batch[i]);
        if (msg->err) {
          if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            log_->warn("fetch error on {}[{}]: {}", p->topic, p->partition.value(), rd_kafka_message_errstr(msg.get()));
          }
          continue;
        }
        got_any = true;
        records.push_back(detail::make_record(std::move(msg), &p->topic));
        if (records.size() == kIngestChunk) ingest(*p, p, records, ready);
      }
      ingest(*p, p, records, ready);
      ready_.push_all(ready);
    }
    apply_backpressure(*p);
  }
  return got_any;
}

void Engine::ingest(PartitionState& p, const std::shared_ptr<PartitionState>& self,
                    std::vector<detail::RecordPtr>& records, std::vector<ReadyItem>& ready) {
  if (records.empty()) return;
  const auto now = clock_->now();
  std::lock_guard l(p.mutex);
  for (auto& rec : records) ingest_locked(p, self, std::move(rec), now, ready);
  records.clear();
}

bool Engine::ingest(PartitionState& p, const std::shared_ptr<PartitionState>& self, detail::RecordPtr rec,
                    std::vector<ReadyItem>& ready) {
  const auto now = clock_->now();
  std::lock_guard l(p.mutex);
  return ingest_locked(p, self, std::move(rec), now, ready);
}

bool Engine::ingest_locked(PartitionState& p, const std::shared_ptr<PartitionState>& self, detail::RecordPtr rec,
                           Clock::steady_time now, std::vector<ReadyItem>& ready) {
  if (p.revoked) return false;
  if (!p.tracker.take(rec->offset, now)) {
    // Already seen (a re-fetch after pause/seek): keep the first copy.
    log_->debug("dropping re-delivered record {}[{}]@{}", p.topic, p.partition.value(), rec->offset.value());
    return false;
  }
  stats_.received++;
  stats_.note_uncommitted(p.tracker.uncommitted());
  KeyQueue& kq = key_queue(p, rec->key);
  ++p.queued;
  if (!p.parked.empty() || static_cast<int>(kq.pending.size()) >= settings_.max_enqueued_per_key) {
    p.parked.push_back(std::move(rec));  // the partition stops being read until this drains
    return true;
  }
  kq.pending.push_back(QueuedEvent{std::move(rec), nullptr});
  stats_.note_enqueued(kq.pending.size());
  if (!kq.scheduled) {
    kq.scheduled = true;
    ready.push_back(ReadyItem{self, &kq});
  }
  return true;
}

void Engine::apply_backpressure(PartitionState& p) {
  bool halted;
  {
    std::lock_guard l(p.mutex);
    if (p.revoked) return;
    const auto unc = static_cast<int>(p.tracker.uncommitted());
    halted = p.halted;
    const bool full = !p.parked.empty() || halted || unc >= settings_.max_uncommitted;
    // Hysteresis: resume once a quarter of the window is free, so a partition does
    // not flap between paused and resumed on every completion.
    const bool can_resume = p.parked.empty() && !halted && unc <= settings_.max_uncommitted * 3 / 4;
    // Set under the mutex: a worker completing a record reads `paused` and
    // the window under the same lock to decide whether to wake this thread,
    // so it cannot miss the moment the partition becomes resumable.
    if (full && !p.paused) {
      p.paused = true;
      stats_.pauses++;
    } else if (!full && p.paused && can_resume) {
      p.paused = false;
      stats_.resumes++;
    }
  }
  // The engine pauses by not reading the partition's queue: what librdkafka
  // already fetched stays queued (bounded by queued.max.messages.kbytes and
  // queued.min.messages, after which librdkafka stops fetching by itself),
  // and reading resumes exactly where it stopped. librdkafka's own
  // pause/resume would discard the prefetched records and re-fetch them,
  // costing a broker round trip per cycle; it is used only for a halted
  // partition, which will not be read again.
  if (halted && !p.fetch_paused) {
    auto list = kafka::make_partition_list();
    rd_kafka_topic_partition_list_add(list.get(), p.topic.c_str(), p.partition.value());
    rd_kafka_pause_partitions(consumer_.get(), list.get());
    p.fetch_paused = true;
  }
}

void Engine::store_offsets() {
  std::vector<std::shared_ptr<PartitionState>> dirty;
  {
    std::shared_lock l(partitions_mutex_);
    for (auto& [k, p] : partitions_) {
      if (p->commit_dirty.exchange(false)) dirty.push_back(p);
    }
  }
  if (dirty.empty()) return;
  auto list = kafka::make_partition_list(static_cast<int>(dirty.size()));
  for (auto& p : dirty) {
    std::optional<Offset> pos;
    {
      std::lock_guard l(p->mutex);
      pos = p->tracker.commit_position();
    }
    if (!pos || pos->value() <= p->stored_position) continue;
    p->stored_position = pos->value();
    rd_kafka_topic_partition_list_add(list.get(), p->topic.c_str(), p->partition.value())->offset = pos->value();
  }
  if (list->cnt == 0) return;
  if (auto e = rd_kafka_offsets_store(consumer_.get(), list.get()); e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    log_->debug("offsets_store: {}", kafka::err_text(e));
  }
}

void Engine::fire_timeouts() {
  const auto now = clock_->now();
  for (auto& slot : slots_) {
    bool expired;
    {
      std::lock_guard l(slot.mutex);
      expired = slot.active && !slot.stop.stop_requested() && now - slot.started >= settings_.timeout;
    }
    if (expired && slot.cancel(CancelReason::timeout)) {
      stats_.timeouts++;
      log_->warn("handler exceeded timeout of {} ms; cancellation requested (it keeps its key until it returns)",
                 settings_.timeout.count());
    }
  }
}

}  // namespace prosody::engine
