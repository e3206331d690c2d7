// signal_server/server: the libsoup face of the signalling server: setup, WebSockets, packets,
// session deadlines and chain answers (the HTTP side is server_http.cpp). Everything here runs on
// one GMainContext; the only other thread is the chain worker, which talks back through
// g_main_context_invoke.
#include <fmt/format.h>

#include <algorithm>
#include <utility>

#include "signal_server/backlog.hpp"
#include "signal_server/server_impl.hpp"
#include "util/error.hpp"

namespace p2p::signal_server {

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

void on_ws_message(SoupWebsocketConnection* ws, gint type, GBytes* bytes, gpointer data);
void on_ws_closed(SoupWebsocketConnection* ws, gpointer data);

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
