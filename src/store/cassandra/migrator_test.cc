// Migration file handling without a server: splitting, placeholders,
// checksums and the embedded set.
#include <gtest/gtest.h>

#include "store/cassandra/migrator.h"

namespace prosody::store::cassandra {
namespace {

TEST(CassandraMigrator, SplitsStatementsAtLinesEndingWithSemicolon) {
  auto stmts = split_statements(
      "-- header comment\n"
      "create table a (\n"
      "    x int primary key -- trailing text stays\n"
      ");\n"
      "\n"
      "  -- indented comment\n"
      "alter table a add y int;\n"
      "select 1");
  ASSERT_EQ(stmts.size(), 3u);
  EXPECT_EQ(stmts[0], "create table a (\nx int primary key -- trailing text stays\n)");
  EXPECT_EQ(stmts[1], "alter table a add y int");
  EXPECT_EQ(stmts[2], "select 1");
}

TEST(CassandraMigrator, SubstitutesKeyspaceAndTableNames) {
  EXPECT_EQ(substitute_placeholders("{{KEYSPACE}}.{{TABLE_TYPED_KEYS}} {{KEYSPACE}}.{{TABLE_DEDUPLICATION}}", "ks"),
            "ks.timer_typed_keys ks.deduplication");
}

TEST(CassandraMigrator, Sha256MatchesTheStandardVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(CassandraMigrator, KeyspaceNamesAreValidated) {
  EXPECT_TRUE(valid_keyspace_name("prosody"));
  EXPECT_TRUE(valid_keyspace_name("prosody_test_2"));
  EXPECT_FALSE(valid_keyspace_name(""));
  EXPECT_FALSE(valid_keyspace_name("a;drop"));
  EXPECT_FALSE(valid_keyspace_name(std::string(49, 'a')));
}

TEST(CassandraMigrator, EmbeddedFilesAreOrderedAndFullySubstituted) {
  const auto& all = embedded_migrations();
  ASSERT_EQ(all.size(), 8u);
  std::string previous;
  int tables = 0;
  for (const auto& m : all) {
    ASSERT_GE(m.filename.size(), 9u);
    for (int i = 0; i < 8; ++i) EXPECT_TRUE(std::isdigit(static_cast<unsigned char>(m.filename[i]))) << m.filename;
    EXPECT_EQ(m.filename[8], '_');
    EXPECT_LT(previous, m.filename);
    previous = m.filename;
    auto text = substitute_placeholders(m.content, "ks");
    EXPECT_EQ(text.find("{{"), std::string::npos) << m.filename;
    for (const auto& s : split_statements(text)) {
      EXPECT_EQ(s.find(';'), std::string::npos) << m.filename << ": " << s;
      if (s.rfind("create table", 0) == 0) ++tables;
    }
  }
  // timer_segments, timer_slabs, timer_keys, typed slabs/keys, deferred
  // segments/offsets/timers, deduplication.
  EXPECT_EQ(tables, 9);
}

}  // namespace
}  // namespace prosody::store::cassandra
