// signal_server/server: the socket.io v4 signalling server on libsoup 3 and the GLib main loop.
// It only moves frames: Engine.IO sessions (lib/signal/session) turn HTTP long-polling and
// WebSocket traffic into Socket.IO text, the Router (lib/signal/router) decides, and its actions
// become frames, closes and chain lookups (answered on a worker thread, see chain_worker.hpp).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <glib.h>

#include "signal/router.hpp"
#include "signal/session.hpp"
#include "signal_server/chain_worker.hpp"

namespace p2p::signal_server {

struct ServerConfig {
  std::string host = "127.0.0.1";
  std::uint16_t port = 3001;  // 0: any free port (see Server::port())
  std::optional<std::string> tls_cert, tls_key;  // PEM files; both or neither
  signal::RouterConfig router;
  signal::SessionConfig session;
  std::size_t max_http_body = 1'000'000;  // a polling POST
  std::size_t max_backlog = 4u << 20;     // unsent bytes queued for one client before it is dropped
  std::int64_t tick_ms = 200;             // timer resolution for pings and timeouts
  std::int64_t chain_poll_ms = 1000;      // how often to look for chain changes (0: never)
  std::string cors_origin = "*";          // Access-Control-Allow-Origin for polling; empty: none
  int log_level = 0;                      // LogFn gets lines up to this level (see LogFn)
};

// Log lines: level 0 = notable (start, refusals of connections), 1 = per event (-v), 2 = per frame (-vv).
using LogFn = std::function<void(int level, const std::string& line)>;

class Server {
 public:
  // Binds and starts serving on `context` (the thread-default one when null). Throws UsageError
  // for bad addresses or TLS files, RuntimeError when the port cannot be bound.
  Server(ServerConfig config, ChainSourceFactory chain, GMainContext* context = nullptr, LogFn log = {});
  ~Server();  // closes every connection and stops the worker
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  std::uint16_t port() const;
  std::string url() const;  // http(s)://host:port
  signal::Counters counters() const;
  std::string metrics_text() const;  // what GET /metrics answers
  std::size_t connection_count() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// "HOST:PORT", "[v6]:PORT", ":PORT" or "PORT" into host and port. UsageError otherwise.
std::pair<std::string, std::uint16_t> parse_listen(const std::string& text);

}  // namespace p2p::signal_server
