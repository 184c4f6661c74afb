// The CQL client against a real Cassandra 5.0 (scripts/cassandra).
#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>

#include <gtest/gtest.h>

#include "cql/errors.h"
#include "cql/it_support.h"
#include "cql/murmur3.h"
#include "cql/routing.h"
#include "cql/session.h"

namespace prosody::cql {
namespace {

constexpr const char* kKs = "cql_it";

std::shared_ptr<Session> open(const SessionOptions& o) {
  auto s = Session::connect(o);
  EXPECT_TRUE(s) << s.error().message();
  if (!s) return nullptr;
  it::ensure_keyspace(**s, kKs);
  return *s;
}

// A fresh table per test (tests run as separate processes, in parallel).
void recreate(Session& s, const std::string& table, const std::string& columns) {
  auto d = s.query(std::string("DROP TABLE IF EXISTS ") + kKs + "." + table);
  ASSERT_TRUE(d) << d.error().message();
  auto c = s.query(std::string("CREATE TABLE ") + kKs + "." + table + " (" + columns + ")");
  ASSERT_TRUE(c) << c.error().message();
}

TEST(CqlIntegration, ConnectsAuthenticatesAndReadsSystemTables) {
  PROSODY_REQUIRE_CASSANDRA(o);
  auto s = Session::connect(o);
  ASSERT_TRUE(s) << s.error().message();
  auto r = (*s)->query("SELECT release_version, data_center FROM system.local");
  ASSERT_TRUE(r) << r.error().message();
  ASSERT_EQ(r->size(), 1u);
  const auto* version = r->at(0, "release_version").get<std::string>();
  ASSERT_NE(version, nullptr);
  EXPECT_EQ(version->substr(0, 2), "5.");
  auto nodes = (*s)->describe_nodes();
  ASSERT_EQ(nodes.size(), 1u);
  EXPECT_NE(nodes[0].find("dc=datacenter1"), std::string::npos) << nodes[0];
}

TEST(CqlIntegration, BadCredentialsGiveAClearPermanentError) {
  PROSODY_REQUIRE_CASSANDRA(o);
  {
    auto probe = Session::connect(o);
    ASSERT_TRUE(probe);
    auto auth = (*probe)->query("SELECT role FROM system_auth.roles WHERE role = 'cassandra'");
    if (!auth || auth->empty()) GTEST_SKIP() << "server runs without PasswordAuthenticator";
  }
  o.password = "wrong-password";
  auto s = Session::connect(o);
  ASSERT_FALSE(s);
  EXPECT_TRUE(s.error().is_permanent());
  EXPECT_EQ(s.error().code(), ErrorCode::invalid_config);
  EXPECT_NE(s.error().message().find("as 'cassandra' failed"), std::string::npos) << s.error().message();
  EXPECT_NE(s.error().message().find("Bad credentials"), std::string::npos) << s.error().message();
  EXPECT_EQ(s.error().message().find("wrong-password"), std::string::npos) << "secret leaked";

  o.user.reset();
  o.password.reset();
  auto anon = Session::connect(o);
  ASSERT_FALSE(anon);
  EXPECT_NE(anon.error().message().find("requires authentication"), std::string::npos) << anon.error().message();
}

TEST(CqlIntegration, UnreachableNodeIsATransientError) {
  SessionOptions o;
  o.contact_points = {"127.0.0.1:1"};
  auto s = Session::connect(o);
  ASSERT_FALSE(s);
  EXPECT_TRUE(s.error().is_transient());
}

TEST(CqlIntegration, PreparedStatementsRoundTripEverySchemaType) {
  PROSODY_REQUIRE_CASSANDRA(o);
  auto s = open(o);
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->query(std::string("CREATE TYPE IF NOT EXISTS ") + kKs +
                       ".it_state (inline boolean, time int, span frozen<map<text, text>>)"));
  recreate(*s, "types",
           "id uuid, slab int, n bigint, kind tinyint, name text, flag boolean, at timestamp, "
           "span frozen<map<text, text>>, state map<tinyint, frozen<it_state>>, data blob, "
           "PRIMARY KEY (id, slab)");
  auto ins = s->prepare(std::string("INSERT INTO ") + kKs +
                        ".types (id, slab, n, kind, name, flag, at, span, state, data) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL 3600");
  ASSERT_TRUE(ins) << ins.error().message();
  EXPECT_EQ((*ins)->metadata()->pk_indexes, std::vector<std::uint16_t>{0});
  auto id = Uuid::random();
  Map span{{Value("traceparent")}, {Value("00-abc-01")}};
  Udt state{{"inline", "time", "span"}, {Value(true), Value(std::int32_t{1700000000}), Value(span)}};
  Map states{{Value(std::int8_t{1})}, {Value(state)}};
  std::vector<Value> row = {id,          std::int32_t{7},      std::int64_t{1} << 40, std::int8_t{-2}, "näme",
                            true,        Timestamp{1700000000123}, span,             states,
                            Blob{std::string("\0\xff", 2)}};
  auto w = s->execute(*ins, row);
  ASSERT_TRUE(w) << w.error().message();

