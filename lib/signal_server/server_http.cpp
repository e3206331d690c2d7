// signal_server/server_http: the HTTP side of the signalling server: CORS, Engine.IO's polling
// transport and WebSocket handshakes, /healthz, /is-already-having-stream and /metrics.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include "signal_server/server_impl.hpp"

namespace p2p::signal_server {

namespace {

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

void on_raw_upgrade(SoupServerMessage* msg, gpointer data) { static_cast<Server::Impl*>(data)->raw_attached(msg); }

}  // namespace

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

}  // namespace p2p::signal_server
