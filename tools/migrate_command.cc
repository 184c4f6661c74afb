// `prosody migrate`: brings a Cassandra keyspace up to Prosody's schema
// (src/store/cassandra/migrator.h). Connection settings come from the
// PROSODY_CASSANDRA_* environment, overridable by flags.
#include <iostream>

#include "commands.h"
#include "cql/session.h"
#include "prosody/config.h"
#include "store/cassandra/migrator.h"

namespace prosody::cli {
namespace {

struct MigrateFlags {
  std::string nodes, keyspace, user, password, datacenter;
  bool dry_run = false;
};

}  // namespace

std::function<int()> add_migrate(CLI::App& app) {
  auto* cmd = app.add_subcommand("migrate", "create or update Prosody's Cassandra schema (idempotent)");
  auto f = std::make_shared<MigrateFlags>();
  cmd->add_option("--nodes", f->nodes, "contact points host[:port],... (default PROSODY_CASSANDRA_NODES)");
  cmd->add_option("--keyspace", f->keyspace, "keyspace (default PROSODY_CASSANDRA_KEYSPACE or prosody)");
  cmd->add_option("--user", f->user, "user (default PROSODY_CASSANDRA_USER)");
  cmd->add_option("--password", f->password, "password (default PROSODY_CASSANDRA_PASSWORD)");
  cmd->add_option("--datacenter", f->datacenter, "local datacenter (default PROSODY_CASSANDRA_DATACENTER)");
  cmd->add_flag("--list", f->dry_run, "list the embedded migrations and exit");
  return [f] {
    if (f->dry_run) {
      for (const auto& m : store::cassandra::embedded_migrations()) {
        std::cout << m.filename << "  sha256 "
                  << store::cassandra::sha256_hex(store::cassandra::substitute_placeholders(m.content, "prosody"))
                  << " (keyspace prosody)\n";
      }
      return 0;
    }
    auto config = Config::from_env();
    if (!f->nodes.empty()) config.with_cassandra_nodes(std::string_view(f->nodes));
    if (!f->keyspace.empty()) config.with_cassandra_keyspace(f->keyspace);
    if (!f->user.empty()) config.with_cassandra_user(f->user);
    if (!f->password.empty()) config.with_cassandra_password(f->password);
    if (!f->datacenter.empty()) config.with_cassandra_datacenter(f->datacenter);
    auto options = cql::SessionOptions::from_config(config);
    if (options.contact_points.empty()) {
      std::cerr << "prosody migrate: no Cassandra nodes (set PROSODY_CASSANDRA_NODES or --nodes)\n";
      return 2;
    }
    std::cerr << "connecting to " << options.contact_points.front()
              << (options.contact_points.size() > 1 ? " (and others)" : "") << "...\n";
    auto session = cql::Session::connect(options);
    if (!session) {
      std::cerr << "prosody migrate: " << session.error().message() << "\n";
      return 1;
    }
    store::cassandra::MigratorOptions mo;
    mo.keyspace = config.cassandra_keyspace();
    std::cerr << "migrating keyspace " << mo.keyspace << " (" << mo.migrations.size() << " migrations embedded)...\n";
    auto report = store::cassandra::migrate(**session, mo);
    if (!report) {
      std::cerr << "prosody migrate: " << report.error().describe() << "\n";
      return 1;
    }
    for (const auto& name : report->applied) std::cout << "applied  " << name << "\n";
    for (const auto& name : report->unknown_recorded) std::cout << "unknown  " << name << " (recorded, not embedded)\n";
    std::cout << "keyspace " << mo.keyspace << ": " << report->applied.size() << " applied, "
              << report->already_applied.size() << " already applied\n";
    return 0;
  };
}

}  // namespace prosody::cli
