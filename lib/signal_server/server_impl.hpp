// signal_server/server_impl: the server's private state (Server::Impl and the connection records
// it keeps), shared by server.cpp (setup, WebSockets, packets, time) and server_http.cpp (the
// HTTP endpoints, Engine.IO long-polling and /metrics). Not part of the library's interface.
#pragma once
#include <libsoup/soup.h>
#include <sodium.h>

#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <queue>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "signal_server/rawws.hpp"
#include "signal_server/server.hpp"

namespace p2p::signal_server {

using signal::SocketId;
using signal::Transport;

inline std::int64_t now_ms() { return g_get_real_time() / 1000; }

inline void random_bytes(std::span<std::uint8_t> out) { randombytes_buf(out.data(), out.size()); }

// Engine.IO's HTTP error codes and their fixed messages.
enum class EioError { transport_unknown = 0, session_unknown, bad_handshake_method, bad_request, forbidden, bad_version };

inline const char* eio_error_message(EioError e) {
  switch (e) {
    case EioError::transport_unknown: return "Transport unknown";
    case EioError::session_unknown: return "Session ID unknown";
    case EioError::bad_handshake_method: return "Bad handshake method";
    case EioError::bad_request: return "Bad request";
    case EioError::forbidden: return "Forbidden";
    case EioError::bad_version: return "Unsupported protocol version";
  }
  return "Bad request";
}

inline constexpr const char* kConnKey = "p2p-signal-conn";
inline constexpr const char* kProbeKey = "p2p-signal-probe";
inline constexpr const char* kFdKey = "p2p-signal-fd";
inline constexpr const char* kBodyKey = "p2p-signal-body";

// A polling POST body, collected chunk by chunk so that an oversize body is never held whole.
struct BodyBuffer {
  std::string data;
  std::size_t limit = 0;
  bool too_large = false;
};

inline void set_text(SoupServerMessage* msg, guint status, const char* type, std::string_view body) {
  soup_server_message_set_status(msg, status, nullptr);
  soup_server_message_set_response(msg, type, SOUP_MEMORY_COPY, body.data(), body.size());
}

// Drops the reference we hold on a websocket once libsoup has finished closing it.
inline void unref_when_closed(SoupWebsocketConnection* ws, gushort code, const std::string& reason) {
  auto state = soup_websocket_connection_get_state(ws);
  if (state == SOUP_WEBSOCKET_STATE_CLOSED) {
    g_object_unref(ws);
    return;
  }
  g_signal_connect(ws, "closed", G_CALLBACK(+[](SoupWebsocketConnection* c, gpointer) { g_object_unref(c); }),
                   nullptr);
  if (state == SOUP_WEBSOCKET_STATE_OPEN) {
    // A close reason must fit a control frame (123 bytes) and stay valid UTF-8: keep it ASCII.
    std::string r;
    for (char ch : reason.substr(0, 120))
      if (static_cast<unsigned char>(ch) >= 0x20 && static_cast<unsigned char>(ch) < 0x7f) r += ch;
    soup_websocket_connection_close(ws, code, r.c_str());
  }
}

// Identifies a connection in signal callbacks; looked up again each time, so a stale one is harmless.
struct Tag {
  Server::Impl* impl;
  SocketId id;
};

// A WebSocket: libsoup's own (TLS), or one of ours on a plain socket (RawSockets).
struct Link {
  SoupWebsocketConnection* soup = nullptr;
  RawSockets::LinkId raw = 0;
  // libsoup's queue is not visible: estimate it from the kernel's counters (see backlog.hpp)
  int fd = -1;
  std::uint64_t base = 0;     // kernel bytes already taken when the socket became ours
  std::uint64_t handed = 0;   // frame bytes given to libsoup since
  std::uint64_t checked = 0;
  explicit operator bool() const { return soup != nullptr || raw != 0; }
};

// One Engine.IO session and the transports it holds.
struct Conn {
  Conn(SocketId i, signal::Session s, std::string peer) : id(i), session(std::move(s)), ip(std::move(peer)) {}
  SocketId id;
  signal::Session session;
  std::string ip;
  std::unique_ptr<Tag> tag;
  Link ws;     // a websocket session, or a polling session after its upgrade
  Link probe;  // the upgrade probe, while a polling session tries websocket
  // Long-polling
  SoupServerMessage* held = nullptr;  // a GET waiting for packets
  std::vector<std::string> queue;     // packets for the next GET
  std::size_t queued_bytes = 0;
  bool doomed = false;  // closed at the next tick (a slow reader)
  std::string doom_reason;
  std::int64_t armed = kUnarmed;  // the session deadline queued in Impl::timers
  static constexpr std::int64_t kUnarmed = std::numeric_limits<std::int64_t>::max();
};

// A session deadline (ping due or pong late), queued so that the tick does not visit every
// connection: at 10,000 connections that visit stalled relaying for milliseconds every tick.
struct Deadline {
  std::int64_t at;
  SocketId id;
  bool operator>(const Deadline& o) const { return at > o.at; }
};

struct Server::Impl {
  Impl(ServerConfig c, GMainContext* context, LogFn l)
      : cfg(std::move(c)), log(std::move(l)), ctx(context), router(cfg.router, random_bytes) {}

