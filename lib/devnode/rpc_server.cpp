// devnode/rpc_server: libsoup-3.0 HTTP + WebSocket JSON-RPC on the GLib main loop (see rpc_server.hpp).
#include "devnode/rpc_server.hpp"

#include <fmt/format.h>
#include <glib-unix.h>
#include <libsoup/soup.h>

#include <csignal>
#include <map>

#include "util/error.hpp"

namespace p2p::devnode {
namespace {

constexpr guint kKeepaliveSeconds = 30;

bool is_loopback(const std::string& host) {
  GInetAddress* a = g_inet_address_new_from_string(host.c_str());
  if (!a) return false;
  bool loop = g_inet_address_get_is_loopback(a);
  g_object_unref(a);
  return loop;
}

void respond(SoupServerMessage* msg, guint status, const std::string& body) {
  soup_server_message_set_status(msg, status, nullptr);
  if (!body.empty())
    soup_server_message_set_response(msg, "application/json; charset=utf-8", SOUP_MEMORY_COPY, body.data(),
                                     body.size());
}

bool is_upgrade(SoupServerMessage* msg) {
  return soup_message_headers_header_contains(soup_server_message_get_request_headers(msg), "Upgrade", "websocket");
}

// Answers on the raw connection and closes it, so libsoup never reads the request body.
void refuse_now(SoupServerMessage* msg, guint status, const std::string& body) {
  GIOStream* stream = soup_server_message_steal_connection(msg);
  if (!stream) return;
  std::string head = fmt::format(
      "HTTP/1.1 {} {}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n"
      "Connection: close\r\n\r\n",
      status, soup_status_get_phrase(status), body.size());
  std::string all = head + body;
  GOutputStream* out = g_io_stream_get_output_stream(stream);
  (void)g_output_stream_write_all(out, all.data(), all.size(), nullptr, nullptr, nullptr);
  (void)g_io_stream_close(stream, nullptr, nullptr);
  g_object_unref(stream);
}

std::string error_body(int code, const char* message, const std::string& data) {
  return RpcError(code, message, data).to_json().dump();
}

}  // namespace

std::pair<std::string, std::uint16_t> parse_listen(std::string_view text) {
  std::string host;
  std::string_view port_text;
  if (text.starts_with("[")) {
    auto close = text.find("]:");
    if (close == std::string_view::npos) throw UsageError(fmt::format("--listen {}: write [IPv6]:PORT", text));
    host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) throw UsageError(fmt::format("--listen {}: write HOST:PORT, e.g. 127.0.0.1:9944", text));
    host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
  }
  if (host.empty() || host == "localhost") host = "127.0.0.1";
  unsigned port = 0;
  bool digits = !port_text.empty() && port_text.size() <= 5 &&
                port_text.find_first_not_of("0123456789") == std::string_view::npos;
  if (digits) port = static_cast<unsigned>(std::stoul(std::string(port_text)));
  if (!digits || port > 65535) throw UsageError(fmt::format("--listen {}: the port must be 0..65535 (0 picks a free one)", text));
  if (!is_loopback(host))
    throw UsageError(fmt::format("--listen {}: the devnode listens on loopback addresses only (127.0.0.1 or ::1); "
                                 "it has no authentication",
                                 text));
  return {host, static_cast<std::uint16_t>(port)};
}

struct RpcServer::Impl {
  // One WebSocket connection: holds a reference to it until it closes.
  struct WsSession final : Session {
    SoupWebsocketConnection* conn = nullptr;
    Impl* owner = nullptr;
    gulong on_message = 0, on_closed = 0;

    void send(const std::string& text) override {
      if (soup_websocket_connection_get_state(conn) == SOUP_WEBSOCKET_STATE_OPEN)
        soup_websocket_connection_send_text(conn, text.c_str());
    }
  };

  Chain& chain;
  Rpc& rpc;
  ServerOptions opts;
  SoupServer* server = nullptr;
  GMainLoop* loop = nullptr;
  guint timer = 0, sigint = 0, sigterm = 0;
  std::uint16_t port = 0;
  std::map<WsSession*, std::unique_ptr<WsSession>> sessions;

  Impl(Chain& c, Rpc& r, ServerOptions o) : chain(c), rpc(r), opts(std::move(o)) {}

  void log(const std::string& line) const {
    if (opts.log) opts.log(line);
  }

  void listen();
  void tick();
  void http(SoupServerMessage* msg);
  void early(SoupServerMessage* msg);
  void websocket(SoupWebsocketConnection* conn);
  void message(WsSession* s, gint type, GBytes* data);
  void closed(WsSession* s);
  void drop_all_sessions();
  void catch_signals();
};

