#include "kafka/producer.h"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

#include <spdlog/spdlog.h>

#include "prosody/logging.h"

namespace prosody::kafka {
namespace {

using std::chrono::milliseconds;

// Per-record delivery state, handed to librdkafka as the message opaque and
// back to us on the delivery thread. librdkafka's internal hand-off is
// invisible to ThreadSanitizer, so the release/acquire pair on `published`
// states the happens-before edge explicitly (it costs nothing measurable).
struct DeliveryState {
  explicit DeliveryState(DeliveryCallback cb) : callback(std::move(cb)) { published.store(true, std::memory_order_release); }
  std::atomic<bool> published{false};
  DeliveryCallback callback;
};

// Shared between a blocking sender and the delivery thread; the sender may
// stop waiting (stop token) and leave, so the state is reference counted.
struct Waiter {
  std::mutex mutex;
  std::condition_variable_any cv;
  std::optional<Result<Delivery>> outcome;  // guarded by mutex
};

ErrorClass classify(rd_kafka_resp_err_t err) {
  switch (err) {
    case RD_KAFKA_RESP_ERR__FATAL:
    case RD_KAFKA_RESP_ERR__FENCED:
    case RD_KAFKA_RESP_ERR_PRODUCER_FENCED:
    case RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH:
      return ErrorClass::terminal;
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
      return ErrorClass::permanent;
    default:
      return ErrorClass::transient;
  }
}

ErrorCode code_for(rd_kafka_resp_err_t err) {
  switch (err) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE: return ErrorCode::message_too_large;
    case RD_KAFKA_RESP_ERR__QUEUE_FULL: return ErrorCode::queue_full;
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART: return ErrorCode::topic_missing;
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT: return ErrorCode::timed_out;
    default: return ErrorCode::kafka;
  }
}

Error kafka_error(rd_kafka_resp_err_t err, std::string_view topic, std::string_view what) {
  return Error(classify(err), code_for(err),
               std::string(what) + " to topic '" + std::string(topic) + "': " + rd_kafka_err2str(err));
}

}  // namespace

KafkaProducer::KafkaProducer(std::string source_system, milliseconds send_timeout, std::shared_ptr<Clock> clock)
    : source_system_(std::move(source_system)),
      send_timeout_(send_timeout),
      clock_(std::move(clock)),
      header_template_(rd_kafka_headers_new(1)) {
  rd_kafka_header_add(header_template_.get(), "source-system", -1, source_system_.data(),
                      static_cast<ssize_t>(source_system_.size()));
}

KafkaProducer::~KafkaProducer() {
  if (handle_) {
    if (rd_kafka_flush(handle_.get(), 10000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      prosody::logger()->warn("producer closed with {} record(s) undelivered", rd_kafka_outq_len(handle_.get()));
    }
  }
  {
    std::unique_lock l(topics_mutex_);
    topics_.clear();
  }
  stop_.request_stop();
  if (poller_.joinable()) poller_.join();
}

Result<std::unique_ptr<KafkaProducer>> KafkaProducer::create(const ProducerSettings& settings,
                                                             std::string source_system, milliseconds send_timeout,
                                                             std::shared_ptr<Clock> clock) {
  auto conf = producer_conf(settings);
  if (!conf) return std::move(conf).error();
  rd_kafka_conf_set_dr_msg_cb(conf->get(), &KafkaProducer::on_delivery);
  char err[512];
  auto p = std::unique_ptr<KafkaProducer>(new KafkaProducer(std::move(source_system), send_timeout, std::move(clock)));
  p->handle_.reset(rd_kafka_new(RD_KAFKA_PRODUCER, conf->release(), err, sizeof err));
  if (!p->handle_) return Error::permanent(std::string("cannot create Kafka producer: ") + err, ErrorCode::invalid_config);
  // Delivery reports are served on our own thread, never on a caller's.
  p->poller_ = std::jthread([raw = p->handle_.get(), token = p->stop_.get_token()] {
    while (!token.stop_requested()) rd_kafka_poll(raw, 50);
    rd_kafka_poll(raw, 0);
  });
  return p;
}

void KafkaProducer::on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void*) {
  // No state: a fire-and-forget send_async, nobody wants the report.
  std::unique_ptr<DeliveryState> state(static_cast<DeliveryState*>(m->_private));
  if (!state || !state->published.load(std::memory_order_acquire)) return;
  auto& cb = state->callback;
  const char* topic = rd_kafka_topic_name(m->rkt);
  if (m->err) {
    cb(kafka_error(m->err, topic, "delivery"));
  } else {
    cb(Delivery{topic, Partition{m->partition}, Offset{m->offset}});
  }
}

