// FailureTopic (low-latency mode): when the inner stack gives up on an
// event (a permanent error, or a transient one after the capped retries),
// the event is written to the failure topic and counts as done.
//
// A record keeps its key, payload and headers and gains Prosody's headers
// (source-kind, source-topic, source-partition, source-offset,
// source-timestamp, source-group-id, source-error) plus ours
// (prosody-error-class, prosody-attempts). A timer has no record, so it is
// written as an empty-payload record with its key and source-kind=timer,
// source-timer-time (epoch seconds) and source-timer-type: unlike Prosody,
// which retries a failing timer forever in this mode, a low-latency
// consumer never blocks a key on a timer either; the failure topic is where
// an operator finds it.
//
// A failed write returns a transient error and remembers that the handler
// already gave up (Invocation::dead_letter_pending); the outer Retry runs
// this layer again, which retries only the write, never the handler.
// Terminal errors pass through untouched.
//
// Thread safety: any thread (the producer is thread-safe).
#pragma once

#include <atomic>
#include <functional>
#include <string>

#include "middleware/layer.h"
#include "prosody/producer.h"

namespace spdlog {
class logger;
}

namespace prosody::middleware {

class FailureTopicLayer final : public Layer {
 public:
  FailureTopicLayer(Producer& producer, std::string failure_topic, std::string group_id,
                    std::function<void()> on_dead_lettered);
  Status handle(Invocation& inv, const Next& next) const override;
  std::string_view name() const override { return "failure_topic"; }

 private:
  Status write(Invocation& inv, const Error& error) const;

  Producer& producer_;
  const std::string failure_topic_;
  const std::string group_id_;
  const std::function<void()> on_dead_lettered_;
  const std::shared_ptr<spdlog::logger> log_;
};

}  // namespace prosody::middleware
