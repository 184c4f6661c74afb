// HTTP health probes for orchestrators (seed 000):
//   GET /readyz  200 "<n> partitions assigned" when at least one partition is
//                assigned, else 503
//   GET /livez   200 "ok" unless the consumer is stalled, else 503
// The server runs while the consumer is subscribed; it is off in mock mode
// and when probe_port is unset ("none").
//
// Thread safety: start/stop from one thread; the callbacks are called from
// the server's thread and must be thread-safe.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "prosody/result.h"

namespace httplib {
class Server;
}

namespace prosody::telemetry {

struct ProbeSources {
  std::function<std::size_t()> assigned_partitions;
  std::function<bool()> is_stalled;
};

class ProbeServer {
 public:
  ProbeServer();
  ~ProbeServer();
  ProbeServer(const ProbeServer&) = delete;
  ProbeServer& operator=(const ProbeServer&) = delete;

  // Binds 0.0.0.0:port (port 0 picks a free one) and serves in the background.
  Status start(int port, ProbeSources sources, const std::string& host = "0.0.0.0");
  void stop();
  int port() const { return port_; }

 private:
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace prosody::telemetry
