#include "cql/session.h"

#include <atomic>
#include <future>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>

#include "cql/errors.h"
#include "cql/murmur3.h"
#include "cql/pool.h"
#include "cql/routing.h"

namespace prosody::cql {
namespace {

Error shut_down_error() { return Error::transient("Cassandra session is closed", ErrorCode::shut_down); }

bool retry_elsewhere(std::int32_t code) {
  return code == static_cast<std::int32_t>(ServerCode::unavailable) ||
         code == static_cast<std::int32_t>(ServerCode::overloaded) ||
         code == static_cast<std::int32_t>(ServerCode::is_bootstrapping);
}

}  // namespace

SessionOptions SessionOptions::from_config(const Config& config) {
  SessionOptions o;
  o.contact_points = config.cassandra_nodes();
  o.user = config.cassandra_user();
  o.password = config.cassandra_password();
  o.datacenter = config.cassandra_datacenter();
  o.rack = config.cassandra_rack();
  return o;
}

// All request state lives on the I/O thread.
struct Session::Impl {
  struct Request {
    enum class Kind { query, execute, batch, prepare } kind = Kind::query;
    std::string cql;
    Prepared prepared;
    std::vector<Value> values;
    std::vector<BatchStatement> batch;
    BatchType batch_type = BatchType::logged;
    QueryParams params;
    std::optional<std::int64_t> token;
    std::chrono::milliseconds timeout{0};
    std::function<void(Result<Response>)> done;
    std::vector<std::shared_ptr<Connection>> plan;
    std::size_t next = 0;
    int reprepares = 0;
    bool sending = false;
  };
  using RequestPtr = std::shared_ptr<Request>;

  explicit Impl(const SessionOptions& o)
      : work(asio::make_work_guard(io)), pool(io, pool_options(o)), clock(o.clock ? o.clock : system_clock()) {}

  static PoolOptions pool_options(const SessionOptions& o) {
    PoolOptions p;
    p.contact_points = o.contact_points;
    p.connection.user = o.user;
    p.connection.password = o.password;
    p.connection.keyspace = o.keyspace;
    p.connection.connect_timeout = o.connect_timeout;
    p.datacenter = o.datacenter;
    p.rack = o.rack;
    p.replication_factor = o.replication_factor;
    p.reconnect_base = o.reconnect_base;
    p.reconnect_max = o.reconnect_max;
    return p;
  }

  // Posts `fn` to the I/O thread unless the session is closed (then false).
  template <typename Fn>
  bool post(Fn&& fn) {
    std::lock_guard lock(post_mu);
    if (closed) return false;
    asio::post(io, std::forward<Fn>(fn));
    return true;
  }

  // Client-side timestamps, strictly increasing (Prosody #25): two writes to
  // one cell from this client never tie.
  std::int64_t next_timestamp() {
    auto now = std::chrono::duration_cast<std::chrono::microseconds>(clock->system_now().time_since_epoch()).count();
    last_timestamp = std::max(last_timestamp + 1, static_cast<std::int64_t>(now));
    return last_timestamp;
  }

  void run(const RequestPtr& req) {
    if (req->next == 0 && req->plan.empty()) {
      if (req->kind == Request::Kind::execute && !req->token) {
        auto meta = req->prepared->metadata();
        if (auto key = routing_key(req->values, meta->bind, meta->pk_indexes)) {
          req->token = murmur3_token(
              std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(key->data()), key->size()));
        }
      }
      req->plan = pool.plan(req->token);
    }
    if (req->next >= req->plan.size()) {
      std::string why = pool.last_error() ? pool.last_error()->message() : "no connection is ready";
      return req->done(connection_error("no Cassandra node available (" + why + ")"));
    }
    send_on(req->plan[req->next], req);
  }

  Connection::Builder builder(const RequestPtr& req) {
    switch (req->kind) {
      case Request::Kind::prepare:
        return [req](std::int16_t s) -> Result<std::vector<std::uint8_t>> { return encode_prepare(s, req->cql); };
      case Request::Kind::query:
        return [req](std::int16_t s) { return encode_query(s, req->cql, req->values, req->params); };
      case Request::Kind::execute:
        return [req](std::int16_t s) {
          auto meta = req->prepared->metadata();
          return encode_execute(s, meta->id, req->values, meta->bind, req->params);
        };
      case Request::Kind::batch:
        return [req](std::int16_t s) {
          // Metadata snapshots stay alive while the frame is encoded.
          std::vector<std::shared_ptr<const PreparedResult>> metas;
          std::vector<BatchEntry> entries;
          entries.reserve(req->batch.size());
          for (auto& b : req->batch) {
            BatchEntry e;
            if (b.prepared) {
              metas.push_back(b.prepared->metadata());
              e.prepared = true;
              e.query_or_id = metas.back()->id;
              e.bind = &metas.back()->bind;
            } else {
              e.query_or_id = b.cql;
            }
            e.values = b.values;
            entries.push_back(std::move(e));
          }
          return encode_batch(s, req->batch_type, entries, req->params);
        };
    }
    return {};
  }

