// Connections to every node of the cluster: starts from the contact points
// (`cassandra_nodes`), learns the other nodes, their DC/rack and tokens from
// system.local / system.peers, keeps one multiplexed connection per node, and
// reconnects a lost one with jittered exponential backoff. Requests ask it
// for an ordered list of ready connections (routing.h decides the order).
//
// Thread rules: io-thread only, like Connection; callbacks run there.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include "cql/connection.h"
#include "cql/routing.h"
#include "prosody/result.h"

namespace prosody::cql {

struct PoolOptions {
  std::vector<std::string> contact_points;  // host or host:port
  std::uint16_t default_port = 9042;
  ConnectionOptions connection;  // credentials, keyspace, connect timeout (host/port ignored)
  std::optional<std::string> datacenter;
  std::optional<std::string> rack;
  int replication_factor = 3;
  std::chrono::milliseconds reconnect_base{100};
  std::chrono::milliseconds reconnect_max{5000};
};

class Pool {
 public:
  Pool(asio::io_context& io, PoolOptions options);
  ~Pool();

  // Tries the contact points in turn until one completes the handshake, loads
  // the topology through it, then opens the other nodes in the background.
  // `done` gets ok, or the last failure (a permanent one, such as bad
  // credentials, ends the attempt at once).
  void start(std::function<void(Status)> done);

  // Ready connections in the order to try them for a request on `token`.
  std::vector<std::shared_ptr<Connection>> plan(std::optional<std::int64_t> token);

  void close(const Error& reason);
  std::shared_ptr<const Topology> topology() const noexcept { return topology_; }
  // The most recent connection failure, for "no node available" errors.
  const std::optional<Error>& last_error() const noexcept { return last_error_; }

 private:
  struct Node {
    std::string host;
    std::uint16_t port = 0;
    std::shared_ptr<Connection> conn;
    bool connecting = false;
    int failures = 0;
    std::unique_ptr<asio::steady_timer> retry;
  };

  void try_contact(std::size_t i, std::function<void(Status)> done);
  void connect(std::size_t node, std::function<void(Status)> done);
  void schedule_reconnect(std::size_t node);
  void load_topology(const std::shared_ptr<Connection>& conn, std::function<void(Status)> done);
  std::size_t node_index(const std::string& address);

  asio::io_context& io_;
  PoolOptions options_;
  std::vector<Node> nodes_;
  std::shared_ptr<const Topology> topology_;
  std::vector<std::size_t> topo_to_node_;  // topology node index -> nodes_ index
  std::optional<Error> last_error_;
  std::uint64_t rotation_ = 0;
  std::mt19937_64 rng_{std::random_device{}()};
  bool closed_ = false;
};

// Splits "host", "host:port", "[v6]:port" into host and port.
std::pair<std::string, std::uint16_t> split_host_port(const std::string& s, std::uint16_t default_port);

}  // namespace prosody::cql
