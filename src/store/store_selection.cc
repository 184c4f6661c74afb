#include "store/store_selection.h"

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <system_error>

#include "store/cached_defer_store.h"
#include "store/memory/memory_defer_store.h"
#include "store/memory/memory_timer_store.h"
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

}  // namespace

Result<std::shared_ptr<TimerStore>> open_timer_store(const Config& config) {
  if (!config.cassandra_nodes().empty()) {
    return Error::permanent(
        "cassandra_nodes is set, but this build of prosody-cpp has no Cassandra timer store yet; unset "
        "cassandra_nodes (PROSODY_CASSANDRA_NODES) to use the embedded SQLite store in state_dir",
        ErrorCode::invalid_config);
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
  if (!config.cassandra_nodes().empty()) {
    return Error::permanent(
        "cassandra_nodes is set, but this build of prosody-cpp has no Cassandra defer store yet; unset "
        "cassandra_nodes (PROSODY_CASSANDRA_NODES) to use the embedded SQLite store in state_dir",
        ErrorCode::invalid_config);
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
  const int cache = config.defer_store_cache_size();
  return DeferStores{with_cache<DeferredMessage>(std::move(*messages), cache),
                     with_cache<DeferredTimer>(std::move(*timers), cache)};
}

}  // namespace prosody::store
