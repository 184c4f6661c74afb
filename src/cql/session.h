// cql::Session: the CQL client the rest of the library uses.
//
//   auto s = cql::Session::connect(cql::SessionOptions::from_config(config));
//   if (!s) return s.error();
//   auto insert = (*s)->prepare("INSERT INTO ks.t (id, v) VALUES (?, ?)");
//   auto done = (*s)->execute(*insert, {cql::Uuid::random(), "v"});
//
// Every call returns a Result; nothing throws. Server errors keep their class
// (transient: retry may succeed; permanent: fix the statement or config).
//
// Routing: statements whose partition key is bound (prepared, all key
// columns bound) go to a replica of the key's Murmur3 token, preferring the
// local DC/rack; others rotate over the preferred nodes. Unavailable,
// overloaded and bootstrapping replies and "not connected" move the request
// to the next node; timeouts do not (the write may have happened).
// An EXECUTE answered with UNPREPARED is re-prepared on that node and sent
// again once, transparently.
//
// Thread rules: a Session is safe to use from any number of threads. One
// internal I/O thread owns every socket. The synchronous calls block the
// calling thread until the reply (or the per-request timeout); they must not
// be called from an async callback (they return an invalid_state error
// instead of deadlocking). Async callbacks run on the I/O thread: keep them
// short and never block in them. close() (or the destructor) fails pending
// requests with a shut_down error and joins the I/O thread.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cql/messages.h"
#include "cql/types.h"
#include "prosody/clock.h"
#include "prosody/config.h"
#include "prosody/result.h"

namespace prosody::cql {

struct SessionOptions {
  std::vector<std::string> contact_points;  // host or host:port
  std::optional<std::string> user;
  std::optional<std::string> password;
  std::optional<std::string> keyspace;  // USE on every connection when set
  std::optional<std::string> datacenter;
  std::optional<std::string> rack;
  Consistency consistency = Consistency::local_quorum;
  std::int32_t page_size = 5000;
  std::chrono::milliseconds request_timeout{12000};
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds reconnect_base{100};
  std::chrono::milliseconds reconnect_max{5000};
  int replication_factor = 3;  // replica guess for token-aware routing
  std::shared_ptr<Clock> clock;  // write timestamps; system clock when null

  // cassandra_nodes / _user / _password / _datacenter / _rack. The keyspace
  // is left for statements to name (the migrator may have to create it).
  static SessionOptions from_config(const Config& config);
};

// A statement prepared on the cluster. The id and metadata may be refreshed
// by a transparent re-prepare; reads are locked, so any thread may use it.
class PreparedStatement {
 public:
  PreparedStatement(std::string query, PreparedResult result)
      : query_(std::move(query)), result_(std::make_shared<const PreparedResult>(std::move(result))) {}
  const std::string& query() const noexcept { return query_; }
  std::shared_ptr<const PreparedResult> metadata() const {
    std::lock_guard lock(mu_);
    return result_;
  }
  void update(PreparedResult r) {
    std::lock_guard lock(mu_);
    result_ = std::make_shared<const PreparedResult>(std::move(r));
  }

 private:
  std::string query_;
  mutable std::mutex mu_;
  std::shared_ptr<const PreparedResult> result_;
};
using Prepared = std::shared_ptr<PreparedStatement>;

struct QueryOptions {
  std::optional<Consistency> consistency;         // session default when unset
  std::optional<Consistency> serial_consistency;  // LWT: serial / local_serial
  std::optional<std::int32_t> page_size;          // <= 0: unpaged
  std::optional<std::string> paging_state;        // continue from a previous page
  std::optional<std::chrono::milliseconds> timeout;
  std::optional<std::int64_t> timestamp;  // microseconds; else a monotonic client timestamp
};

struct BatchStatement {
  Prepared prepared;  // or
  std::string cql;
  std::vector<Value> values;
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  using RowsCallback = std::function<void(Result<Rows>)>;
  using PreparedCallback = std::function<void(Result<Prepared>)>;

  // Connects to the first reachable contact point (authenticating if asked)
  // and learns the cluster; fails with the reason (bad credentials: a
  // permanent error naming the user).
  static Result<std::shared_ptr<Session>> connect(SessionOptions options);
  ~Session();
  void close();

  Result<Prepared> prepare(std::string cql);
  Result<Rows> execute(const Prepared& statement, std::vector<Value> values = {}, QueryOptions options = {});
  Result<Rows> query(std::string cql, std::vector<Value> values = {}, QueryOptions options = {});
  Result<Rows> batch(BatchType type, std::vector<BatchStatement> statements, QueryOptions options = {});
  // Follows paging_state until the last page; all rows in one Rows.
  Result<Rows> execute_all(const Prepared& statement, std::vector<Value> values = {}, QueryOptions options = {});

  void prepare_async(std::string cql, PreparedCallback cb);
  void execute_async(Prepared statement, std::vector<Value> values, QueryOptions options, RowsCallback cb);
  void query_async(std::string cql, std::vector<Value> values, QueryOptions options, RowsCallback cb);
  void batch_async(BatchType type, std::vector<BatchStatement> statements, QueryOptions options, RowsCallback cb);

  const SessionOptions& options() const noexcept { return options_; }
  // Nodes known from system.local/peers (address, DC, rack), for tools.
  std::vector<std::string> describe_nodes();

  struct Impl;

 private:
  explicit Session(SessionOptions options);
  bool on_io_thread() const noexcept { return std::this_thread::get_id() == io_thread_id_; }
  template <typename T, typename Start>
  Result<T> wait(Start start);

  SessionOptions options_;
  std::unique_ptr<Impl> impl_;
  std::thread io_thread_;
  std::thread::id io_thread_id_;
  std::once_flag closed_;
};

}  // namespace prosody::cql
