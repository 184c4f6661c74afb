#include "middleware/failure_topic_layer.h"

#include <spdlog/spdlog.h>

#include "engine/partition_state.h"
#include "prosody/logging.h"

namespace prosody::middleware {

FailureTopicLayer::FailureTopicLayer(Producer& producer, std::string failure_topic, std::string group_id,
                                     std::function<void()> on_dead_lettered)
    : producer_(producer), failure_topic_(std::move(failure_topic)), group_id_(std::move(group_id)),
      on_dead_lettered_(std::move(on_dead_lettered)), log_(prosody::logger()) {}

Status FailureTopicLayer::handle(Invocation& inv, const Next& next) const {
  if (!inv.dead_letter_pending) {
    Status result = next(inv);
    if (result.ok() || result.error().is_terminal()) return result;
    inv.dead_letter_pending = result.error();
  }
  return write(inv, *inv.dead_letter_pending);
}

Status FailureTopicLayer::write(Invocation& inv, const Error& error) const {
  Headers headers;
  std::string_view payload;
  auto add = [&](std::string name, std::string value) { headers.push_back(Header{std::move(name), std::move(value)}); };
  if (inv.kind == EventKind::message) {
    const auto& rec = *inv.record;
    headers = rec.all_headers();
    payload = rec.raw_payload();
    add("source-kind", "message");
    add("source-topic", inv.tpk.topic);
    add("source-partition", std::to_string(inv.tpk.partition.value()));
    add("source-offset", std::to_string(rec.offset.value()));
    add("source-timestamp", std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                rec.timestamp.time_since_epoch())
                                                .count()));
  } else {
    add("source-kind", "timer");
    add("source-topic", inv.tpk.topic);
    add("source-partition", std::to_string(inv.tpk.partition.value()));
    add("source-timer-time", std::to_string(inv.timer->time));
    add("source-timer-type", std::string(to_string(inv.timer->type)));
  }
  add("source-group-id", group_id_);
  add("source-error", error.message());
  add("prosody-error-class", std::string(to_string(error.error_class())));
  add("prosody-attempts", std::to_string(inv.handler_attempts));
  auto sent = producer_.send(failure_topic_, inv.tpk.key, payload, headers, inv.stop);
  if (!sent) {
    log_->error("{}: writing to failure topic '{}' failed (will retry): {}", inv.describe(), failure_topic_,
                sent.error().message());
    return Error::transient("failure topic write failed: " + sent.error().message(), ErrorCode::kafka);
  }
  if (on_dead_lettered_) on_dead_lettered_();
  log_->warn("{} sent to failure topic '{}' after {} attempt(s): {}", inv.describe(), failure_topic_,
             inv.handler_attempts, error.message());
  inv.dead_letter_pending.reset();
  return ok_status();
}

}  // namespace prosody::middleware