  auto sel = s->prepare(std::string("SELECT id, slab, n, kind, name, flag, at, span, state, data FROM ") + kKs +
                        ".types WHERE id = ?");
  ASSERT_TRUE(sel) << sel.error().message();
  auto r = s->execute(*sel, {id});
  ASSERT_TRUE(r) << r.error().message();
  ASSERT_EQ(r->size(), 1u);
  for (std::size_t c = 0; c < row.size(); ++c) EXPECT_EQ(r->rows[0][c], row[c]) << (*r->columns)[c].name;
  // The second execution uses the cached result metadata (skip_metadata).
  auto again = s->execute(*sel, {id});
  ASSERT_TRUE(again);
  EXPECT_EQ(again->rows, r->rows);
  EXPECT_EQ(again->columns, (*sel)->metadata()->result);

  // A value of the wrong kind is a clear permanent error, nothing is sent.
  auto bad = s->execute(*sel, {"not-a-uuid"});
  ASSERT_FALSE(bad);
  EXPECT_TRUE(bad.error().is_permanent());
  EXPECT_NE(bad.error().message().find("uuid"), std::string::npos) << bad.error().message();
  // A server-side error keeps its code and class.
  auto syntax = s->query("SELEKT 1");
  ASSERT_FALSE(syntax);
  EXPECT_TRUE(syntax.error().is_permanent());
  EXPECT_NE(syntax.error().message().find("Syntax error (0x2000)"), std::string::npos) << syntax.error().message();
}

TEST(CqlIntegration, TokensMatchTheServersMurmur3) {
  PROSODY_REQUIRE_CASSANDRA(o);
  auto s = open(o);
  ASSERT_TRUE(s);
  recreate(*s, "tokens", "k blob PRIMARY KEY");
  recreate(*s, "tokens2", "a text, b int, PRIMARY KEY ((a, b))");
  auto ins = s->prepare(std::string("INSERT INTO ") + kKs + ".tokens (k) VALUES (?)");
  ASSERT_TRUE(ins);
  std::vector<std::string> keys = {"a", "hello world", std::string(15, '\xff'), std::string(17, '\x80'),
                                   "0123456789abcdef0123456789abcdefXYZ\xc3\xa9", std::string("\x00\x7f\x80\xfe", 4)};
  for (const auto& k : keys) ASSERT_TRUE(s->execute(*ins, {Blob{k}}));
  auto r = s->query(std::string("SELECT k, token(k) AS t FROM ") + kKs + ".tokens");
  ASSERT_TRUE(r) << r.error().message();
  ASSERT_EQ(r->size(), keys.size());
  for (std::size_t i = 0; i < r->size(); ++i) {
    const auto& k = r->at(i, "k").get<Blob>()->bytes;
    auto ours = murmur3_token(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(k.data()), k.size()));
    EXPECT_EQ(Value(ours), r->at(i, "t")) << "key of " << k.size() << " bytes";
  }
  // Composite partition key: the routing key the session builds.
  auto ins2 = s->prepare(std::string("INSERT INTO ") + kKs + ".tokens2 (a, b) VALUES (?, ?)");
  ASSERT_TRUE(ins2);
  ASSERT_TRUE(s->execute(*ins2, {"x\xc3\xa9", std::int32_t{-5}}));
  auto meta = (*ins2)->metadata();
  std::vector<Value> vals = {"x\xc3\xa9", std::int32_t{-5}};
  auto key = routing_key(vals, meta->bind, meta->pk_indexes);
  ASSERT_TRUE(key);
  auto t = s->query(std::string("SELECT token(a, b) AS t FROM ") + kKs + ".tokens2");
  ASSERT_TRUE(t && t->size() == 1);
  EXPECT_EQ(Value(murmur3_token(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(key->data()),
                                                               key->size()))),
            t->at(0, "t"));
}