  void send_on(const std::shared_ptr<Connection>& conn, const RequestPtr& req) {
    std::shared_ptr<const Columns> cached;
    if (req->kind == Request::Kind::execute) {
      auto meta = req->prepared->metadata();
      req->params.skip_metadata = meta->result && !meta->result->empty();
      if (req->params.skip_metadata) cached = meta->result;
    }
    req->sending = true;
    conn->send(builder(req), cached, req->timeout, [this, conn, req](Result<Response> r) {
      bool not_sent = req->sending;
      if (!r) {
        // Not sent (node just went away): the next node may take it.
        if (not_sent && r.error().code() != ErrorCode::invalid_argument) {
          ++req->next;
          return run(req);
        }
        return req->done(std::move(r));
      }
      if (r->kind == Response::Kind::error) {
        if (r->error_code == static_cast<std::int32_t>(ServerCode::unprepared) && req->reprepares < 2) {
          ++req->reprepares;
          return reprepare(conn, req, r->unprepared_id);
        }
        if (retry_elsewhere(r->error_code) && req->next + 1 < req->plan.size()) {
          ++req->next;
          return run(req);
        }
        return req->done(server_error(r->error_code, r->text));
      }
      req->done(std::move(r));
    });
    req->sending = false;
  }

  // The node forgot the statement (restart, schema change, cache eviction):
  // prepare it again there, then resend the request.
  void reprepare(const std::shared_ptr<Connection>& conn, const RequestPtr& req, const std::string& id) {
    Prepared target;
    if (req->kind == Request::Kind::execute) {
      target = req->prepared;
    } else if (req->kind == Request::Kind::batch) {
      for (auto& b : req->batch) {
        if (b.prepared && b.prepared->metadata()->id == id) target = b.prepared;
      }
    }
    if (!target) return req->done(server_error(static_cast<std::int32_t>(ServerCode::unprepared), "unknown id"));
    auto query = target->query();
    conn->send([query](std::int16_t s) -> Result<std::vector<std::uint8_t>> { return encode_prepare(s, query); },
               nullptr, req->timeout, [this, conn, req, target](Result<Response> r) {
                 if (!r) return req->done(std::move(r));
                 if (r->kind == Response::Kind::error) return req->done(server_error(r->error_code, r->text));
                 if (r->kind != Response::Kind::prepared) return req->done(protocol_error("PREPARE did not return an id"));
                 target->update(std::move(r->prepared));
                 send_on(conn, req);
               });
  }

  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work;
  Pool pool;
  std::shared_ptr<Clock> clock;
  std::int64_t last_timestamp = 0;
  std::mutex post_mu;
  bool closed = false;  // guarded by post_mu
};

Session::Session(SessionOptions options) : options_(std::move(options)), impl_(std::make_unique<Impl>(options_)) {
  io_thread_ = std::thread([this] { impl_->io.run(); });
  io_thread_id_ = io_thread_.get_id();
}

Session::~Session() { close(); }

void Session::close() {
  std::call_once(closed_, [this] {
    {
      std::lock_guard lock(impl_->post_mu);
      impl_->closed = true;
      // Runs after every request posted before it: they fail with shut_down.
      asio::post(impl_->io, [this] {
        impl_->pool.close(shut_down_error());
        impl_->work.reset();
      });
    }
    if (io_thread_.joinable()) {
      if (std::this_thread::get_id() == io_thread_id_) io_thread_.detach();
      else io_thread_.join();
    }
  });
}

Result<std::shared_ptr<Session>> Session::connect(SessionOptions options) {
  if (options.contact_points.empty()) {
    return Error::permanent("no Cassandra contact points (set cassandra_nodes / PROSODY_CASSANDRA_NODES)",
                            ErrorCode::invalid_config);
  }
  auto s = std::shared_ptr<Session>(new Session(std::move(options)));
  auto p = std::make_shared<std::promise<Status>>();
  auto f = p->get_future();
  if (!s->impl_->post([s = s.get(), p] { s->impl_->pool.start([p](Status st) { p->set_value(std::move(st)); }); })) {
    return shut_down_error();
  }
  auto st = f.get();
  if (!st) {
    s->close();
    return std::move(st).error();
  }
  return s;
}

template <typename T, typename Start>
Result<T> Session::wait(Start start) {
  if (on_io_thread()) {
    return Error::permanent("cql::Session: synchronous call from an async callback (would deadlock)",
                            ErrorCode::invalid_state);
  }
  auto p = std::make_shared<std::promise<Result<T>>>();
  auto f = p->get_future();
  start([p](Result<T> r) { p->set_value(std::move(r)); });
  return f.get();
}

namespace {

Result<Rows> to_rows(Result<Response> r) {
  if (!r) return std::move(r).error();
  return std::move(r->rows);
}

}  // namespace