  ServerConfig cfg;
  LogFn log;
  GMainContext* ctx;
  SoupServer* soup = nullptr;
  GSource* tick_source = nullptr;
  signal::Router router;
  std::unique_ptr<ChainWorker> worker;
  std::unique_ptr<RawSockets> raw;
  std::unordered_map<RawSockets::LinkId, SocketId> raw_owner;
  std::unordered_map<SocketId, std::unique_ptr<Conn>> conns;
  std::unordered_map<std::string, SocketId> by_sid;
  // Deadlines, earliest first. An entry counts only while it equals its connection's `armed`;
  // a deadline that moves later is found when the old entry comes up, and queued again then.
  std::priority_queue<Deadline, std::vector<Deadline>, std::greater<>> timers;
  std::vector<SocketId> doomed_ids;
  SocketId next_id = 1;
  std::uint16_t bound_port = 0;
  std::string host_text;
  bool tls = false;
  // Counters the router does not keep.
  std::uint64_t upgrades = 0;
  std::uint64_t slow_client_drops = 0;
  std::uint64_t http_refusals = 0;
  std::uint64_t chain_errors = 0;

  // Formatting costs more than relaying a message: check the level first.
  bool logs(int level) const { return log && level <= cfg.log_level; }
  void say(int level, const std::string& line) const {
    if (logs(level)) log(level, line);
  }
  Conn* find(SocketId id) {
    auto it = conns.find(id);
    return it == conns.end() ? nullptr : it->second.get();
  }
  Conn* find_sid(const char* sid) {
    if (!sid) return nullptr;
    auto it = by_sid.find(sid);
    return it == by_sid.end() ? nullptr : find(it->second);
  }

  // ---- setup ----
  void start();
  void stop();

  // ---- HTTP ----
  void http(SoupServerMessage* msg, const char* path, GHashTable* query);
  void engine(SoupServerMessage* msg, GHashTable* query);
  void eio_error(SoupServerMessage* msg, EioError e, std::string_view detail = {});
  void cors(SoupServerMessage* msg);
  std::optional<SocketId> open_session(Transport t, const std::string& ip);
  void poll_get(Conn& c, SoupServerMessage* msg);
  void poll_post(Conn& c, SoupServerMessage* msg);
  void early(SoupServerMessage* msg);

  // ---- WebSocket ----
  void ws_attached(SoupServerMessage* msg, SoupWebsocketConnection* ws);
  void raw_attached(SoupServerMessage* msg);
  void attach(SoupServerMessage* msg, Link link);
  void ws_text(SocketId id, bool from_probe, std::string_view text);
  void ws_closed(SocketId id, bool probe, const std::string& why);
  void ws_send(Conn& c, Link& link, const std::string& packet);
  void release(Link& link, Tag* tag, gushort code, const std::string& reason, bool discard);
  void raw_text(RawSockets::LinkId link, SocketId owner, std::string_view text);
  void raw_closed(RawSockets::LinkId link, const std::string& why);
  void promote(Conn& c);

  // ---- packets ----
  void feed(SocketId id, signal::SessionOutput out);
  void deliver(Conn& c, Transport via, std::string packet);
  void send_packet(SocketId id, std::string packet);
  void poll_push(Conn& c, std::string packet);
  void flush_held(Conn& c, bool closing = false);
  void apply(signal::Actions actions);
  enum class Why { session, router, server, shutdown };
  void close_conn(SocketId id, const std::string& reason, Why why);
  void doom(Conn& c, std::string reason);

  // ---- time and chain ----
  void arm(Conn& c);
  void tick();
  void chain_results(ChainResults r);
  std::string metrics() const;
};

}  // namespace p2p::signal_server
