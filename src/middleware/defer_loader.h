// DeferLoader: reads a deferred message back from Kafka by (topic,
// partition, offset) when its retry is due (reference/prosody-internals.md
// §2c "Kafka loader"). The defer stores keep only offsets; this is how the
// MessageDefer layer gets the record again.
//
// How it works:
//   - a dedicated librdkafka consumer (group id "<group>.defer-loader"),
//     manual incremental assignment only, never committing, small fetches;
//     a partition is assigned while it has pending loads and unassigned when
//     idle, so an idle loader costs no fetch traffic;
//   - one poll thread owns the consumer. Per partition it either seeks to
//     the lowest pending offset or reads forward and discards, see
//     plan_read(); a seek waits at most `seek_timeout`;
//   - an arriving offset M proves that every pending offset between the
//     expected next offset and M is gone (retention or compaction hole):
//     those loads fail Permanent "offset N no longer exists in topic[p]";
//   - an LRU cache of `cache_size` records keyed by (topic, partition,
//     offset); concurrent loads of one offset share one fetch; at most
//     `max_pending` distinct offsets are fetched at once (further callers
//     wait), which bounds memory the way Prosody's permits do;
//   - every load has a deadline of `seek_timeout` (defer_seek_timeout) from
//     the injected Clock: a record that never arrives (broker down, offset
//     beyond the end) fails Transient, so the defer layer retries later.
//
// The cache holds records in wire form (payload bytes, key, headers): the
// payload codec belongs to the engine, which decodes a loaded record the way
// it decodes a polled one.
//
// Thread safety: load() may be called from any thread, concurrently; it
// blocks until the record, an error, the deadline or a stop request.
// stop() (also run by the destructor) fails waiting loads with a Transient
// shut_down error and joins the poll thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <utility>
#include <vector>

#include "prosody/clock.h"
#include "prosody/config.h"
#include "prosody/message.h"
#include "prosody/result.h"
#include "prosody/types.h"

namespace prosody::middleware {

// A record read back from Kafka. Owns all its bytes.
struct LoadedRecord {
  Topic topic;
  Partition partition;
  Offset offset;
  Key key;               // empty when the record had no key
  bool has_key = false;
  std::string payload;   // raw bytes as on the wire; empty for a null payload
  Headers headers;
  std::chrono::system_clock::time_point timestamp;  // CreateTime or LogAppendTime
};

struct DeferLoaderSettings {
  std::string bootstrap_servers;
  std::string group_id;  // the consumer's group; the loader appends ".defer-loader"
  std::string client_id;
  std::vector<std::pair<std::string, std::string>> kafka_properties;  // user pass-through (security, ...)
  std::size_t cache_size = 1024;                                       // defer_cache_size
  std::chrono::milliseconds seek_timeout{30000};                       // defer_seek_timeout
  std::int64_t discard_threshold = 100;                                // defer_discard_threshold
  std::size_t max_pending = 64;                                        // max_uncommitted
  std::chrono::milliseconds poll_interval{100};

  static DeferLoaderSettings from(const Config& config, const std::string& bootstrap_servers);
};

// Seek to the lowest pending offset, or keep reading forward from the
// current position (discarding what nobody asked for)?
enum class ReadPlan { seek, read_forward };

// Seek when the position is unknown, already past the target (reading
// forward would never reach it), or more than `discard_threshold` records
// short of it (a seek is cheaper than reading that many).
ReadPlan plan_read(std::optional<std::int64_t> position, std::int64_t lowest_pending,
                   std::int64_t discard_threshold) noexcept;

// The offsets proven missing when `arrived` comes while `expected_next` was
// the next offset to read: [expected_next, arrived), or nullopt when none
// (arrived <= expected_next: nothing was skipped).
std::optional<std::pair<std::int64_t, std::int64_t>> missing_offsets(std::int64_t expected_next,
                                                                     std::int64_t arrived) noexcept;

class DeferLoader {
 public:
  struct Stats {
    std::uint64_t cache_hits = 0;
    std::uint64_t coalesced = 0;   // loads that joined a fetch already under way
    std::uint64_t fetched = 0;     // records delivered from Kafka to a waiting load
    std::uint64_t discarded = 0;   // records read past and not wanted
    std::uint64_t seeks = 0;
    std::uint64_t assigns = 0;
    std::uint64_t unassigns = 0;
    std::uint64_t pending = 0;     // distinct offsets being fetched right now
  };

  // Creates the consumer and starts the poll thread.
  static Result<std::unique_ptr<DeferLoader>> start(DeferLoaderSettings settings,
                                                    std::shared_ptr<Clock> clock = system_clock());
  ~DeferLoader();
  DeferLoader(const DeferLoader&) = delete;
  DeferLoader& operator=(const DeferLoader&) = delete;

  // The record at (topic, partition, offset). Errors:
  //   Permanent  topic_missing   the topic or partition does not exist
  //   Permanent  kafka           "offset N no longer exists in topic[p]"
  //   Transient  timed_out       not read within seek_timeout
  //   Transient  cancelled       `stop` was requested
  //   Transient  shut_down       the loader is stopping
  Result<LoadedRecord> load(const Topic& topic, Partition partition, Offset offset, std::stop_token stop = {});

  // Fails waiting loads, stops and joins the poll thread. Idempotent.
  void stop();

  Stats stats() const;

  struct Impl;

 private:
  explicit DeferLoader(std::unique_ptr<Impl> impl);
  void stop_once();
  std::unique_ptr<Impl> impl_;
};

}  // namespace prosody::middleware