void Session::prepare_async(std::string cql, PreparedCallback cb) {
  auto req = std::make_shared<Impl::Request>();
  req->kind = Impl::Request::Kind::prepare;
  req->cql = std::move(cql);
  req->timeout = options_.request_timeout;
  req->done = [cb, query = req->cql](Result<Response> r) {
    if (!r) return cb(std::move(r).error());
    if (r->kind != Response::Kind::prepared) return cb(protocol_error("PREPARE did not return an id"));
    cb(std::make_shared<PreparedStatement>(query, std::move(r->prepared)));
  };
  if (!impl_->post([this, req] { impl_->run(req); })) cb(shut_down_error());
}

// Shared tail of execute_async and query_async: the request's parameters
// from the call's options (falling back to the session's), then queued on
// the I/O thread, which stamps the client-side timestamp.
static void submit_rows(Session::Impl& impl, const SessionOptions& defaults, Session::Impl::RequestPtr req,
                        QueryOptions o, Session::RowsCallback cb) {
  req->params.consistency = o.consistency.value_or(defaults.consistency);
  req->params.serial_consistency = o.serial_consistency;
  req->params.page_size = o.page_size.value_or(defaults.page_size);
  req->params.paging_state = std::move(o.paging_state);
  req->params.timestamp = o.timestamp;
  req->timeout = o.timeout.value_or(defaults.request_timeout);
  req->done = [cb](Result<Response> r) { cb(to_rows(std::move(r))); };
  if (!impl.post([impl = &impl, req] {
        if (!req->params.timestamp) req->params.timestamp = impl->next_timestamp();
        impl->run(req);
      })) {
    cb(shut_down_error());
  }
}

void Session::execute_async(Prepared statement, std::vector<Value> values, QueryOptions o, RowsCallback cb) {
  if (!statement) return cb(usage_error("execute of a null prepared statement"));
  auto req = std::make_shared<Impl::Request>();
  req->kind = Impl::Request::Kind::execute;
  req->prepared = std::move(statement);
  req->values = std::move(values);
  submit_rows(*impl_, options_, std::move(req), std::move(o), std::move(cb));
}

void Session::query_async(std::string cql, std::vector<Value> values, QueryOptions o, RowsCallback cb) {
  auto req = std::make_shared<Impl::Request>();
  req->kind = Impl::Request::Kind::query;
  req->cql = std::move(cql);
  req->values = std::move(values);
  submit_rows(*impl_, options_, std::move(req), std::move(o), std::move(cb));
}

void Session::batch_async(BatchType type, std::vector<BatchStatement> statements, QueryOptions o, RowsCallback cb) {
  auto req = std::make_shared<Impl::Request>();
  req->kind = Impl::Request::Kind::batch;
  req->batch = std::move(statements);
  req->batch_type = type;
  req->params.consistency = o.consistency.value_or(options_.consistency);
  req->params.serial_consistency = o.serial_consistency;
  req->params.timestamp = o.timestamp;
  req->timeout = o.timeout.value_or(options_.request_timeout);
  req->done = [cb](Result<Response> r) { cb(to_rows(std::move(r))); };
  if (!impl_->post([this, req] {
        if (!req->params.timestamp) req->params.timestamp = impl_->next_timestamp();
        impl_->run(req);
      })) {
    cb(shut_down_error());
  }
}

Result<Prepared> Session::prepare(std::string cql) {
  return wait<Prepared>([&](auto done) { prepare_async(std::move(cql), std::move(done)); });
}

Result<Rows> Session::execute(const Prepared& statement, std::vector<Value> values, QueryOptions options) {
  return wait<Rows>(
      [&](auto done) { execute_async(statement, std::move(values), std::move(options), std::move(done)); });
}

Result<Rows> Session::query(std::string cql, std::vector<Value> values, QueryOptions options) {
  return wait<Rows>(
      [&](auto done) { query_async(std::move(cql), std::move(values), std::move(options), std::move(done)); });
}

Result<Rows> Session::batch(BatchType type, std::vector<BatchStatement> statements, QueryOptions options) {
  return wait<Rows>(
      [&](auto done) { batch_async(type, std::move(statements), std::move(options), std::move(done)); });
}

Result<Rows> Session::execute_all(const Prepared& statement, std::vector<Value> values, QueryOptions options) {
  Rows all;
  while (true) {
    auto page = execute(statement, values, options);
    if (!page) return std::move(page).error();
    if (!all.columns) all.columns = page->columns;
    for (auto& r : page->rows) all.rows.push_back(std::move(r));
    if (!page->paging_state) break;
    options.paging_state = std::move(page->paging_state);
  }
  return all;
}

std::vector<std::string> Session::describe_nodes() {
  auto r = wait<std::vector<std::string>>([&](auto done) {
    if (!impl_->post([this, done] {
          std::vector<std::string> out;
          if (auto t = impl_->pool.topology()) {
            for (const auto& n : t->nodes()) out.push_back(n.address + " dc=" + n.datacenter + " rack=" + n.rack);
          }
          done(std::move(out));
        })) {
      done(shut_down_error());
    }
  });
  return r ? std::move(r).value() : std::vector<std::string>{};
}

}  // namespace prosody::cql
