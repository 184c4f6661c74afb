#include "kafka/producer.h"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include <spdlog/spdlog.h>

#include "middleware/dedup_id.h"
#include "prosody/logging.h"

namespace prosody::kafka {
namespace {

using std::chrono::milliseconds;

// Retired DR events the delivery thread lets wait for a sender before it
// frees them itself (bounds the memory and the queue slots they hold).
constexpr std::size_t kMaxRetiredRecords = 16384;
// A sender frees retired events every this many sends.
constexpr unsigned kFreeEverySends = 32;
// Delivery states are allocated this many at a time (~48 KiB).
constexpr std::size_t kStatesPerBlock = 1024;


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
    // Only the destructor purges: the producer closed before the record was
    // acknowledged (one purged in flight may still have been written).
    case RD_KAFKA_RESP_ERR__PURGE_QUEUE:
    case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT: return ErrorCode::shut_down;
    default: return ErrorCode::kafka;
  }
}

Error kafka_error(rd_kafka_resp_err_t err, std::string_view topic, std::string_view what) {
  return Error(classify(err), code_for(err),
               std::string(what) + " to topic '" + std::string(topic) + "': " + rd_kafka_err2str(err));
}

}  // namespace

// Per-record delivery state, handed to librdkafka as the message opaque and
// back to us on the delivery thread, then back to the pool. The way out is
// ordered by librdkafka's own locks (rd_kafka_producev queues the record
// under its partition's lock, the broker thread moves it under that lock
// and queues the report under the report queue's lock, which our poll
// takes); ThreadSanitizer sees them through tests/support/tsan_c11_threads.cc.
// The way back is the release/acquire pair on returned_states_.
struct KafkaProducer::DeliveryState {
  DeliveryCallback callback;      // set by a sender, emptied on the delivery thread once called
  DeliveryState* next = nullptr;  // free list, or the chain handed back
  std::optional<store::DedupId> resend_id;  // remembered once delivered
};

KafkaProducer::KafkaProducer(std::string source_system, milliseconds send_timeout, std::shared_ptr<Clock> clock,
                             std::size_t resend_cache_size)
    : source_system_(std::move(source_system)),
      send_timeout_(send_timeout),
      clock_(std::move(clock)),
      sent_(resend_cache_size > 0 ? std::make_unique<middleware::IdCache<SentRecord>>(resend_cache_size) : nullptr) {}