TEST(CqlIntegration, PagesThroughMoreThan5000Rows) {
  PROSODY_REQUIRE_CASSANDRA(o);
  auto s = open(o);
  ASSERT_TRUE(s);
  recreate(*s, "paging", "p int, c int, v text, PRIMARY KEY (p, c)");
  auto ins = s->prepare(std::string("INSERT INTO ") + kKs + ".paging (p, c, v) VALUES (?, ?, ?)");
  ASSERT_TRUE(ins);
  constexpr int kRows = 12001;
  std::mutex mu;
  std::condition_variable cv;
  int done = 0, failed = 0, in_flight = 0;
  for (int i = 0; i < kRows; ++i) {
    {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return in_flight < 256; });
      ++in_flight;
    }
    s->execute_async(*ins, {std::int32_t{1}, std::int32_t{i}, "row"}, {}, [&](Result<Rows> r) {
      std::lock_guard lock(mu);
      ++done;
      --in_flight;
      if (!r) ++failed;
      cv.notify_all();
    });
  }
  {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return done == kRows; });
  }
  ASSERT_EQ(failed, 0);
  auto sel = s->prepare(std::string("SELECT c FROM ") + kKs + ".paging WHERE p = ?");
  ASSERT_TRUE(sel);
  auto first = s->execute(*sel, {std::int32_t{1}});
  ASSERT_TRUE(first) << first.error().message();
  EXPECT_EQ(first->size(), 5000u);
  EXPECT_TRUE(first->paging_state.has_value());
  auto all = s->execute_all(*sel, {std::int32_t{1}});
  ASSERT_TRUE(all) << all.error().message();
  ASSERT_EQ(all->size(), static_cast<std::size_t>(kRows));
  for (int i = 0; i < kRows; ++i) ASSERT_EQ(all->rows[static_cast<std::size_t>(i)][0], Value(std::int32_t{i}));
}

TEST(CqlIntegration, LoggedAndUnloggedBatches) {
  PROSODY_REQUIRE_CASSANDRA(o);
  auto s = open(o);
  ASSERT_TRUE(s);
  recreate(*s, "batches", "p int, c int, v text, s int static, PRIMARY KEY (p, c)");
  auto ins = s->prepare(std::string("INSERT INTO ") + kKs + ".batches (p, c, v) VALUES (?, ?, ?)");
  ASSERT_TRUE(ins);
  std::vector<BatchStatement> logged;
  for (int i = 0; i < 10; ++i) logged.push_back({*ins, "", {std::int32_t{i % 2}, std::int32_t{i}, "v"}});
  auto r = s->batch(BatchType::logged, logged);
  ASSERT_TRUE(r) << r.error().message();
  // Unlogged, one partition: delete a row and move a static hint in one step
  // (the defer store's head move), mixing prepared and plain statements.
  std::vector<BatchStatement> unlogged;
  unlogged.push_back({nullptr, std::string("DELETE FROM ") + kKs + ".batches WHERE p = ? AND c = ?",
                      {std::int32_t{0}, std::int32_t{0}}});
  unlogged.push_back({nullptr, std::string("UPDATE ") + kKs + ".batches SET s = ? WHERE p = ?",
                      {std::int32_t{2}, std::int32_t{0}}});
  ASSERT_TRUE(s->batch(BatchType::unlogged, unlogged));
  auto rows = s->query(std::string("SELECT c, s FROM ") + kKs + ".batches WHERE p = 0");
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 4u);
  EXPECT_EQ(rows->at(0, "c"), Value(std::int32_t{2}));
  EXPECT_EQ(rows->at(0, "s"), Value(std::int32_t{2}));
  auto count = s->query(std::string("SELECT count(*) FROM ") + kKs + ".batches WHERE p = 1");
  ASSERT_TRUE(count);
  EXPECT_EQ(count->rows[0][0], Value(std::int64_t{5}));
}

