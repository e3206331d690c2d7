// signal_client/client: socket.io v4 over a libsoup WebSocket, with reconnect and challenge signing.
#include "signal_client/client.hpp"

#include <libsoup/soup.h>

#include <fmt/format.h>

#include <cmath>
#include <deque>
#include <map>
#include <vector>

#include "util/error.hpp"

namespace p2p::signal_client {

std::string engine_url(const std::string& url) {
  GError* err = nullptr;
  GUri* uri = g_uri_parse(url.c_str(), G_URI_FLAGS_NONE, &err);
  if (!uri) {
    g_clear_error(&err);
    throw UsageError(fmt::format("signalling URL '{}' is not a URL: use http://HOST:PORT or https://HOST:PORT", url));
  }
  std::string scheme = g_uri_get_scheme(uri);
  const char* host = g_uri_get_host(uri);
  int port = g_uri_get_port(uri);
  std::string path = g_uri_get_path(uri) ? g_uri_get_path(uri) : "";
  std::string h = host ? host : "";
  g_uri_unref(uri);
  bool secure;
  if (scheme == "http" || scheme == "ws") secure = false;
  else if (scheme == "https" || scheme == "wss") secure = true;
  else throw UsageError(fmt::format("signalling URL '{}': the scheme must be http, https, ws or wss", url));
  if (h.empty()) throw UsageError(fmt::format("signalling URL '{}' has no host", url));
  if (!path.empty() && path != "/" && path != "/socket.io" && path != "/socket.io/")
    throw UsageError(fmt::format("signalling URL '{}': only the root namespace is served; drop the path", url));
  if (h.find(':') != std::string::npos && h.front() != '[') h = "[" + h + "]";
  std::string authority = port > 0 ? fmt::format("{}:{}", h, port) : h;
  return fmt::format("{}://{}/socket.io/?EIO=4&transport=websocket", secure ? "https" : "http", authority);
}

namespace {

struct SignedEmit {
  signal::Role role;
  keys::Keypair key;
  std::string event;
  Json args;
  int retries = 0;
};

void destroy_source(GSource*& s) {
  if (!s) return;
  g_source_destroy(s);
  g_source_unref(s);
  s = nullptr;
}

}  // namespace

struct Client::Impl : std::enable_shared_from_this<Impl> {
  enum class State { idle, connecting, opening, connected, stopped };

  ClientOptions opts;
  std::string url;
  GMainContext* ctx = nullptr;
  SoupSession* session = nullptr;
  GCancellable* cancel = nullptr;
  SoupWebsocketConnection* ws = nullptr;
  State state = State::idle;
  int attempt = 0;
  int reconnect_count = 0;
  bool first = true;
  GSource* retry_timer = nullptr;
  GSource* ping_timer = nullptr;
  GSource* connect_timer = nullptr;
  std::int64_t ping_interval = 25000;
  std::int64_t ping_timeout = 20000;
  std::string eio_sid;

  std::map<std::string, std::vector<EventFn>, std::less<>> handlers;
  std::vector<std::function<void()>> connect_fns;
  std::vector<std::function<void(const std::string&)>> disconnect_fns;
  std::vector<std::function<void(const std::string&)>> error_fns;

  std::deque<std::string> outbox;
  std::deque<SignedEmit> pending_signed;
  std::optional<SignedEmit> in_flight;
  std::string nonce;  // unused challenge; empty once spent

  ~Impl() {
    destroy_source(retry_timer);
    destroy_source(ping_timer);
    destroy_source(connect_timer);
    drop_ws();
    if (cancel) {
      g_cancellable_cancel(cancel);
      g_object_unref(cancel);
    }
    if (session) g_object_unref(session);
    if (ctx) g_main_context_unref(ctx);
  }

  void error(const std::string& m) {
    auto fns = error_fns;
    for (auto& fn : fns) fn(m);
  }
  void disconnected(const std::string& reason) {
    auto fns = disconnect_fns;
    for (auto& fn : fns) fn(reason);
  }

  GSource* timer(std::int64_t ms, gboolean (*fn)(gpointer)) {
    GSource* s = g_timeout_source_new(static_cast<guint>(std::max<std::int64_t>(ms, 0)));
    // The timer holds a weak reference: it may fire after the client is gone.
    g_source_set_callback(s, fn, new std::weak_ptr<Impl>(weak_from_this()),
                          [](gpointer p) { delete static_cast<std::weak_ptr<Impl>*>(p); });
    g_source_attach(s, ctx);
    return s;
  }
  static std::shared_ptr<Impl> from(gpointer p) { return static_cast<std::weak_ptr<Impl>*>(p)->lock(); }

  // ---- connecting ----