void RpcServer::Impl::listen() {
  server = soup_server_new("server-header", "p2pstream-devnode ", nullptr);
  soup_server_add_early_handler(
      server, nullptr,
      [](SoupServer*, SoupServerMessage* m, const char*, GHashTable*, gpointer self) { static_cast<Impl*>(self)->early(m); },
      this, nullptr);
  soup_server_add_handler(
      server, nullptr,
      [](SoupServer*, SoupServerMessage* m, const char*, GHashTable*, gpointer self) { static_cast<Impl*>(self)->http(m); },
      this, nullptr);
  // permessage-deflate would let a small frame inflate past the message limit.
  soup_server_remove_websocket_extension(server, SOUP_TYPE_WEBSOCKET_EXTENSION_DEFLATE);
  soup_server_add_websocket_handler(
      server, nullptr, nullptr, nullptr,
      [](SoupServer*, SoupServerMessage*, const char*, SoupWebsocketConnection* c, gpointer self) {
        static_cast<Impl*>(self)->websocket(c);
      },
      this, nullptr);

  GSocketAddress* addr = g_inet_socket_address_new_from_string(opts.host.c_str(), opts.port);
  if (!addr) throw UsageError(fmt::format("cannot listen on {}: not an IP address", opts.host));
  GError* err = nullptr;
  gboolean ok = soup_server_listen(server, addr, static_cast<SoupServerListenOptions>(0), &err);
  g_object_unref(addr);
  if (!ok) {
    std::string why = err ? err->message : "unknown error";
    g_clear_error(&err);
    throw RuntimeError(fmt::format("cannot listen on {}:{}: {} (is another node running? try --listen {}:0)",
                                   opts.host, opts.port, why, opts.host));
  }
  GSList* uris = soup_server_get_uris(server);
  if (uris) port = static_cast<std::uint16_t>(g_uri_get_port(static_cast<GUri*>(uris->data)));
  g_slist_free_full(uris, reinterpret_cast<GDestroyNotify>(g_uri_unref));
}

// Refuses an oversize or length-less body from its headers alone: libsoup would read (and keep) the whole
// body before any handler could answer, so the answer goes out on the stolen connection, which then closes.
void RpcServer::Impl::early(SoupServerMessage* msg) {
  if (is_upgrade(msg)) return;
  SoupMessageHeaders* h = soup_server_message_get_request_headers(msg);
  SoupEncoding enc = soup_message_headers_get_encoding(h);
  if (enc == SOUP_ENCODING_CHUNKED) {
    refuse_now(msg, SOUP_STATUS_LENGTH_REQUIRED,
               error_body(rpc_code::invalid_request, "Invalid request", "send a Content-Length"));
  } else if (enc == SOUP_ENCODING_CONTENT_LENGTH &&
             static_cast<std::uint64_t>(soup_message_headers_get_content_length(h)) > opts.max_body) {
    refuse_now(msg, SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE,
               error_body(rpc_code::oversized_request, "Request is too big",
                          fmt::format("the limit is {} bytes", opts.max_body)));
  }
}

void RpcServer::Impl::http(SoupServerMessage* msg) {
  if (soup_server_message_get_status(msg) != 0) return;  // refused early
  // libsoup runs this handler before the WebSocket handshake; setting a status here would refuse it.
  if (is_upgrade(msg)) return;
  if (std::string_view(soup_server_message_get_method(msg)) != "POST") {
    soup_message_headers_replace(soup_server_message_get_response_headers(msg), "Allow", "POST");
    respond(msg, SOUP_STATUS_METHOD_NOT_ALLOWED,
            error_body(rpc_code::invalid_request, "Invalid request", "JSON-RPC needs POST (or a WebSocket upgrade)"));
    return;
  }
  SoupMessageBody* body = soup_server_message_get_request_body(msg);
  if (body->length > static_cast<goffset>(opts.max_body)) {
    respond(msg, SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE,
            error_body(rpc_code::oversized_request, "Request is too big", fmt::format("the limit is {} bytes", opts.max_body)));
    return;
  }
  auto answer = rpc.handle(std::string_view(body->data, static_cast<std::size_t>(body->length)), nullptr);
  respond(msg, SOUP_STATUS_OK, answer.response);
}

void RpcServer::Impl::websocket(SoupWebsocketConnection* conn) {
  auto owned = std::make_unique<WsSession>();
  WsSession* s = owned.get();
  s->conn = static_cast<SoupWebsocketConnection*>(g_object_ref(conn));
  s->owner = this;
  soup_websocket_connection_set_max_incoming_payload_size(conn, opts.max_body);
  soup_websocket_connection_set_keepalive_interval(conn, kKeepaliveSeconds);
  s->on_message = g_signal_connect(
      conn, "message", G_CALLBACK(+[](SoupWebsocketConnection*, gint type, GBytes* data, gpointer p) {
        auto* ws = static_cast<WsSession*>(p);
        ws->owner->message(ws, type, data);
      }),
      s);
  s->on_closed = g_signal_connect(conn, "closed", G_CALLBACK(+[](SoupWebsocketConnection*, gpointer p) {
                                    auto* ws = static_cast<WsSession*>(p);
                                    ws->owner->closed(ws);
                                  }),
                                  s);
  sessions.emplace(s, std::move(owned));
}

