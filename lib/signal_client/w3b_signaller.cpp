// signal_client/w3b_signaller: maps the w3bstreaming events onto media::Signaller sessions.
#include "signal_client/w3b_signaller.hpp"

#include <algorithm>

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

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

}  // namespace

ErrorKind classify_error(const std::string& m) {
  if (contains(m, "hasn't started yet")) return ErrorKind::not_started;
  // Our protocol says "No relay slot free"; older routers word it "No free relay slot".
  if (contains(m, "relay slot")) return ErrorKind::no_slot;
  if (contains(m, "Too many joins are waiting") || contains(m, "from the chain: try again")) return ErrorKind::retry;
  if (m.rfind("Challenge", 0) == 0 || m.rfind("Too many messages", 0) == 0 || contains(m, "bytes exceeds") ||
      m.rfind("Malformed", 0) == 0)
    return ErrorKind::transient;
  return ErrorKind::refusal;
}

std::vector<std::string> sdp_mids(const std::string& sdp) {
  std::vector<std::string> mids;
  std::size_t pos = 0;
  while (pos < sdp.size()) {
    std::size_t end = sdp.find('\n', pos);
    if (end == std::string::npos) end = sdp.size();
    std::string line = sdp.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.rfind("m=", 0) == 0) mids.emplace_back();
    else if (line.rfind("a=mid:", 0) == 0 && !mids.empty()) mids.back() = line.substr(6);
    pos = end + 1;
  }
  return mids;
}

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

void W3bSignaller::set_events(media::SignallerEvents events) { ev_ = std::move(events); }

