#include "cql/connection.h"

#include <asio/connect.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>

#include "cql/errors.h"

namespace prosody::cql {
namespace {

constexpr std::int16_t kMaxStreams = 32767;
// Timeouts are checked on this tick rather than with a timer per request.
constexpr std::chrono::milliseconds kSweepInterval{20};
// Too many unanswered timed-out requests means the node or link is stuck:
// reconnect instead of leaking stream ids.
constexpr std::size_t kMaxOrphans = 1024;
constexpr std::size_t kReadChunk = 64 * 1024;

}  // namespace

std::shared_ptr<Connection> Connection::create(asio::io_context& io, ConnectionOptions options) {
  return std::shared_ptr<Connection>(new Connection(io, std::move(options)));
}

Connection::Connection(asio::io_context& io, ConnectionOptions options)
    : io_(io),
      options_(std::move(options)),
      address_(options_.host + ":" + std::to_string(options_.port)),
      socket_(io),
      timer_(io) {
  free_streams_.reserve(kMaxStreams);
  for (std::int16_t s = kMaxStreams; s >= 1; --s) free_streams_.push_back(s);
}

Connection::~Connection() {
  std::error_code ec;
  socket_.close(ec);
}

void Connection::open(std::function<void(Status)> user_done) {
  state_ = State::connecting;
  // A failed handshake leaves nothing behind: pending requests fail, the
  // socket closes, and on_close (set only after success) does not fire.
  auto done = [this, user_done](Status st) {
    if (!st && state_ != State::closed) close(st.error());
    user_done(std::move(st));
  };
  asio::error_code ec;
  auto addr = asio::ip::make_address(options_.host, ec);
  auto self = shared_from_this();
  auto connected = [this, self, done](const asio::error_code& err) {
    if (state_ != State::connecting) return;  // timed out meanwhile
    if (err) {
      done(connection_error("cannot connect to " + address_ + ": " + err.message()));
      return;
    }
    socket_.set_option(asio::ip::tcp::no_delay(true));
    state_ = State::handshake;
    start_read();
    sweep_timeouts();
    handshake(done);
  };
  timer_.expires_after(options_.connect_timeout);
  timer_.async_wait([this, self, done](const asio::error_code& err) {
    if (err || state_ != State::connecting) return;
    done(timeout_error("connecting to " + address_ + " timed out after " +
                       std::to_string(options_.connect_timeout.count()) + " ms"));
  });
  if (!ec) {
    socket_.async_connect(asio::ip::tcp::endpoint(addr, options_.port), connected);
    return;
  }
  // A host name: resolve first (the resolver lives as long as the lookup).
  auto resolver = std::make_shared<asio::ip::tcp::resolver>(io_);
  resolver->async_resolve(options_.host, std::to_string(options_.port),
                          [this, self, resolver, connected](const asio::error_code& err,
                                                            asio::ip::tcp::resolver::results_type results) {
                            if (err) return connected(err);
                            asio::async_connect(socket_, results,
                                                [connected](const asio::error_code& e, const auto&) { connected(e); });
                          });
}

void Connection::handshake(std::function<void(Status)> done) {
  auto self = shared_from_this();
  send([](std::int16_t s) -> Result<std::vector<std::uint8_t>> { return encode_startup(s); }, nullptr,
       options_.connect_timeout, [this, self, done](Result<Response> r) {
         if (!r) return done(std::move(r).error());
         if (r->kind == Response::Kind::ready) return use_keyspace(done);
         if (r->kind == Response::Kind::authenticate) return authenticate(done);
         if (r->kind == Response::Kind::error) return done(server_error(r->error_code, r->text));
         done(protocol_error("unexpected reply to STARTUP"));
       });
}

void Connection::authenticate(std::function<void(Status)> done) {
  if (!options_.user || !options_.password) {
    return done(Error::permanent("Cassandra at " + address_ +
                                     " requires authentication, but cassandra_user / cassandra_password are not set",
                                 ErrorCode::invalid_config));
  }
  auto self = shared_from_this();
  auto user = *options_.user, password = *options_.password;
  send([user, password](std::int16_t s) -> Result<std::vector<std::uint8_t>> {
         return encode_auth_response(s, user, password);
       },
       nullptr, options_.connect_timeout, [this, self, done](Result<Response> r) {
         if (!r) return done(std::move(r).error());
         if (r->kind == Response::Kind::auth_success) return use_keyspace(done);
         if (r->kind == Response::Kind::error) {
           auto e = server_error(r->error_code, r->text);
           return done(Error(e.error_class(), e.code(), "login to " + address_ + " as '" + *options_.user +
                                                             "' failed: " + e.message()));
         }
         done(protocol_error("unsupported SASL exchange (only PasswordAuthenticator / PLAIN is supported)"));
       });
}

void Connection::use_keyspace(std::function<void(Status)> done) {
  auto finish = [this, done](Status st) {
    if (st && state_ == State::handshake) state_ = State::ready;
    done(std::move(st));
  };
  if (!options_.keyspace) return finish({});
  auto self = shared_from_this();
  std::string cql = "USE \"" + *options_.keyspace + "\"";
  QueryParams p;
  p.page_size = 0;
  send([cql, p](std::int16_t s) { return encode_query(s, cql, {}, p); }, nullptr, options_.connect_timeout,
       [self, finish](Result<Response> r) {
         if (!r) return finish(std::move(r).error());
         if (r->kind == Response::Kind::error) return finish(server_error(r->error_code, r->text));
         finish({});
       });
}

void Connection::send(const Builder& build, std::shared_ptr<const Columns> cached, std::chrono::milliseconds timeout,
                      Callback cb) {
  if (state_ != State::ready && state_ != State::handshake) {
    return cb(connection_error(address_ + " is not connected"));
  }
  if (free_streams_.empty()) return cb(connection_error(address_ + ": all 32767 stream ids are in use"));
  auto stream = free_streams_.back();
  auto frame = build(stream);
  if (!frame) return cb(std::move(frame).error());
  free_streams_.pop_back();
  pending_.emplace(stream, Pending{std::move(cb), std::move(cached), std::chrono::steady_clock::now() + timeout});
  write_queue_.push_back(std::move(frame).value());
  if (writing_.empty()) start_write();
}

void Connection::start_write() {
  // Everything queued goes out in one gathered write.
  while (!write_queue_.empty()) {
    writing_.push_back(std::move(write_queue_.front()));
    write_queue_.pop_front();
  }
  std::vector<asio::const_buffer> bufs;
  bufs.reserve(writing_.size());
  for (const auto& b : writing_) bufs.emplace_back(asio::buffer(b));
  auto self = shared_from_this();
  asio::async_write(socket_, bufs, [this, self](const asio::error_code& err, std::size_t) {
    writing_.clear();
    if (state_ == State::closed) return;
    if (err) return close(connection_error("write to " + address_ + " failed: " + err.message()));
    if (!write_queue_.empty()) start_write();
  });
}

void Connection::start_read() {
  if (read_buf_.size() < read_len_ + kReadChunk) read_buf_.resize(read_len_ + kReadChunk);
  auto self = shared_from_this();
  socket_.async_read_some(asio::buffer(read_buf_.data() + read_len_, read_buf_.size() - read_len_),
                          [this, self](const asio::error_code& err, std::size_t n) {
                            if (state_ == State::closed) return;
                            if (err) {
                              return close(connection_error(address_ + (err == asio::error::eof
                                                                            ? " closed the connection"
                                                                            : " read failed: " + err.message())));
                            }
                            read_len_ += n;
                            on_frames();
                            if (state_ != State::closed) start_read();
                          });
}

void Connection::on_frames() {
  std::size_t pos = 0;
  while (read_len_ - pos >= kHeaderSize && state_ != State::closed) {
    std::span<const std::uint8_t, kHeaderSize> head(read_buf_.data() + pos, kHeaderSize);
    auto h = decode_header(head);
    if (!h) return close(h.error());
    if (read_len_ - pos < kHeaderSize + h->length) {
      // Make room for the whole body in one go.
      if (read_buf_.size() < pos + kHeaderSize + h->length) read_buf_.resize(pos + kHeaderSize + h->length);
      break;
    }
    std::span<const std::uint8_t> body(read_buf_.data() + pos + kHeaderSize, h->length);
    pos += kHeaderSize + h->length;
    if (h->stream < 0) continue;  // server events: we never REGISTER for them
    auto it = pending_.find(h->stream);
    if (it == pending_.end()) return close(protocol_error("response for unknown stream " + std::to_string(h->stream)));
    Pending p = std::move(it->second);
    pending_.erase(it);
    release(h->stream);
    if (p.orphaned) {
      --orphans_;
      continue;
    }
    auto r = decode_response(*h, body, p.cached);
    p.cb(std::move(r));
  }
  if (pos > 0) {
    std::memmove(read_buf_.data(), read_buf_.data() + pos, read_len_ - pos);
    read_len_ -= pos;
  }
}

void Connection::release(std::int16_t stream) { free_streams_.push_back(stream); }

void Connection::sweep_timeouts() {
  timer_.expires_after(kSweepInterval);
  auto self = shared_from_this();
  timer_.async_wait([this, self](const asio::error_code& err) {
    if (err || state_ == State::closed) return;
    auto now = std::chrono::steady_clock::now();
    std::vector<Callback> expired;
    for (auto& [stream, p] : pending_) {
      if (!p.orphaned && now >= p.deadline) {
        p.orphaned = true;
        ++orphans_;
        expired.push_back(std::move(p.cb));
      }
    }
    for (auto& cb : expired) cb(timeout_error("Cassandra request to " + address_ + " timed out"));
    if (orphans_ > kMaxOrphans) return close(timeout_error(address_ + ": too many requests timed out; reconnecting"));
    if (state_ != State::closed) sweep_timeouts();
  });
}

void Connection::close(const Error& reason) {
  if (state_ == State::closed) return;
  state_ = State::closed;
  std::error_code ec;
  timer_.cancel();
  socket_.close(ec);
  auto pending = std::move(pending_);
  pending_.clear();
  for (auto& [stream, p] : pending) {
    if (!p.orphaned) p.cb(reason);
  }
  if (on_close_) {
    auto handler = std::move(on_close_);
    on_close_ = nullptr;
    handler(reason);
  }
}

}  // namespace prosody::cql