void RpcServer::Impl::message(WsSession* s, gint, GBytes* data) {
  gsize len = 0;
  const auto* bytes = static_cast<const char*>(g_bytes_get_data(data, &len));
  auto answer = rpc.handle(std::string_view(bytes ? bytes : "", len), s);
  if (!answer.response.empty()) s->send(answer.response);
  for (const auto& n : answer.after) s->send(n);
}

void RpcServer::Impl::closed(WsSession* s) {
  rpc.close(s);
  g_signal_handler_disconnect(s->conn, s->on_message);
  g_signal_handler_disconnect(s->conn, s->on_closed);
  g_object_unref(s->conn);
  sessions.erase(s);  // frees s
}

void RpcServer::Impl::drop_all_sessions() {
  while (!sessions.empty()) {
    WsSession* s = sessions.begin()->first;
    if (soup_websocket_connection_get_state(s->conn) == SOUP_WEBSOCKET_STATE_OPEN)
      soup_websocket_connection_close(s->conn, SOUP_WEBSOCKET_CLOSE_GOING_AWAY, "node shutting down");
    closed(s);
  }
}

void RpcServer::Impl::tick() {
  try {
    const Block& b = chain.produce_block();
    rpc.on_block(b);
    std::size_t user = b.extrinsics.size() - 1;  // the first is the timestamp inherent
    if (user > 0 || opts.log_every_block)
      log(fmt::format("block #{} {} ({} extrinsic{}), finalized #{}", b.header.number, to_hex(b.hash), user,
                      user == 1 ? "" : "s", chain.finalized().header.number));
  } catch (const std::exception& e) {
    log(fmt::format("block production failed: {}", e.what()));
  }
  for (const auto& w : chain.take_warnings()) log("warning: " + w);
}

RpcServer::RpcServer(Chain& chain, Rpc& rpc, ServerOptions opts)
    : impl_(std::make_unique<Impl>(chain, rpc, std::move(opts))) {
  if (impl_->opts.block_time_ms == 0) throw UsageError("--block-time must be positive");
  try {
    impl_->listen();
    impl_->catch_signals();
  } catch (...) {
    if (impl_->server) g_object_unref(impl_->server);
    impl_->server = nullptr;
    throw;
  }
}

RpcServer::~RpcServer() {
  stop();
  impl_->drop_all_sessions();
  if (impl_->server) {
    soup_server_disconnect(impl_->server);
    g_object_unref(impl_->server);
  }
  if (impl_->loop) g_main_loop_unref(impl_->loop);
}

std::uint16_t RpcServer::port() const { return impl_->port; }

std::string RpcServer::url() const {
  bool v6 = impl_->opts.host.find(':') != std::string::npos;
  return fmt::format("http://{}{}{}:{}", v6 ? "[" : "", impl_->opts.host, v6 ? "]" : "", impl_->port);
}

// Installed before the node announces itself, so a SIGTERM right after the first line stops it cleanly.
void RpcServer::Impl::catch_signals() {
  if (!loop) loop = g_main_loop_new(nullptr, FALSE);
  auto quit = +[](gpointer p) -> gboolean {
    g_main_loop_quit(static_cast<GMainLoop*>(p));
    return G_SOURCE_CONTINUE;
  };
  if (!sigint) sigint = g_unix_signal_add(SIGINT, quit, loop);
  if (!sigterm) sigterm = g_unix_signal_add(SIGTERM, quit, loop);
}

void RpcServer::run() {
  Impl& m = *impl_;
  m.catch_signals();
  m.timer = g_timeout_add(static_cast<guint>(std::min<std::uint64_t>(m.opts.block_time_ms, G_MAXUINT)),
                          +[](gpointer p) -> gboolean {
                            static_cast<Impl*>(p)->tick();
                            return G_SOURCE_CONTINUE;
                          },
                          &m);
  g_main_loop_run(m.loop);
  stop();
}

void RpcServer::stop() {
  Impl& m = *impl_;
  for (guint* id : {&m.timer, &m.sigint, &m.sigterm})
    if (*id) {
      g_source_remove(*id);
      *id = 0;
    }
  if (m.loop) g_main_loop_quit(m.loop);
}

}  // namespace p2p::devnode
