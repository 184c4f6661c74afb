#include "store/cassandra/migrator.h"

#include <unistd.h>

#include <algorithm>
#include <map>
#include <random>

#include <openssl/evp.h>

#include "prosody/logging.h"

namespace prosody::store::cassandra {
namespace {

using cql::Value;

constexpr std::string_view kLockName = "migration";

// Placeholder -> table name, as Prosody names them.
const std::pair<std::string_view, std::string_view> kTables[] = {
    {"{{TABLE_SEGMENTS}}", "timer_segments"},
    {"{{TABLE_SLABS}}", "timer_slabs"},
    {"{{TABLE_KEYS}}", "timer_keys"},
    {"{{TABLE_TYPED_SLABS}}", "timer_typed_slabs"},
    {"{{TABLE_TYPED_KEYS}}", "timer_typed_keys"},
    {"{{TABLE_SCHEMA_MIGRATIONS}}", "schema_migrations"},
    {"{{TABLE_DEFERRED_SEGMENTS}}", "deferred_segments"},
    {"{{TABLE_DEFERRED_OFFSETS}}", "deferred_offsets"},
    {"{{TABLE_DEFERRED_TIMERS}}", "deferred_timers"},
    {"{{TABLE_DEDUPLICATION}}", "deduplication"},
};

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  for (auto pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) {
    s.replace(pos, from.size(), to);
  }
}

std::string trim(std::string_view s) {
  auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  auto e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

// Re-running an ALTER ... ADD on a keyspace that already has the column (for
// instance one migrated by Prosody under its own file names) is not a failure.
bool already_done(const std::string& statement, const Error& e) {
  std::string lower = statement;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  if (lower.rfind("alter table", 0) != 0 || lower.find(" add") == std::string::npos) return false;
  const auto& m = e.message();
  return m.find("conflicts with an existing column") != std::string::npos ||
         m.find("already exists") != std::string::npos;
}

class Run {
 public:
  Run(cql::Session& s, const MigratorOptions& o)
      : s_(s), o_(o), clock_(o.clock ? o.clock : system_clock()), ks_(o.keyspace), owner_(cql::Uuid::random()) {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    process_info_ = std::string(host) + ":" + std::to_string(getpid());
    for (const auto& m : o.migrations) {
      auto text = substitute_placeholders(m.content, ks_);
      embedded_.push_back({m.filename, text, sha256_hex(text)});
    }
    std::sort(embedded_.begin(), embedded_.end(), [](const auto& a, const auto& b) { return a.filename < b.filename; });
  }

  Result<MigrationReport> run() {
    if (!valid_keyspace_name(ks_)) {
      return Error::permanent("invalid Cassandra keyspace name '" + ks_ + "' (letters, digits, _; at most 48)",
                              ErrorCode::invalid_config);
    }
    std::optional<Error> last;
    for (int attempt = 0; attempt < o_.max_attempts; ++attempt) {
      if (attempt > 0) backoff(attempt);
      auto r = attempt_once();
      if (r) return r;
      if (!r.error().is_transient()) return r;
      logger()->warn("cassandra migrate: attempt {} of {} failed: {}", attempt + 1, o_.max_attempts,
                     r.error().message());
      last = std::move(r).error();
    }
    return Error::transient("Cassandra migrations did not complete after " + std::to_string(o_.max_attempts) +
                                " attempts: " + last->message(),
                            last->code());
  }

 private:
  struct File {
    std::string filename, text, checksum;
  };

  void backoff(int attempt) {
    auto cap = std::min<std::int64_t>(o_.max_backoff.count(), std::int64_t{1000} << std::min(attempt, 20));
    std::uniform_int_distribution<std::int64_t> jitter(cap / 2, cap);
    clock_->sleep_for(std::chrono::milliseconds(jitter(rng_)), {});
  }

  Status setup() {
    if (setup_done_) return {};
    auto ks = s_.query("CREATE KEYSPACE IF NOT EXISTS " + ks_ +
                       " WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}");
    if (!ks) return std::move(ks).error();
    auto m = s_.query("CREATE TABLE IF NOT EXISTS " + ks_ +
                      ".schema_migrations (filename text PRIMARY KEY, checksum text, applied_at timestamp, "
                      "execution_time_ms bigint) WITH compression = {'class': 'ZstdCompressor'} "
                      "AND compaction = {'class': 'UnifiedCompactionStrategy'}");
    if (!m) return std::move(m).error();
    auto l = s_.query("CREATE TABLE IF NOT EXISTS " + ks_ +
                      ".locks (lock_name text PRIMARY KEY, owner_id uuid, acquired_at timestamp, "
                      "expires_at timestamp, process_info text) WITH compression = {'class': 'ZstdCompressor'}");
    if (!l) return std::move(l).error();
    // New tables may take a moment to be preparable on every node.
    for (int i = 0;; ++i) {
      auto st = prepare_statements();
      if (st) break;
      if (i + 1 >= 10) return st;
      clock_->sleep_for(std::chrono::milliseconds(200 * (i + 1)), {});
    }
    setup_done_ = true;
    return {};
  }

  Status prepare_statements() {
    auto lock = s_.prepare("INSERT INTO " + ks_ +
                           ".locks (lock_name, owner_id, acquired_at, expires_at, process_info) "
                           "VALUES (?, ?, ?, ?, ?) IF NOT EXISTS USING TTL ?");
    if (!lock) return std::move(lock).error();
    auto unlock = s_.prepare("DELETE FROM " + ks_ + ".locks WHERE lock_name = ? IF owner_id = ?");
    if (!unlock) return std::move(unlock).error();
    auto record = s_.prepare("INSERT INTO " + ks_ +
                             ".schema_migrations (filename, checksum, applied_at, execution_time_ms) "
                             "VALUES (?, ?, ?, ?)");
    if (!record) return std::move(record).error();
    auto applied = s_.prepare("SELECT filename, checksum FROM " + ks_ + ".schema_migrations");
    if (!applied) return std::move(applied).error();
    lock_ = *lock;
    unlock_ = *unlock;
    record_ = *record;
    applied_ = *applied;
    return {};
  }

  // Recorded files; verifies checksums and fills `pending`.
  Status check(MigrationReport& report, std::vector<const File*>& pending) {
    auto rows = s_.execute_all(applied_, {});
    if (!rows) return std::move(rows).error();
    std::map<std::string, std::string> recorded;
    for (std::size_t i = 0; i < rows->size(); ++i) {
      const auto* f = rows->at(i, "filename").get<std::string>();
      const auto* c = rows->at(i, "checksum").get<std::string>();
      if (f) recorded[*f] = c ? *c : "";
    }
    report = {};
    pending.clear();
    for (const auto& file : embedded_) {
      auto it = recorded.find(file.filename);
      if (it == recorded.end()) {
        pending.push_back(&file);
        continue;
      }
      if (it->second != file.checksum) {
        return Error::terminal("Cassandra migration " + file.filename + " was changed after it was applied to keyspace " +
                                   ks_ + " (recorded sha256 " + it->second + ", embedded " + file.checksum +
                                   "); restore the original file and add a new migration instead",
                               ErrorCode::invalid_state);
      }
      report.already_applied.push_back(file.filename);
      recorded.erase(it);
    }
    for (const auto& [name, sum] : recorded) {
      logger()->warn("cassandra migrate: {} is recorded in {}.schema_migrations but not embedded here", name, ks_);
      report.unknown_recorded.push_back(name);
    }
    return {};
  }

  Result<bool> acquire() {
    auto now = clock_->system_now();
    auto ms = [](Clock::system_time t) {
      return cql::Timestamp{std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count()};
    };
    cql::QueryOptions serial;
    serial.serial_consistency = cql::Consistency::local_serial;
    auto r = s_.execute(lock_,
                        {std::string(kLockName), owner_, ms(now), ms(now + o_.lock_ttl), process_info_,
                         static_cast<std::int32_t>(o_.lock_ttl.count())},
                        serial);
    if (!r) return std::move(r).error();
    const auto* applied = r->at(0, "[applied]").get<bool>();
    if (applied && *applied) return true;
    const auto* holder = r->at(0, "process_info").get<std::string>();
    logger()->info("cassandra migrate: lock held by {}; waiting", holder ? *holder : "another process");
    return false;
  }

  void release() {
    cql::QueryOptions serial;
    serial.serial_consistency = cql::Consistency::local_serial;
    auto r = s_.execute(unlock_, {std::string(kLockName), owner_}, serial);
    if (!r) logger()->warn("cassandra migrate: releasing the lock failed (its TTL frees it): {}", r.error().message());
  }

  Status apply(const File& file) {
    auto started = std::chrono::steady_clock::now();
    for (const auto& stmt : split_statements(file.text)) {
      auto r = s_.query(stmt, {}, {});
      if (!r) {
        if (already_done(stmt, r.error())) {
          logger()->info("cassandra migrate: {}: already applied: {}", file.filename, r.error().message());
          continue;
        }
        Error e = std::move(r).error();
        return Error(e.error_class(), e.code(), "migration " + file.filename + " failed: " + e.message());
      }
    }
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
    auto now = std::chrono::duration_cast<std::chrono::milliseconds>(clock_->system_now().time_since_epoch());
    auto rec = s_.execute(record_, {file.filename, file.checksum, cql::Timestamp{now.count()},
                                    static_cast<std::int64_t>(took.count())});
    if (!rec) return std::move(rec).error();
    logger()->info("cassandra migrate: applied {} in {} ms", file.filename, took.count());
    return {};
  }

  Result<MigrationReport> attempt_once() {
    if (auto st = setup(); !st) return std::move(st).error();
    MigrationReport report;
    std::vector<const File*> pending;
    if (auto st = check(report, pending); !st) return std::move(st).error();
    if (pending.empty()) return report;
    auto got = acquire();
    if (!got) return std::move(got).error();
    if (!*got) return Error::transient("migration lock is held by another process", ErrorCode::invalid_state);
    // Another process may have applied some while we waited for the lock.
    Status st = check(report, pending);
    for (std::size_t i = 0; st && i < pending.size(); ++i) {
      st = apply(*pending[i]);
      if (st) report.applied.push_back(pending[i]->filename);
    }
    release();
    if (!st) return std::move(st).error();
    return report;
  }

  cql::Session& s_;
  const MigratorOptions& o_;
  std::shared_ptr<Clock> clock_;
  std::string ks_;
  cql::Uuid owner_;
  std::string process_info_;
  std::vector<File> embedded_;
  std::mt19937_64 rng_{std::random_device{}()};
  bool setup_done_ = false;
  cql::Prepared lock_, unlock_, record_, applied_;
};

}  // namespace

std::string substitute_placeholders(std::string_view content, std::string_view keyspace) {
  std::string out(content);
  replace_all(out, "{{KEYSPACE}}", keyspace);
  for (const auto& [from, to] : kTables) replace_all(out, from, to);
  return out;
}

std::vector<std::string> split_statements(std::string_view content) {
  std::vector<std::string> out;
  std::string current;
  std::size_t pos = 0;
  while (pos <= content.size()) {
    auto nl = content.find('\n', pos);
    auto line = content.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? content.size() + 1 : nl + 1;
    auto t = trim(line);
    if (t.empty() || t.rfind("--", 0) == 0) continue;
    if (!current.empty()) current += '\n';
    current += t;
    if (t.back() == ';') {
      current.pop_back();
      if (auto stmt = trim(current); !stmt.empty()) out.push_back(std::move(stmt));
      current.clear();
    }
  }
  if (auto rest = trim(current); !rest.empty()) out.push_back(std::move(rest));
  return out;
}

std::string sha256_hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 15];
  }
  return out;
}

bool valid_keyspace_name(std::string_view name) {
  return !name.empty() && name.size() <= 48 &&
         std::all_of(name.begin(), name.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

Result<MigrationReport> migrate(cql::Session& session, const MigratorOptions& options) {
  return Run(session, options).run();
}

}  // namespace prosody::store::cassandra
