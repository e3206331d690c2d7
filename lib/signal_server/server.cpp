// signal_server/server: the libsoup face of the signalling server. Everything here runs on one
// GMainContext; the only other thread is the chain worker, which talks back through
// g_main_context_invoke.
#include "signal_server/server.hpp"

#include <libsoup/soup.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sodium.h>

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <queue>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "signal_server/backlog.hpp"
#include "signal_server/rawws.hpp"
#include "util/error.hpp"

namespace p2p::signal_server {

using signal::SocketId;
using signal::Transport;

namespace {

std::int64_t now_ms() { return g_get_real_time() / 1000; }

void random_bytes(std::span<std::uint8_t> out) { randombytes_buf(out.data(), out.size()); }

// Engine.IO's HTTP error codes and their fixed messages.
enum class EioError { transport_unknown = 0, session_unknown, bad_handshake_method, bad_request, forbidden, bad_version };

const char* eio_error_message(EioError e) {
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

constexpr const char* kConnKey = "p2p-signal-conn";
constexpr const char* kProbeKey = "p2p-signal-probe";
constexpr const char* kFdKey = "p2p-signal-fd";
constexpr const char* kBodyKey = "p2p-signal-body";

// A polling POST body, collected chunk by chunk so that an oversize body is never held whole.
struct BodyBuffer {
  std::string data;
  std::size_t limit = 0;
  bool too_large = false;
};

void set_text(SoupServerMessage* msg, guint status, const char* type, std::string_view body) {
  soup_server_message_set_status(msg, status, nullptr);
  soup_server_message_set_response(msg, type, SOUP_MEMORY_COPY, body.data(), body.size());
}

// Drops the reference we hold on a websocket once libsoup has finished closing it.
void unref_when_closed(SoupWebsocketConnection* ws, gushort code, const std::string& reason) {
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

}  // namespace

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

// ---- C callbacks ----

namespace {

void on_http(SoupServer*, SoupServerMessage* msg, const char* path, GHashTable* query, gpointer data) {
  static_cast<Server::Impl*>(data)->http(msg, path, query);
}

void on_early(SoupServer*, SoupServerMessage* msg, const char*, GHashTable*, gpointer data) {
  static_cast<Server::Impl*>(data)->early(msg);
}

void on_websocket(SoupServer*, SoupServerMessage* msg, const char*, SoupWebsocketConnection* ws, gpointer data) {
  static_cast<Server::Impl*>(data)->ws_attached(msg, ws);
}

void on_raw_upgrade(SoupServerMessage* msg, gpointer data) { static_cast<Server::Impl*>(data)->raw_attached(msg); }

void on_ws_message(SoupWebsocketConnection* ws, gint type, GBytes* bytes, gpointer data);
void on_ws_closed(SoupWebsocketConnection* ws, gpointer data);

// A held GET finished without us: the client went away.
void on_held_finished(SoupServerMessage* msg, gpointer data) {
  auto* tag = static_cast<Tag*>(data);
  if (Conn* c = tag->impl->find(tag->id); c && c->held == msg) {
    g_signal_handlers_disconnect_by_data(msg, c->tag.get());
    c->held = nullptr;
    g_object_unref(msg);
  }
}

void on_body_chunk(SoupServerMessage*, GBytes* chunk, gpointer data) {
  auto* body = static_cast<BodyBuffer*>(data);
  gsize n = 0;
  const char* p = static_cast<const char*>(g_bytes_get_data(chunk, &n));
  if (body->too_large) return;
  if (body->data.size() + n > body->limit) {
    body->too_large = true;
    body->data.clear();
    body->data.shrink_to_fit();
    return;
  }
  body->data.append(p, n);
}

gboolean on_tick(gpointer data) {
  static_cast<Server::Impl*>(data)->tick();
  return G_SOURCE_CONTINUE;
}

GInetAddress* resolve_host(const std::string& host) {
  if (host == "localhost") return g_inet_address_new_loopback(G_SOCKET_FAMILY_IPV4);
  std::string h = host;
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  if (h.empty()) return g_inet_address_new_any(G_SOCKET_FAMILY_IPV4);
  GInetAddress* a = g_inet_address_new_from_string(h.c_str());
  if (!a)
    throw UsageError(fmt::format("--listen host '{}' is not an IP address: use 127.0.0.1, 0.0.0.0, ::1, :: or localhost",
                                 host));
  return a;
}

}  // namespace

// ---- setup ----

void Server::Impl::start() {
  GError* err = nullptr;
  GTlsCertificate* cert = nullptr;
  if (cfg.tls_cert.has_value() != cfg.tls_key.has_value())
    throw UsageError("--tls-cert and --tls-key go together: give both PEM files, or neither");
  if (cfg.tls_cert) {
    cert = g_tls_certificate_new_from_files(cfg.tls_cert->c_str(), cfg.tls_key->c_str(), &err);
    if (!cert) {
      std::string m = err ? err->message : "unknown error";
      g_clear_error(&err);
      throw UsageError(fmt::format("cannot load the TLS certificate {} with key {}: {}", *cfg.tls_cert, *cfg.tls_key, m));
    }
    tls = true;
  }
  soup = static_cast<SoupServer*>(g_object_new(SOUP_TYPE_SERVER, "server-header", "p2pstream-signal", nullptr));
  if (cert) {
    soup_server_set_tls_certificate(soup, cert);
    g_object_unref(cert);
  }
  // permessage-deflate costs ~300 KB of zlib state per socket; socket.io servers disable it too.
  soup_server_remove_websocket_extension(soup, SOUP_TYPE_WEBSOCKET_EXTENSION_DEFLATE);
  raw = std::make_unique<RawSockets>(
      ctx,
      RawSockets::Events{[this](RawSockets::LinkId l, std::uint64_t owner, std::string_view t) { raw_text(l, owner, t); },
                         [this](RawSockets::LinkId l, const std::string& why) { raw_closed(l, why); }},
      cfg.session.max_payload);
  soup_server_add_handler(soup, nullptr, on_http, this, nullptr);
  soup_server_add_handler(soup, "/socket.io", on_http, this, nullptr);
  soup_server_add_early_handler(soup, "/socket.io", on_early, this, nullptr);
  soup_server_add_websocket_handler(soup, "/socket.io", nullptr, nullptr, on_websocket, this, nullptr);

  // Our own listening socket: GLib's default backlog of 10 drops connections when thousands of
  // clients (re)connect at once.
  GInetAddress* addr = resolve_host(cfg.host);
  GSocketAddress* sa = g_inet_socket_address_new(addr, cfg.port);
  GSocket* sock = g_socket_new(g_inet_address_get_family(addr), G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, &err);
  g_object_unref(addr);
  bool ok = sock != nullptr;
  if (ok) {
    g_socket_set_listen_backlog(sock, 4096);
    ok = g_socket_bind(sock, sa, TRUE, &err) && g_socket_listen(sock, &err) &&
         soup_server_listen_socket(soup, sock, tls ? SOUP_SERVER_LISTEN_HTTPS : static_cast<SoupServerListenOptions>(0),
                                   &err);
  }
  g_object_unref(sa);
  if (sock) g_object_unref(sock);
  if (!ok) {
    std::string m = err ? err->message : "unknown error";
    g_clear_error(&err);
    throw RuntimeError(fmt::format("cannot listen on {}:{}: {}", cfg.host, cfg.port, m));
  }
  GSList* uris = soup_server_get_uris(soup);
  if (uris) bound_port = static_cast<std::uint16_t>(g_uri_get_port(static_cast<GUri*>(uris->data)));
  g_slist_free_full(uris, reinterpret_cast<GDestroyNotify>(g_uri_unref));
  host_text = cfg.host.find(':') != std::string::npos && cfg.host.front() != '[' ? "[" + cfg.host + "]" : cfg.host;
  if (host_text.empty()) host_text = "0.0.0.0";

  tick_source = g_timeout_source_new(static_cast<guint>(std::max<std::int64_t>(cfg.tick_ms, 10)));
  g_source_set_callback(tick_source, on_tick, this, nullptr);
  g_source_attach(tick_source, ctx);
}

void Server::Impl::stop() {
  if (tick_source) {
    g_source_destroy(tick_source);
    g_source_unref(tick_source);
    tick_source = nullptr;
  }
  worker.reset();
  std::vector<SocketId> ids;
  for (const auto& [id, c] : conns) ids.push_back(id);
  for (auto id : ids) close_conn(id, "server shutting down", Why::shutdown);
  raw.reset();
  if (soup) {
    soup_server_disconnect(soup);
    g_object_unref(soup);
    soup = nullptr;
  }
}

// ---- HTTP ----

void Server::Impl::cors(SoupServerMessage* msg) {
  if (cfg.cors_origin.empty()) return;
  auto* h = soup_server_message_get_response_headers(msg);
  soup_message_headers_replace(h, "Access-Control-Allow-Origin", cfg.cors_origin.c_str());
}

void Server::Impl::eio_error(SoupServerMessage* msg, EioError e, std::string_view detail) {
  ++http_refusals;
  nlohmann::json j;
  j["code"] = static_cast<int>(e);
  j["message"] = eio_error_message(e);
  if (!detail.empty()) j["context"] = {{"reason", std::string(detail)}};
  set_text(msg, e == EioError::forbidden ? SOUP_STATUS_FORBIDDEN : SOUP_STATUS_BAD_REQUEST, "application/json",
           j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

void Server::Impl::http(SoupServerMessage* msg, const char* path, GHashTable* query) {
  // Signalling is small messages that want to leave now: no Nagle delay (socket.io's ws does the same).
  if (GSocket* sock = soup_server_message_get_socket(msg))
    g_socket_set_option(sock, IPPROTO_TCP, TCP_NODELAY, 1, nullptr);
  cors(msg);
  const char* method = soup_server_message_get_method(msg);
  std::string_view p = path ? path : "";
  if (method == SOUP_METHOD_OPTIONS) {
    auto* h = soup_server_message_get_response_headers(msg);
    soup_message_headers_replace(h, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    soup_message_headers_replace(h, "Access-Control-Allow-Headers", "Content-Type");
    soup_server_message_set_status(msg, SOUP_STATUS_NO_CONTENT, nullptr);
    return;
  }
  if (p == "/socket.io" || p == "/socket.io/") return engine(msg, query);
  if (method != SOUP_METHOD_GET && method != SOUP_METHOD_HEAD) {
    set_text(msg, SOUP_STATUS_METHOD_NOT_ALLOWED, "text/plain", "use GET\n");
    return;
  }
  if (p == "/metrics") return set_text(msg, SOUP_STATUS_OK, "text/plain; version=0.0.4; charset=utf-8", metrics());
  if (p == "/healthz") return set_text(msg, SOUP_STATUS_OK, "text/plain", "ok\n");
  if (p == "/is-already-having-stream") {
    const char* address = query ? static_cast<const char*>(g_hash_table_lookup(query, "address")) : nullptr;
    bool live = address && router.is_broadcasting(address);
    return set_text(msg, SOUP_STATUS_OK, "application/json", live ? "true" : "false");
  }
  set_text(msg, SOUP_STATUS_NOT_FOUND, "text/plain",
           "not found: this is a socket.io signalling server (/socket.io/, /metrics, /healthz, "
           "/is-already-having-stream?address=ID)\n");
}

void Server::Impl::early(SoupServerMessage* msg) {
  if (soup_server_message_get_method(msg) != SOUP_METHOD_POST) return;
  // Collect the body ourselves, so that an oversize one is counted and dropped, not stored.
  soup_message_body_set_accumulate(soup_server_message_get_request_body(msg), FALSE);
  auto* body = new BodyBuffer;
  body->limit = cfg.max_http_body;
  g_object_set_data_full(G_OBJECT(msg), kBodyKey, body, [](gpointer p) { delete static_cast<BodyBuffer*>(p); });
  g_signal_connect(msg, "got-chunk", G_CALLBACK(on_body_chunk), body);
}

std::optional<SocketId> Server::Impl::open_session(Transport t, const std::string& ip) {
  SocketId id = next_id++;
  auto now = now_ms();
  auto actions = router.on_open(id, ip, now);
  for (const auto& a : actions)
    if (auto* c = std::get_if<signal::CloseAction>(&a); c && c->socket == id) {
      if (logs(1)) say(1, fmt::format("refused a connection from {}: {}", ip, c->reason));
      return std::nullopt;
    }
  auto conn = std::make_unique<Conn>(id, signal::Session(signal::make_sid(random_bytes), t, now, cfg.session), ip);
  conn->tag = std::make_unique<Tag>(Tag{this, id});
  by_sid.emplace(conn->session.sid(), id);
  if (logs(1)) say(1, fmt::format("open #{} {} from {} ({})", id, conn->session.sid(), ip,
                     t == Transport::polling ? "polling" : "websocket"));
  arm(*conn);
  conns.emplace(id, std::move(conn));
  apply(std::move(actions));
  return id;
}

void Server::Impl::engine(SoupServerMessage* msg, GHashTable* query) {
  auto q = [&](const char* key) -> const char* {
    return query ? static_cast<const char*>(g_hash_table_lookup(query, key)) : nullptr;
  };
  const char* eio = q("EIO");
  if (!eio || std::string_view(eio) != "4") return eio_error(msg, EioError::bad_version);
  const char* transport = q("transport");
  std::string_view tr = transport ? transport : "";
  if (tr != "polling" && tr != "websocket") return eio_error(msg, EioError::transport_unknown);
  const char* sid = q("sid");
  const char* method = soup_server_message_get_method(msg);
  const char* remote = soup_server_message_get_remote_host(msg);
  std::string ip = remote ? remote : "?";

  if (tr == "websocket") {
    if (method != SOUP_METHOD_GET) return eio_error(msg, EioError::bad_handshake_method);
    GError* err = nullptr;
    if (!soup_websocket_server_check_handshake(msg, nullptr, nullptr, nullptr, &err)) {
      std::string m = err ? err->message : "not a WebSocket handshake";
      g_clear_error(&err);
      return eio_error(msg, EioError::bad_request, m);
    }
    SocketId id;
    bool probe = false;
    if (sid) {
      Conn* c = find_sid(sid);
      if (!c) return eio_error(msg, EioError::session_unknown);
      if (c->session.transport() != Transport::polling || c->probe) return eio_error(msg, EioError::bad_request);
      id = c->id;
      probe = true;
    } else {
      auto opened = open_session(Transport::websocket, ip);
      if (!opened) return eio_error(msg, EioError::forbidden, "too many connections");
      id = *opened;
    }
    g_object_set_data(G_OBJECT(msg), kConnKey, GSIZE_TO_POINTER(static_cast<gsize>(id)));
    g_object_set_data(G_OBJECT(msg), kProbeKey, GINT_TO_POINTER(probe ? 1 : 0));
    GSocket* sock = soup_server_message_get_socket(msg);
    g_object_set_data(G_OBJECT(msg), kFdKey, GINT_TO_POINTER(sock ? g_socket_get_fd(sock) + 1 : 0));
    if (tls) return;  // no status: libsoup completes the handshake and calls ws_attached
    // Plain sockets: the 101 here, and the socket is ours once it is written (raw_attached).
    soup_websocket_server_process_handshake(msg, nullptr, nullptr, nullptr, nullptr);
    g_signal_connect(msg, "wrote-informational", G_CALLBACK(on_raw_upgrade), this);
    return;
  }

  if (!sid) {
    if (method != SOUP_METHOD_GET) return eio_error(msg, EioError::bad_handshake_method);
    auto opened = open_session(Transport::polling, ip);
    if (!opened) return eio_error(msg, EioError::forbidden, "too many connections");
    Conn* c = find(*opened);
    return set_text(msg, SOUP_STATUS_OK, "text/plain; charset=UTF-8", c->session.open_packet());
  }
  Conn* c = find_sid(sid);
  if (!c) return eio_error(msg, EioError::session_unknown);
  if (c->session.transport() != Transport::polling) return eio_error(msg, EioError::bad_request);
  if (method == SOUP_METHOD_GET) return poll_get(*c, msg);
  if (method == SOUP_METHOD_POST) return poll_post(*c, msg);
  eio_error(msg, EioError::bad_request);
}

void Server::Impl::poll_get(Conn& c, SoupServerMessage* msg) {
  if (c.held) {
    // Two GETs at once is a broken client; engine.io answers the same way.
    eio_error(msg, EioError::bad_request, "overlapping GET");
    return close_conn(c.id, "overlapping polling GET", Why::server);
  }
  if (!c.queue.empty()) {
    std::string body = signal::join_payload(c.queue);
    c.queue.clear();
    c.queued_bytes = 0;
    return set_text(msg, SOUP_STATUS_OK, "text/plain; charset=UTF-8", body);
  }
  // A status now, or libsoup would take the GET for a failed WebSocket handshake on this path.
  soup_server_message_set_status(msg, SOUP_STATUS_OK, nullptr);
  c.held = static_cast<SoupServerMessage*>(g_object_ref(msg));
  g_signal_connect(msg, "finished", G_CALLBACK(on_held_finished), c.tag.get());
  soup_server_message_pause(msg);
}

void Server::Impl::poll_post(Conn& c, SoupServerMessage* msg) {
  auto* body = static_cast<BodyBuffer*>(g_object_get_data(G_OBJECT(msg), kBodyKey));
  if (!body || body->too_large) {
    ++http_refusals;
    set_text(msg, SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE, "application/json",
             fmt::format(R"({{"code":3,"message":"Bad request","context":{{"reason":"body exceeds {} bytes"}}}})",
                         cfg.max_http_body));
    return close_conn(c.id, "polling body too large", Why::server);
  }
  SocketId id = c.id;
  std::string data = std::move(body->data);
  set_text(msg, SOUP_STATUS_OK, "text/html", "ok");
  feed(id, c.session.on_poll_body(data, now_ms()));
}

// ---- WebSocket ----

void Server::Impl::ws_attached(SoupServerMessage* msg, SoupWebsocketConnection* ws) {
  g_object_ref(ws);
  soup_websocket_connection_set_max_incoming_payload_size(ws, cfg.session.max_payload);
  soup_websocket_connection_set_keepalive_interval(ws, 0);
  Link link;
  link.soup = ws;
  link.fd = GPOINTER_TO_INT(g_object_get_data(G_OBJECT(msg), kFdKey)) - 1;
  link.base = kernel_bytes_taken(link.fd).value_or(0);
  attach(msg, link);
}

void Server::Impl::raw_attached(SoupServerMessage* msg) {
  const int fd = GPOINTER_TO_INT(g_object_get_data(G_OBJECT(msg), kFdKey)) - 1;
  GIOStream* stream = soup_server_message_steal_connection(msg);
  if (!stream) return;
  Link link;
  link.raw = raw->adopt(stream, fd, static_cast<SocketId>(GPOINTER_TO_SIZE(g_object_get_data(G_OBJECT(msg), kConnKey))));
  g_object_unref(stream);
  attach(msg, link);
}

// The WebSocket of a new session, or the probe of an upgrading one.
void Server::Impl::attach(SoupServerMessage* msg, Link link) {
  auto id = static_cast<SocketId>(GPOINTER_TO_SIZE(g_object_get_data(G_OBJECT(msg), kConnKey)));
  bool probe = GPOINTER_TO_INT(g_object_get_data(G_OBJECT(msg), kProbeKey)) != 0;
  Conn* c = find(id);
  if (!c || (probe && (c->probe || c->session.transport() != Transport::polling)) || (!probe && c->ws)) {
    return release(link, c ? c->tag.get() : nullptr, SOUP_WEBSOCKET_CLOSE_NORMAL, "session gone", false);
  }
  if (link.soup) {
    g_signal_connect(link.soup, "message", G_CALLBACK(on_ws_message), c->tag.get());
    g_signal_connect(link.soup, "closed", G_CALLBACK(on_ws_closed), c->tag.get());
  } else {
    raw_owner[link.raw] = id;
  }
  if (probe) {
    c->probe = link;
    if (logs(2)) say(2, fmt::format("#{} probing websocket", id));
    return;
  }
  c->ws = link;
  ws_send(*c, c->ws, c->session.open_packet());
}

void Server::Impl::ws_text(SocketId id, bool from_probe, std::string_view text) {
  Conn* c = find(id);
  if (!c) return;
  const bool was_polling = c->session.transport() == Transport::polling;
  if (logs(2)) say(2, fmt::format("#{} <- {}", id, text.substr(0, 200)));
  feed(id, c->session.on_frame(Transport::websocket, text, now_ms()));
  c = find(id);
  if (c && from_probe && was_polling && c->session.transport() == Transport::websocket && c->probe) promote(*c);
}

void Server::Impl::promote(Conn& c) {
  ++upgrades;
  c.ws = c.probe;
  c.probe = Link{};
  if (c.held) flush_held(c, false);  // nothing more comes by polling
  std::vector<std::string> rest = std::move(c.queue);
  c.queue.clear();
  c.queued_bytes = 0;
  for (const auto& p : rest)
    if (p != "6") ws_send(c, c.ws, p);
  if (logs(1)) say(1, fmt::format("#{} upgraded to websocket", c.id));
}

void Server::Impl::ws_closed(SocketId id, bool probe, const std::string& why) {
  Conn* c = find(id);
  if (!c) return;
  if (probe) {  // a failed upgrade: the session stays on polling
    release(c->probe, c->tag.get(), SOUP_WEBSOCKET_CLOSE_NORMAL, "", false);
    return;
  }
  close_conn(id, why, Why::session);
}

void Server::Impl::ws_send(Conn& c, Link& link, const std::string& packet) {
  if (c.doomed || !link) return;
  if (link.raw) {
    if (const std::size_t backlog = raw->send_text(link.raw, packet); backlog > cfg.max_backlog)
      doom(c, fmt::format("client is not reading: {} bytes wait to be sent", backlog));
    return;
  }
  if (soup_websocket_connection_get_state(link.soup) != SOUP_WEBSOCKET_STATE_OPEN) return;
  soup_websocket_connection_send_text(link.soup, packet.c_str());
  link.handed += ws_frame_size(packet.size());
  // Checked every so often, not per frame: each check is two system calls.
  if (link.handed - link.checked < 64 * 1024) return;
  link.checked = link.handed;
  if (auto taken = kernel_bytes_taken(link.fd)) {
    std::uint64_t handed = link.base + link.handed;
    if (handed > *taken && handed - *taken > cfg.max_backlog)
      doom(c, fmt::format("client is not reading: {} bytes wait to be sent", handed - *taken));
  }
}

void Server::Impl::release(Link& link, Tag* tag, gushort code, const std::string& reason, bool discard) {
  if (link.raw) {
    raw_owner.erase(link.raw);
    raw->close(link.raw, code, reason, discard);
  } else if (link.soup) {
    if (tag) g_signal_handlers_disconnect_by_data(link.soup, tag);
    unref_when_closed(link.soup, code, reason);
  }
  link = Link{};
}

void Server::Impl::raw_text(RawSockets::LinkId link, SocketId owner, std::string_view text) {
  Conn* c = find(owner);
  if (c && (c->ws.raw == link || c->probe.raw == link)) ws_text(c->id, c->probe.raw == link, text);
}

// The client or the network ended a raw link; it is already gone.
void Server::Impl::raw_closed(RawSockets::LinkId link, const std::string& why) {
  auto it = raw_owner.find(link);
  if (it == raw_owner.end()) return;
  const SocketId id = it->second;
  raw_owner.erase(it);
  Conn* c = find(id);
  if (!c) return;
  if (c->probe.raw == link) {
    c->probe = Link{};  // a failed upgrade: the session stays on polling
  } else if (c->ws.raw == link) {
    c->ws = Link{};
    close_conn(id, why, Why::session);
  }
}

// libsoup's WebSocket signals, for TLS connections.
namespace {

void on_ws_message(SoupWebsocketConnection* ws, gint type, GBytes* bytes, gpointer data) {
  auto* tag = static_cast<Tag*>(data);
  Conn* c = tag->impl->find(tag->id);
  if (!c || (ws != c->ws.soup && ws != c->probe.soup)) return;
  const bool probe = ws == c->probe.soup;
  if (type != SOUP_WEBSOCKET_DATA_TEXT) {
    if (probe) return tag->impl->ws_closed(tag->id, true, "binary probe");
    return tag->impl->close_conn(tag->id, "binary frames are not supported; send text", Server::Impl::Why::server);
  }
  gsize n = 0;
  const char* p = static_cast<const char*>(g_bytes_get_data(bytes, &n));
  tag->impl->ws_text(tag->id, probe, std::string_view(p, n));
}

void on_ws_closed(SoupWebsocketConnection* ws, gpointer data) {
  auto* tag = static_cast<Tag*>(data);
  Conn* c = tag->impl->find(tag->id);
  if (!c || (ws != c->ws.soup && ws != c->probe.soup)) return;
  gushort code = soup_websocket_connection_get_close_code(ws);
  tag->impl->ws_closed(tag->id, ws == c->probe.soup, code ? fmt::format("transport closed ({})", code) : "transport closed");
}

}  // namespace

// ---- packets ----

void Server::Impl::doom(Conn& c, std::string reason) {
  if (c.doomed) return;
  c.doomed = true;
  c.doom_reason = std::move(reason);
  doomed_ids.push_back(c.id);
  ++slow_client_drops;
}

void Server::Impl::feed(SocketId id, signal::SessionOutput out) {
  Conn* c = find(id);
  if (!c) return;
  for (auto& [via, packet] : out.send) deliver(*c, via, std::move(packet));
  for (const auto& m : out.messages) {
    apply(router.on_message(id, m, now_ms()));
    if (!find(id)) return;  // the router closed it
  }
  if (out.closed) return close_conn(id, out.reason, Why::session);
  if ((c = find(id))) arm(*c);  // a pong moves the deadline
}

void Server::Impl::deliver(Conn& c, Transport via, std::string packet) {
  if (via == Transport::polling) return poll_push(c, std::move(packet));
  ws_send(c, c.probe && c.session.transport() == Transport::polling ? c.probe : c.ws, packet);
}

void Server::Impl::send_packet(SocketId id, std::string packet) {
  Conn* c = find(id);
  if (!c) return;
  if (logs(2)) say(2, fmt::format("#{} -> {}", id, std::string_view(packet).substr(0, 200)));
  if (c->session.transport() == Transport::websocket) return ws_send(*c, c->ws, packet);
  poll_push(*c, std::move(packet));
}

void Server::Impl::poll_push(Conn& c, std::string packet) {
  if (c.doomed) return;
  c.queued_bytes += packet.size() + 1;
  c.queue.push_back(std::move(packet));
  if (c.queued_bytes > cfg.max_backlog) {
    c.queue.clear();
    c.queued_bytes = 0;
    return doom(c, "client is not polling: too many packets wait");
  }
  if (c.held) flush_held(c);
}

void Server::Impl::flush_held(Conn& c, bool closing) {
  if (!c.held) return;
  if (closing) c.queue.push_back("1");
  std::string body = c.queue.empty() ? "6" : signal::join_payload(c.queue);
  c.queue.clear();
  c.queued_bytes = 0;
  SoupServerMessage* msg = c.held;
  c.held = nullptr;
  g_signal_handlers_disconnect_by_data(msg, c.tag.get());
  set_text(msg, SOUP_STATUS_OK, "text/plain; charset=UTF-8", body);
  soup_server_message_unpause(msg);
  g_object_unref(msg);
}

void Server::Impl::apply(signal::Actions actions) {
  for (auto& a : actions) {
    if (auto* s = std::get_if<signal::SendAction>(&a)) {
      send_packet(s->socket, std::move(s->packet));
    } else if (auto* c = std::get_if<signal::CloseAction>(&a)) {
      close_conn(c->socket, c->reason, Why::router);
    } else if (auto* l = std::get_if<signal::LookupStream>(&a)) {
      if (logs(1)) say(1, fmt::format("chain lookup: stream {}", l->stream_id));
      if (worker) worker->ask(*l);
    } else if (auto* l = std::get_if<signal::LookupSubscribers>(&a)) {
      if (logs(1)) say(1, fmt::format("chain lookup: subscribers of {}", to_hex(l->broadcaster)));
      if (worker) worker->ask(*l);
    }
  }
}

void Server::Impl::close_conn(SocketId id, const std::string& reason, Why why) {
  auto it = conns.find(id);
  if (it == conns.end()) return;
  std::unique_ptr<Conn> c = std::move(it->second);
  conns.erase(it);
  by_sid.erase(c->session.sid());
  if (logs(1)) say(1, fmt::format("close #{}: {}", id, reason));
  if (why != Why::router) apply(router.on_close(id, now_ms()));

  // Dropping an offender tells socket.io not to reconnect on its own; a shutdown does not,
  // so clients come back when the server does.
  const bool tell = why == Why::router || why == Why::server;
  gushort code = tell                   ? SOUP_WEBSOCKET_CLOSE_POLICY_VIOLATION
                 : why == Why::shutdown ? SOUP_WEBSOCKET_CLOSE_GOING_AWAY
                                        : SOUP_WEBSOCKET_CLOSE_NORMAL;
  if (tell && c->ws) ws_send(*c, c->ws, "41");
  release(c->ws, c->tag.get(), code, reason, c->doomed);
  release(c->probe, c->tag.get(), code, reason, c->doomed);
  if (c->held) {
    if (tell) c->queue.push_back("41");
    flush_held(*c, true);
  }
}

// ---- time and chain ----

// Queues c's session deadline unless an entry at or before it is already queued.
void Server::Impl::arm(Conn& c) {
  const std::int64_t at = c.session.next_deadline();
  if (at >= c.armed) return;
  c.armed = at;
  timers.push(Deadline{at, c.id});
}

void Server::Impl::tick() {
  const auto now = now_ms();
  std::vector<SocketId> doomed;
  doomed.swap(doomed_ids);
  for (auto id : doomed)
    if (Conn* c = find(id); c && c->doomed) close_conn(id, c->doom_reason, Why::server);
  std::vector<SocketId> due;
  while (!timers.empty() && timers.top().at <= now) {
    const Deadline d = timers.top();
    timers.pop();
    Conn* c = find(d.id);
    if (!c || c->armed != d.at) continue;  // gone, or queued again since
    c->armed = Conn::kUnarmed;
    if (c->session.next_deadline() <= now) due.push_back(d.id);
    else arm(*c);  // moved later (a pong): wait for the new one
  }
  for (auto id : due)
    if (Conn* c = find(id)) feed(id, c->session.on_tick(now));  // feed queues the next deadline
  apply(router.on_tick(now));
}

void Server::Impl::chain_results(ChainResults r) {
  const auto now = now_ms();
  if (!r.error.empty()) {
    ++chain_errors;
    say(0, "chain: " + r.error);
  }
  for (const auto& s : r.changes.streams) router.invalidate_stream(s);
  for (const auto& b : r.changes.subscribers_of) router.invalidate_subscribers(b);
  for (const auto& a : r.streams) apply(router.on_stream_answer(a, now));
  for (const auto& a : r.subscribers) apply(router.on_subscribers_answer(a, now));
}

std::string Server::Impl::metrics() const {
  const auto c = router.counters();
  std::size_t polling = 0, websocket = 0;
  for (const auto& [id, conn] : conns) (conn->session.transport() == Transport::polling ? polling : websocket)++;
  std::string out;
  auto metric = [&](const char* name, const char* type, const char* help, std::uint64_t value) {
    out += fmt::format("# HELP p2pstream_signal_{0} {1}\n# TYPE p2pstream_signal_{0} {2}\np2pstream_signal_{0} {3}\n",
                       name, help, type, value);
  };
  metric("connections", "gauge", "Open Socket.IO connections.", c.connections_open);
  out += "# HELP p2pstream_signal_transport_connections Open Engine.IO sessions by transport.\n"
         "# TYPE p2pstream_signal_transport_connections gauge\n";
  out += fmt::format("p2pstream_signal_transport_connections{{transport=\"polling\"}} {}\n", polling);
  out += fmt::format("p2pstream_signal_transport_connections{{transport=\"websocket\"}} {}\n", websocket);
  metric("connections_total", "counter", "Connections accepted since start.", c.connections_total);
  metric("streams", "gauge", "Live streams.", c.streams_live);
  metric("watchers", "gauge", "Watchers on live streams.", c.watchers);
  metric("messages_received_total", "counter", "Socket.IO packets received.", c.messages_in);
  metric("messages_relayed_total", "counter", "offer, answer and candidate messages forwarded.", c.messages_relayed);
  metric("chain_lookups_total", "counter", "Chain lookups asked by the router.", c.chain_lookups);
  metric("chain_reads_total", "counter", "GetState reads made (one answers a batch of lookups).",
         worker ? worker->reads() : 0);
  metric("chain_errors_total", "counter", "Chain reads that failed.", chain_errors);
  metric("upgrades_total", "counter", "Polling sessions upgraded to websocket.", upgrades);
  metric("closes_by_server_total", "counter", "Connections the router closed.", c.closes_by_server);
  metric("watchers_queued", "gauge", "Watchers waiting for a relay slot.", c.queued);
  metric("relay_failures_total", "counter", "relayFailed reports acted on.", c.relay_failures);
  metric("placements_total", "counter", "Watchers put under a parent (joins, orphans, queue, failed links).", c.placements);
  metric("slow_client_drops_total", "counter", "Connections dropped for not reading.", slow_client_drops);
  metric("http_refusals_total", "counter", "Engine.IO HTTP requests refused (bad sid, version, size...).",
         http_refusals);
  out += "# HELP p2pstream_signal_refusals_total Requests refused, by reason.\n"
         "# TYPE p2pstream_signal_refusals_total counter\n";
  for (std::size_t i = 0; i < signal::kRefusalCount; ++i)
    out += fmt::format("p2pstream_signal_refusals_total{{reason=\"{}\"}} {}\n",
                       signal::refusal_name(static_cast<signal::Refusal>(i)), c.refusals[i]);
  return out;
}

// ---- Server ----

Server::Server(ServerConfig config, ChainSourceFactory chain, GMainContext* context, LogFn log) {
  if (sodium_init() < 0) throw RuntimeError("libsodium failed to initialise");
  GMainContext* ctx = context ? context : g_main_context_ref_thread_default();
  if (context) g_main_context_ref(ctx);
  impl_ = std::make_unique<Impl>(std::move(config), ctx, std::move(log));
  // libsoup binds its sources to the thread-default context.
  g_main_context_push_thread_default(ctx);
  try {
    impl_->start();
  } catch (...) {
    g_main_context_pop_thread_default(ctx);
    impl_->stop();
    g_main_context_unref(ctx);
    throw;
  }
  g_main_context_pop_thread_default(ctx);
  Impl* impl = impl_.get();
  impl_->worker = std::make_unique<ChainWorker>(
      std::move(chain), ctx, [impl](ChainResults r) { impl->chain_results(std::move(r)); },
      impl_->cfg.chain_poll_ms);
}

Server::~Server() {
  GMainContext* ctx = impl_->ctx;
  impl_->stop();
  impl_.reset();
  g_main_context_unref(ctx);
}

std::uint16_t Server::port() const { return impl_->bound_port; }
std::string Server::url() const {
  return fmt::format("{}://{}:{}", impl_->tls ? "https" : "http", impl_->host_text, impl_->bound_port);
}
signal::Counters Server::counters() const { return impl_->router.counters(); }
std::string Server::metrics_text() const { return impl_->metrics(); }
std::size_t Server::connection_count() const { return impl_->conns.size(); }

std::pair<std::string, std::uint16_t> parse_listen(const std::string& text) {
  auto bad = [&] {
    return UsageError(fmt::format("--listen '{}': expected HOST:PORT such as 127.0.0.1:3001, [::1]:3001 or :3001", text));
  };
  std::string host, port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') throw bad();
    host = text.substr(0, close + 1);
    port = text.substr(close + 2);
  } else if (auto colon = text.rfind(':'); colon != std::string::npos) {
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string::npos) throw bad();  // bare IPv6 needs brackets
  } else {
    port = text;
  }
  if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
    throw bad();
  unsigned long n = std::stoul(port);
  if (n > 65535) throw bad();
  if (host.empty()) host = "0.0.0.0";
  return {host, static_cast<std::uint16_t>(n)};
}

}  // namespace p2p::signal_server