  void start_connect() {
    if (state == State::stopped) return;
    state = State::connecting;
    if (!first) ++reconnect_count;
    first = false;
    if (cancel) g_object_unref(cancel);
    cancel = g_cancellable_new();
    SoupMessage* msg = soup_message_new("GET", url.c_str());
    if (!msg) return fail_attempt("cannot build a request for " + url);
    if (opts.tls_insecure)
      g_signal_connect(msg, "accept-certificate", G_CALLBACK(+[](SoupMessage*, GTlsCertificate*, GTlsCertificateFlags,
                                                                    gpointer) -> gboolean { return TRUE; }),
                       nullptr);
    destroy_source(connect_timer);
    connect_timer = timer(opts.connect_timeout_ms, [](gpointer p) -> gboolean {
      if (auto self = from(p)) {
        self->connect_timer_fired();
      }
      return G_SOURCE_REMOVE;
    });
    g_main_context_push_thread_default(ctx);
    soup_session_websocket_connect_async(session, msg, nullptr, nullptr, G_PRIORITY_DEFAULT, cancel, on_connected,
                                         new std::weak_ptr<Impl>(weak_from_this()));
    g_main_context_pop_thread_default(ctx);
    g_object_unref(msg);
  }

  void connect_timer_fired() {
    g_source_unref(connect_timer);
    connect_timer = nullptr;
    if (state == State::connecting && cancel) g_cancellable_cancel(cancel);  // on_connected reports it
    if (state == State::opening) drop("connect timeout");
  }

  static void on_connected(GObject* source, GAsyncResult* result, gpointer data) {
    auto* weak = static_cast<std::weak_ptr<Impl>*>(data);
    auto self = weak->lock();
    delete weak;
    GError* err = nullptr;
    SoupWebsocketConnection* ws = soup_session_websocket_connect_finish(SOUP_SESSION(source), result, &err);
    if (!self || self->state != State::connecting) {
      g_clear_error(&err);
      if (ws) {
        soup_websocket_connection_close(ws, SOUP_WEBSOCKET_CLOSE_NORMAL, nullptr);
        g_object_unref(ws);
      }
      return;
    }
    if (!ws) {
      std::string m = err ? err->message : "unknown error";
      bool timed_out = err && g_error_matches(err, G_IO_ERROR, G_IO_ERROR_CANCELLED);
      g_clear_error(&err);
      return self->fail_attempt(timed_out ? "connect timeout" : m);
    }
    self->attach(ws);
  }

  void attach(SoupWebsocketConnection* conn) {
    ws = conn;  // the reference from connect_finish is ours
    state = State::opening;
    soup_websocket_connection_set_max_incoming_payload_size(ws, 4u << 20);
    soup_websocket_connection_set_keepalive_interval(ws, 0);
    g_signal_connect(ws, "message", G_CALLBACK(on_message), this);
    g_signal_connect(ws, "closed", G_CALLBACK(on_closed), this);
  }

  void fail_attempt(const std::string& why) {
    destroy_source(connect_timer);
    error(fmt::format("cannot reach the signalling server {}: {}", opts.url, why));
    schedule_retry();
  }

  void schedule_retry() {
    if (state == State::stopped) return;
    state = State::idle;
    if (opts.max_reconnects >= 0 && attempt >= opts.max_reconnects) {
      state = State::stopped;
      error(fmt::format("giving up on {} after {} reconnect attempts", opts.url, attempt));
      return;
    }
    // Exponential backoff with +-50% jitter, as socket.io-client does, so clients do not return in step.
    double base = static_cast<double>(opts.reconnect_min_ms) * std::pow(2.0, std::min(attempt, 20));
    base = std::min(base, static_cast<double>(opts.reconnect_max_ms));
    double jitter = 0.5 + g_random_double();
    ++attempt;
    destroy_source(retry_timer);
    retry_timer = timer(static_cast<std::int64_t>(base * jitter), [](gpointer p) -> gboolean {
      if (auto self = from(p)) {
        g_source_unref(self->retry_timer);
        self->retry_timer = nullptr;
        self->start_connect();
      }
      return G_SOURCE_REMOVE;
    });
  }

  // ---- the open connection ----

  void drop_ws() {
    if (!ws) return;
    g_signal_handlers_disconnect_by_data(ws, this);
    if (soup_websocket_connection_get_state(ws) == SOUP_WEBSOCKET_STATE_OPEN)
      soup_websocket_connection_close(ws, SOUP_WEBSOCKET_CLOSE_NORMAL, nullptr);
    g_object_unref(ws);
    ws = nullptr;
  }

  // The connection is over; reconnect unless the server or the user ended it.
  void drop(const std::string& reason, bool reconnect = true) {
    bool was_connected = state == State::connected;
    destroy_source(ping_timer);
    destroy_source(connect_timer);
    drop_ws();
    eio_sid.clear();
    nonce.clear();
    in_flight.reset();
    if (state != State::stopped) state = State::idle;
    if (!reconnect) state = State::stopped;
    if (was_connected) disconnected(reason);
    else if (!was_connected && reconnect) error(fmt::format("signalling connection to {} failed: {}", opts.url, reason));
    if (reconnect) schedule_retry();
  }

