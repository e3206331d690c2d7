// gear_rpc/rpc: the two JSON-RPC transports. HTTP is one libcurl easy handle (kept alive between calls);
// WebSocket is a libsoup-3.0 connection on a private GMainContext that each call iterates until its answer
// arrives, the connection closes, or the time runs out.
#include "gear_rpc/rpc.hpp"

#include <curl/curl.h>
#include <fmt/format.h>
#include <libsoup/soup.h>

#include <map>
#include <mutex>

namespace p2p::gear_rpc {

using nlohmann::json;

// ---- shared ----

RpcError::RpcError(std::string url, std::string method, std::int64_t code, std::string message, json data)
    : Error(Exit::runtime, fmt::format("{} refused {}: {} (JSON-RPC error {}){}", url, method, message, code,
                                       data.is_null() ? std::string()
                                                      : ": " + (data.is_string() ? data.get<std::string>()
                                                                                 : data.dump(-1, ' ', false, json::error_handler_t::replace)))),
      method_(std::move(method)),
      code_(code),
      message_(std::move(message)),
      data_(std::move(data)) {}

std::string RpcError::details() const {
  std::string d = data_.is_null() ? "" : data_.is_string() ? data_.get<std::string>()
                                                            : data_.dump(-1, ' ', false, json::error_handler_t::replace);
  return d.empty() ? message_ : message_ + ": " + d;
}

std::string endpoint_url(const std::string& name) {
  if (name == "mainnet") return "wss://rpc.vara.network";
  if (name == "testnet") return "wss://testnet.vara.network";
  if (name == "local") return "ws://127.0.0.1:9944";
  for (const char* scheme : {"http://", "https://", "ws://", "wss://"})
    if (name.starts_with(scheme) && name.size() > std::string_view(scheme).size()) return name;
  throw UsageError(fmt::format(
      "endpoint '{}' is not valid: use ledger, mainnet, testnet, local, or an http(s):// or ws(s):// URL", name));
}

std::string request_body(std::uint64_t id, const std::string& method, const json& params) {
  return json{{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", params}}.dump();
}

namespace {

// The checks of parse_answer on an already parsed answer (the WebSocket reader parses once to route by id).
json answer_result(const std::string& url, const std::string& method, std::uint64_t id, json j) {
  auto malformed = [&](const std::string& why) {
    return RuntimeError(fmt::format("malformed answer from {} to {}: {}", url, method, why));
  };
  if (j.is_discarded()) throw malformed("not JSON");
  if (!j.is_object()) throw malformed("not a JSON-RPC response object");
  auto idv = j.find("id");
  bool same_id = idv != j.end() && idv->is_number_unsigned() && idv->get<std::uint64_t>() == id;
  // An error about the request itself (parse error, bad params) may carry a null id.
  bool null_id = idv == j.end() || idv->is_null();
  if (!same_id && !(null_id && j.contains("error"))) throw malformed(fmt::format("the id does not match the request ({})", id));
  if (auto e = j.find("error"); e != j.end() && !e->is_null()) {
    if (!e->is_object() || !e->contains("code") || !(*e)["code"].is_number_integer())
      throw malformed("an error without a numeric code");
    std::string msg = e->contains("message") && (*e)["message"].is_string() ? (*e)["message"].get<std::string>() : "";
    throw RpcError(url, method, (*e)["code"].get<std::int64_t>(), msg, e->value("data", json()));
  }
  auto r = j.find("result");
  if (r == j.end()) throw malformed("no result");
  return std::move(*r);
}

}  // namespace

json parse_answer(const std::string& url, const std::string& method, std::uint64_t id, const std::string& body) {
  return answer_result(url, method, id, json::parse(body, nullptr, false));
}

namespace {

double seconds(std::chrono::milliseconds ms) { return static_cast<double>(ms.count()) / 1000.0; }

// ---- HTTP (libcurl) ----

void curl_init_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct Sink {
  std::string data;
  std::size_t limit = 0;
  bool overflow = false;
};

std::size_t write_cb(char* ptr, std::size_t size, std::size_t n, void* user) {
  auto* s = static_cast<Sink*>(user);
  std::size_t len = size * n;
  if (s->data.size() + len > s->limit) {
    s->overflow = true;
    return 0;  // aborts the transfer
  }
  s->data.append(ptr, len);
  return len;
}

class HttpClient final : public RpcClient {
 public:
  HttpClient(std::string url, RpcOptions opts) : url_(std::move(url)), opts_(opts) {
    curl_init_once();
    h_ = curl_easy_init();
    if (!h_) throw RuntimeError("libcurl could not start a session");
    headers_ = curl_slist_append(nullptr, "Content-Type: application/json");
  }
  ~HttpClient() override {
    curl_slist_free_all(headers_);
    curl_easy_cleanup(h_);
  }
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  const std::string& url() const override { return url_; }

  json call(const std::string& method, const json& params) override {
    std::uint64_t id = next_id_++;
    std::string body = request_body(id, method, params);
    Sink sink;
    sink.limit = opts_.max_answer_bytes;
    char errbuf[CURL_ERROR_SIZE] = {0};
    curl_easy_setopt(h_, CURLOPT_URL, url_.c_str());
    curl_easy_setopt(h_, CURLOPT_HTTPHEADER, headers_);
    curl_easy_setopt(h_, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(h_, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    curl_easy_setopt(h_, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(h_, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(h_, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h_, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h_, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(opts_.connect_timeout.count()));
    curl_easy_setopt(h_, CURLOPT_TIMEOUT_MS, static_cast<long>(opts_.request_timeout.count()));
    CURLcode rc = curl_easy_perform(h_);
    if (sink.overflow)
      throw RuntimeError(fmt::format("the answer from {} to {} exceeds {} MB; refusing it", url_, method,
                                     opts_.max_answer_bytes >> 20));
    if (rc == CURLE_OPERATION_TIMEDOUT)
      throw UnreachableError(fmt::format("{} did not answer {} within {} s", url_, method, seconds(opts_.request_timeout)));
    if (rc != CURLE_OK)
      throw UnreachableError(fmt::format("cannot reach {} ({}): is the node running and --endpoint right?", url_,
                                         errbuf[0] ? errbuf : curl_easy_strerror(rc)));
    long status = 0;
    curl_easy_getinfo(h_, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
      // A node reports JSON-RPC errors with 200 or, behind some proxies, other codes plus a JSON body.
      json j = json::parse(sink.data, nullptr, false);
      if (j.is_discarded() || !j.is_object() || !j.contains("error"))
        throw RuntimeError(fmt::format("{} answered HTTP {} to {}: is this a JSON-RPC endpoint?", url_, status, method));
    }
    return parse_answer(url_, method, id, sink.data);
  }

 private:
  std::string url_;
  RpcOptions opts_;
  CURL* h_ = nullptr;
  curl_slist* headers_ = nullptr;
  std::uint64_t next_id_ = 1;
};

// ---- WebSocket (libsoup-3.0) ----

// Makes ctx the thread default while soup objects are created or driven, as libsoup requires.
class ContextScope {
 public:
  explicit ContextScope(GMainContext* ctx) : ctx_(ctx) { g_main_context_push_thread_default(ctx_); }
  ~ContextScope() { g_main_context_pop_thread_default(ctx_); }
  ContextScope(const ContextScope&) = delete;
  ContextScope& operator=(const ContextScope&) = delete;

 private:
  GMainContext* ctx_;
};

// A one-shot timer on ctx that sets a flag.
class Deadline {
 public:
  Deadline(GMainContext* ctx, std::chrono::milliseconds ms) {
    src_ = g_timeout_source_new(static_cast<guint>(ms.count()));
    g_source_set_callback(src_, &Deadline::fire, &expired_, nullptr);
    g_source_attach(src_, ctx);
  }
  ~Deadline() {
    g_source_destroy(src_);
    g_source_unref(src_);
  }
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;
  bool expired() const { return expired_; }

 private:
  static gboolean fire(gpointer flag) {
    *static_cast<bool*>(flag) = true;
    return G_SOURCE_REMOVE;
  }
  GSource* src_ = nullptr;
  bool expired_ = false;
};

class WsClient final : public RpcClient {
 public:
  WsClient(std::string url, RpcOptions opts) : url_(std::move(url)), opts_(opts) {
    ctx_ = g_main_context_new();
    ContextScope scope(ctx_);
    session_ = soup_session_new();
    try {
      open();
    } catch (...) {
      release();
      throw;
    }
  }
  ~WsClient() override { release(); }
  WsClient(const WsClient&) = delete;
  WsClient& operator=(const WsClient&) = delete;

  const std::string& url() const override { return url_; }

  json call(const std::string& method, const json& params) override {
    ContextScope scope(ctx_);
    if (closed_) throw UnreachableError(fmt::format("the connection to {} is closed{}", url_, reason()));
    std::uint64_t id = next_id_++;
    std::string body = request_body(id, method, params);
    soup_websocket_connection_send_text(conn_, body.c_str());
    Deadline deadline(ctx_, opts_.request_timeout);
    while (!answers_.count(id) && garbage_.empty() && !closed_ && !deadline.expired())
      g_main_context_iteration(ctx_, TRUE);
    if (auto it = answers_.find(id); it != answers_.end()) {
      json answer = std::move(it->second);
      answers_.erase(it);
      return answer_result(url_, method, id, std::move(answer));
    }
    if (!garbage_.empty()) {
      garbage_.clear();
      throw RuntimeError(fmt::format("malformed answer from {} to {}: not JSON-RPC", url_, method));
    }
    if (closed_)
      throw UnreachableError(fmt::format("{} closed the connection while answering {}{}", url_, method, reason()));
    throw UnreachableError(fmt::format("{} did not answer {} within {} s", url_, method, seconds(opts_.request_timeout)));
  }

 private:
  // libsoup handshakes over the http(s) form of the URL.
  std::string handshake_url() const {
    if (url_.starts_with("wss://")) return "https://" + url_.substr(6);
    if (url_.starts_with("ws://")) return "http://" + url_.substr(5);
    return url_;
  }

  void open() {
    SoupMessage* msg = soup_message_new("GET", handshake_url().c_str());
    if (!msg) throw UsageError(fmt::format("endpoint '{}' is not a valid URL", url_));
    GCancellable* cancel = g_cancellable_new();
    connecting_ = true;
    soup_session_websocket_connect_async(session_, msg, nullptr, nullptr, G_PRIORITY_DEFAULT, cancel,
                                         &WsClient::on_connected, this);
    {
      Deadline deadline(ctx_, opts_.connect_timeout);
      while (connecting_ && !deadline.expired()) g_main_context_iteration(ctx_, TRUE);
      if (connecting_) {
        g_cancellable_cancel(cancel);  // the callback still runs, with a cancelled error; wait for it
        while (connecting_) g_main_context_iteration(ctx_, TRUE);
        connect_error_ = fmt::format("no answer within {} s", seconds(opts_.connect_timeout));
      }
    }
    g_object_unref(cancel);
    g_object_unref(msg);
    if (!conn_)
      throw UnreachableError(fmt::format("cannot reach {} ({}): is the node running and --endpoint right?", url_,
                                         connect_error_));
    soup_websocket_connection_set_max_incoming_payload_size(conn_, opts_.max_answer_bytes);
    soup_websocket_connection_set_keepalive_interval(conn_, 0);
    g_signal_connect(conn_, "message", G_CALLBACK(&WsClient::on_message), this);
    g_signal_connect(conn_, "closed", G_CALLBACK(&WsClient::on_closed), this);
    g_signal_connect(conn_, "error", G_CALLBACK(&WsClient::on_error), this);
  }

  static void on_connected(GObject* source, GAsyncResult* res, gpointer self_ptr) {
    auto* self = static_cast<WsClient*>(self_ptr);
    GError* err = nullptr;
    self->conn_ = soup_session_websocket_connect_finish(SOUP_SESSION(source), res, &err);
    if (err) {
      self->connect_error_ = err->message;
      g_error_free(err);
    }
    self->connecting_ = false;
  }

  static void on_message(SoupWebsocketConnection*, gint type, GBytes* message, gpointer self_ptr) {
    auto* self = static_cast<WsClient*>(self_ptr);
    gsize n = 0;
    const char* data = static_cast<const char*>(g_bytes_get_data(message, &n));
    std::string text(data ? data : "", n);
    json j = type == SOUP_WEBSOCKET_DATA_TEXT ? json::parse(text, nullptr, false) : json();
    if (j.is_object() && j.contains("id") && j["id"].is_number_unsigned()) {
      std::uint64_t id = j["id"].get<std::uint64_t>();
      self->answers_[id] = std::move(j);
    } else if (!(j.is_object() && j.contains("method"))) {  // a subscription notice is not an answer
      self->garbage_ = std::move(text);
    }
  }

  static void on_closed(SoupWebsocketConnection* conn, gpointer self_ptr) {
    auto* self = static_cast<WsClient*>(self_ptr);
    self->closed_ = true;
    if (const char* d = soup_websocket_connection_get_close_data(conn); d && *d) self->close_reason_ = d;
  }

  static void on_error(SoupWebsocketConnection*, GError* err, gpointer self_ptr) {
    auto* self = static_cast<WsClient*>(self_ptr);
    if (err && self->close_reason_.empty()) self->close_reason_ = err->message;
  }

  std::string reason() const { return close_reason_.empty() ? "" : " (" + close_reason_ + ")"; }

  void release() {
    if (!ctx_) return;
    {
      ContextScope scope(ctx_);
      if (conn_) {
        g_signal_handlers_disconnect_by_data(conn_, this);
        if (soup_websocket_connection_get_state(conn_) == SOUP_WEBSOCKET_STATE_OPEN) {
          // A polite close; wait briefly for the peer, but never hold up the process for long.
          bool done = false;
          g_signal_connect_swapped(conn_, "closed", G_CALLBACK(+[](bool* flag) { *flag = true; }), &done);
          soup_websocket_connection_close(conn_, SOUP_WEBSOCKET_CLOSE_NORMAL, nullptr);
          Deadline deadline(ctx_, std::chrono::milliseconds(300));
          while (!done && !deadline.expired()) g_main_context_iteration(ctx_, TRUE);
          g_signal_handlers_disconnect_by_data(conn_, &done);
        }
        g_object_unref(conn_);
        conn_ = nullptr;
      }
      if (session_) {
        soup_session_abort(session_);
        g_object_unref(session_);
        session_ = nullptr;
      }
      while (g_main_context_pending(ctx_)) g_main_context_iteration(ctx_, FALSE);
    }
    g_main_context_unref(ctx_);
    ctx_ = nullptr;
  }

  std::string url_;
  RpcOptions opts_;
  GMainContext* ctx_ = nullptr;
  SoupSession* session_ = nullptr;
  SoupWebsocketConnection* conn_ = nullptr;
  bool connecting_ = false;
  std::string connect_error_ = "unknown error";
  bool closed_ = false;
  std::string close_reason_;
  std::map<std::uint64_t, json> answers_;
  std::string garbage_;
  std::uint64_t next_id_ = 1;
};

}  // namespace

std::unique_ptr<RpcClient> make_http_client(const std::string& url, const RpcOptions& opts) {
  return std::make_unique<HttpClient>(url, opts);
}

std::unique_ptr<RpcClient> make_ws_client(const std::string& url, const RpcOptions& opts) {
  return std::make_unique<WsClient>(url, opts);
}

std::unique_ptr<RpcClient> connect(const std::string& name_or_url, const RpcOptions& opts) {
  std::string url = endpoint_url(name_or_url);
  if (url.starts_with("ws://") || url.starts_with("wss://")) return make_ws_client(url, opts);
  return make_http_client(url, opts);
}

}  // namespace p2p::gear_rpc
