// One TCP connection to one Cassandra node: handshake (STARTUP, optional
// PasswordAuthenticator via SASL PLAIN, optional USE keyspace), then many
// requests in flight at once, told apart by stream id (v4: 32768 per
// connection). Requests time out individually; a timed-out stream id stays
// reserved until its late response arrives, so ids are never confused.
//
// Thread rules: every method must be called on the io_context's thread (the
// Session's I/O thread), and every callback runs there. No locks inside.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>

#include "cql/messages.h"
#include "prosody/result.h"

namespace prosody::cql {

struct ConnectionOptions {
  std::string host;
  std::uint16_t port = 9042;
  std::optional<std::string> user;
  std::optional<std::string> password;
  std::optional<std::string> keyspace;  // USE after the handshake
  std::chrono::milliseconds connect_timeout{5000};
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  using Callback = std::function<void(Result<Response>)>;
  // Builds the request frame for a stream id (so encoding errors surface
  // before anything is sent and the stream id is released).
  using Builder = std::function<Result<std::vector<std::uint8_t>>(std::int16_t stream)>;

  static std::shared_ptr<Connection> create(asio::io_context& io, ConnectionOptions options);
  ~Connection();

  // Connects and completes the handshake; `done` gets ok or the reason
  // (bad credentials are a permanent error with a clear message).
  void open(std::function<void(Status)> done);

  // Sends one request. `cached` are result columns for EXECUTE with
  // skip_metadata. `cb` runs exactly once: response, error or timeout.
  void send(const Builder& build, std::shared_ptr<const Columns> cached, std::chrono::milliseconds timeout,
            Callback cb);

  // Fails every pending request with `reason` and closes the socket.
  void close(const Error& reason);
  // Called once when the connection closes for any reason after open().
  void on_close(std::function<void(const Error&)> handler) { on_close_ = std::move(handler); }

  bool ready() const noexcept { return state_ == State::ready; }
  std::size_t in_flight() const noexcept { return pending_.size(); }
  const std::string& address() const noexcept { return address_; }

 private:
  enum class State { idle, connecting, handshake, ready, closed };
  struct Pending {
    Callback cb;
    std::shared_ptr<const Columns> cached;
    std::chrono::steady_clock::time_point deadline;
    bool orphaned = false;  // timed out; waiting for the late response
  };

  Connection(asio::io_context& io, ConnectionOptions options);
  void handshake(std::function<void(Status)> done);
  void authenticate(std::function<void(Status)> done);
  void use_keyspace(std::function<void(Status)> done);
  void start_write();
  void start_read();
  void on_frames();
  void sweep_timeouts();
  void release(std::int16_t stream);

  asio::io_context& io_;
  ConnectionOptions options_;
  std::string address_;
  asio::ip::tcp::socket socket_;
  asio::steady_timer timer_;  // connect timeout, then the timeout sweep
  State state_ = State::idle;
  std::vector<std::int16_t> free_streams_;
  std::unordered_map<std::int16_t, Pending> pending_;
  std::size_t orphans_ = 0;
  std::deque<std::vector<std::uint8_t>> write_queue_;
  std::vector<std::vector<std::uint8_t>> writing_;
  std::vector<std::uint8_t> read_buf_;
  std::size_t read_len_ = 0;
  std::function<void(const Error&)> on_close_;
};

}  // namespace prosody::cql