  static void on_closed(SoupWebsocketConnection* conn, gpointer data) {
    auto* self = static_cast<Impl*>(data);
    auto keep = self->shared_from_this();
    gushort code = soup_websocket_connection_get_close_code(conn);
    self->drop(code ? fmt::format("transport close ({})", code) : "transport close");
  }

  static void on_message(SoupWebsocketConnection*, gint type, GBytes* bytes, gpointer data) {
    auto* self = static_cast<Impl*>(data);
    auto keep = self->shared_from_this();
    if (type != SOUP_WEBSOCKET_DATA_TEXT) return self->drop("transport error: binary frame from the server");
    gsize n = 0;
    const char* p = static_cast<const char*>(g_bytes_get_data(bytes, &n));
    self->frame(std::string_view(p, n));
  }

  void send_raw(const std::string& packet) {
    if (ws && soup_websocket_connection_get_state(ws) == SOUP_WEBSOCKET_STATE_OPEN)
      soup_websocket_connection_send_text(ws, packet.c_str());
  }

  void arm_ping_watchdog() {
    destroy_source(ping_timer);
    ping_timer = timer(ping_interval + ping_timeout, [](gpointer p) -> gboolean {
      if (auto self = from(p)) {
        g_source_unref(self->ping_timer);
        self->ping_timer = nullptr;
        self->drop("ping timeout");
      }
      return G_SOURCE_REMOVE;
    });
  }

  void frame(std::string_view text) {
    auto p = signal::parse_eio(text, 4u << 20);
    if (!p) return drop("transport error: " + p.error());
    switch (p->type) {
      case signal::EioType::open: return opened(p->data);
      case signal::EioType::ping:
        send_raw("3");
        return arm_ping_watchdog();
      case signal::EioType::close: return drop("transport close");
      case signal::EioType::message: return sio(p->data);
      default: return;  // pong, noop, upgrade: nothing to do on a websocket
    }
  }

  void opened(const std::string& data) {
    auto j = signal::parse_json(data);
    if (!j || !j->is_object()) return drop("transport error: bad Engine.IO open packet");
    const Json& o = j.value();
    if (auto it = o.find("pingInterval"); it != o.end() && it->is_number_integer()) ping_interval = it->get<std::int64_t>();
    if (auto it = o.find("pingTimeout"); it != o.end() && it->is_number_integer()) ping_timeout = it->get<std::int64_t>();
    if (auto it = o.find("sid"); it != o.end() && it->is_string()) eio_sid = it->get<std::string>();
    arm_ping_watchdog();
    send_raw("40");
  }

  void sio(const std::string& text) {
    auto p = signal::parse_sio(text, signal::SioLimits{4u << 20, signal::kDefaultMaxJsonDepth, 128});
    if (!p) return drop("transport error: " + p.error());
    if (p->nsp != "/") return;
    switch (p->type) {
      case signal::SioType::connect: return sio_connected();
      case signal::SioType::disconnect: return drop("io server disconnect", false);
      case signal::SioType::connect_error: {
        std::string m = p->data && p->data->is_object() && p->data->contains("message") &&
                                (*p->data)["message"].is_string()
                            ? (*p->data)["message"].get<std::string>()
                            : "connect error";
        error("the server refused the connection: " + m);
        return drop("connect error: " + m);
      }
      case signal::SioType::event: return event(*p->data);
      default: return;
    }
  }

  void sio_connected() {
    destroy_source(connect_timer);
    state = State::connected;
    attempt = 0;
    auto keep = shared_from_this();
    while (!outbox.empty() && state == State::connected) {
      send_raw(outbox.front());
      outbox.pop_front();
    }
    auto fns = connect_fns;
    for (auto& fn : fns) {
      if (state != State::connected) break;
      fn();
    }
  }

  void event(const Json& array) {
    const std::string name = array[0].get<std::string>();
    Json args = Json::array();
    for (std::size_t i = 1; i < array.size(); ++i) args.push_back(array[i]);
    if (name == "challenge") challenge(args);
    if (name == "error") refused(args);
    auto it = handlers.find(name);
    if (it == handlers.end()) return;
    auto fns = it->second;  // a handler may add handlers
    for (auto& fn : fns) {
      fn(args);
      if (state != State::connected) return;
    }
  }

  // ---- the challenge ----

  void challenge(const Json& args) {
    if (args.empty() || !args[0].is_object()) return;
    const Json& c = args[0];
    auto n = c.find("nonce");
    if (n == c.end() || !n->is_string()) return;
    nonce = n->get<std::string>();
    send_signed();
  }

