// signal/router: the signalling server's deterministic state machine (see router.hpp): sockets,
// messages, limits and admission here; streams, the relay tree, forwarding, chain answers and
// queries in router_streams.cpp.
#include "signal/router.hpp"

#include <algorithm>
#include <deque>

#include "signal/relay_scan.hpp"
#include "signal/router_detail.hpp"
#include "signal/session.hpp"

namespace p2p::signal {

using keys::PublicKey;
using router_detail::kNoSlot;


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

}  // namespace p2p::signal
