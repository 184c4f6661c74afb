#include "store/store_selection.h"

#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <system_error>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cql/session.h"
#include "store/cached_defer_store.h"
#include "store/cassandra/cassandra_dedup_store.h"
#include "store/cassandra/cassandra_defer_store.h"
#include "store/cassandra/cassandra_timer_store.h"
#include "store/memory/memory_dedup_store.h"
#include "store/memory/memory_defer_store.h"
#include "store/memory/memory_timer_store.h"
#include "store/sqlite/sqlite_dedup_store.h"
#include "store/sqlite/sqlite_defer_store.h"
#include "store/sqlite/sqlite_timer_store.h"

namespace prosody::store {

Result<std::string> resolve_state_dir(const Config& config) {
  if (!config.state_dir().empty()) return config.state_dir();
  if (const char* xdg = std::getenv("XDG_STATE_HOME"); xdg && *xdg) {
    return (std::filesystem::path(xdg) / "prosody").string();
  }
  if (const char* home = std::getenv("HOME"); home && *home) {
    return (std::filesystem::path(home) / ".local" / "state" / "prosody").string();
  }
  return Error::permanent("cannot choose a state directory: set state_dir (PROSODY_STATE_DIR), XDG_STATE_HOME or HOME",
                          ErrorCode::invalid_config);
}

namespace {

// The state directory, created if needed.
Result<std::string> ensure_state_dir(const Config& config) {
  auto dir = resolve_state_dir(config);
  if (!dir) return dir.error();
  std::error_code ec;
  std::filesystem::create_directories(*dir, ec);
  if (ec) {
    return Error::permanent("cannot create state directory '" + *dir + "' (state_dir / PROSODY_STATE_DIR): " +
                                ec.message(),
                            ErrorCode::invalid_config);
  }
  return dir;
}

template <typename Entry>
std::shared_ptr<DeferStore<Entry>> with_cache(std::shared_ptr<DeferStore<Entry>> store, int cache_size) {
  if (cache_size <= 0) return store;
  return std::make_shared<CachedDeferStore<Entry>>(std::move(store), static_cast<std::size_t>(cache_size));
}

// One CQL session per cluster login, shared by the timer and defer stores
// of every consumer in the process (a session already multiplexes); it
// closes when the last store holding it goes away.
Result<std::shared_ptr<cql::Session>> cassandra_session(const Config& config) {
  auto options = cql::SessionOptions::from_config(config);
  std::string id;
  for (const auto& n : options.contact_points) id += n + ",";
  id += "|" + options.user.value_or("") + "|" + options.password.value_or("") + "|" +
        options.datacenter.value_or("") + "|" + options.rack.value_or("");
  static std::mutex mu;
  static std::map<std::string, std::weak_ptr<cql::Session>> sessions;
  std::lock_guard l(mu);
  if (auto s = sessions[id].lock()) return s;
  auto s = cql::Session::connect(std::move(options));
  if (!s) {
    return Error(s.error().error_class(), s.error().code(),
                 fmt::format("cannot open the Cassandra stores (cassandra_nodes = {}): {}",
                             fmt::join(config.cassandra_nodes(), ","), s.error().message()));
  }
  sessions[id] = *s;
  return *s;
}

cassandra::CassandraStoreOptions cassandra_options(const Config& config) {
  cassandra::CassandraStoreOptions o;
  o.keyspace = config.cassandra_keyspace();
  o.retention = std::chrono::ceil<std::chrono::seconds>(config.cassandra_retention());
  return o;
}

}  // namespace

Result<std::shared_ptr<TimerStore>> open_timer_store(const Config& config) {
  if (!config.cassandra_nodes().empty()) {
    auto session = cassandra_session(config);
    if (!session) return session.error();
    auto store = cassandra::CassandraTimerStore::open(*session, cassandra_options(config));
    if (!store) return store.error();
    return std::shared_ptr<TimerStore>(std::move(*store));
  }
  if (config.mock()) {
    // Process-wide, like the mock cluster: two clients in one process see
    // each other's timers, as two processes sharing a real store would.
    static const auto shared = std::make_shared<MemoryTimerStore>();
    return std::shared_ptr<TimerStore>(shared);
  }
  auto dir = ensure_state_dir(config);
  if (!dir) return dir.error();
  auto sqlite = SqliteTimerStore::open((std::filesystem::path(*dir) / "timers.sqlite").string());
  if (!sqlite) return sqlite.error();
  return std::shared_ptr<TimerStore>(std::move(*sqlite));
}

Result<DeferStores> open_defer_store(const Config& config) {
  const int cache = config.defer_store_cache_size();
  if (!config.cassandra_nodes().empty()) {
    auto session = cassandra_session(config);
    if (!session) return session.error();
    auto messages = cassandra::CassandraMessageDeferStore::open(*session, cassandra_options(config));
    if (!messages) return messages.error();
    auto timers = cassandra::CassandraTimerDeferStore::open(*session, cassandra_options(config));
    if (!timers) return timers.error();
    return DeferStores{with_cache<DeferredMessage>(std::move(*messages), cache),
                       with_cache<DeferredTimer>(std::move(*timers), cache)};
  }
  if (config.mock()) {
    // Process-wide, like the timer store of mock mode. No cache: the store
    // is memory already.
    static const auto messages = std::make_shared<MemoryMessageDeferStore>();
    static const auto timers = std::make_shared<MemoryTimerDeferStore>();
    return DeferStores{messages, timers};
  }
  auto dir = ensure_state_dir(config);
  if (!dir) return dir.error();
  const auto path = (std::filesystem::path(*dir) / "defer.sqlite").string();
  auto messages = SqliteMessageDeferStore::open(path);
  if (!messages) return messages.error();
  auto timers = SqliteTimerDeferStore::open(path);
  if (!timers) return timers.error();
  return DeferStores{with_cache<DeferredMessage>(std::move(*messages), cache),
                     with_cache<DeferredTimer>(std::move(*timers), cache)};
}

Result<std::shared_ptr<DedupStore>> open_dedup_store(const Config& config) {
  const auto ttl = std::chrono::ceil<std::chrono::seconds>(config.idempotence_ttl());
  if (!config.cassandra_nodes().empty()) {
    auto session = cassandra_session(config);
    if (!session) return session.error();
    auto store = cassandra::CassandraDedupStore::open(*session, config.cassandra_keyspace(), ttl);
    if (!store) return store.error();
    return std::shared_ptr<DedupStore>(std::move(*store));
  }
  if (config.mock()) {
    // Process-wide like the other mock stores; one per TTL, since the TTL
    // belongs to the store.
    static std::mutex mu;
    static std::map<std::chrono::seconds, std::shared_ptr<MemoryDedupStore>> stores;
    std::lock_guard l(mu);
    auto& store = stores[ttl];
    if (!store) store = std::make_shared<MemoryDedupStore>(ttl);
    return std::shared_ptr<DedupStore>(store);
  }
  auto dir = ensure_state_dir(config);
  if (!dir) return dir.error();
  SqliteDedupStore::Options options;
  options.ttl = ttl;
  auto sqlite = SqliteDedupStore::open((std::filesystem::path(*dir) / "dedup.sqlite").string(), std::move(options));
  if (!sqlite) return sqlite.error();
  return std::shared_ptr<DedupStore>(std::move(*sqlite));
}

}  // namespace prosody::store
