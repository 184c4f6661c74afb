// Which node to ask: the cluster's nodes with their datacenter, rack and
// tokens (read from system.local / system.peers), the replicas of a token on
// the Murmur3 ring, and the order to try nodes in for one request:
//
//   1. replicas in the local DC and rack   (rack only when one is configured)
//   2. replicas in the local DC
//   3. other nodes in the local DC and rack, then in the local DC
//   4. replicas in other DCs, then every other node (DC failover)
//
// Each tier is rotated by a per-request counter so load spreads. The local DC
// is `cassandra_datacenter`, else the DC of the first node we reached.
//
// Replicas are found by walking the ring clockwise from the token and taking
// up to `replication_factor` distinct nodes per DC: exact for SimpleStrategy
// and for NetworkTopologyStrategy with that RF in each DC, rack placement
// aside. A wrong guess only costs a coordinator hop, never correctness.
//
// Thread safety: immutable after construction; share via shared_ptr<const>.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "cql/messages.h"
#include "prosody/result.h"

namespace prosody::cql {

struct NodeInfo {
  std::string address;  // host:port for the native protocol
  std::string datacenter;
  std::string rack;
  std::vector<std::int64_t> tokens;
};

class Topology {
 public:
  Topology() = default;
  Topology(std::vector<NodeInfo> nodes, std::optional<std::string> local_dc, std::optional<std::string> local_rack,
           int replication_factor = 3);

  // `local` and `peers` are the rows of `SELECT data_center, rack, tokens,
  // rpc_address[, peer] FROM system.local|system.peers`; `contact` is the
  // host:port the local row came from; peers use `port` (v4 peers rows carry
  // no native port).
  static Result<Topology> from_system_tables(const Rows& local, const Rows& peers, const std::string& contact,
                                             std::uint16_t port, std::optional<std::string> local_dc,
                                             std::optional<std::string> local_rack, int replication_factor = 3);

  const std::vector<NodeInfo>& nodes() const noexcept { return nodes_; }
  const std::string& local_dc() const noexcept { return local_dc_; }
  std::vector<std::size_t> replicas(std::int64_t token) const;
  std::vector<std::size_t> plan(std::optional<std::int64_t> token, std::uint64_t rotation) const;

 private:
  std::vector<NodeInfo> nodes_;
  std::string local_dc_;
  std::optional<std::string> local_rack_;
  int replication_factor_ = 3;
  std::vector<std::pair<std::int64_t, std::size_t>> ring_;  // token -> node, sorted
};

// Serialized partition key (what Cassandra hashes): the single component's
// bytes, or for a composite key each component as <u16 length><bytes><0>.
// nullopt when a key component is null or cannot be encoded.
std::optional<std::string> routing_key(std::span<const Value> values, const Columns& bind,
                                       std::span<const std::uint16_t> pk_indexes);

// An [inet] column value (4 or 16 raw bytes) as text.
std::string inet_to_string(const Value& v);

}  // namespace prosody::cql
