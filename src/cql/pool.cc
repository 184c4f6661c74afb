#include "cql/pool.h"

#include <algorithm>

#include "cql/errors.h"
#include "prosody/logging.h"

namespace prosody::cql {

std::pair<std::string, std::uint16_t> split_host_port(const std::string& s, std::uint16_t default_port) {
  if (!s.empty() && s.front() == '[') {
    auto close = s.find(']');
    if (close != std::string::npos) {
      auto host = s.substr(1, close - 1);
      if (close + 2 < s.size() && s[close + 1] == ':') {
        return {host, static_cast<std::uint16_t>(std::stoi(s.substr(close + 2)))};
      }
      return {host, default_port};
    }
  }
  auto colon = s.rfind(':');
  // One colon = host:port; more = a bare IPv6 address.
  if (colon != std::string::npos && s.find(':') == colon) {
    auto port = s.substr(colon + 1);
    if (!port.empty() && std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
        port.size() <= 5) {
      return {s.substr(0, colon), static_cast<std::uint16_t>(std::stoi(port))};
    }
  }
  return {s, default_port};
}

Pool::Pool(asio::io_context& io, PoolOptions options) : io_(io), options_(std::move(options)) {
  for (const auto& cp : options_.contact_points) {
    auto [host, port] = split_host_port(cp, options_.default_port);
    node_index(host + ":" + std::to_string(port));
  }
}

Pool::~Pool() { close(Error::transient("Cassandra session closed", ErrorCode::shut_down)); }

std::size_t Pool::node_index(const std::string& address) {
  auto [host, port] = split_host_port(address, options_.default_port);
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    if (nodes_[i].host == host && nodes_[i].port == port) return i;
  }
  Node n;
  n.host = host;
  n.port = port;
  n.retry = std::make_unique<asio::steady_timer>(io_);
  nodes_.push_back(std::move(n));
  return nodes_.size() - 1;
}

void Pool::start(std::function<void(Status)> done) {
  if (nodes_.empty()) return done(Error::permanent("no Cassandra contact points (cassandra_nodes is empty)",
                                                   ErrorCode::invalid_config));
  try_contact(0, std::move(done));
}

void Pool::try_contact(std::size_t i, std::function<void(Status)> done) {
  if (i >= options_.contact_points.size() || i >= nodes_.size()) {
    return done(last_error_ ? *last_error_ : connection_error("no contact point reachable"));
  }
  connect(i, [this, i, done](Status st) {
    if (!st) {
      if (st.error().is_permanent()) return done(std::move(st));
      return try_contact(i + 1, done);
    }
    load_topology(nodes_[i].conn, [this, done](Status loaded) {
      if (!loaded) return done(std::move(loaded));
      // The rest connect in the background; requests use whoever is ready.
      for (std::size_t n = 0; n < nodes_.size(); ++n) {
        if (!nodes_[n].conn && !nodes_[n].connecting) connect(n, [](Status) {});
      }
      done({});
    });
  });
}

void Pool::connect(std::size_t i, std::function<void(Status)> done) {
  auto& node = nodes_[i];
  node.connecting = true;
  auto opts = options_.connection;
  opts.host = node.host;
  opts.port = node.port;
  auto conn = Connection::create(io_, std::move(opts));
  conn->open([this, i, conn, done](Status st) {
    if (closed_) {
      conn->close(Error::transient("Cassandra session closed", ErrorCode::shut_down));
      return done(Error::transient("Cassandra session closed", ErrorCode::shut_down));
    }
    auto& node = nodes_[i];
    node.connecting = false;
    if (!st) {
      last_error_ = st.error();
      ++node.failures;
      // Bad credentials will not fix themselves, but another process may
      // fix them; keep retrying at the slowest pace.
      schedule_reconnect(i);
      return done(std::move(st));
    }
    if (node.failures > 0) {
      logger()->info("cassandra: reconnected to {}", conn->address());
    }
    node.failures = 0;
    node.conn = conn;
    conn->on_close([this, i](const Error& why) {
      if (closed_) return;
      logger()->warn("cassandra: connection to {} lost: {}", nodes_[i].conn ? nodes_[i].conn->address() : "?",
                     why.message());
      last_error_ = why;
      nodes_[i].conn.reset();
      schedule_reconnect(i);
    });
    done({});
  });
}