rd_kafka_topic_t* KafkaProducer::topic_handle(std::string_view topic, rd_kafka_resp_err_t& err) {
  {
    std::shared_lock l(topics_mutex_);
    if (auto it = topics_.find(topic); it != topics_.end()) return it->second.get();
  }
  std::unique_lock l(topics_mutex_);
  if (auto it = topics_.find(topic); it != topics_.end()) return it->second.get();
  std::string name(topic);
  // Default topic config: the producer-wide settings apply (acks, timeouts,
  // partitioner). librdkafka rejects only malformed names here; a topic that
  // does not exist fails per record in the delivery report, as before.
  TopicHandle t(rd_kafka_topic_new(handle_.get(), name.c_str(), nullptr));
  if (!t) {
    err = rd_kafka_last_error();
    return nullptr;
  }
  return topics_.emplace(std::move(name), std::move(t)).first->second.get();
}

rd_kafka_headers_t* KafkaProducer::make_headers(const Headers& headers) const {
  if (headers.empty()) return rd_kafka_headers_copy(header_template_.get());
  rd_kafka_headers_t* hdrs = rd_kafka_headers_new(headers.size() + 1);
  rd_kafka_header_add(hdrs, "source-system", -1, source_system_.data(), static_cast<ssize_t>(source_system_.size()));
  for (const auto& h : headers) {
    if (h.name == "source-system") continue;  // ours wins: it drives loop prevention
    rd_kafka_header_add(hdrs, h.name.data(), static_cast<ssize_t>(h.name.size()), h.value.data(),
                        static_cast<ssize_t>(h.value.size()));
  }
  return hdrs;
}

Status KafkaProducer::enqueue(std::string_view topic, std::string_view key, std::string_view payload,
                              const Headers& headers, DeliveryCallback on_delivery) {
  rd_kafka_resp_err_t topic_err = RD_KAFKA_RESP_ERR__INVALID_ARG;
  rd_kafka_topic_t* rkt = topic_handle(topic, topic_err);
  if (!rkt) return kafka_error(topic_err, topic, "cannot send");
  // Both stay ours until a produce call succeeds; a queue-full retry reuses
  // them (librdkafka leaves the headers with the caller when it fails).
  HeadersHandle hdrs(make_headers(headers));
  std::unique_ptr<DeliveryState> state;
  if (on_delivery) state = std::make_unique<DeliveryState>(std::move(on_delivery));
  // The clock is read only once the queue is full: the common path never
  // needs the deadline.
  std::optional<Clock::steady_time> deadline;
  for (;;) {
    const auto err = rd_kafka_producev(
        handle_.get(), RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(key.data(), key.size()), RD_KAFKA_V_VALUE(const_cast<char*>(payload.data()), payload.size()),
        RD_KAFKA_V_HEADERS(hdrs.get()), RD_KAFKA_V_OPAQUE(state.get()), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {  // librdkafka owns both now
      (void)hdrs.release();
      (void)state.release();
      return {};
    }
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) return kafka_error(err, topic, "cannot send");
    const auto now = clock_->now();
    if (!deadline) deadline = now + send_timeout_;
    if (now >= *deadline) {
      return Error::transient("producer queue full for " + std::to_string(send_timeout_.count()) +
                                  " ms (send_timeout) sending to topic '" + std::string(topic) + "'",
                              ErrorCode::queue_full);
    }
    clock_->sleep_for(milliseconds(5), stop_.get_token());
  }
}

Result<Delivery> KafkaProducer::send(std::string_view topic, std::string_view key, std::string_view payload,
                                     const Headers& headers, std::stop_token stop) {
  auto waiter = std::make_shared<Waiter>();
  auto s = enqueue(topic, key, payload, headers, [waiter](Result<Delivery> r) {
    {
      std::lock_guard l(waiter->mutex);
      waiter->outcome.emplace(std::move(r));
    }
    waiter->cv.notify_all();
  });
  if (!s) return std::move(s).error();
  std::unique_lock l(waiter->mutex);
  waiter->cv.wait(l, stop, [&] { return waiter->outcome.has_value(); });
  if (!waiter->outcome) {
    return Error::transient("stopped waiting for delivery to topic '" + std::string(topic) +
                                "' (the record may still be delivered)",
                            ErrorCode::cancelled);
  }
  return std::move(*waiter->outcome);
}

Status KafkaProducer::send_async(std::string_view topic, std::string_view key, std::string_view payload,
                                 const Headers& headers, DeliveryCallback on_delivery) {
  return enqueue(topic, key, payload, headers, std::move(on_delivery));
}

Status KafkaProducer::flush(milliseconds timeout) {
  const auto err = rd_kafka_flush(handle_.get(), static_cast<int>(timeout.count()));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Error::transient(std::to_string(rd_kafka_outq_len(handle_.get())) + " record(s) still undelivered after " +
                                std::to_string(timeout.count()) + " ms",
                            ErrorCode::timed_out);
  }
  return {};
}

}  // namespace prosody::kafka
