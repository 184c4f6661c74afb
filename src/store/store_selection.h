// Picks the stores a consumer uses, from its configuration:
//   cassandra_nodes set -> Cassandra (fleets; Prosody-compatible): one CQL
//                          session per login (cassandra_nodes, _user,
//                          _password, _datacenter, _rack) shared in the
//                          process; tables in cassandra_keyspace, rows
//                          expire after cassandra_retention. The keyspace
//                          must have been migrated (`prosody migrate`):
//                          missing tables are a permanent error naming it.
//   mock                -> memory (process-wide, like the mock cluster)
//   otherwise           -> SQLite in the state directory (single machine):
//                          <state_dir>/timers.sqlite, where state_dir
//                          defaults to $XDG_STATE_HOME/prosody or
//                          ~/.local/state/prosody. Consumers on one machine
//                          that share the directory share their timers.
//                          Defer queues: <state_dir>/defer.sqlite;
//                          dedup ids: <state_dir>/dedup.sqlite.
//
// Thread safety: any thread.
#pragma once

#include <memory>
#include <string>

#include "prosody/config.h"
#include "prosody/result.h"
#include "store/dedup_store.h"
#include "store/defer_store.h"
#include "store/timer_store.h"

namespace prosody::store {

// The configured state directory, or the default, resolved to a path.
Result<std::string> resolve_state_dir(const Config& config);

Result<std::shared_ptr<TimerStore>> open_timer_store(const Config& config);

// The message and timer defer queues (pipeline mode). Persistent backends
// are wrapped in a CachedDeferStore of `defer_store_cache_size` keys (0: no
// cache); the engine calls invalidate(segment) on both when a partition
// is assigned.
Result<DeferStores> open_defer_store(const Config& config);

// The deduplication store; ids live for `idempotence_ttl`. Mock mode shares
// one memory store per TTL in the process.
Result<std::shared_ptr<DedupStore>> open_dedup_store(const Config& config);

}  // namespace prosody::store
