// signal/router_streams: the router's streams and relay tree, forwarding between members, the
// chain answers and their caches, and its queries (see router.hpp; router.cpp has the rest).
#include <algorithm>
#include <type_traits>

#include "signal/relay_scan.hpp"
#include "signal/router_detail.hpp"

namespace p2p::signal {

using keys::PublicKey;
using router_detail::erase_one;
using router_detail::kNoSlot;

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

std::pair<Router::Member*, Router::Member*> Router::relay_ends(Out& out, SocketId s, Stream& stream, std::string_view event,
                                                               const std::string& from_id, const std::string& to_id) {
  Member* from = sender(stream, s, from_id);
  if (!from) {
    out.refuse(s, Refusal::spoofed, std::string(event) + ": this connection is not " + from_id + " on stream " + stream.id);
    return {nullptr, nullptr};
  }
  auto to_key = parse_id(to_id);
  return {from, to_key ? member(stream, *to_key) : nullptr};
}

void Router::forward_offer(Out& out, SocketId s, const OfferMsg& m) {
  auto it = streams_.find(m.stream_id);
  if (it == streams_.end()) return;  // the stream ended meanwhile
  auto [from, to] = relay_ends(out, s, it->second, "offer", m.broadcaster_id, m.user_id);
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
  auto [from, to] = relay_ends(out, s, *stream, "answer", m.user_id, m.broadcaster_id);
  if (!to || !is_peer(*stream, *to, *from)) return;
  out.send(to->socket, answer_event(m.broadcaster_id, m.payload));
  ++counters_.messages_relayed;
}

void Router::forward_candidate(Out& out, SocketId s, const CandidateMsg& m) {
  Stream* stream = relay_stream(out, s, "candidate", m.stream_id);
  if (!stream) return;
  auto [from, to] = relay_ends(out, s, *stream, "candidate", m.user_id, m.target_id);
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

  // A lookup that timed out fails the joins waiting on it; the next join asks again. The keys
  // are copied first: failing a lookup erases it from the map being walked.
  auto fail_late = [&](const auto& lookups, auto fail) {
    std::vector<std::decay_t<decltype(lookups.begin()->first)>> late;
    for (const auto& [key, at] : lookups)
      if (now - at >= config_.chain_timeout_ms) late.push_back(key);
    for (const auto& key : late)
      for (auto& act : fail(key)) out.actions.push_back(std::move(act));
  };
  fail_late(stream_lookups_, [&](const std::string& id) {
    StreamAnswer a;
    a.stream_id = id;
    a.ok = false;
    return on_stream_answer(a, now);
  });
  fail_late(subscriber_lookups_, [&](const PublicKey& b) {
    SubscribersAnswer a;
    a.broadcaster = b;
    a.ok = false;
    return on_subscribers_answer(a, now);
  });
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