  void refused(const Json& args) {
    std::string m = !args.empty() && args[0].is_object() && args[0].contains("message") && args[0]["message"].is_string()
                        ? args[0]["message"].get<std::string>()
                        : "";
    // A stale or spent nonce is ours to fix: sign the next challenge once more.
    if (in_flight && m.rfind("Challenge", 0) == 0 && in_flight->retries < 1) {
      ++in_flight->retries;
      pending_signed.push_front(std::move(*in_flight));
    }
    in_flight.reset();
  }

  void send_signed() {
    if (state != State::connected || nonce.empty() || pending_signed.empty()) return;
    // An expired nonce is still sent: the server then refuses it and issues a fresh challenge,
    // which `refused` answers by signing again (it sends none on its own).
    SignedEmit e = std::move(pending_signed.front());
    pending_signed.pop_front();
    Json args = e.args;
    const std::string stream = args.size() > 1 && args[1].is_object() && args[1].contains("streamId") &&
                                       args[1]["streamId"].is_string()
                                   ? args[1]["streamId"].get<std::string>()
                                   : "";
    auto text = signal::challenge_message(e.role, stream, nonce);
    auto sig = e.key.sign(view(text));
    if (args.size() > 1 && args[1].is_object())
      args[1]["auth"] = Json{{"publicKey", to_hex(e.key.public_key())}, {"signature", to_hex(sig)}};
    nonce.clear();  // one use per nonce; the server sends the next
    send_raw(signal::emit_event(e.event, std::move(args)));
    in_flight = std::move(e);
  }
};

Client::Client(ClientOptions options, GMainContext* context) : impl_(std::make_shared<Impl>()) {
  impl_->url = engine_url(options.url);
  impl_->opts = std::move(options);
  impl_->ctx = context ? g_main_context_ref(context) : g_main_context_ref_thread_default();
  g_main_context_push_thread_default(impl_->ctx);
  impl_->session = soup_session_new();
  g_main_context_pop_thread_default(impl_->ctx);
  soup_session_remove_feature_by_type(impl_->session, SOUP_TYPE_WEBSOCKET_EXTENSION_MANAGER);
  if (impl_->opts.tls_ca_file) {
    GError* err = nullptr;
    GTlsDatabase* db = g_tls_file_database_new(impl_->opts.tls_ca_file->c_str(), &err);
    if (!db) {
      std::string m = err ? err->message : "unknown error";
      g_clear_error(&err);
      throw UsageError(fmt::format("cannot read the CA file {}: {}", *impl_->opts.tls_ca_file, m));
    }
    soup_session_set_tls_database(impl_->session, db);
    g_object_unref(db);
  }
}

Client::~Client() {
  impl_->state = Impl::State::stopped;
  impl_->handlers.clear();
  impl_->connect_fns.clear();
  impl_->disconnect_fns.clear();
  impl_->error_fns.clear();
}

void Client::connect() {
  if (impl_->state == Impl::State::stopped) impl_->state = Impl::State::idle;
  if (impl_->state != Impl::State::idle) return;
  impl_->attempt = 0;
  impl_->start_connect();
}

void Client::disconnect() {
  auto& i = *impl_;
  destroy_source(i.retry_timer);
  if (i.cancel) g_cancellable_cancel(i.cancel);
  if (i.state == Impl::State::connected) i.send_raw("41");
  i.outbox.clear();
  i.pending_signed.clear();
  i.drop("io client disconnect", false);
}

bool Client::connected() const { return impl_->state == Impl::State::connected; }

void Client::on(const std::string& event, EventFn fn) { impl_->handlers[event].push_back(std::move(fn)); }
void Client::on_connect(std::function<void()> fn) { impl_->connect_fns.push_back(std::move(fn)); }
void Client::on_disconnect(std::function<void(const std::string&)> fn) { impl_->disconnect_fns.push_back(std::move(fn)); }
void Client::on_error(std::function<void(const std::string&)> fn) { impl_->error_fns.push_back(std::move(fn)); }

void Client::emit(const std::string& event, Json args) {
  std::string packet = signal::emit_event(event, std::move(args));
  if (impl_->state == Impl::State::connected) return impl_->send_raw(packet);
  if (impl_->outbox.size() >= impl_->opts.max_outbox) impl_->outbox.pop_front();
  impl_->outbox.push_back(std::move(packet));
}

void Client::emit_signed(signal::Role role, const keys::Keypair& key, const std::string& event, Json args) {
  impl_->pending_signed.push_back(SignedEmit{role, key, event, std::move(args), 0});
  impl_->send_signed();
}

std::string Client::sid() const { return impl_->eio_sid; }
int Client::reconnects() const { return impl_->reconnect_count; }

}  // namespace p2p::signal_client