void W3bSignaller::start() {
  running_ = true;
  not_started_told_ = false;
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

void W3bSignaller::notice(const std::string& message) {
  if (ev_.notice) ev_.notice(message);
  if (observer_.notice) observer_.notice(message);
}

void W3bSignaller::fail(const std::string& message, Failure kind) {
  if (failure_ == Failure::none) failure_ = kind;
  if (ev_.error) ev_.error(message);
  if (observer_.error) observer_.error(message);
}

void W3bSignaller::join() {
  Json payload = {{"streamId", opts_.stream_id}};
  if (opts_.relay_slots > 0) payload["relay"] = {{"slots", opts_.relay_slots}};
  if (opts_.role == W3bRole::broadcaster) {
    client_->emit_signed(signal::Role::broadcast, opts_.key, "broadcast", Json::array({id_, payload}));
    return;
  }
  client_->emit_signed(signal::Role::watch, opts_.key, "watch", Json::array({id_, payload}));
}

void W3bSignaller::retry_join_later() {
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
  if (sessions_.erase(session) && ev_.session_ended) ev_.session_ended(session);
}

void W3bSignaller::end_all() {
  auto all = sessions_;
  parent_.clear();
  placed_ = false;
  depth_ = 0;
  for (const auto& [s, info] : all) ended(s);
}

void W3bSignaller::on_server_error(const std::string& m) {
  const std::string text = m.empty() ? "the signalling server refused a request" : m;
  switch (classify_error(text)) {
    case ErrorKind::not_started:
      if (opts_.role != W3bRole::watcher || !opts_.wait_for_start) return fail(text, Failure::refused);
      retry_join_later();
      if (!not_started_told_) notice(text + ": waiting for it to start");
      not_started_told_ = true;
      return;
    case ErrorKind::no_slot:
      return notice(text + ": waiting in the server's queue");
    case ErrorKind::retry:
      retry_join_later();
      return notice(text);
    case ErrorKind::transient:
      return notice(text);
    case ErrorKind::refusal:
      return fail(text, Failure::refused);
  }
}

void W3bSignaller::wire() {
  client_->on_connect([this] {
    ever_connected_ = true;
    if (running_) join();
  });
  client_->on_disconnect([this](const std::string& reason) {
    if (!running_ || reason == "io client disconnect") return end_all();
    // The server has dropped our sessions (peers were told we left), so they are over either way.
    end_all();
    if (reason == "io server disconnect") return fail("the signalling server closed the connection", Failure::unreachable);
    // A broadcaster rejoins after reconnecting and serves whoever comes; a watcher's stream is gone.
    if (opts_.role == W3bRole::watcher) return fail("lost the signalling server (" + reason + ")", Failure::unreachable);
    notice("lost the signalling server (" + reason + "); reconnecting");
  });
  client_->on_error([this](const std::string& m) {
    // Unreachable from the start is a setup mistake; later, retries are worth it.
    if (!ever_connected_ || m.rfind("giving up", 0) == 0) return fail(m, Failure::unreachable);
    notice(m);
  });

  client_->on("watch", [this](const Json& a) {
    if (string_field(a, 1, "streamId") != opts_.stream_id) return;
    if (opts_.role == W3bRole::watcher && opts_.relay_slots == 0) return;
    std::string s = a.empty() ? std::string() : norm(a[0]);
    if (s.empty() || s == id_) return;
    ended(s);  // a repeated watch asks for a fresh offer
    sessions_[s] = Session{Side::serve, {}, {}};
    if (ev_.session_requested) ev_.session_requested(s, s);
  });
  client_->on("offer", [this](const Json& a) {
    if (string_field(a, 1, "streamId") != opts_.stream_id) return;
    const Json* user = field(a, 1, "userId");
    const Json* desc = field(a, 1, "description");
    if (!user || norm(*user) != id_ || !desc || !desc->is_object()) return;
    std::string s = norm(a[0]);
    auto sdp = desc->find("sdp");
    if (s.empty() || sdp == desc->end() || !sdp->is_string()) return;
    if (placed_ && s != parent_) return;  // a former parent's late offer
    auto& session = sessions_[s];
    session.side = Side::receive;
    session.remote_mids = sdp_mids(sdp->get<std::string>());
    if (parent_.empty()) parent_ = s;
    if (ev_.remote_sdp) ev_.remote_sdp(s, media::Sdp{media::SdpType::offer, sdp->get<std::string>()});
  });
  client_->on("answer", [this](const Json& a) {
    if (a.empty() || norm(a[0]) != id_) return;
    // The web app answers {watcherId, description} without streamId; the server checked the stream.
    if (auto sid = string_field(a, 1, "streamId"); !sid.empty() && sid != opts_.stream_id) return;
    const Json* user = field(a, 1, "userId");
    if (!user || !user->is_string()) user = field(a, 1, "watcherId");
    const Json* desc = field(a, 1, "description");
    if (!user || !desc || !desc->is_object()) return;
    std::string s = norm(*user);
    auto sdp = desc->find("sdp");
    auto it = sessions_.find(s);
    if (it == sessions_.end() || it->second.side != Side::serve || sdp == desc->end() || !sdp->is_string()) return;
    it->second.remote_mids = sdp_mids(sdp->get<std::string>());
    if (ev_.remote_sdp) ev_.remote_sdp(s, media::Sdp{media::SdpType::answer, sdp->get<std::string>()});
  });
  client_->on("candidate", [this](const Json& a) {
    if (a.empty()) return;
    std::string s = norm(a[0]);
    const Json* c = field(a, 1, "candidate");
    auto it = sessions_.find(s);
    if (it == sessions_.end() || !c || !c->is_object()) return;
    auto cand = c->find("candidate");
    if (cand == c->end() || !cand->is_string() || cand->get_ref<const std::string&>().empty()) return;
    unsigned mline = 0;
    auto line = c->find("sdpMLineIndex");
    auto mid = c->find("sdpMid");
    if (line != c->end() && line->is_number_unsigned()) {
      mline = line->get<unsigned>();
    } else if (mid != c->end() && mid->is_string()) {  // a peer that gave only the mid
      const auto& mids = it->second.remote_mids;
      auto m = std::find(mids.begin(), mids.end(), mid->get<std::string>());
      if (m != mids.end()) mline = static_cast<unsigned>(m - mids.begin());
    }
    if (ev_.remote_ice) ev_.remote_ice(s, cand->get<std::string>(), mline);
  });
  client_->on("stopWatching", [this](const Json& a) {
    if (a.empty() || string_field(a, 1, "streamId") != opts_.stream_id) return;
    std::string s = norm(a[0]);
    if (auto it = sessions_.find(s); it != sessions_.end() && it->second.side == Side::serve) ended(s);
  });
  client_->on("stopBroadcasting", [this](const Json& a) {
    if (opts_.role != W3bRole::watcher || string_field(a, 1, "streamId") != opts_.stream_id) return;
    end_all();  // children hear it from the server too
  });
  client_->on("placement", [this](const Json& a) {
    if (opts_.role != W3bRole::watcher) return;
    const Json* p = field(a, 0, "parentId");
    const Json* d = field(a, 0, "depth");
    if (!p) return;
    std::string next = norm(*p);
    if (next.empty()) return;
    std::string old = parent_;
    parent_ = next;
    placed_ = true;
    depth_ = d && d->is_number_unsigned() ? d->get<unsigned>() : 0;
    // Placement first, so the media side knows the old parent's end is a move, not the end.
    if (ev_.placement) ev_.placement(next, depth_);
    if (observer_.placement) observer_.placement(next, depth_);
    if (!old.empty() && old != next) {
      if (auto it = sessions_.find(old); it != sessions_.end() && it->second.side == Side::receive) ended(old);
    }
  });
  client_->on("error", [this](const Json& a) { on_server_error(string_field(a, 0, "message")); });
}

void W3bSignaller::send_sdp(const std::string& session, const media::Sdp& sdp) {
  if (auto it = sessions_.find(session); it != sessions_.end()) it->second.local_mids = sdp_mids(sdp.text);
  if (sdp.type == media::SdpType::offer) {
    Json p = {{"streamId", opts_.stream_id},
              {"userId", session},
              {"description", {{"type", "offer"}, {"sdp", sdp.text}}}};
    client_->emit("offer", Json::array({id_, p}));
  } else {
    Json p = {{"streamId", opts_.stream_id},
              {"userId", id_},
              {"description", {{"type", "answer"}, {"sdp", sdp.text}}}};
    client_->emit("answer", Json::array({session, p}));
  }
}

void W3bSignaller::add_ice(const std::string& session, const std::string& candidate, unsigned mline) {
  Json mid = nullptr;  // browsers need sdpMid or sdpMLineIndex; we give both when we know the mid
  if (auto it = sessions_.find(session); it != sessions_.end() && mline < it->second.local_mids.size() &&
                                         !it->second.local_mids[mline].empty())
    mid = it->second.local_mids[mline];
  Json c = {{"candidate", candidate}, {"sdpMid", mid}, {"sdpMLineIndex", mline}};
  Json p = {{"userId", id_}, {"streamId", opts_.stream_id}, {"candidate", c}};
  client_->emit("candidate", Json::array({session, p}));
}

void W3bSignaller::end_session(const std::string& session) {
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return;
  // Hanging up on our parent leaves the stream; a former parent's session just goes.
  if (it->second.side == Side::receive && session == parent_) {
    client_->emit("stopWatching", Json::array({id_, Json{{"streamId", opts_.stream_id}}}));
    parent_.clear();
    placed_ = false;
  }
  sessions_.erase(it);
}

void W3bSignaller::report_failed(const std::string& session) {
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return;
  if (it->second.side == Side::serve) return end_session(session);  // the child reports it
  // The server re-places us (a new placement follows) and tells the parent to drop us.
  client_->emit("relayFailed", Json::array({id_, Json{{"streamId", opts_.stream_id}, {"parentId", session}}}));
  if (session == parent_) parent_.clear();
  sessions_.erase(it);
}

}  // namespace p2p::signal_client
