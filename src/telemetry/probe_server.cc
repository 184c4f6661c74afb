#include "telemetry/probe_server.h"

#include <sys/socket.h>

#include <chrono>

#include <httplib.h>

namespace prosody::telemetry {

ProbeServer::ProbeServer() = default;

ProbeServer::~ProbeServer() { stop(); }

Status ProbeServer::start(int port, ProbeSources sources, const std::string& host) {
  server_ = std::make_unique<httplib::Server>();
  // httplib's default also sets SO_REUSEPORT, which would let a second
  // process silently share the port; a clash must be an error instead.
  server_->set_socket_options([](int sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  server_->Get("/readyz", [sources](const httplib::Request&, httplib::Response& res) {
    const auto n = sources.assigned_partitions();
    res.status = n > 0 ? 200 : 503;
    res.set_content(std::to_string(n) + " partitions assigned\n", "text/plain");
  });
  server_->Get("/livez", [sources](const httplib::Request&, httplib::Response& res) {
    const bool stalled = sources.is_stalled();
    res.status = stalled ? 503 : 200;
    res.set_content(stalled ? "stalled\n" : "ok\n", "text/plain");
  });
  const int bound = port == 0 ? server_->bind_to_any_port(host) : (server_->bind_to_port(host, port) ? port : -1);
  if (bound < 0) {
    server_.reset();
    return Error::permanent("probe server: cannot listen on " + host + ":" + std::to_string(port) +
                                " (port in use? set probe_port / PROSODY_PROBE_PORT, or 'none' to disable)",
                            ErrorCode::invalid_config);
  }
  port_ = bound;
  thread_ = std::thread([s = server_.get()] { s->listen_after_bind(); });
  // stop() before the accept loop runs would be lost; wait for it.
  while (!server_->is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return {};
}

void ProbeServer::stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
  server_.reset();
}

}  // namespace prosody::telemetry
