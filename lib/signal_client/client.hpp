// signal_client/client: a socket.io v4 client (Engine.IO v4 over a libsoup WebSocket) on a
// GMainContext: connects with backoff and reconnects, answers Engine.IO pings, emits and
// receives events, and signs the p2pstream challenge for broadcast/watch.
// Use it from the thread that runs its context; callbacks run there too.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <glib.h>

#include "keys/ed25519.hpp"
#include "signal/engineio.hpp"
#include "signal/protocol.hpp"

namespace p2p::signal_client {

using Json = signal::Json;

struct ClientOptions {
  std::string url;                         // http(s):// or ws(s)://HOST:PORT; /socket.io/ is added
  std::int64_t reconnect_min_ms = 500;     // first retry delay; doubles up to reconnect_max_ms
  std::int64_t reconnect_max_ms = 10000;
  int max_reconnects = -1;                 // -1: keep trying
  std::int64_t connect_timeout_ms = 10000;
  bool tls_insecure = false;               // accept any server certificate (self-signed test servers)
  std::optional<std::string> tls_ca_file;  // PEM CA bundle to trust instead of the system's
  std::size_t max_outbox = 1024;           // emits kept while disconnected
};

class Client {
 public:
  // args: the event's arguments without its name, as a JSON array.
  using EventFn = std::function<void(const Json& args)>;

  explicit Client(ClientOptions options, GMainContext* context = nullptr);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  void connect();
  // Closes and stops reconnecting. Pending emits are dropped.
  void disconnect();
  bool connected() const;  // the Socket.IO namespace is connected

  // Each on* call adds a listener; listeners run in the order they were added.
  void on(const std::string& event, EventFn fn);
  void on_connect(std::function<void()> fn);
  // Why the connection ended: "io server disconnect" (the server closed it; no reconnect),
  // "io client disconnect", "transport close", "ping timeout", "transport error: ...".
  void on_disconnect(std::function<void(const std::string& reason)> fn);
  // Connection attempts that failed, and events the server refused with error {message}.
  void on_error(std::function<void(const std::string& message)> fn);

  // Emits now when connected, else after the next connect (up to max_outbox).
  void emit(const std::string& event, Json args = Json::array());
  // Emits broadcast/watch with `auth {publicKey, signature}` added to the payload (args[1]),
  // signed over the server's newest challenge. Waits for a challenge when none is unused.
  void emit_signed(signal::Role role, const keys::Keypair& key, const std::string& event, Json args);

  std::string sid() const;  // the Engine.IO session id, empty when not connected
  int reconnects() const;   // connection attempts after the first

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

// The URL libsoup upgrades to a WebSocket: http(s)://HOST:PORT/socket.io/?EIO=4&transport=websocket,
// from an http(s) or ws(s) URL with an optional path prefix. UsageError for anything else.
std::string engine_url(const std::string& url);

}  // namespace p2p::signal_client
