#include "store/store_selection.h"

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <system_error>

#include "store/memory/memory_timer_store.h"
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
  auto dir = resolve_state_dir(config);
  if (!dir) return dir.error();
  std::error_code ec;
  std::filesystem::create_directories(*dir, ec);
  if (ec) {
    return Error::permanent("cannot create state directory '" + *dir + "' (state_dir / PROSODY_STATE_DIR): " +
                                ec.message(),
                            ErrorCode::invalid_config);
  }
  auto sqlite = SqliteTimerStore::open((std::filesystem::path(*dir) / "timers.sqlite").string());
  if (!sqlite) return sqlite.error();
  return std::shared_ptr<TimerStore>(std::move(*sqlite));
}

}  // namespace prosody::store
