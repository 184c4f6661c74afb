// cql_bench: prepared INSERT and SELECT throughput and latency of our CQL
// client (src/cql) against a real Cassandra, at a fixed concurrency, and —
// when --python is given — the same statements through the DataStax Python
// driver in the same run (bench/cql_python_bench.py). Writes one JSON file.
//
//   cql_bench --nodes 127.0.0.1:9042 --ops 50000 --concurrency 64
//             --python bench/cql_python_bench.py --out bench/results/cql.json  (one line)
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <mutex>
#include <random>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cql/session.h"

using namespace prosody;
using SteadyClock = std::chrono::steady_clock;

namespace {

struct Phase {
  double seconds = 0;
  std::vector<double> latencies_us;
  int errors = 0;
};

// Runs `ops` requests with at most `concurrency` in flight; `issue(i, done)`
// starts request i and calls done(ok) when it completes.
template <typename Issue>
Phase run_phase(int ops, int concurrency, Issue issue) {
  Phase p;
  p.latencies_us.resize(static_cast<std::size_t>(ops));
  std::mutex mu;
  std::condition_variable cv;
  int in_flight = 0, completed = 0;
  auto start = SteadyClock::now();
  for (int i = 0; i < ops; ++i) {
    {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return in_flight < concurrency; });
      ++in_flight;
    }
    auto sent = SteadyClock::now();
    issue(i, [&, i, sent](bool ok) {
      auto us = std::chrono::duration<double, std::micro>(SteadyClock::now() - sent).count();
      std::lock_guard lock(mu);
      p.latencies_us[static_cast<std::size_t>(i)] = us;
      if (!ok) ++p.errors;
      --in_flight;
      ++completed;
      cv.notify_all();
    });
  }
  std::unique_lock lock(mu);
  cv.wait(lock, [&] { return completed == ops; });
  p.seconds = std::chrono::duration<double>(SteadyClock::now() - start).count();
  return p;
}

nlohmann::json summary(Phase& p, int ops) {
  std::sort(p.latencies_us.begin(), p.latencies_us.end());
  auto pct = [&](double q) { return p.latencies_us[static_cast<std::size_t>(q * (p.latencies_us.size() - 1))]; };
  return {{"ops", ops},
          {"errors", p.errors},
          {"seconds", p.seconds},
          {"ops_per_sec", ops / p.seconds},
          {"p50_us", pct(0.50)},
          {"p99_us", pct(0.99)},
          {"max_us", p.latencies_us.back()}};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"CQL client benchmark: prepared INSERT and SELECT against a real Cassandra"};
  std::string nodes = std::getenv("PROSODY_IT_CASSANDRA") ? std::getenv("PROSODY_IT_CASSANDRA") : "127.0.0.1:9042";
  std::string user = "cassandra", password = "cassandra", out = "cql.json", python;
  int ops = 50000, concurrency = 64, value_size = 100;
  app.add_option("--nodes", nodes, "contact point host:port (default PROSODY_IT_CASSANDRA)");
  app.add_option("--user", user);
  app.add_option("--password", password);
  app.add_option("--ops", ops, "requests per phase");
  app.add_option("--concurrency", concurrency, "requests in flight");
  app.add_option("--value-size", value_size, "bytes per inserted value");
  app.add_option("--python", python, "also run this Python driver bench with the same settings");
  app.add_option("--out", out, "JSON output");
  CLI11_PARSE(app, argc, argv);

  cql::SessionOptions o;
  o.contact_points = {nodes};
  o.user = user;
  o.password = password;
  auto s = cql::Session::connect(o);
  if (!s) {
    std::cerr << "cql_bench: " << s.error().message() << "\n";
    return 1;
  }
  auto& session = **s;
  for (const char* ddl : {"CREATE KEYSPACE IF NOT EXISTS cql_bench WITH replication = "
                          "{'class': 'SimpleStrategy', 'replication_factor': 1}",
                          "DROP TABLE IF EXISTS cql_bench.kv",
                          "CREATE TABLE cql_bench.kv (k bigint PRIMARY KEY, v text)"}) {
    if (auto r = session.query(ddl); !r) {
      std::cerr << "cql_bench: " << r.error().message() << "\n";
      return 1;
    }
  }
  auto insert = session.prepare("INSERT INTO cql_bench.kv (k, v) VALUES (?, ?)");
  auto select = session.prepare("SELECT v FROM cql_bench.kv WHERE k = ?");
  if (!insert || !select) {
    std::cerr << "cql_bench: prepare failed\n";
    return 1;
  }
  std::string value(static_cast<std::size_t>(value_size), 'x');
  auto do_insert = [&](int i, auto done) {
    session.execute_async(*insert, {static_cast<std::int64_t>(i), value}, {},
                          [done](Result<cql::Rows> r) { done(r.ok()); });
  };
  std::mt19937_64 rng(42);
  std::vector<std::int64_t> keys(static_cast<std::size_t>(ops));
  for (auto& k : keys) k = static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(ops));
  auto do_select = [&](int i, auto done) {
    session.execute_async(*select, {keys[static_cast<std::size_t>(i)]}, {},
                          [done](Result<cql::Rows> r) { done(r.ok() && r->size() == 1); });
  };
  // Warm-up: JIT and caches on the server, connections on our side.
  run_phase(std::min(ops, 5000), concurrency, do_insert);
  run_phase(std::min(ops, 5000), concurrency, do_select);
  auto ins = run_phase(ops, concurrency, do_insert);
  auto sel = run_phase(ops, concurrency, do_select);

  nlohmann::json result;
  result["setup"] = {{"server", "Apache Cassandra 5.0.8, one node on loopback (scripts/cassandra)"},
                     {"concurrency", concurrency},
                     {"ops_per_phase", ops},
                     {"value_size", value_size},
                     {"insert", "INSERT INTO cql_bench.kv (k, v) VALUES (?, ?)"},
                     {"select", "SELECT v FROM cql_bench.kv WHERE k = ?"},
                     {"consistency", "LOCAL_QUORUM"}};
  result["prosody_cpp"] = {{"insert", summary(ins, ops)}, {"select", summary(sel, ops)}};
  std::cout << "prosody-cpp cql: " << result["prosody_cpp"].dump() << "\n";

  if (!python.empty()) {
    std::string tmp = out + ".python.tmp";
    std::string cmd = "python3 '" + python + "' --nodes '" + nodes + "' --user '" + user + "' --password '" +
                      password + "' --ops " + std::to_string(ops) + " --concurrency " + std::to_string(concurrency) +
                      " --value-size " + std::to_string(value_size) + " --out '" + tmp + "'";
    const char* py = std::getenv("PROSODY_CQL_BENCH_PYTHON");
    if (py && *py) cmd = std::string(py) + cmd.substr(7);
    if (std::system(cmd.c_str()) == 0) {
      std::ifstream in(tmp);
      auto j = nlohmann::json::parse(in, nullptr, false);
      if (!j.is_discarded()) result["python_driver"] = j;
      std::remove(tmp.c_str());
    } else {
      std::cerr << "cql_bench: the Python bench failed; writing our numbers only\n";
    }
  }
  std::ofstream(out) << result.dump(2) << "\n";
  std::cout << "wrote " << out << "\n";
  bool failed = ins.errors > 0 || sel.errors > 0;
  return failed ? 1 : 0;
}
