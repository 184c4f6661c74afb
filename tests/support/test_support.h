// Helpers shared by the mock-cluster and integration tests: unique names,
// waiting on a condition with a deadline, a recording handler that checks
// per-key order and that no key runs on two threads at once, and a bulk
// producer.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "prosody/prosody.h"

namespace prosody::testing {

inline std::string unique_name(const std::string& prefix) {
  static std::atomic<int> counter{0};
  std::random_device rd;
  return prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" + std::to_string(rd() % 100000);
}

inline bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}

// What every test consumer shares: a short poll interval, no probe server,
// and a short session timeout (so a departed member's partitions move fast;
// the mock cluster in particular waits for the session to expire).
inline Config test_consumer_config(const std::string& topic, const std::string& group) {
  using namespace std::chrono_literals;
  Config c;
  c.with_group_id(group)
      .with_subscribed_topics(std::vector<std::string>{topic})
      .with_probe_port(std::nullopt)
      .with_poll_interval(20ms)
      .with_kafka_property("session.timeout.ms", "6000")
      .with_kafka_property("heartbeat.interval.ms", "500");
  return c;
}

// A consumer on the in-process mock cluster.
inline Config mock_consumer_config(const std::string& topic, const std::string& group, int partitions = 1) {
  using namespace std::chrono_literals;
  return test_consumer_config(topic, group)
      .with_mock(true)
      .with_mock_partitions(partitions)
      .with_commit_interval(100ms)
      .with_shutdown_timeout(10s);
}

// A producing client on the in-process mock cluster. Its records carry
// `source_system`, so consumers under test (whose group differs) do not
// skip them as their own output.
inline std::shared_ptr<Client> mock_producer_client(const std::string& source_system) {
  Config c;
  c.with_mock(true).with_source_system(source_system);
  return Client::create(c);
}

// The same without the producer's resend cache: a second send of a
// delivered event id goes out too (tests that need real duplicates).
inline std::shared_ptr<Client> mock_producer_client_sending_every_record(const std::string& source_system) {
  Config c;
  c.with_mock(true).with_source_system(source_system).with_idempotence_cache_size(0);
  return Client::create(c);
}

// Payload: {"seq": <per-key sequence>, "key": "..."}.
struct Seen {
  std::string key;
  int seq;
  int partition;
  long offset;
};

// Records every call, per-key order violations and key overlap. Safe to
// share between several consumers (clients) to check a whole group.
class RecordingHandler : public EventHandler {
 public:
  std::function<void(const Message&)> before;  // optional hook (e.g. a delay)

  HandlerResult on_message(Context&, const Message& m) override {
    {
      std::lock_guard l(mutex_);
      if (++running_[m.key()] > 1) ++overlaps_;
    }
    if (before) before(m);
    const int seq = m.payload().is_object() ? m.payload().value("seq", -1) : -1;
    {
      std::lock_guard l(mutex_);
      --running_[m.key()];
      auto [it, inserted] = last_seq_.try_emplace(m.key(), -1);
      auto& last = it->second;
      // A re-delivery (seq <= last) is a duplicate, not a violation; a gap
      // or a step backwards past a duplicate is a violation.
      if (seq <= last) {
        ++duplicates_;
      } else if (seq != last + 1) {
        ++violations_;
      }
      if (seq > last) last = seq;
      seen_.push_back(Seen{m.key(), seq, m.partition().value(), m.offset().value()});
      unique_.insert({m.key(), seq});
    }
    calls_++;
    return ok_status();
  }

  long calls() const { return calls_; }
  std::size_t unique_count() const {
    std::lock_guard l(mutex_);
    return unique_.size();
  }
  int violations() const {
    std::lock_guard l(mutex_);
    return violations_;
  }
  int overlaps() const {
    std::lock_guard l(mutex_);
    return overlaps_;
  }
  int duplicates() const {
    std::lock_guard l(mutex_);
    return duplicates_;
  }

 private:
  mutable std::mutex mutex_;
  std::unordered_map<std::string, int> running_;
  std::unordered_map<std::string, int> last_seq_;
  std::set<std::pair<std::string, int>> unique_;
  std::vector<Seen> seen_;
  int violations_ = 0, overlaps_ = 0, duplicates_ = 0;
  std::atomic<long> calls_{0};
};

// Produces `count` records over `keys` keys with per-key sequence numbers
// {"seq": n, "key": k}. Returns the number acknowledged.
inline long produce_sequenced(Producer& producer, const std::string& topic, long count, int keys,
                              long start_index = 0, std::vector<int>* next_seq = nullptr) {
  std::vector<int> local(static_cast<std::size_t>(keys), 0);
  auto& seqs = next_seq ? *next_seq : local;
  if (seqs.size() < static_cast<std::size_t>(keys)) seqs.resize(static_cast<std::size_t>(keys), 0);
  std::atomic<long> acked{0};
  for (long i = start_index; i < start_index + count; ++i) {
    const int k = static_cast<int>(i % keys);
    const std::string key = "k" + std::to_string(k);
    const std::string payload = R"({"seq":)" + std::to_string(seqs[static_cast<std::size_t>(k)]++) + R"(,"key":")" + key + "\"}";
    for (;;) {
      auto s = producer.send_async(topic, key, payload, {}, [&](Result<Delivery> r) { if (r) ++acked; });
      if (s) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  (void)producer.flush(std::chrono::seconds(60));
  return acked;
}

}  // namespace prosody::testing
