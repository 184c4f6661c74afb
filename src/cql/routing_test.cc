// Token computation and node preference on recorded system tables: the test
// server is one node, so multi-DC routing is checked on rows shaped like a
// 6-node, 2-DC cluster's system.local / system.peers.
#include <gtest/gtest.h>

#include "cql/murmur3.h"
#include "cql/pool.h"
#include "cql/routing.h"

namespace prosody::cql {
namespace {

std::int64_t token_of(std::string_view key) {
  return murmur3_token(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(key.data()), key.size()));
}

// Recorded from Cassandra 5.0.8: SELECT k, token(k) FROM t (k blob). The
// 0x80/0xff tails exercise Cassandra's sign-extension quirk.
TEST(CqlMurmur3, MatchesTokensRecordedFromCassandra) {
  EXPECT_EQ(token_of(std::string_view("\x00\x7f\x80\xfe", 4)), -8897120090096628852LL);
  EXPECT_EQ(token_of("a"), -8839064797231613815LL);
  EXPECT_EQ(token_of(std::string(17, '\x80')), -7492040465024918340LL);
  EXPECT_EQ(token_of("0123456789abcdef0123456789abcdefXYZ\xc3\xa9"), -2862621071933044852LL);
  EXPECT_EQ(token_of(std::string(15, '\xff')), -2195530867418009455LL);
  EXPECT_EQ(token_of("hello world"), 5998619086395760910LL);
}

DataType text_t() { return DataType{TypeId::varchar}; }
DataType inet_t() { return DataType{TypeId::inet}; }
DataType tokens_t() { return DataType{TypeId::set, {text_t()}}; }

Value inet(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
  return Value(Blob{std::string{static_cast<char>(a), static_cast<char>(b), static_cast<char>(c), static_cast<char>(d)}});
}
Value tokens(std::initializer_list<const char*> ts) {
  List l;
  for (auto t : ts) l.push_back(Value(t));
  return Value(std::move(l));
}

// Six nodes, two DCs, two racks in dc1; one token each, interleaved.
struct Recorded {
  Rows local, peers;
  Recorded() {
    local.columns = std::make_shared<const Columns>(Columns{{"system", "local", "data_center", text_t()},
                                                            {"system", "local", "rack", text_t()},
                                                            {"system", "local", "tokens", tokens_t()},
                                                            {"system", "local", "rpc_address", inet_t()}});
    local.rows.push_back({Value("dc1"), Value("r1"), tokens({"-6000000000000000000"}), inet(10, 0, 0, 1)});
    peers.columns = std::make_shared<const Columns>(Columns{{"system", "peers", "peer", inet_t()},
                                                            {"system", "peers", "data_center", text_t()},
                                                            {"system", "peers", "rack", text_t()},
                                                            {"system", "peers", "tokens", tokens_t()},
                                                            {"system", "peers", "rpc_address", inet_t()}});
    peers.rows.push_back({inet(10, 0, 0, 2), Value("dc2"), Value("r1"), tokens({"-3000000000000000000"}), inet(10, 0, 0, 2)});
    peers.rows.push_back({inet(10, 0, 0, 3), Value("dc1"), Value("r2"), tokens({"0"}), inet(0, 0, 0, 0)});
    peers.rows.push_back({inet(10, 0, 0, 4), Value("dc2"), Value("r1"), tokens({"3000000000000000000"}), inet(10, 0, 0, 4)});
    peers.rows.push_back({inet(10, 0, 0, 5), Value("dc1"), Value("r1"), tokens({"6000000000000000000"}), inet(10, 0, 0, 5)});
    peers.rows.push_back({inet(10, 0, 0, 6), Value("dc2"), Value("r1"), tokens({"9000000000000000000"}), inet(10, 0, 0, 6)});
  }
};

std::vector<std::string> addresses(const Topology& t, const std::vector<std::size_t>& idx) {
  std::vector<std::string> out;
  for (auto i : idx) out.push_back(t.nodes()[i].address);
  return out;
}

TEST(CqlRouting, ReadsNodesFromSystemTables) {
  Recorded rec;
  auto t = Topology::from_system_tables(rec.local, rec.peers, "10.0.0.1:9042", 9042, std::nullopt, std::nullopt);
  ASSERT_TRUE(t) << t.error().message();
  ASSERT_EQ(t->nodes().size(), 6u);
  EXPECT_EQ(t->nodes()[0].address, "10.0.0.1:9042");
  EXPECT_EQ(t->nodes()[2].address, "10.0.0.3:9042");  // rpc_address 0.0.0.0 -> peer
  EXPECT_EQ(t->nodes()[2].rack, "r2");
  EXPECT_EQ(t->nodes()[5].tokens, std::vector<std::int64_t>{9000000000000000000});
  EXPECT_EQ(t->local_dc(), "dc1");  // the contact's DC when none is configured
}

TEST(CqlRouting, ReplicasWalkTheRingPerDatacenter) {
  Recorded rec;
  auto t = *Topology::from_system_tables(rec.local, rec.peers, "10.0.0.1:9042", 9042, std::nullopt, std::nullopt, 2);
  // Token 1 is owned by the first token >= 1: node .4 (3e18, dc2); then .5
  // (dc1), .6 (dc2), wrap to .1 (dc1). RF 2 per DC.
  EXPECT_EQ(addresses(t, t.replicas(1)),
            (std::vector<std::string>{"10.0.0.4:9042", "10.0.0.5:9042", "10.0.0.6:9042", "10.0.0.1:9042"}));
  // Past the last token the ring wraps to the first.
  EXPECT_EQ(addresses(t, t.replicas(9100000000000000000)).front(), "10.0.0.1:9042");
  // Exactly on a token: that node owns it.
  EXPECT_EQ(addresses(t, t.replicas(0)).front(), "10.0.0.3:9042");
}

TEST(CqlRouting, PlanPrefersLocalRackReplicasThenLocalDcThenFailover) {
  Recorded rec;
  auto t = *Topology::from_system_tables(rec.local, rec.peers, "10.0.0.1:9042", 9042, std::string("dc1"),
                                         std::string("r1"), 2);
  // Replicas of token 1: .4 .5 .6 .1; local dc1 rack r1 replicas: .5 .1;
  // then local-DC non-replica .3 (rack r2); then dc2 replicas .4 .6; then .2.
  auto plan = addresses(t, t.plan(1, 0));
  ASSERT_EQ(plan.size(), 6u);
  EXPECT_EQ((std::vector<std::string>(plan.begin(), plan.begin() + 2)),
            (std::vector<std::string>{"10.0.0.1:9042", "10.0.0.5:9042"}));
  EXPECT_EQ(plan[2], "10.0.0.3:9042");
  EXPECT_EQ((std::vector<std::string>(plan.begin() + 3, plan.begin() + 5)),
            (std::vector<std::string>{"10.0.0.4:9042", "10.0.0.6:9042"}));
  EXPECT_EQ(plan[5], "10.0.0.2:9042");
  // The rotation spreads load inside a tier but never across tiers.
  auto rotated = addresses(t, t.plan(1, 1));
  EXPECT_EQ((std::vector<std::string>(rotated.begin(), rotated.begin() + 2)),
            (std::vector<std::string>{"10.0.0.5:9042", "10.0.0.1:9042"}));
  EXPECT_EQ(rotated[2], "10.0.0.3:9042");
}

TEST(CqlRouting, PlanWithoutTokenOrRackUsesTheLocalDatacenterFirst) {
  Recorded rec;
  auto t = *Topology::from_system_tables(rec.local, rec.peers, "10.0.0.1:9042", 9042, std::string("dc2"),
                                         std::nullopt);
  auto plan = addresses(t, t.plan(std::nullopt, 0));
  ASSERT_EQ(plan.size(), 6u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(t.nodes()[t.plan(std::nullopt, 0)[i]].datacenter, "dc2");
  for (int i = 3; i < 6; ++i) EXPECT_EQ(t.nodes()[t.plan(std::nullopt, 0)[i]].datacenter, "dc1");
}

TEST(CqlRouting, RoutingKeyForSingleAndCompositePartitionKeys) {
  Columns bind = {{"ks", "t", "a", DataType{TypeId::varchar}}, {"ks", "t", "c", DataType{TypeId::int_}},
                  {"ks", "t", "b", DataType{TypeId::int_}}};
  std::vector<Value> values = {Value("xy"), Value(std::int32_t{9}), Value(std::int32_t{-1})};
  std::vector<std::uint16_t> single = {0};
  EXPECT_EQ(routing_key(values, bind, single), "xy");
  std::vector<std::uint16_t> composite = {0, 2};
  EXPECT_EQ(routing_key(values, bind, composite), std::string("\0\2xy\0\0\4\xff\xff\xff\xff\0", 12));
  std::vector<Value> with_null = {Value(), Value(std::int32_t{9}), Value(std::int32_t{-1})};
  EXPECT_FALSE(routing_key(with_null, bind, single));
  EXPECT_FALSE(routing_key(values, bind, {}));
}

TEST(CqlRouting, SplitsContactPoints) {
  EXPECT_EQ(split_host_port("cass1", 9042), (std::pair<std::string, std::uint16_t>{"cass1", 9042}));
  EXPECT_EQ(split_host_port("10.0.0.1:19042", 9042), (std::pair<std::string, std::uint16_t>{"10.0.0.1", 19042}));
  EXPECT_EQ(split_host_port("[::1]:9043", 9042), (std::pair<std::string, std::uint16_t>{"::1", 9043}));
  EXPECT_EQ(split_host_port("fe80::1", 9042), (std::pair<std::string, std::uint16_t>{"fe80::1", 9042}));
}

}  // namespace
}  // namespace prosody::cql
