#include "cql/routing.h"

#include <algorithm>
#include <charconv>
#include <set>

#include "cql/errors.h"

namespace prosody::cql {

Topology::Topology(std::vector<NodeInfo> nodes, std::optional<std::string> local_dc,
                   std::optional<std::string> local_rack, int replication_factor)
    : nodes_(std::move(nodes)), local_rack_(std::move(local_rack)), replication_factor_(replication_factor) {
  if (local_dc) local_dc_ = *local_dc;
  else if (!nodes_.empty()) local_dc_ = nodes_.front().datacenter;
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    for (auto t : nodes_[i].tokens) ring_.emplace_back(t, i);
  }
  std::sort(ring_.begin(), ring_.end());
}

std::vector<std::size_t> Topology::replicas(std::int64_t token) const {
  std::vector<std::size_t> out;
  if (ring_.empty()) return out;
  // The owner is the first node whose token is >= the key's token (wrapping).
  auto it = std::lower_bound(ring_.begin(), ring_.end(), std::make_pair(token, std::size_t{0}));
  std::size_t start = static_cast<std::size_t>(it - ring_.begin()) % ring_.size();
  std::vector<int> per_dc_count;
  std::vector<std::string> dcs;
  for (std::size_t k = 0; k < ring_.size(); ++k) {
    auto node = ring_[(start + k) % ring_.size()].second;
    if (std::find(out.begin(), out.end(), node) != out.end()) continue;
    const auto& dc = nodes_[node].datacenter;
    auto d = std::find(dcs.begin(), dcs.end(), dc);
    if (d == dcs.end()) {
      dcs.push_back(dc);
      per_dc_count.push_back(0);
      d = dcs.end() - 1;
    }
    auto& n = per_dc_count[static_cast<std::size_t>(d - dcs.begin())];
    if (n >= replication_factor_) continue;
    ++n;
    out.push_back(node);
  }
  return out;
}

std::vector<std::size_t> Topology::plan(std::optional<std::int64_t> token, std::uint64_t rotation) const {
  std::vector<std::size_t> reps;
  if (token) reps = replicas(*token);
  auto is_replica = [&](std::size_t i) { return std::find(reps.begin(), reps.end(), i) != reps.end(); };
  auto local = [&](std::size_t i) { return nodes_[i].datacenter == local_dc_; };
  auto same_rack = [&](std::size_t i) { return local_rack_ && local(i) && nodes_[i].rack == *local_rack_; };
  // Lower tier = tried first.
  auto tier = [&](std::size_t i) {
    bool r = is_replica(i);
    if (r && same_rack(i)) return 0;
    if (r && local(i)) return 1;
    if (same_rack(i)) return 2;
    if (local(i)) return 3;
    if (r) return 4;
    return 5;
  };
  std::vector<std::vector<std::size_t>> tiers(6);
  for (std::size_t i = 0; i < nodes_.size(); ++i) tiers[static_cast<std::size_t>(tier(i))].push_back(i);
  std::vector<std::size_t> out;
  out.reserve(nodes_.size());
  for (auto& t : tiers) {
    if (t.empty()) continue;
    std::rotate(t.begin(), t.begin() + static_cast<std::ptrdiff_t>(rotation % t.size()), t.end());
    out.insert(out.end(), t.begin(), t.end());
  }
  return out;
}

std::string inet_to_string(const Value& v) {
  const auto* b = v.get<Blob>();
  if (!b) return {};
  const auto& s = b->bytes;
  std::string out;
  if (s.size() == 4) {
    for (int i = 0; i < 4; ++i) {
      if (i) out += '.';
      out += std::to_string(static_cast<std::uint8_t>(s[static_cast<std::size_t>(i)]));
    }
  } else if (s.size() == 16) {
    static const char* hex = "0123456789abcdef";
    for (std::size_t i = 0; i < 16; i += 2) {
      if (i) out += ':';
      for (std::size_t j = i; j < i + 2; ++j) {
        auto c = static_cast<std::uint8_t>(s[j]);
        out += hex[c >> 4];
        out += hex[c & 15];
      }
    }
  }
  return out;
}

namespace {

std::vector<std::int64_t> parse_tokens(const Value& v) {
  std::vector<std::int64_t> out;
  if (const auto* l = v.get<List>()) {
    for (const auto& t : *l) {
      const auto* s = t.get<std::string>();
      std::int64_t x = 0;
      if (s && std::from_chars(s->data(), s->data() + s->size(), x).ec == std::errc{}) out.push_back(x);
    }
  }
  return out;
}

std::string text(const Value& v) {
  const auto* s = v.get<std::string>();
  return s ? *s : std::string();
}

std::string with_port(const std::string& host, std::uint16_t port) {
  return host.find(':') != std::string::npos ? "[" + host + "]:" + std::to_string(port) : host + ":" + std::to_string(port);
}

}  // namespace

Result<Topology> Topology::from_system_tables(const Rows& local, const Rows& peers, const std::string& contact,
                                              std::uint16_t port, std::optional<std::string> local_dc,
                                              std::optional<std::string> local_rack, int replication_factor) {
  if (local.size() != 1) return protocol_error("system.local returned " + std::to_string(local.size()) + " rows");
  std::vector<NodeInfo> nodes;
  nodes.push_back({contact, text(local.at(0, "data_center")), text(local.at(0, "rack")),
                   parse_tokens(local.at(0, "tokens"))});
  for (std::size_t r = 0; r < peers.size(); ++r) {
    auto host = inet_to_string(peers.at(r, "rpc_address"));
    // 0.0.0.0 means "listening everywhere": the peer address is reachable.
    if (host.empty() || host == "0.0.0.0") host = inet_to_string(peers.at(r, "peer"));
    if (host.empty()) continue;
    nodes.push_back({with_port(host, port), text(peers.at(r, "data_center")), text(peers.at(r, "rack")),
                     parse_tokens(peers.at(r, "tokens"))});
  }
  return Topology(std::move(nodes), std::move(local_dc), std::move(local_rack), replication_factor);
}

std::optional<std::string> routing_key(std::span<const Value> values, const Columns& bind,
                                       std::span<const std::uint16_t> pk_indexes) {
  if (pk_indexes.empty()) return std::nullopt;
  auto component = [&](std::uint16_t i) -> std::optional<std::string> {
    if (i >= values.size() || i >= bind.size() || values[i].is_null()) return std::nullopt;
    BodyWriter w;
    if (!encode_value(w, values[i], &bind[i].type)) return std::nullopt;
    auto& b = w.buffer();
    return std::string(reinterpret_cast<const char*>(b.data()) + 4, b.size() - 4);  // drop the [bytes] length
  };
  if (pk_indexes.size() == 1) return component(pk_indexes[0]);
  std::string out;
  for (auto i : pk_indexes) {
    auto c = component(i);
    if (!c) return std::nullopt;
    out += static_cast<char>(c->size() >> 8);
    out += static_cast<char>(c->size() & 0xFF);
    out += *c;
    out += '\0';
  }
  return out;
}

}  // namespace prosody::cql