void Pool::schedule_reconnect(std::size_t i) {
  if (closed_) return;
  auto& node = nodes_[i];
  // Full jitter over an exponentially growing window, capped.
  auto exp = std::min(node.failures, 16);
  auto window = std::min<std::int64_t>(options_.reconnect_max.count(), options_.reconnect_base.count() << exp);
  std::uniform_int_distribution<std::int64_t> jitter(window / 2, std::max<std::int64_t>(window, 1));
  node.retry->expires_after(std::chrono::milliseconds(jitter(rng_)));
  node.retry->async_wait([this, i](const asio::error_code& err) {
    if (err || closed_ || nodes_[i].conn || nodes_[i].connecting) return;
    connect(i, [](Status) {});
  });
}

void Pool::load_topology(const std::shared_ptr<Connection>& conn, std::function<void(Status)> done) {
  QueryParams p;
  p.consistency = Consistency::one;
  p.page_size = 0;
  auto timeout = options_.connection.connect_timeout;
  auto local = std::make_shared<Rows>();
  conn->send([p](std::int16_t s) {
        return encode_query(s, "SELECT data_center, rack, tokens, rpc_address FROM system.local", {}, p);
      },
      nullptr, timeout, [this, conn, p, timeout, local, done](Result<Response> r) {
        if (!r) return done(std::move(r).error());
        if (r->kind == Response::Kind::error) return done(server_error(r->error_code, r->text));
        *local = std::move(r->rows);
        conn->send([p](std::int16_t s) {
              return encode_query(s, "SELECT peer, data_center, rack, tokens, rpc_address FROM system.peers", {}, p);
            },
            nullptr, timeout, [this, conn, local, done](Result<Response> r2) {
              if (!r2) return done(std::move(r2).error());
              if (r2->kind == Response::Kind::error) return done(server_error(r2->error_code, r2->text));
              auto [host, port] = split_host_port(conn->address(), options_.default_port);
              auto topo = Topology::from_system_tables(*local, r2->rows, conn->address(), port, options_.datacenter,
                                                       options_.rack, options_.replication_factor);
              if (!topo) return done(std::move(topo).error());
              topo_to_node_.clear();
              for (const auto& n : topo->nodes()) topo_to_node_.push_back(node_index(n.address));
              topology_ = std::make_shared<const Topology>(std::move(topo).value());
              if (options_.datacenter &&
                  std::none_of(topology_->nodes().begin(), topology_->nodes().end(),
                               [&](const NodeInfo& n) { return n.datacenter == *options_.datacenter; })) {
                logger()->warn("cassandra: no node in datacenter '{}'; using the others", *options_.datacenter);
              }
              done({});
            });
      });
}

std::vector<std::shared_ptr<Connection>> Pool::plan(std::optional<std::int64_t> token) {
  std::vector<std::shared_ptr<Connection>> out;
  auto ready = [&](std::size_t n) {
    const auto& c = nodes_[n].conn;
    if (c && c->ready() && std::find(out.begin(), out.end(), c) == out.end()) out.push_back(c);
  };
  if (topology_) {
    for (auto t : topology_->plan(token, rotation_++)) ready(topo_to_node_[t]);
  }
  // Contact points the topology does not list (e.g. a host name for an IP).
  for (std::size_t n = 0; n < nodes_.size(); ++n) ready(n);
  return out;
}

void Pool::close(const Error& reason) {
  if (closed_) return;
  closed_ = true;
  for (auto& n : nodes_) {
    if (n.retry) n.retry->cancel();
    if (n.conn) n.conn->close(reason);
    n.conn.reset();
  }
}

}  // namespace prosody::cql
