#include "engine/engine_impl.h"

#include "kafka/client_config.h"
#include "middleware/deferred_keys.h"
#include "prosody/logging.h"

namespace prosody::engine {

// ---------------------------------------------------------------- rebalance

void Engine::on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts,
                          void* opaque) {
  auto* self = static_cast<Engine*>(opaque);
  const bool cooperative = std::string_view(rd_kafka_rebalance_protocol(rk)) == "COOPERATIVE";
  self->stats_.rebalances++;
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    self->assign(parts, cooperative);
  } else {
    self->revoke(parts, cooperative);
  }
}

void Engine::assign(rd_kafka_topic_partition_list_t* parts, bool cooperative) {
  for (int i = 0; i < parts->cnt; ++i) {
    const auto& tp = parts->elems[i];
    auto p = std::make_shared<PartitionState>(tp.topic, Partition{tp.partition});
    // Split the partition's records off the shared consumer queue so each
    // partition can be read exactly up to its free capacity.
    p->queue.reset(rd_kafka_queue_get_partition(consumer_.get(), tp.topic, tp.partition));
    rd_kafka_queue_forward(p->queue.get(), nullptr);
    rd_kafka_queue_cb_event_enable(p->queue.get(), &Engine::on_queue_event, this);
    // Its timers: whatever the previous owner left in the store is loaded
    // by the timer thread and fires here.
    p->timers = std::make_shared<timers::PartitionTimers>(
        store::TimerSegment{settings_.group_id, p->topic, p->partition, settings_.slab_size.count()},
        settings_.timer_store, static_cast<std::size_t>(settings_.max_uncommitted));
    // Another consumer may have changed this partition's defer queues.
    if (settings_.defer_messages || settings_.defer_timers) {
      const store::DeferSegment segment(settings_.group_id, p->topic, p->partition);
      if (settings_.defer_messages) {
        settings_.defer_messages->invalidate(segment);
        middleware::count_deferred_keys(*settings_.defer_messages, segment, p->deferred_message_keys);
      }
      if (settings_.defer_timers) {
        settings_.defer_timers->invalidate(segment);
        middleware::count_deferred_keys(*settings_.defer_timers, segment, p->deferred_timer_keys);
      }
    }
    std::weak_ptr<PartitionState> weak = p;
    auto timers = p->timers;
    {
      std::unique_lock l(partitions_mutex_);
      partitions_[{tp.topic, tp.partition}] = std::move(p);
    }
    timer_service_.add(std::move(timers), [this, weak](const std::shared_ptr<timers::PartitionTimers>&,
                                                        timers::DueTimer t) { return deliver_timer(weak, std::move(t)); });
  }
  rd_kafka_error_t* error = nullptr;
  if (cooperative) {
    error = rd_kafka_incremental_assign(consumer_.get(), parts);
  } else if (auto e = rd_kafka_assign(consumer_.get(), parts); e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    log_->error("assign failed: {}", kafka::err_text(e));
  }
  if (error) {
    log_->error("incremental assign failed: {}", rd_kafka_error_string(error));
    rd_kafka_error_destroy(error);
  }
  log_->info("assigned {} partition(s); {} now owned", parts->cnt, assigned_partition_count());
}