TEST(CqlIntegration, LightweightTransactionsReportApplied) {
  PROSODY_REQUIRE_CASSANDRA(o);
  auto s = open(o);
  ASSERT_TRUE(s);
  recreate(*s, "lwt", "name text PRIMARY KEY, owner uuid");
  auto take = s->prepare(std::string("INSERT INTO ") + kKs + ".lwt (name, owner) VALUES (?, ?) IF NOT EXISTS USING TTL 60");
  auto release = s->prepare(std::string("DELETE FROM ") + kKs + ".lwt WHERE name = ? IF owner = ?");
  ASSERT_TRUE(take && release);
  QueryOptions serial;
  serial.serial_consistency = Consistency::local_serial;
  auto me = Uuid::random(), other = Uuid::random();
  auto first = s->execute(*take, {"lock", me}, serial);
  ASSERT_TRUE(first) << first.error().message();
  EXPECT_EQ(first->at(0, "[applied]"), Value(true));
  auto second = s->execute(*take, {"lock", other}, serial);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->at(0, "[applied]"), Value(false));
  EXPECT_EQ(second->at(0, "owner"), Value(me));
  auto wrong = s->execute(*release, {"lock", other}, serial);
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->at(0, "[applied]"), Value(false));
  auto right = s->execute(*release, {"lock", me}, serial);
  ASSERT_TRUE(right);
  EXPECT_EQ(right->at(0, "[applied]"), Value(true));
}

TEST(CqlIntegration, UnpreparedStatementsArePreparedAgain) {
  PROSODY_REQUIRE_CASSANDRA(o);
  auto s = open(o);
  ASSERT_TRUE(s);
  recreate(*s, "reprep", "k int PRIMARY KEY, v text");
  auto ins = s->prepare(std::string("INSERT INTO ") + kKs + ".reprep (k, v) VALUES (?, ?)");
  ASSERT_TRUE(ins);
  ASSERT_TRUE(s->execute(*ins, {std::int32_t{1}, "a"}));
  // 1. A stale id the server never saw: UNPREPARED, re-prepared, executed.
  auto meta = *(*ins)->metadata();
  auto good_id = meta.id;
  meta.id = std::string(16, '\x42');
  (*ins)->update(meta);
  auto r = s->execute(*ins, {std::int32_t{2}, "b"});
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ((*ins)->metadata()->id, good_id);
  // 2. Dropping the table evicts its statements on the server.
  auto sel = s->prepare(std::string("SELECT v FROM ") + kKs + ".reprep WHERE k = ?");
  ASSERT_TRUE(sel);
  ASSERT_TRUE(s->execute(*sel, {std::int32_t{1}}));
  recreate(*s, "reprep", "k int PRIMARY KEY, v text");
  ASSERT_TRUE(s->execute(*ins, {std::int32_t{3}, "c"}));
  auto after = s->execute(*sel, {std::int32_t{3}});
  ASSERT_TRUE(after) << after.error().message();
  ASSERT_EQ(after->size(), 1u);
  EXPECT_EQ(after->rows[0][0], Value("c"));
}

TEST(CqlIntegration, RequestTimeoutIsATransientError) {
  PROSODY_REQUIRE_CASSANDRA(o);
  auto s = open(o);
  ASSERT_TRUE(s);
  recreate(*s, "slow", "p int, c int, PRIMARY KEY (p, c)");
  // A full scan with a 1 ms budget: far shorter than one round trip through
  // the coordinator's read path on this machine.
  QueryOptions tight;
  tight.timeout = std::chrono::milliseconds(1);
  int timeouts = 0;
  for (int i = 0; i < 20 && timeouts == 0; ++i) {
    auto r = s->query("SELECT * FROM system_schema.columns", {}, tight);
    if (!r) {
      EXPECT_EQ(r.error().code(), ErrorCode::timed_out) << r.error().message();
      EXPECT_TRUE(r.error().is_transient());
      ++timeouts;
    }
  }
  EXPECT_GT(timeouts, 0);
  // The connection stays usable; the late reply is dropped by stream id.
  auto ok = s->query("SELECT release_version FROM system.local");
  ASSERT_TRUE(ok) << ok.error().message();
  EXPECT_EQ(ok->size(), 1u);
}

TEST(CqlIntegration, SynchronousCallFromACallbackIsRefused) {
  PROSODY_REQUIRE_CASSANDRA(o);
  auto s = open(o);
  ASSERT_TRUE(s);
  std::promise<Result<Rows>> nested;
  s->query_async("SELECT release_version FROM system.local", {}, {},
                 [&](Result<Rows>) { nested.set_value(s->query("SELECT now() FROM system.local")); });
  auto r = nested.get_future().get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::invalid_state);
  s->close();
  auto closed = s->query("SELECT release_version FROM system.local");
  ASSERT_FALSE(closed);
  EXPECT_EQ(closed.error().code(), ErrorCode::shut_down);
}

}  // namespace
}  // namespace prosody::cql
