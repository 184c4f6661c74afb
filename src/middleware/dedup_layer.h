// Deduplication (pipeline; messages only): a message this consumer group
// has already handled is committed without running the handler again
// (reference/prosody-internals.md §2f). Redeliveries happen after a
// rebalance or crash before the offset commit, on a replay, and when a
// producer sends one event twice; the handler sees each once.
//
// Identity: middleware/dedup_id.h, Prosody's UUIDv8 over (idempotence
// version, group, topic, partition, key, and the payload's top-level JSON
// "id" when it is a string, else the offset). So an event id dedups resends
// of one event on a key; without one only a redelivery of the same record
// matches. Timers pass straight through.
//
// Two tiers: a consumer-wide approximate LRU (DedupCache,
// idempotence_cache_size ids) and the DedupStore (memory in mock mode,
// SQLite or Cassandra otherwise; ids live idempotence_ttl). A store hit
// fills the cache.
//
// An id is recorded after the handler succeeded or failed permanently (both
// mean done); a transient failure is not recorded, so the outer Retry's next
// attempt runs the handler again (Prosody #163).
//
// When the store fails:
//   - lookup, transient (store down, busy): the call returns a transient
//     error and the outer Retry asks again after its backoff; the key waits,
//     nothing runs twice and nothing is lost (Prosody's code does the same;
//     its README calls store failures best-effort).
//   - lookup, permanent: logged, and the handler runs (no dedup for this
//     message rather than a key stuck forever).
//   - recording, after the handler ran: logged and counted, and the
//     handler's result stands. Failing the call would make Retry run the
//     handler again, the duplicate this layer exists to prevent; the id
//     still goes into the cache, so only a redelivery after the cache
//     forgot it, or to another process, runs twice.
//
// Thread safety: any thread (the cache and the store are thread-safe); the
// engine serialises a key's messages, so a second copy of an event waits
// until the first is recorded.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "middleware/dedup_cache.h"
#include "middleware/layer.h"
#include "prosody/config.h"
#include "store/dedup_store.h"

namespace spdlog {
class logger;
}

namespace prosody::middleware {

class DedupLayer final : public Layer {
 public:
  struct Options {
    std::string version = "1";  // idempotence_version
    std::string group_id;
    PayloadCodec codec = PayloadCodec::json;
    std::size_t cache_size = 8192;  // idempotence_cache_size (> 0: 0 leaves the layer out)
  };
  struct Sinks {
    std::function<void()> on_deduplicated;  // a message was skipped
    std::function<void()> on_store_error;   // a lookup or recording failed
  };
  DedupLayer(Options options, std::shared_ptr<store::DedupStore> store, Sinks sinks);

  Status handle(Invocation& inv, const Next& next) const override;
  std::string_view name() const override { return "dedup"; }

  // The id of a message (tests, tools).
  store::DedupId id_of(const Invocation& inv) const;

 private:
  Status skip(const Invocation& inv, std::string_view tier) const;
  void remember(const Invocation& inv, const store::DedupId& id) const;

  const Options options_;
  const std::shared_ptr<store::DedupStore> store_;
  const Sinks sinks_;
  mutable DedupCache cache_;
  const std::shared_ptr<spdlog::logger> log_;
};

}  // namespace prosody::middleware
