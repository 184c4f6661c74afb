// The migrator against a real Cassandra (scripts/cassandra).
#include <thread>

#include <gtest/gtest.h>

#include "cql/it_support.h"
#include "store/cassandra/migrator.h"

namespace prosody::store::cassandra {
namespace {

std::string fresh_keyspace(const char* prefix) {
  auto id = cql::Uuid::random().str();
  return std::string(prefix) + "_" + id.substr(0, 8);
}

std::shared_ptr<cql::Session> connect(const cql::SessionOptions& o) {
  auto s = cql::Session::connect(o);
  EXPECT_TRUE(s) << s.error().message();
  return s ? *s : nullptr;
}

std::vector<std::string> names(cql::Session& s, const std::string& table, const std::string& column,
                               const std::string& ks) {
  std::vector<std::string> out;
  auto r = s.query("SELECT " + column + " FROM system_schema." + table + " WHERE keyspace_name = ?", {ks});
  EXPECT_TRUE(r) << r.error().message();
  if (!r) return out;
  for (std::size_t i = 0; i < r->size(); ++i) out.push_back(*r->rows[i][0].get<std::string>());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(CassandraMigratorIntegration, CreatesProsodysSchemaAndASecondRunIsANoOp) {
  PROSODY_REQUIRE_CASSANDRA(o);
  auto s = connect(o);
  ASSERT_TRUE(s);
  MigratorOptions mo;
  mo.keyspace = fresh_keyspace("mig_it");
  auto first = migrate(*s, mo);
  ASSERT_TRUE(first) << first.error().message();
  EXPECT_EQ(first->applied.size(), embedded_migrations().size());
  EXPECT_TRUE(first->already_applied.empty());

  EXPECT_EQ(names(*s, "tables", "table_name", mo.keyspace),
            (std::vector<std::string>{"deduplication", "deferred_offsets", "deferred_segments", "deferred_timers",
                                      "locks", "schema_migrations", "timer_keys", "timer_segments", "timer_slabs",
                                      "timer_typed_keys", "timer_typed_slabs"}));
  EXPECT_EQ(names(*s, "types", "type_name", mo.keyspace),
            (std::vector<std::string>{"deferred_next_timer", "key_timer_state"}));
  // Spot checks of columns and options the stores rely on.
  auto cols = s->query(
      "SELECT column_name, kind, type FROM system_schema.columns WHERE keyspace_name = ? AND table_name = ?",
      {mo.keyspace, "timer_typed_keys"});
  ASSERT_TRUE(cols);
  bool state_static = false;
  for (std::size_t i = 0; i < cols->size(); ++i) {
    if (cols->at(i, "column_name") == cql::Value("state")) {
      state_static = cols->at(i, "kind") == cql::Value("static") &&
                     cols->at(i, "type") == cql::Value("map<tinyint, frozen<key_timer_state>>");
    }
  }
  EXPECT_TRUE(state_static);
  auto dedup = s->query(
      "SELECT gc_grace_seconds, compaction, compression FROM system_schema.tables WHERE keyspace_name = ? AND "
      "table_name = ?",
      {mo.keyspace, "deduplication"});
  ASSERT_TRUE(dedup && dedup->size() == 1);
  EXPECT_EQ(dedup->at(0, "gc_grace_seconds"), cql::Value(std::int32_t{86400}));
  const auto* compaction = dedup->at(0, "compaction").get<cql::Map>();
  ASSERT_NE(compaction, nullptr);
  bool ucs_t4 = false;
  for (std::size_t i = 0; i < compaction->keys.size(); ++i) {
    if (compaction->keys[i] == cql::Value("scaling_parameters")) ucs_t4 = compaction->values[i] == cql::Value("T4");
  }
  EXPECT_TRUE(ucs_t4);
  auto recorded = s->query("SELECT filename, checksum, execution_time_ms FROM " + mo.keyspace + ".schema_migrations");
  ASSERT_TRUE(recorded);
  EXPECT_EQ(recorded->size(), embedded_migrations().size());
  EXPECT_EQ(recorded->at(0, "checksum").get<std::string>()->size(), 64u);

  auto second = migrate(*s, mo);
  ASSERT_TRUE(second) << second.error().message();
  EXPECT_TRUE(second->applied.empty());
  EXPECT_EQ(second->already_applied.size(), embedded_migrations().size());
  // The lock was released.
  auto locks = s->query("SELECT lock_name FROM " + mo.keyspace + ".locks");
  ASSERT_TRUE(locks);
  EXPECT_EQ(locks->size(), 0u);
  ASSERT_TRUE(s->query("DROP KEYSPACE " + mo.keyspace));
}

TEST(CassandraMigratorIntegration, AChangedAppliedFileIsATerminalError) {
  PROSODY_REQUIRE_CASSANDRA(o);
  auto s = connect(o);
  ASSERT_TRUE(s);
  MigratorOptions mo;
  mo.keyspace = fresh_keyspace("mig_it");
  mo.migrations = {{"20250101_one.cql", "create table if not exists {{KEYSPACE}}.one (id int primary key);\n"},
                   {"20250102_two.cql", "create table if not exists {{KEYSPACE}}.two (id int primary key);\n"}};
  auto first = migrate(*s, mo);
  ASSERT_TRUE(first) << first.error().message();
  ASSERT_EQ(first->applied.size(), 2u);
  mo.migrations[1].content = "create table if not exists {{KEYSPACE}}.two (id int primary key, v text);\n";
  auto changed = migrate(*s, mo);
  ASSERT_FALSE(changed);
  EXPECT_TRUE(changed.error().is_terminal());
  EXPECT_NE(changed.error().message().find("20250102_two.cql was changed after it was applied"), std::string::npos)
      << changed.error().message();
  // A file recorded but no longer embedded only warns.
  mo.migrations.pop_back();
  auto fewer = migrate(*s, mo);
  ASSERT_TRUE(fewer) << fewer.error().message();
  EXPECT_EQ(fewer->unknown_recorded, std::vector<std::string>{"20250102_two.cql"});
  // A failing statement names its file and is not recorded.
  mo.migrations.push_back({"20250103_bad.cql", "create tabel {{KEYSPACE}}.x (id int primary key);\n"});
  auto bad = migrate(*s, mo);
  ASSERT_FALSE(bad);
  EXPECT_TRUE(bad.error().is_permanent());
  EXPECT_NE(bad.error().message().find("migration 20250103_bad.cql failed"), std::string::npos) << bad.error().message();
  ASSERT_TRUE(s->query("DROP KEYSPACE " + mo.keyspace));
}

TEST(CassandraMigratorIntegration, ConcurrentMigratorsApplyEachFileOnce) {
  PROSODY_REQUIRE_CASSANDRA(o);
  auto a = connect(o), b = connect(o);
  ASSERT_TRUE(a && b);
  MigratorOptions mo;
  mo.keyspace = fresh_keyspace("mig_it");
  mo.max_backoff = std::chrono::milliseconds(2000);
  // Create the keyspace up front so both race on the lock, not on DDL.
  ASSERT_TRUE(a->query("CREATE KEYSPACE " + mo.keyspace +
                       " WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}"));
  Result<MigrationReport> ra = Error::transient("unset"), rb = Error::transient("unset");
  std::thread ta([&] { ra = migrate(*a, mo); });
  std::thread tb([&] { rb = migrate(*b, mo); });
  ta.join();
  tb.join();
  ASSERT_TRUE(ra) << ra.error().message();
  ASSERT_TRUE(rb) << rb.error().message();
  EXPECT_EQ(ra->applied.size() + rb->applied.size(), embedded_migrations().size());
  auto recorded = a->query("SELECT filename FROM " + mo.keyspace + ".schema_migrations");
  ASSERT_TRUE(recorded);
  EXPECT_EQ(recorded->size(), embedded_migrations().size());
  ASSERT_TRUE(a->query("DROP KEYSPACE " + mo.keyspace));
}

}  // namespace
}  // namespace prosody::store::cassandra
