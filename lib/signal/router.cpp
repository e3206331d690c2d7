// signal/router: admission, forwarding, relay placement, limits and chain-answer caching for
// the signalling server, as a deterministic state machine (see router.hpp).
#include "signal/router.hpp"

#include <algorithm>
#include <deque>

#include "signal/relay_scan.hpp"
#include "signal/session.hpp"

namespace p2p::signal {

using keys::PublicKey;

// Collects the actions of one input and counts refusals as they are sent.
class Router::Out {
 public:
  explicit Out(Counters& counters) : counters_(counters) {}
  void send(SocketId s, std::string packet) { actions.push_back(SendAction{s, std::move(packet)}); }
  void refuse(SocketId s, Refusal why, std::string_view message) {
    ++counters_.refusals[static_cast<std::size_t>(why)];
    send(s, error_event(message));
  }
  Actions actions;

 private:
  Counters& counters_;
};

namespace {

void erase_one(std::vector<std::string>& list, std::string_view value) {
  auto it = std::find(list.begin(), list.end(), value);
  if (it != list.end()) list.erase(it);
}

// The text clients match on (the w3b signaller treats it as a notice and keeps waiting).
constexpr std::string_view kNoSlot = "No relay slot free";

}  // namespace

std::string_view refusal_name(Refusal r) {
  switch (r) {
    case Refusal::bad_request: return "bad_request";
    case Refusal::bad_signature: return "bad_signature";
    case Refusal::stale_nonce: return "stale_nonce";
    case Refusal::not_started: return "not_started";
    case Refusal::not_subscribed: return "not_subscribed";
    case Refusal::not_owner: return "not_owner";
    case Refusal::unknown_stream: return "unknown_stream";
    case Refusal::already_live: return "already_live";
    case Refusal::spoofed: return "spoofed";
    case Refusal::no_slot: return "no_slot";
    case Refusal::limit: return "limit";
    case Refusal::rate_limited: return "rate_limited";
    case Refusal::too_large: return "too_large";
    case Refusal::protocol: return "protocol";
    case Refusal::too_many_connections: return "too_many_connections";
    case Refusal::chain_unavailable: return "chain_unavailable";
    case Refusal::busy: return "busy";
  }
  return "unknown";
}

Router::Router(RouterConfig config, RandomFn random) : config_(std::move(config)), random_(std::move(random)) {}

// ---- sockets ----

Actions Router::on_open(SocketId s, std::string_view peer_ip, std::int64_t now) {
  Out out(counters_);
  if (sockets_.count(s)) return {};
  std::string ip(peer_ip.substr(0, 64));
  auto from_ip = per_ip_.find(ip);
  bool full = sockets_.size() >= config_.max_sockets;
  if (full || (from_ip != per_ip_.end() && from_ip->second >= config_.max_connections_per_ip)) {
    ++counters_.refusals[static_cast<std::size_t>(Refusal::too_many_connections)];
    ++counters_.closes_by_server;
    out.actions.push_back(CloseAction{s, full ? "server is full; try again later"
                                              : "too many connections from " + ip + "; close some first"});
    return std::move(out.actions);
  }
  SocketState st;
  st.ip = ip;
  st.opened_at = now;
  st.tokens = config_.message_burst;
  st.last_refill = now;
  sockets_.emplace(s, std::move(st));
  unconnected_.emplace(now, s);
  ++per_ip_[ip];
  ++counters_.connections_total;
  return {};
}

Actions Router::on_close(SocketId s, std::int64_t now) {
  Out out(counters_);
  if (!sockets_.count(s)) return {};
  leave_all(out, s, now);
  const std::string ip = sockets_.at(s).ip;
  if (auto it = per_ip_.find(ip); it != per_ip_.end() && --it->second == 0) per_ip_.erase(it);
  if (const auto& st = sockets_.at(s); !st.connected) unconnected_.erase({st.opened_at, s});
  sockets_.erase(s);
  // Nothing more can reach the closed socket.
  std::erase_if(out.actions, [s](const Action& a) {
    auto* send = std::get_if<SendAction>(&a);
    return send && send->socket == s;
  });
  return std::move(out.actions);
}

void Router::close_socket(Out& out, SocketId s, std::string reason) {
  ++counters_.closes_by_server;
  Actions rest = on_close(s, 0);
  out.actions.push_back(CloseAction{s, std::move(reason)});
  for (auto& a : rest) out.actions.push_back(std::move(a));
}

void Router::leave_all(Out& out, SocketId s, std::int64_t /*now*/) {
  auto it = sockets_.find(s);
  if (it == sockets_.end()) return;
  std::vector<std::string> ids = it->second.streams;
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  for (const auto& id : ids) {
    auto sit = streams_.find(id);
    if (sit == streams_.end()) continue;
    if (sit->second.broadcaster.socket == s) {
      end_stream(out, id);
      continue;
    }
    auto& watchers = sit->second.watchers;
    for (auto w = std::find_if(watchers.begin(), watchers.end(), [s](const Member& m) { return m.socket == s; });
         w != watchers.end();
         w = std::find_if(watchers.begin(), watchers.end(), [s](const Member& m) { return m.socket == s; }))
      remove_watcher(out, sit->second, static_cast<std::size_t>(w - watchers.begin()));
  }
  std::erase_if(pending_, [s](const PendingJoin& j) { return j.socket == s; });
  it->second.pending = 0;
  it->second.streams.clear();
}

Actions Router::on_message(SocketId s, std::string_view sio_text, std::int64_t now) {
  auto it = sockets_.find(s);
  if (it == sockets_.end()) return {};
  SocketState& st = it->second;
  ++counters_.messages_in;
  Out out(counters_);
  if (!take_token(st, now)) {
    strike(out, s, st, Refusal::rate_limited,
           "Too many messages: slow down to " + std::to_string(static_cast<long>(config_.messages_per_second)) +
               " per second",
           now);
    return std::move(out.actions);
  }
  if (sio_text.size() > config_.max_frame) {
    strike(out, s, st, Refusal::too_large,
           "Message of " + std::to_string(sio_text.size()) + " bytes exceeds the " +
               std::to_string(config_.max_frame) + "-byte limit",
           now);
    return std::move(out.actions);
  }
  if (st.connected) {
    if (auto r = scan_relay(sio_text, config_.protocol, config_.max_json_depth)) {
      forward_scanned(out, s, *r);
      return std::move(out.actions);
    }
  }
  auto p = parse_sio(sio_text, SioLimits{config_.max_frame, config_.max_json_depth, 128});
  if (!p) {
    strike(out, s, st, Refusal::protocol, "Malformed Socket.IO packet: " + p.error(), now);
    return std::move(out.actions);
  }
  handle_packet(out, s, st, p.value(), now);
  return std::move(out.actions);
}

bool Router::take_token(SocketState& st, std::int64_t now) {
  if (now > st.last_refill) {
    double refill = static_cast<double>(now - st.last_refill) * config_.messages_per_second / 1000.0;
    st.tokens = std::min(config_.message_burst, st.tokens + refill);
    st.last_refill = now;
  }
  if (st.tokens < 1) return false;
  st.tokens -= 1;
  return true;
}

void Router::strike(Out& out, SocketId s, SocketState& st, Refusal why, const std::string& message,
                    std::int64_t now) {
  ++counters_.refusals[static_cast<std::size_t>(why)];
  if (st.strikes > 0 && now - st.last_strike > config_.strike_window_ms) st.strikes = 0;
  ++st.strikes;
  st.last_strike = now;
  // Before CONNECT there is no namespace to carry an error event; socket.io closes at once too.
  if (st.strikes >= 2 || !st.connected) return close_socket(out, s, message);
  out.send(s, error_event(message));
}

void Router::issue_challenge(Out& out, SocketId s, SocketState& st, std::int64_t now) {
  std::array<std::uint8_t, 32> nonce{};
  random_(nonce);
  st.nonce = to_hex(nonce);
  st.nonce_expires = now + config_.nonce_ttl_ms;
  out.send(s, challenge_event(st.nonce, st.nonce_expires));
}

void Router::handle_packet(Out& out, SocketId s, SocketState& st, const SioPacket& p, std::int64_t now) {
  if (p.nsp != "/") {
    if (p.type == SioType::connect) {
      Json err;
      err["message"] = "Invalid namespace";
      out.send(s, encode_message(SioPacket{SioType::connect_error, p.nsp, std::nullopt, err}));
      return;
    }
    return strike(out, s, st, Refusal::protocol, "Namespace " + p.nsp + " is not connected", now);
  }
  switch (p.type) {
    case SioType::connect:
      if (st.connected) return;
      st.connected = true;
      unconnected_.erase({st.opened_at, s});
      {
        Json ok;
        ok["sid"] = make_sid(random_);
        out.send(s, encode_message(SioPacket{SioType::connect, "/", std::nullopt, ok}));
      }
      issue_challenge(out, s, st, now);
      return;
    case SioType::disconnect:
      if (!st.connected) return;
      leave_all(out, s, now);
      st.connected = false;
      unconnected_.emplace(st.opened_at, s);  // as before CONNECT: the tick's deadline applies again
      st.nonce.clear();
      return;
    case SioType::event:
      if (!st.connected) return strike(out, s, st, Refusal::protocol, "protocol error: event before CONNECT", now);
      handle_event(out, s, st, *p.data, now);
      // We have no replies to give, but a client waiting on an ack should not wait forever.
      if (p.ack_id && sockets_.count(s))
        out.send(s, encode_message(SioPacket{SioType::ack, "/", p.ack_id, Json::array()}));
      return;
    case SioType::ack:
      return;  // the server never asks for acks
    case SioType::connect_error:
    case SioType::binary_event:
    case SioType::binary_ack:
      break;
  }
  strike(out, s, st, Refusal::protocol, "protocol error: unexpected Socket.IO packet from a client", now);
}

void Router::handle_event(Out& out, SocketId s, SocketState& st, const Json& args, std::int64_t now) {
  auto parsed = parse_client_event(args, config_.protocol);
  if (!parsed) return out.refuse(s, Refusal::bad_request, parsed.error());
  ClientEvent& ev = parsed.value();
  if (auto* m = std::get_if<BroadcastMsg>(&ev)) return on_broadcast(out, s, st, std::move(*m), now);
  if (auto* m = std::get_if<WatchMsg>(&ev)) return on_watch(out, s, st, std::move(*m), now);
  if (auto* m = std::get_if<OfferMsg>(&ev)) return forward_offer(out, s, *m);
  if (auto* m = std::get_if<AnswerMsg>(&ev)) return forward_answer(out, s, *m);
  if (auto* m = std::get_if<CandidateMsg>(&ev)) return forward_candidate(out, s, *m);
  if (auto* m = std::get_if<StopBroadcastingMsg>(&ev)) return stop_broadcasting(out, s, *m);
  if (auto* m = std::get_if<StopWatchingMsg>(&ev)) return stop_watching(out, s, *m);
  if (auto* m = std::get_if<RelayFailedMsg>(&ev)) return relay_failed(out, s, *m);
  if (auto* m = std::get_if<GetWatchersCountMsg>(&ev)) {
    auto it = streams_.find(m->stream_id);
    return out.send(s, watchers_count_event(it == streams_.end() ? 0 : it->second.watchers.size()));
  }
  if (auto* m = std::get_if<GetIsStreamingMsg>(&ev)) return out.send(s, is_streaming_event(streams_.count(m->stream_id) > 0));
  // UnknownEvent: dropped, as socket.io drops events nobody listens to.
}

// ---- admission ----

bool Router::check_proof(Out& out, SocketId s, SocketState& st, const std::optional<AuthProof>& auth,
                         const PublicKey& key, Role role, const std::string& stream_id, std::int64_t now) {
  const std::string nonce = st.nonce;
  const bool expired = now > st.nonce_expires;
  bool ok = false;
  if (auth->nonce && *auth->nonce != nonce) {
    out.refuse(s, Refusal::stale_nonce, "Challenge nonce is not this connection's latest: sign the newest challenge");
  } else if (expired) {
    out.refuse(s, Refusal::stale_nonce, "Challenge expired: sign the newest challenge");
  } else {
    switch (verify_challenge(*auth, key, role, stream_id, nonce)) {
      case AuthCheck::ok:
        ok = true;
        break;
      case AuthCheck::bad_encoding:
        out.refuse(s, Refusal::bad_signature,
                   "Signature isn't valid: auth.publicKey and auth.signature must be 0x hex of 32 and 64 bytes");
        break;
      case AuthCheck::wrong_key:
        out.refuse(s, Refusal::bad_signature, "Signature isn't valid: auth.publicKey is not the id you gave");
        break;
      case AuthCheck::bad_signature:
        out.refuse(s, Refusal::bad_signature, "Signature isn't valid");
        break;
    }
  }
  issue_challenge(out, s, st, now);  // a nonce works once, used well or not
  return ok;
}

bool Router::already_live(const PublicKey& key, const std::string& stream_id) const {
  if (streams_.count(stream_id)) return true;
  std::size_t mine = 0;
  for (const auto& [id, stream] : streams_)
    if (stream.broadcaster.key == key) ++mine;
  return mine >= config_.max_streams_per_broadcaster;
}

bool Router::queue_join(Out& out, PendingJoin j, bool new_lookup) {
  auto& st = sockets_.at(j.socket);
  // Lookups outlive the joins that asked (a socket may leave), so they get their own cap.
  if (pending_.size() >= config_.max_pending_joins || st.pending >= config_.max_pending_per_socket ||
      (new_lookup && lookups_in_flight() >= config_.max_pending_joins)) {
    out.refuse(j.socket, Refusal::busy, "Too many joins are waiting for the chain: try again shortly");
    return false;
  }
  ++st.pending;
  pending_.push_back(std::move(j));
  return true;
}

void Router::on_broadcast(Out& out, SocketId s, SocketState& st, BroadcastMsg m, std::int64_t now) {
  auto key = parse_id(m.broadcaster_id);
  if (!key) return out.refuse(s, Refusal::bad_request, "broadcast: broadcasterId must be 0x + 64 hex digits");
  if (!m.auth)
    return out.refuse(s, Refusal::bad_signature,
                      "Signature isn't valid: broadcast needs auth {publicKey, signature} over the challenge");
  if (!check_proof(out, s, st, m.auth, *key, Role::broadcast, m.stream_id, now)) return;
  if (already_live(*key, m.stream_id)) return out.refuse(s, Refusal::already_live, "You already have a stream running");

  PendingJoin j{s, now, *key, std::move(m), {}};
  const std::string& stream_id = std::get<BroadcastMsg>(j.msg).stream_id;
  if (auto c = owner_cache_.find(stream_id); c != owner_cache_.end() && c->second.expires > now)
    return continue_broadcast(out, j, c->second);
  std::string id = stream_id;  // j moves below
  if (!queue_join(out, std::move(j), !stream_lookups_.count(id))) return;
  if (stream_lookups_.emplace(id, now).second) {
    ++counters_.chain_lookups;
    out.actions.push_back(LookupStream{id});
  }
}

void Router::continue_broadcast(Out& out, const PendingJoin& j, const OwnerEntry& owner) {
  const auto& m = std::get<BroadcastMsg>(j.msg);
  auto st = sockets_.find(j.socket);
  if (st == sockets_.end()) return;
  if (!owner.broadcaster)
    return out.refuse(j.socket, Refusal::unknown_stream, "Stream with id " + m.stream_id + " doesn't exist on chain");
  if (*owner.broadcaster != j.key)
    return out.refuse(j.socket, Refusal::not_owner, "Only the broadcaster of stream " + m.stream_id + " may start it");
  if (already_live(j.key, m.stream_id)) return out.refuse(j.socket, Refusal::already_live, "You already have a stream running");
  if (st->second.streams.size() >= config_.max_streams_per_socket)
    return out.refuse(j.socket, Refusal::limit, "Too many streams on this connection");
  start_stream(out, j);
}

void Router::start_stream(Out& out, const PendingJoin& j) {
  const auto& m = std::get<BroadcastMsg>(j.msg);
  // The tighter of the server's cap and the broadcaster's own --max-direct; 0 on either = none.
  std::size_t direct = config_.broadcaster_slots;
  if (m.max_direct.value_or(0) > 0) direct = direct == 0 ? *m.max_direct : std::min<std::size_t>(direct, *m.max_direct);
  Stream stream{m.stream_id, Member{j.key, m.broadcaster_id, j.socket}, {},
                RelayTree(j.key, static_cast<std::uint32_t>(std::min<std::size_t>(direct, UINT32_MAX)))};
  streams_.emplace(m.stream_id, std::move(stream));
  sockets_.at(j.socket).streams.push_back(m.stream_id);
  out.send(j.socket, is_streaming_event(true));
}

void Router::on_watch(Out& out, SocketId s, SocketState& st, WatchMsg m, std::int64_t now) {
  auto key = parse_id(m.user_id);
  if (!key) return out.refuse(s, Refusal::bad_request, "watch: userId must be 0x + 64 hex digits");
  // 1. the signature
  if (m.auth) {
    if (!check_proof(out, s, st, m.auth, *key, Role::watch, m.stream_id, now)) return;
  } else if (config_.legacy_signed_msg && m.signed_msg && m.encoded_id) {
    if (!verify_legacy(*m.signed_msg, *m.encoded_id, *key))
      return out.refuse(s, Refusal::bad_signature, "Signature isn't valid");
  } else {
    return out.refuse(s, Refusal::bad_signature,
                      config_.legacy_signed_msg
                          ? "Signature isn't valid"
                          : "Signature isn't valid: this server needs auth {publicKey, signature} over the challenge");
  }
  continue_watch(out, PendingJoin{s, now, *key, std::move(m), {}}, now, nullptr);
}

void Router::continue_watch(Out& out, PendingJoin j, std::int64_t now, const SubscriberEntry* fresh) {
  const auto& m = std::get<WatchMsg>(j.msg);
  // 2. the stream is live
  auto it = streams_.find(m.stream_id);
  if (it == streams_.end())
    return out.refuse(j.socket, Refusal::not_started, "Stream with id " + m.stream_id + " hasn't started yet");
  Stream& stream = it->second;
  const PublicKey b = stream.broadcaster.key;
  // 3. the subscription, from the answer just in, the cache, or a (shared) chain read
  const SubscriberEntry* subs = fresh && j.waits_on_broadcaster == b ? fresh : nullptr;
  if (!subs) {
    if (auto c = subscriber_cache_.find(b); c != subscriber_cache_.end() && c->second.expires > now) subs = &c->second;
  }
  if (!subs) {
    j.waits_on_broadcaster = b;
    if (!queue_join(out, std::move(j), !subscriber_lookups_.count(b))) return;
    if (subscriber_lookups_.emplace(b, now).second) {
      ++counters_.chain_lookups;
      out.actions.push_back(LookupSubscribers{b});
    }
    return;
  }
  if (!subs->subscribers.count(j.key))
    return out.refuse(j.socket, Refusal::not_subscribed, "You aren't subscribed to this speaker");
  admit_watcher(out, stream, j);
}

void Router::admit_watcher(Out& out, Stream& stream, const PendingJoin& j) {
  const auto& m = std::get<WatchMsg>(j.msg);
  auto sock = sockets_.find(j.socket);
  if (sock == sockets_.end()) return;
  if (j.key == stream.broadcaster.key)
    return out.refuse(j.socket, Refusal::bad_request, "You broadcast stream " + stream.id + ": you cannot watch it");

  auto same = std::find_if(stream.watchers.begin(), stream.watchers.end(), [&](const Member& w) { return w.key == j.key; });
  if (same != stream.watchers.end() && same->socket == j.socket) {
    // A repeat (the web app retries every 2 s until media flows): announce it to its parent
    // again, or remind it that it still waits for a slot.
    auto parent_key = stream.tree.parent_of(same->key);
    const Member* parent = parent_key ? member(stream, *parent_key) : nullptr;
    if (parent) out.send(parent->socket, watch_event(same->id, stream.id, parent != &stream.broadcaster));
    send_counts(out, stream, true);
    if (parent)
      out.send(j.socket, placement_event(parent->id, stream.tree.depth_of(same->key)));
    else
      out.send(j.socket, error_event(kNoSlot));
    return;
  }
  if (same != stream.watchers.end())  // a new connection of the same account replaces the old one
    remove_watcher(out, stream, static_cast<std::size_t>(same - stream.watchers.begin()));

  if (stream.watchers.size() >= config_.max_watchers_per_stream)
    return out.refuse(j.socket, Refusal::limit, "Stream " + stream.id + " has reached its watcher limit");
  if (sock->second.streams.size() >= config_.max_streams_per_socket)
    return out.refuse(j.socket, Refusal::limit, "Too many streams on this connection");

  stream.watchers.push_back(Member{j.key, m.user_id, j.socket});
  sock->second.streams.push_back(stream.id);
  // The newcomer hears where it stands after the counts, as it always has.
  Out own(counters_);
  apply_moves(out, stream, stream.tree.join(j.key, m.relay_slots), &j.key, &own);
  send_counts(out, stream, true);
  for (auto& a : own.actions) out.actions.push_back(std::move(a));
}

// ---- streams and the relay tree ----

Router::Member* Router::member(Stream& stream, const PublicKey& key) {
  if (stream.broadcaster.key == key) return &stream.broadcaster;
  for (auto& w : stream.watchers)
    if (w.key == key) return &w;
  return nullptr;
}

Router::Member* Router::member(Stream& stream, std::string_view id) {
  if (stream.broadcaster.id == id) return &stream.broadcaster;
  for (auto& w : stream.watchers)
    if (w.id == id) return &w;
  auto key = parse_id(id);
  return key ? member(stream, *key) : nullptr;
}

Router::Member* Router::sender(Stream& stream, SocketId s, std::string_view claimed_id) {
  Member* m = member(stream, claimed_id);
  return m && m->socket == s ? m : nullptr;
}

void Router::send_counts(Out& out, const Stream& stream, bool live_too) {
  const std::size_t n = stream.watchers.size();
  auto tell = [&](const Member& m) {
    out.send(m.socket, watchers_count_event(n));
    if (live_too) out.send(m.socket, is_streaming_event(true));
  };
  tell(stream.broadcaster);
  for (const auto& w : stream.watchers) tell(w);
}

void Router::end_stream(Out& out, const std::string& stream_id) {
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return;
  Stream stream = std::move(it->second);
  streams_.erase(it);
  auto leave = [&](SocketId s) {
    if (auto st = sockets_.find(s); st != sockets_.end()) erase_one(st->second.streams, stream_id);
  };
  leave(stream.broadcaster.socket);
  out.send(stream.broadcaster.socket, is_streaming_event(false));
  for (const auto& w : stream.watchers) {
    leave(w.socket);
    out.send(w.socket, is_streaming_event(false));
    out.send(w.socket, stop_broadcasting_event(stream.broadcaster.id, stream_id, w.id));
  }
}

void Router::remove_watcher(Out& out, Stream& stream, std::size_t index) {
  Member gone = std::move(stream.watchers[index]);
  stream.watchers.erase(stream.watchers.begin() + static_cast<std::ptrdiff_t>(index));
  if (auto st = sockets_.find(gone.socket); st != sockets_.end()) erase_one(st->second.streams, stream.id);

  // The broadcaster hears of every leave (the web app counts on it), a relay parent of its own.
  out.send(stream.broadcaster.socket, stop_watching_event(gone.id, stream.id));
  if (auto p = stream.tree.parent_of(gone.key); p && *p != stream.broadcaster.key)
    if (const Member* parent = member(stream, *p)) out.send(parent->socket, stop_watching_event(gone.id, stream.id));
  apply_moves(out, stream, stream.tree.leave(gone.key));
  send_counts(out, stream, false);
}

void Router::apply_moves(Out& out, Stream& stream, const TreeMoves& moves, const PublicKey* hold, Out* held) {
  for (const auto& mv : moves) {
    const Member* child = member(stream, mv.key);
    if (!child) continue;
    Out& to_child = hold && held && *hold == mv.key ? *held : out;
    if (mv.kind == TreeMove::Kind::queued) {
      to_child.refuse(child->socket, Refusal::no_slot, kNoSlot);
      continue;
    }
    const Member* parent = member(stream, mv.parent);
    if (!parent) continue;
    if (mv.kind == TreeMove::Kind::placed) {
      out.send(parent->socket, watch_event(child->id, stream.id, parent != &stream.broadcaster));
      ++counters_.placements;
    }
    to_child.send(child->socket, placement_event(parent->id, mv.depth));
  }
}

// A child's link to its parent failed: it moves elsewhere and the parent drops its session.
void Router::relay_failed(Out& out, SocketId s, const RelayFailedMsg& m) {
  auto it = streams_.find(m.stream_id);
  if (it == streams_.end()) return;
  Stream& stream = it->second;
  Member* from = sender(stream, s, m.user_id);
  if (!from || from == &stream.broadcaster)
    return out.refuse(s, Refusal::spoofed, "relayFailed: this connection is not a watcher " + m.user_id + " on stream " + m.stream_id);
  auto parent_key = parse_id(m.parent_id);
  // A late report about a parent it has already left changes nothing.
  if (!parent_key || stream.tree.parent_of(from->key) != parent_key) return;
  const Member* parent = member(stream, *parent_key);
  if (!parent) return;
  ++counters_.relay_failures;
  out.send(parent->socket, stop_watching_event(from->id, stream.id));
  apply_moves(out, stream, stream.tree.fail(from->key, *parent_key));
}

bool Router::is_peer(const Stream& stream, const Member& parent, const Member& child) const {
  return stream.tree.parent_of(child.key) == parent.key;
}

// ---- forwarding ----

void Router::forward_offer(Out& out, SocketId s, const OfferMsg& m) {
  auto it = streams_.find(m.stream_id);
  if (it == streams_.end()) return;  // the stream ended meanwhile
  Member* from = sender(it->second, s, m.broadcaster_id);
  if (!from) return out.refuse(s, Refusal::spoofed, "offer: this connection is not " + m.broadcaster_id + " on stream " + m.stream_id);
  auto to_key = parse_id(m.user_id);
  Member* to = to_key ? member(it->second, *to_key) : nullptr;
  if (!to || !is_peer(it->second, *from, *to)) return;  // not (or no longer) its child
  out.send(to->socket, offer_event(m.broadcaster_id, m.payload));
  ++counters_.messages_relayed;
}

Router::Stream* Router::relay_stream(Out& out, SocketId s, std::string_view event, const std::string& stream_id) {
  if (!stream_id.empty()) {
    auto it = streams_.find(stream_id);
    return it == streams_.end() ? nullptr : &it->second;  // nullptr: the stream ended meanwhile
  }
  // A web app socket is in one stream; the sender's membership names it.
  const std::vector<std::string>& mine = sockets_.at(s).streams;
  if (mine.size() != 1) {
    out.refuse(s, Refusal::bad_request,
               std::string(event) + ": streamId is missing and this connection is in " +
                   (mine.empty() ? std::string("no stream") : std::to_string(mine.size()) + " streams") +
                   ": send streamId");
    return nullptr;
  }
  auto it = streams_.find(mine.front());
  return it == streams_.end() ? nullptr : &it->second;
}

void Router::forward_answer(Out& out, SocketId s, const AnswerMsg& m) {
  Stream* stream = relay_stream(out, s, "answer", m.stream_id);
  if (!stream) return;
  Member* from = sender(*stream, s, m.user_id);
  if (!from) return out.refuse(s, Refusal::spoofed, "answer: this connection is not " + m.user_id + " on stream " + stream->id);
  auto to_key = parse_id(m.broadcaster_id);
  Member* to = to_key ? member(*stream, *to_key) : nullptr;
  if (!to || !is_peer(*stream, *to, *from)) return;
  out.send(to->socket, answer_event(m.broadcaster_id, m.payload));
  ++counters_.messages_relayed;
}

void Router::forward_candidate(Out& out, SocketId s, const CandidateMsg& m) {
  Stream* stream = relay_stream(out, s, "candidate", m.stream_id);
  if (!stream) return;
  Member* from = sender(*stream, s, m.user_id);
  if (!from) return out.refuse(s, Refusal::spoofed, "candidate: this connection is not " + m.user_id + " on stream " + stream->id);
  auto to_key = parse_id(m.target_id);
  Member* to = to_key ? member(*stream, *to_key) : nullptr;
  if (!to || (!is_peer(*stream, *to, *from) && !is_peer(*stream, *from, *to))) return;  // not peers
  out.send(to->socket, candidate_event(m.user_id, m.candidate));
  ++counters_.messages_relayed;
}

void Router::forward_scanned(Out& out, SocketId s, const RelayScan& r) {
  auto it = streams_.find(r.stream_id);
  if (it == streams_.end()) return;
  const bool offer = r.kind == RelayScan::Kind::offer;
  const std::string_view from_id = offer ? r.first : r.user_id;
  const std::string_view to_id = offer ? r.user_id : r.first;
  const char* name = offer ? "offer" : r.kind == RelayScan::Kind::answer ? "answer" : "candidate";
  Member* from = sender(it->second, s, from_id);
  if (!from)
    return out.refuse(s, Refusal::spoofed,
                      std::string(name) + ": this connection is not " + std::string(from_id) + " on stream " + it->first);
  Member* to = member(it->second, to_id);
  if (!to) return;
  const Stream& stream = it->second;
  const bool peers = offer                               ? is_peer(stream, *from, *to)
                     : r.kind == RelayScan::Kind::answer ? is_peer(stream, *to, *from)
                                                         : is_peer(stream, *to, *from) || is_peer(stream, *from, *to);
  if (!peers) return;
  // The scanned ids hold no escapes, so they go out as they came, like the payloads.
  std::string packet;
  if (r.kind == RelayScan::Kind::candidate) {
    packet.reserve(r.user_id.size() + r.candidate.size() + 32);
    packet.append("42[\"candidate\",\"").append(r.user_id).append("\",{\"candidate\":").append(r.candidate).append("}]");
  } else {
    packet.reserve(r.first.size() + r.payload.size() + 24);
    packet.append("42[\"").append(name).append("\",\"").append(r.first).append("\",").append(r.payload).append("]");
  }
  out.send(to->socket, std::move(packet));
  ++counters_.messages_relayed;
}

void Router::stop_broadcasting(Out& out, SocketId s, const StopBroadcastingMsg& m) {
  auto it = streams_.find(m.stream_id);
  if (it == streams_.end()) return;
  auto key = parse_id(m.broadcaster_id);
  const Member& b = it->second.broadcaster;
  if (!key || *key != b.key || b.socket != s)
    return out.refuse(s, Refusal::not_owner, "Only the broadcaster can stop stream " + m.stream_id);
  end_stream(out, m.stream_id);
}

void Router::stop_watching(Out& out, SocketId s, const StopWatchingMsg& m) {
  auto it = streams_.find(m.stream_id);
  auto key = parse_id(m.user_id);
  if (it == streams_.end() || !key) return;  // the web app sends this on every unmount; nothing to do
  auto& ws = it->second.watchers;
  auto w = std::find_if(ws.begin(), ws.end(), [&](const Member& x) { return x.key == *key && x.socket == s; });
  if (w != ws.end()) remove_watcher(out, it->second, static_cast<std::size_t>(w - ws.begin()));
}

// ---- time and the chain ----

Actions Router::on_tick(std::int64_t now) {
  Out out(counters_);
  expire(now);
  std::vector<SocketId> silent;
  for (const auto& [opened_at, id] : unconnected_) {
    if (now - opened_at < config_.connect_timeout_ms) break;
    silent.push_back(id);
  }
  std::sort(silent.begin(), silent.end());  // close in a stable order
  for (auto id : silent) close_socket(out, id, "no Socket.IO CONNECT in time");

  // A lookup that timed out fails the joins waiting on it; the next join asks again.
  std::vector<std::string> late_streams;
  for (const auto& [id, at] : stream_lookups_)
    if (now - at >= config_.chain_timeout_ms) late_streams.push_back(id);
  for (const auto& id : late_streams) {
    StreamAnswer a;
    a.stream_id = id;
    a.ok = false;
    for (auto& act : on_stream_answer(a, now)) out.actions.push_back(std::move(act));
  }
  std::vector<PublicKey> late_subs;
  for (const auto& [b, at] : subscriber_lookups_)
    if (now - at >= config_.chain_timeout_ms) late_subs.push_back(b);
  for (const auto& b : late_subs) {
    SubscribersAnswer a;
    a.broadcaster = b;
    a.ok = false;
    for (auto& act : on_subscribers_answer(a, now)) out.actions.push_back(std::move(act));
  }
  return std::move(out.actions);
}

Actions Router::on_stream_answer(const StreamAnswer& a, std::int64_t now) {
  Out out(counters_);
  stream_lookups_.erase(a.stream_id);
  OwnerEntry entry{a.broadcaster, now + config_.cache_ttl_ms};
  if (a.ok) cache_owner(a.stream_id, entry);
  std::vector<PendingJoin> ready;
  std::erase_if(pending_, [&](PendingJoin& j) {
    auto* m = std::get_if<BroadcastMsg>(&j.msg);
    if (!m || m->stream_id != a.stream_id) return false;
    ready.push_back(std::move(j));
    return true;
  });
  for (const auto& j : ready) {
    if (auto st = sockets_.find(j.socket); st != sockets_.end() && st->second.pending > 0) --st->second.pending;
    if (!a.ok)
      out.refuse(j.socket, Refusal::chain_unavailable, "Could not read stream " + a.stream_id + " from the chain: try again");
    else
      continue_broadcast(out, j, entry);
  }
  return std::move(out.actions);
}

Actions Router::on_subscribers_answer(const SubscribersAnswer& a, std::int64_t now) {
  Out out(counters_);
  subscriber_lookups_.erase(a.broadcaster);
  SubscriberEntry entry{std::set<PublicKey>(a.subscribers.begin(), a.subscribers.end()), now + config_.cache_ttl_ms};
  if (a.ok) cache_subscribers(a.broadcaster, entry);
  std::vector<PendingJoin> ready;
  std::erase_if(pending_, [&](PendingJoin& j) {
    if (!std::holds_alternative<WatchMsg>(j.msg) || j.waits_on_broadcaster != a.broadcaster) return false;
    ready.push_back(std::move(j));
    return true;
  });
  for (auto& j : ready) {
    if (auto st = sockets_.find(j.socket); st != sockets_.end() && st->second.pending > 0) --st->second.pending;
    if (!a.ok)
      out.refuse(j.socket, Refusal::chain_unavailable, "Could not read subscriptions from the chain: try again");
    else
      continue_watch(out, std::move(j), now, &entry);
  }
  return std::move(out.actions);
}

void Router::cache_owner(const std::string& stream_id, OwnerEntry e) {
  if (owner_cache_.size() >= config_.max_cache_entries && !owner_cache_.count(stream_id)) {
    auto oldest = std::min_element(owner_cache_.begin(), owner_cache_.end(),
                                   [](const auto& x, const auto& y) { return x.second.expires < y.second.expires; });
    if (oldest != owner_cache_.end()) owner_cache_.erase(oldest);
  }
  if (config_.max_cache_entries > 0) owner_cache_[stream_id] = std::move(e);
}

void Router::cache_subscribers(const PublicKey& b, SubscriberEntry e) {
  if (subscriber_cache_.size() >= config_.max_cache_entries && !subscriber_cache_.count(b)) {
    auto oldest = std::min_element(subscriber_cache_.begin(), subscriber_cache_.end(),
                                   [](const auto& x, const auto& y) { return x.second.expires < y.second.expires; });
    if (oldest != subscriber_cache_.end()) subscriber_cache_.erase(oldest);
  }
  if (config_.max_cache_entries > 0) subscriber_cache_[b] = std::move(e);
}

void Router::expire(std::int64_t now) {
  std::erase_if(owner_cache_, [now](const auto& e) { return e.second.expires <= now; });
  std::erase_if(subscriber_cache_, [now](const auto& e) { return e.second.expires <= now; });
}

void Router::invalidate_stream(std::string_view stream_id) {
  if (auto it = owner_cache_.find(stream_id); it != owner_cache_.end()) owner_cache_.erase(it);
}

void Router::invalidate_subscribers(const PublicKey& broadcaster) { subscriber_cache_.erase(broadcaster); }

// ---- queries ----

bool Router::is_broadcasting(std::string_view id) const {
  auto key = parse_id(id);
  if (!key) return false;
  return std::any_of(streams_.begin(), streams_.end(), [&](const auto& s) { return s.second.broadcaster.key == *key; });
}

std::size_t Router::watcher_count(std::string_view stream_id) const {
  auto it = streams_.find(stream_id);
  return it == streams_.end() ? 0 : it->second.watchers.size();
}

const RelayTree* Router::tree(std::string_view stream_id) const {
  auto it = streams_.find(stream_id);
  return it == streams_.end() ? nullptr : &it->second.tree;
}

std::string Router::check() const {
  for (const auto& entry : streams_) {
    const std::string& id = entry.first;  // a plain reference: clang cannot capture bindings
    const Stream& stream = entry.second;
    if (auto e = stream.tree.check(); !e.empty()) return "stream " + id + ": " + e;
    if (stream.tree.size() != stream.watchers.size()) return "stream " + id + ": tree and watcher list differ in size";
    if (stream.tree.root() != stream.broadcaster.key) return "stream " + id + ": the tree's root is not the broadcaster";
    auto on = [&](SocketId s) {
      auto st = sockets_.find(s);
      return st != sockets_.end() && std::count(st->second.streams.begin(), st->second.streams.end(), id) > 0;
    };
    if (!on(stream.broadcaster.socket)) return "stream " + id + ": the broadcaster's socket does not list it";
    for (const auto& w : stream.watchers) {
      if (!stream.tree.contains(w.key)) return "stream " + id + ": a watcher is not in the tree";
      if (!on(w.socket)) return "stream " + id + ": a watcher's socket does not list it";
    }
  }
  std::size_t unconnected = 0;
  for (const auto& [s, st] : sockets_) {
    if (st.connected) continue;
    ++unconnected;
    if (!unconnected_.count({st.opened_at, s})) return "socket " + std::to_string(s) + ": not connected, but not timed";
  }
  if (unconnected != unconnected_.size()) return "the connect deadlines list sockets that are gone or connected";
  return {};
}

Counters Router::counters() const {
  Counters c = counters_;
  c.connections_open = sockets_.size();
  c.streams_live = streams_.size();
  c.watchers = 0;
  for (const auto& [id, s] : streams_) {
    c.watchers += s.watchers.size();
    c.queued += s.tree.queue_size();
  }
  return c;
}

}  // namespace p2p::signal