void Engine::revoke(rd_kafka_topic_partition_list_t* parts, bool cooperative) {
  const bool lost = rd_kafka_assignment_lost(consumer_.get());
  std::vector<std::shared_ptr<PartitionState>> revoked;
  {
    std::shared_lock l(partitions_mutex_);
    for (int i = 0; i < parts->cnt; ++i) {
      auto it = partitions_.find({parts->elems[i].topic, parts->elems[i].partition});
      if (it != partitions_.end()) revoked.push_back(it->second);
    }
  }
  // 0. No more timers fire for these partitions; the stored ones move with
  //    the partition to its next owner.
  for (auto& p : revoked) timer_service_.remove(p->timers);
  // 1. Stop reading. Records already taken keep being dispatched, so that
  //    everything handled lies in the contiguous committed prefix and the
  //    next owner redoes nothing; the work is bounded by max_uncommitted.
  for (auto& p : revoked) {
    std::lock_guard l(p->mutex);
    p->revoked = true;
    // A halted partition never drains; a lost one already has a new owner,
    // so finishing its queued records would only duplicate that owner's work.
    if (p->halted || lost) drop_queued_locked(*p);
    p->revoke_source.request_stop();        // cut retry backoffs short
  }
  // 2. Wait for the drain, within the shutdown budget (during shutdown the
  //    budget started when shutdown() was called). At 4/5 of it, queued
  //    records are dropped (uncommitted: the next owner reads them again)
  //    and running handlers are asked to cancel.
  const auto now = clock_->now();
  auto start = now;
  if (stopping_) start = steady::time_point(steady::duration(shutdown_started_.load()));
  const auto budget = settings_.shutdown_timeout;
  const auto cancel_at = start + budget * 4 / 5;
  const auto give_up_at = start + budget;
  const CancelReason why = stopping_ ? CancelReason::shutdown : CancelReason::revoked;
  for (auto& p : revoked) {
    std::unique_lock l(p->mutex);
    bool cancelled = false;
    while (p->in_flight > 0 || (p->queued > 0 && !p->drop_queued)) {
      const auto t = clock_->now();
      if (t >= give_up_at) {
        log_->error("{}[{}]: {} handler(s) still running after shutdown_timeout ({} ms); committing what finished",
                    p->topic, p->partition.value(), p->in_flight, budget.count());
        break;
      }
      if (!cancelled && t >= cancel_at) {
        drop_queued_locked(*p);
        l.unlock();
        for (auto& slot : slots_) slot.cancel(why, p.get());
        l.lock();
        cancelled = true;
        continue;
      }
      // Real-time wait slices: handlers finishing notify `idle`.
      p->idle.wait_for(l, milliseconds(20));
    }
    drop_queued_locked(*p);
  }
  // 3. Commit what finished, synchronously, unless the partitions were lost
  //    (someone else owns them already; a commit would be rejected anyway).
  if (!lost) {
    auto list = kafka::make_partition_list(static_cast<int>(revoked.size()));
    for (auto& p : revoked) {
      std::lock_guard l(p->mutex);
      if (auto pos = p->tracker.commit_position()) {
        rd_kafka_topic_partition_list_add(list.get(), p->topic.c_str(), p->partition.value())->offset = pos->value();
      }
    }
    if (list->cnt > 0) {
      // Store first: librdkafka auto-commits the *stored* offsets when the
      // partitions are unassigned, and an older stored value would
      // overwrite the commit made here.
      if (auto e = rd_kafka_offsets_store(consumer_.get(), list.get()); e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        log_->debug("offsets_store on revoke: {}", kafka::err_text(e));
      }
      if (auto e = rd_kafka_commit(consumer_.get(), list.get(), 0); e != RD_KAFKA_RESP_ERR_NO_ERROR &&
                                                                    e != RD_KAFKA_RESP_ERR__NO_OFFSET) {
        log_->warn("commit on revoke failed: {}", kafka::err_text(e));
      } else {
        stats_.committed_on_revoke += static_cast<std::uint64_t>(list->cnt);
      }
    }
  } else {
    log_->warn("{} partition(s) lost (session timed out?): not committing", parts->cnt);
  }
  {
    std::unique_lock l(partitions_mutex_);
    for (auto& p : revoked) partitions_.erase({p->topic, p->partition.value()});
  }
  for (auto& p : revoked) {
    // Re-attach the queue to the consumer queue before dropping our handle so
    // librdkafka's own bookkeeping for the partition stays consistent.
    rd_kafka_queue_cb_event_enable(p->queue.get(), nullptr, nullptr);
    p->queue.reset();
  }
  if (cooperative) {
    if (rd_kafka_error_t* error = rd_kafka_incremental_unassign(consumer_.get(), parts)) {
      log_->error("incremental unassign failed: {}", rd_kafka_error_string(error));
      rd_kafka_error_destroy(error);
    }
  } else {
    rd_kafka_assign(consumer_.get(), nullptr);
  }
  log_->info("revoked {} partition(s); {} still owned", parts->cnt, assigned_partition_count());
}

}  // namespace prosody::engine
