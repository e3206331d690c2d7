// signal_client/w3b_signaller: maps the w3bstreaming events onto Signaller sessions.
#include "signal_client/w3b_signaller.hpp"

#include "signal/protocol.hpp"

namespace p2p::signal_client {
namespace {

// Ids arrive as their senders wrote them (hex of either case, or SS58): compare them as keys.
std::string norm(const Json& v) {
  if (!v.is_string()) return {};
  auto key = signal::parse_id(v.get_ref<const std::string&>());
  return key ? signal::id_hex(*key) : std::string();
}

const Json* field(const Json& args, std::size_t index, const char* key) {
  if (index >= args.size() || !args[index].is_object()) return nullptr;
  auto it = args[index].find(key);
  return it == args[index].end() ? nullptr : &*it;
}

std::string string_field(const Json& args, std::size_t index, const char* key) {
  const Json* v = field(args, index, key);
  return v && v->is_string() ? v->get<std::string>() : std::string();
}

}  // namespace

W3bSignaller::W3bSignaller(W3bOptions options, GMainContext* context)
    : opts_(std::move(options)),
      id_(signal::id_hex(opts_.key.public_key())),
      client_(std::make_unique<Client>(opts_.client, context)),
      ctx_(context ? g_main_context_ref(context) : g_main_context_ref_thread_default()) {
  wire();
}

W3bSignaller::~W3bSignaller() {
  if (retry_) {
    g_source_destroy(retry_);
    g_source_unref(retry_);
  }
  client_.reset();
  g_main_context_unref(ctx_);
}

void W3bSignaller::set_callbacks(Callbacks callbacks) { cb_ = std::move(callbacks); }

void W3bSignaller::start() {
  running_ = true;
  not_started_reported_ = false;
  client_->connect();
}

void W3bSignaller::stop() {
  if (!running_) return;
  running_ = false;
  if (retry_) {
    g_source_destroy(retry_);
    g_source_unref(retry_);
    retry_ = nullptr;
  }
  if (client_->connected()) {
    Json p = {{"streamId", opts_.stream_id}};
    client_->emit(opts_.role == W3bRole::broadcaster ? "stopBroadcasting" : "stopWatching", Json::array({id_, p}));
  }
  end_all();
  client_->disconnect();
}

void W3bSignaller::join() {
  Json payload = {{"streamId", opts_.stream_id}};
  if (opts_.role == W3bRole::broadcaster) {
    client_->emit_signed(signal::Role::broadcast, opts_.key, "broadcast", Json::array({id_, payload}));
    return;
  }
  if (opts_.relay_slots > 0) payload["relay"] = {{"slots", opts_.relay_slots}};
  client_->emit_signed(signal::Role::watch, opts_.key, "watch", Json::array({id_, payload}));
}

void W3bSignaller::retry_watch_later() {
  if (retry_ || !running_) return;
  retry_ = g_timeout_source_new(static_cast<guint>(std::max<std::int64_t>(opts_.watch_retry_ms, 10)));
  g_source_set_callback(
      retry_,
      [](gpointer p) -> gboolean {
        auto* self = static_cast<W3bSignaller*>(p);
        g_source_unref(self->retry_);
        self->retry_ = nullptr;
        if (self->running_ && self->client_->connected()) self->join();
        return G_SOURCE_REMOVE;
      },
      this, nullptr);
  g_source_attach(retry_, ctx_);
}

void W3bSignaller::ended(const std::string& session) {
  if (sessions_.erase(session) && cb_.session_ended) cb_.session_ended(session);
}

void W3bSignaller::end_all() {
  auto all = sessions_;
  for (const auto& [s, side] : all) ended(s);
  parent_.clear();
}

void W3bSignaller::wire() {
  client_->on_connect([this] {
    if (running_) join();
  });
  client_->on_disconnect([this](const std::string& reason) {
    end_all();
    if (reason == "io server disconnect" && cb_.error) cb_.error("the signalling server closed the connection");
  });
  client_->on_error([this](const std::string& m) {
    if (cb_.error) cb_.error(m);
  });

  client_->on("watch", [this](const Json& a) {
    if (string_field(a, 1, "streamId") != opts_.stream_id) return;
    if (opts_.role == W3bRole::watcher && opts_.relay_slots == 0) return;
    std::string s = a.empty() ? std::string() : norm(a[0]);
    if (s.empty() || s == id_) return;
    ended(s);  // a repeated watch asks for a fresh offer
    sessions_[s] = Side::serve;
    if (cb_.session_requested) cb_.session_requested(s, s);
  });
  client_->on("offer", [this](const Json& a) {
    if (string_field(a, 1, "streamId") != opts_.stream_id) return;
    const Json* user = field(a, 1, "userId");
    const Json* desc = field(a, 1, "description");
    if (!user || norm(*user) != id_ || !desc || !desc->is_object()) return;
    std::string s = norm(a[0]);
    auto sdp = desc->find("sdp");
    if (s.empty() || sdp == desc->end() || !sdp->is_string()) return;
    sessions_[s] = Side::receive;
    if (parent_.empty()) parent_ = s;
    if (cb_.remote_sdp) cb_.remote_sdp(s, SdpType::offer, sdp->get<std::string>());
  });
  client_->on("answer", [this](const Json& a) {
    if (a.empty() || norm(a[0]) != id_ || string_field(a, 1, "streamId") != opts_.stream_id) return;
    const Json* user = field(a, 1, "userId");
    const Json* desc = field(a, 1, "description");
    if (!user || !desc || !desc->is_object()) return;
    std::string s = norm(*user);
    auto sdp = desc->find("sdp");
    auto it = sessions_.find(s);
    if (it == sessions_.end() || it->second != Side::serve || sdp == desc->end() || !sdp->is_string()) return;
    if (cb_.remote_sdp) cb_.remote_sdp(s, SdpType::answer, sdp->get<std::string>());
  });
  client_->on("candidate", [this](const Json& a) {
    if (a.empty()) return;
    std::string s = norm(a[0]);
    const Json* c = field(a, 1, "candidate");
    if (!sessions_.count(s) || !c || !c->is_object()) return;
    auto cand = c->find("candidate");
    if (cand == c->end() || !cand->is_string()) return;
    auto line = c->find("sdpMLineIndex");
    auto mid = c->find("sdpMid");
    unsigned mline = line != c->end() && line->is_number_unsigned() ? line->get<unsigned>() : 0;
    std::optional<std::string> m;
    if (mid != c->end() && mid->is_string()) m = mid->get<std::string>();
    if (cb_.remote_ice) cb_.remote_ice(s, cand->get<std::string>(), mline, m);
  });
  client_->on("stopWatching", [this](const Json& a) {
    if (a.empty() || string_field(a, 1, "streamId") != opts_.stream_id) return;
    std::string s = norm(a[0]);
    if (auto it = sessions_.find(s); it != sessions_.end() && it->second == Side::serve) ended(s);
  });
  client_->on("stopBroadcasting", [this](const Json& a) {
    if (string_field(a, 1, "streamId") != opts_.stream_id) return;
    auto all = sessions_;
    for (const auto& [s, side] : all)
      if (side == Side::receive) ended(s);
    parent_.clear();
  });
  client_->on("placement", [this](const Json& a) {
    const Json* p = field(a, 0, "parentId");
    if (!p) return;
    std::string next = norm(*p);
    if (!parent_.empty() && next != parent_) {
      if (auto it = sessions_.find(parent_); it != sessions_.end() && it->second == Side::receive) ended(parent_);
    }
    parent_ = next;
  });
  client_->on("error", [this](const Json& a) {
    std::string m = string_field(a, 0, "message");
    if (opts_.role == W3bRole::watcher && m.find("hasn't started yet") != std::string::npos) {
      retry_watch_later();
      if (not_started_reported_) return;
      not_started_reported_ = true;
    }
    if (cb_.error) cb_.error(m.empty() ? "the signalling server refused a request" : m);
  });
}

void W3bSignaller::send_sdp(const std::string& session, SdpType type, const std::string& sdp) {
  if (type == SdpType::offer) {
    Json p = {{"streamId", opts_.stream_id}, {"userId", session}, {"description", {{"type", "offer"}, {"sdp", sdp}}}};
    client_->emit("offer", Json::array({id_, p}));
  } else {
    Json p = {{"streamId", opts_.stream_id}, {"userId", id_}, {"description", {{"type", "answer"}, {"sdp", sdp}}}};
    client_->emit("answer", Json::array({session, p}));
  }
}

void W3bSignaller::add_ice(const std::string& session, const std::string& candidate, unsigned mline,
                           const std::optional<std::string>& mid) {
  Json c = {{"candidate", candidate}, {"sdpMid", mid ? Json(*mid) : Json(nullptr)}, {"sdpMLineIndex", mline}};
  Json p = {{"userId", id_}, {"streamId", opts_.stream_id}, {"candidate", c}};
  client_->emit("candidate", Json::array({session, p}));
}

void W3bSignaller::end_session(const std::string& session) {
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return;
  if (it->second == Side::receive)
    client_->emit("stopWatching", Json::array({id_, Json{{"streamId", opts_.stream_id}}}));
  sessions_.erase(it);
}

}  // namespace p2p::signal_client
