// Shared by the CQL integration tests: the real Cassandra started by
// scripts/cassandra (PROSODY_IT_CASSANDRA=host:port). The test server runs
// with PasswordAuthenticator and the default superuser, so the tests log in
// as cassandra/cassandra unless PROSODY_IT_CASSANDRA_USER/_PASSWORD say
// otherwise.
#pragma once

#include <cstdlib>
#include <optional>
#include <string>

#include <gtest/gtest.h>

#include "cql/session.h"

namespace prosody::cql::it {

inline std::optional<SessionOptions> options() {
  const char* addr = std::getenv("PROSODY_IT_CASSANDRA");
  if (!addr || !*addr) return std::nullopt;
  SessionOptions o;
  o.contact_points = {addr};
  const char* user = std::getenv("PROSODY_IT_CASSANDRA_USER");
  const char* password = std::getenv("PROSODY_IT_CASSANDRA_PASSWORD");
  o.user = user ? user : "cassandra";
  o.password = password ? password : "cassandra";
  // One node: LOCAL_QUORUM is 1 anyway, but be explicit for LWT and paging.
  o.consistency = Consistency::local_quorum;
  return o;
}

#define PROSODY_REQUIRE_CASSANDRA(opts)                                                  \
  auto opts##_maybe = ::prosody::cql::it::options();                                   \
  if (!opts##_maybe) GTEST_SKIP() << "PROSODY_IT_CASSANDRA not set (scripts/cassandra)"; \
  auto opts = *opts##_maybe

// Creates the test keyspace (SimpleStrategy RF 1) once per process.
inline void ensure_keyspace(Session& s, const std::string& ks) {
  auto r = s.query("CREATE KEYSPACE IF NOT EXISTS " + ks +
                   " WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}");
  ASSERT_TRUE(r) << r.error().message();
}

}  // namespace prosody::cql::it