KafkaProducer::~KafkaProducer() {
  if (handle_ && main_queue_) {
    if (!flush(milliseconds(10000))) {
      const int undelivered = rd_kafka_outq_len(handle_.get());
      // rd_kafka_destroy would free the records still queued or in flight
      // without a delivery report, so their callbacks would never run (their
      // states are freed with the pool either way). Purged, each is reported
      // as failed through the usual path, and flushing again waits until the
      // delivery thread has served those reports: every accepted send gets
      // exactly one callback.
      rd_kafka_purge(handle_.get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
      const bool reported = static_cast<bool>(flush(milliseconds(5000)));
      prosody::logger()->warn("producer closed with {} record(s) undelivered{}", undelivered,
                              reported ? ", each reported as purged" : "; some callbacks not called");
    }
  }
  stop_.request_stop();
  if (main_queue_) rd_kafka_queue_yield(main_queue_.get());  // out of its 50 ms wait now
  if (poller_.joinable()) poller_.join();  // frees what is still retired
  free_retired(true);
  main_queue_.reset();
  std::unique_lock l(topics_mutex_);
  last_topic_.store(nullptr);
  topics_.clear();
}

Result<std::unique_ptr<KafkaProducer>> KafkaProducer::create(const ProducerSettings& settings,
                                                             std::string source_system, milliseconds send_timeout,
                                                             std::shared_ptr<Clock> clock,
                                                             std::size_t resend_cache_size) {
  auto conf = producer_conf(settings);
  if (!conf) return std::move(conf).error();
  // Delivery reports as events: whoever destroys an event frees its records
  // (see the header on why that is a sender, not the delivery thread).
  rd_kafka_conf_set_events(conf->get(), RD_KAFKA_EVENT_DR | RD_KAFKA_EVENT_ERROR);
  char err[512];
  auto p = std::unique_ptr<KafkaProducer>(
      new KafkaProducer(std::move(source_system), send_timeout, std::move(clock), resend_cache_size));
  p->handle_.reset(rd_kafka_new(RD_KAFKA_PRODUCER, conf->release(), err, sizeof err));
  if (!p->handle_) return Error::permanent(std::string("cannot create Kafka producer: ") + err, ErrorCode::invalid_config);
  p->main_queue_.reset(rd_kafka_queue_get_main(p->handle_.get()));
  // Delivery reports are served on our own thread, never on a caller's.
  p->poller_ = std::jthread([self = p.get(), token = p->stop_.get_token()] { self->delivery_loop(token); });
  return p;
}

void KafkaProducer::delivery_loop(std::stop_token token) {
  while (!token.stop_requested()) {
    rd_kafka_event_t* ev = rd_kafka_queue_poll(main_queue_.get(), 50);
    if (ev) {
      handle_event(ev);
    } else {
      free_retired(true);  // idle (or woken for skipped resends): no sender is coming to free them
    }
    give_skipped_reports();
  }
  while (rd_kafka_event_t* ev = rd_kafka_queue_poll(main_queue_.get(), 0)) handle_event(ev);
  free_retired(true);
  give_skipped_reports();
}

void KafkaProducer::report_skipped(DeliveryCallback on_delivery, Delivery delivery) {
  skipped_unreported_.fetch_add(1);
  {
    std::lock_guard l(skipped_mutex_);
    skipped_.emplace_back(std::move(on_delivery), std::move(delivery));
  }
  rd_kafka_queue_yield(main_queue_.get());  // the delivery thread's poll returns now
}

void KafkaProducer::give_skipped_reports() {
  std::vector<std::pair<DeliveryCallback, Delivery>> batch;
  {
    std::lock_guard l(skipped_mutex_);
    if (skipped_.empty()) return;
    batch.swap(skipped_);
  }
  for (auto& [callback, delivery] : batch) {
    callback(std::move(delivery));
    skipped_unreported_.fetch_sub(1);
  }
}

void KafkaProducer::handle_event(rd_kafka_event_t* ev) {
  switch (rd_kafka_event_type(ev)) {
    case RD_KAFKA_EVENT_DR:
    {
      // The states go back to the pool at once (nothing reads them after
      // their callback); the records stay for a sender to free.
      DeliveryState* head = nullptr;
      DeliveryState* tail = nullptr;
      const rd_kafka_topic_t* rkt = nullptr;
      const char* topic = nullptr;
      while (const rd_kafka_message_t* m = rd_kafka_event_message_next(ev)) {
        if (DeliveryState* state = deliver(*m, rkt, topic)) {
          state->next = head;
          head = state;
          if (tail == nullptr) tail = state;
        }
      }
      if (head != nullptr) recycle_states(head, tail);
      retire(ev);
      return;
    }
    case RD_KAFKA_EVENT_ERROR:
      // What librdkafka logs itself when it serves an error without an
      // error callback (the delivery-callback mode this replaced).
      prosody::logger()->error("librdkafka ERROR: {}", rd_kafka_event_error_string(ev));
      break;
    default:
      break;
  }
  rd_kafka_event_destroy(ev);
}

KafkaProducer::DeliveryState* KafkaProducer::deliver(const rd_kafka_message_t& m, const rd_kafka_topic_t*& rkt,
                                                     const char*& topic) {
  // No state: a fire-and-forget send_async of a record without an event
  // id, nobody wants the report.
  auto* state = static_cast<DeliveryState*>(m._private);
  if (!state) return nullptr;
  if (state->resend_id) {
    // Remembered before the callback runs: a sender told "delivered" that
    // sends the same event again is answered from the cache.
    if (!m.err) sent_->insert(*state->resend_id, SentRecord{Partition{m.partition}, Offset{m.offset}});
    state->resend_id.reset();
  }
  auto& cb = state->callback;
  if (!cb) return state;
  if (m.rkt != rkt) {  // an event holds one partition's records: one lookup
    rkt = m.rkt;
    topic = rd_kafka_topic_name(m.rkt);
  }
  if (m.err) {
    cb(kafka_error(m.err, topic, "delivery"));
  } else {
    cb(Delivery{topic, Partition{m.partition}, Offset{m.offset}});
  }
  // The callback's captures end here, on the delivery thread, as before.
  cb = nullptr;
  return state;
}

KafkaProducer::DeliveryState* KafkaProducer::acquire_state(DeliveryCallback&& cb,
                                                           const std::optional<store::DedupId>& resend_id) {
  DeliveryState* s = nullptr;
  {
    std::lock_guard l(states_mutex_);
    // Everything the delivery thread handed back since, in one exchange (a
    // pop of the whole stack: no ABA, however many senders there are).
    if (free_states_ == nullptr) free_states_ = returned_states_.exchange(nullptr, std::memory_order_acquire);
    if (free_states_ == nullptr) {
      auto block = std::make_unique<DeliveryState[]>(kStatesPerBlock);
      for (std::size_t i = 0; i + 1 < kStatesPerBlock; ++i) block[i].next = &block[i + 1];
      free_states_ = &block[0];
      state_blocks_.push_back(std::move(block));
    }
    s = free_states_;
    free_states_ = s->next;
    // The delivery thread wrote the next state last, on another core: start
    // fetching it now, it is needed one send from now.
    if (free_states_ != nullptr) __builtin_prefetch(free_states_, 1);
  }
  s->next = nullptr;
  s->callback = std::move(cb);
  s->resend_id = resend_id;
  return s;
}

void KafkaProducer::recycle_states(DeliveryState* head, DeliveryState* tail) {
  DeliveryState* top = returned_states_.load(std::memory_order_relaxed);
  do {
    tail->next = top;
  } while (!returned_states_.compare_exchange_weak(top, head, std::memory_order_release, std::memory_order_relaxed));
}

void KafkaProducer::retire(rd_kafka_event_t* event) {
  std::vector<rd_kafka_event_t*> now;
  {
    std::lock_guard l(retired_mutex_);
    retired_.push_back(event);
    retired_records_ += rd_kafka_event_message_count(event);
    if (flushing_.load() > 0 || retired_records_ > kMaxRetiredRecords) {
      now.swap(retired_);
      retired_records_ = 0;
    }
    has_retired_.store(!retired_.empty(), std::memory_order_relaxed);
  }
  for (auto* e : now) rd_kafka_event_destroy(e);
}

bool KafkaProducer::free_retired(bool wait) {
  if (!wait && !has_retired_.load(std::memory_order_relaxed)) return false;
  std::vector<rd_kafka_event_t*> batch;
  {
    std::unique_lock l(retired_mutex_, std::defer_lock);
    if (wait) {
      l.lock();
    } else if (!l.try_lock()) {
      return false;
    }
    batch.swap(retired_);
    retired_records_ = 0;
    has_retired_.store(false, std::memory_order_relaxed);
  }
  // rd_kafka_event_destroy frees the event's records (and their headers).
  for (auto* e : batch) rd_kafka_event_destroy(e);
  return !batch.empty();
}

rd_kafka_topic_t* KafkaProducer::topic_handle(std::string_view topic, rd_kafka_resp_err_t& err) {
  // Most senders send to one topic over and over: no lock, no hash.
  if (const auto* last = last_topic_.load(std::memory_order_acquire); last != nullptr && last->first == topic) {
    return last->second.get();
  }
  {
    std::shared_lock l(topics_mutex_);
    if (auto it = topics_.find(topic); it != topics_.end()) {
      last_topic_.store(&*it, std::memory_order_release);
      return it->second.get();
    }
  }
  std::unique_lock l(topics_mutex_);
  if (auto it = topics_.find(topic); it != topics_.end()) {
    last_topic_.store(&*it, std::memory_order_release);
    return it->second.get();
  }
  std::string name(topic);
  // Default topic config: the producer-wide settings apply (acks, timeouts,
  // partitioner). librdkafka rejects only malformed names here; a topic that
  // does not exist fails per record in the delivery report, as before.
  TopicHandle t(rd_kafka_topic_new(handle_.get(), name.c_str(), nullptr));
  if (!t) {
    err = rd_kafka_last_error();
    return nullptr;
  }
  const auto& entry = *topics_.emplace(std::move(name), std::move(t)).first;
  last_topic_.store(&entry, std::memory_order_release);
  return entry.second.get();
}

rd_kafka_headers_t* KafkaProducer::make_headers(const Headers& headers) const {
  // A new list and one add: what a raw librdkafka user does, and a little
  // cheaper than rd_kafka_headers_copy of a one-header template.
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
                              const Headers& headers, DeliveryCallback on_delivery, bool skip_resends) {
  rd_kafka_resp_err_t topic_err = RD_KAFKA_RESP_ERR__INVALID_ARG;
  rd_kafka_topic_t* rkt = topic_handle(topic, topic_err);
  if (!rkt) return kafka_error(topic_err, topic, "cannot send");
  std::optional<store::DedupId> resend_id;
  if (sent_ && skip_resends) {
    std::string scratch;
    if (const auto event_id = middleware::find_json_event_id(payload, scratch)) {
      resend_id = middleware::producer_dedup_id(topic, key, *event_id);
      if (const auto sent = sent_->find(*resend_id)) {
        // Delivered before: not sent again (Prosody's producer returns Ok
        // here; we also say where the record is). Reported from the
        // delivery thread like every other outcome, never from inside this
        // call (a caller may hold a lock its callback takes).
        if (on_delivery) {
          report_skipped(std::move(on_delivery), Delivery{std::string(topic), sent->partition, sent->offset});
        }
        return {};
      }
    }
  }
  // Both stay ours until a produce call succeeds; a queue-full retry reuses
  // them (librdkafka leaves the headers with the caller when it fails).
  HeadersHandle hdrs(make_headers(headers));
  // Back to the pool (callback dropped uncalled) unless librdkafka takes it.
  struct StateOwner {
    KafkaProducer* producer;
    DeliveryState* state;
    ~StateOwner() {
      if (state == nullptr) return;
      state->callback = nullptr;
      state->resend_id.reset();
      producer->recycle_states(state, state);
    }
  } state{this, on_delivery || resend_id ? acquire_state(std::move(on_delivery), resend_id) : nullptr};
  // The clock is read only once the queue is full: the common path never
  // needs the deadline.
  std::optional<Clock::steady_time> deadline;
  for (;;) {
    const auto err = rd_kafka_producev(
        handle_.get(), RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(key.data(), key.size()), RD_KAFKA_V_VALUE(const_cast<char*>(payload.data()), payload.size()),
        RD_KAFKA_V_HEADERS(hdrs.get()), RD_KAFKA_V_OPAQUE(state.state), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {  // librdkafka owns both now
      (void)hdrs.release();
      state.state = nullptr;
      thread_local unsigned sends = 0;
      if (++sends % kFreeEverySends == 0) free_retired(false);
      return {};
    }
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) return kafka_error(err, topic, "cannot send");
    // Delivered records still count against the queue until freed.
    if (free_retired(true)) continue;
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
  return send_and_wait(topic, key, payload, headers, std::move(stop), true);
}

Result<Delivery> KafkaProducer::send_and_wait(std::string_view topic, std::string_view key, std::string_view payload,
                                              const Headers& headers, std::stop_token stop, bool skip_resends) {
  auto waiter = std::make_shared<Waiter>();
  auto s = enqueue(topic, key, payload, headers, [waiter](Result<Delivery> r) {
    {
      std::lock_guard l(waiter->mutex);
      waiter->outcome.emplace(std::move(r));
    }
    waiter->cv.notify_all();
  }, skip_resends);
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
  return enqueue(topic, key, payload, headers, std::move(on_delivery), true);
}

Status KafkaProducer::flush(milliseconds timeout) {
  // librdkafka's flush waits until every record is freed; while it waits the
  // delivery thread frees delivered ones at once instead of retiring them.
  flushing_.fetch_add(1);
  free_retired(true);
  // Real time, as librdkafka's flush timeout is.
  const auto start = std::chrono::steady_clock::now();
  auto err = rd_kafka_flush(handle_.get(), static_cast<int>(timeout.count()));
  flushing_.fetch_sub(1);
  // Skipped resends count as sent records: their reports are given too.
  while (err == RD_KAFKA_RESP_ERR_NO_ERROR && skipped_unreported_.load() > 0) {
    if (std::chrono::steady_clock::now() - start >= timeout) {
      err = RD_KAFKA_RESP_ERR__TIMED_OUT;
      break;
    }
    std::this_thread::sleep_for(milliseconds(1));
  }
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Error::transient(std::to_string(rd_kafka_outq_len(handle_.get())) + " record(s) still undelivered after " +
                                std::to_string(timeout.count()) + " ms",
                            ErrorCode::timed_out);
  }
  return {};
}

}  // namespace prosody::kafka
