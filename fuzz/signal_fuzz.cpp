// fuzz/signal_fuzz: libFuzzer target for the signalling server's pure core (signal/engineio,
// signal/session, signal/protocol, signal/router). The input is a script of operations (open,
// close, Engine.IO frames on a session, raw Socket.IO text, properly signed joins, ticks and
// chain answers, relay failures) over a few sockets. Nothing may crash, every packet the router
// emits must be valid Socket.IO addressed to an open socket, its memory (sockets, queued joins,
// lookups, caches, streams) must stay within the configured bounds, and every relay tree must
// keep its invariants (Router::check).
#include <array>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <string>

#include "signal/router.hpp"
#include "signal/session.hpp"

namespace {

using namespace p2p;
using namespace p2p::signal;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "signal_fuzz: %s\n", what);
  std::abort();
}

class Script {
 public:
  Script(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  bool done() const { return pos_ >= size_; }
  std::uint8_t byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  std::string bytes(std::size_t n) {
    n = std::min(n, size_ - pos_);
    std::string out(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return out;
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

RouterConfig fuzz_config() {
  RouterConfig c;
  c.max_frame = 2048;
  c.max_sockets = 6;
  c.max_connections_per_ip = 4;
  c.messages_per_second = 50;
  c.message_burst = 40;
  c.max_streams_per_socket = 3;
  c.max_watchers_per_stream = 5;
  c.broadcaster_slots = 2;
  c.max_pending_joins = 6;
  c.max_pending_per_socket = 2;
  c.max_cache_entries = 4;
  c.nonce_ttl_ms = 60000;
  c.cache_ttl_ms = 20000;
  c.chain_timeout_ms = 10000;
  return c;
}

const std::array<keys::Keypair, 5>& accounts() {
  static const std::array<keys::Keypair, 5> kps = [] {
    std::array<keys::Keypair, 5> out;
    for (std::size_t i = 0; i < out.size(); ++i) {
      keys::Seed seed;
      seed.fill(static_cast<std::uint8_t>(0x10 + i));
      out[i] = keys::Keypair::from_seed(seed);
    }
    return out;
  }();
  return kps;
}

const char* const kStreams[] = {"s1", "s2", "1700000000000 title"};

struct Harness {
  RouterConfig config = fuzz_config();
  std::uint64_t counter = 0;
  Router router{config, [this](std::span<std::uint8_t> out) {
                  for (auto& b : out) b = static_cast<std::uint8_t>(++counter * 131 >> 3);
                }};
  std::int64_t now = 1'700'000'000'000;
  std::set<SocketId> open;
  std::map<SocketId, std::string> nonce;
  std::map<SocketId, Session> sessions;

  // Checks and applies what the router asked for.
  void take(const Actions& actions) {
    for (const auto& a : actions) {
      if (auto* s = std::get_if<SendAction>(&a)) {
        if (!open.count(s->socket)) fail("a packet was sent to a socket that is not open");
        auto eio = parse_eio(s->packet, 1 << 20);
        if (!eio || eio.value().type != EioType::message) fail("the router emitted a bad Engine.IO packet");
        auto sio = parse_sio(eio.value().data, SioLimits{1 << 20, 64, 128});
        if (!sio) fail("the router emitted a bad Socket.IO packet");
        const auto& p = sio.value();
        if (p.type == SioType::event && (*p.data)[0] == "challenge")
          nonce[s->socket] = (*p.data)[1]["nonce"].get<std::string>();
      } else if (auto* c = std::get_if<CloseAction>(&a)) {
        if (c->reason.empty()) fail("a close without a reason");
        open.erase(c->socket);
        sessions.erase(c->socket);
        nonce.erase(c->socket);
      }
    }
    check_bounds();
  }

  void check_bounds() const {
    if (router.socket_count() > config.max_sockets) fail("more sockets than max_sockets");
    if (router.socket_count() != open.size()) fail("the router and the transport disagree on open sockets");
    if (router.pending_count() > config.max_pending_joins) fail("more queued joins than max_pending_joins");
    if (router.lookups_in_flight() > config.max_pending_joins) fail("unbounded chain lookups");
    if (router.cache_size() > 2 * config.max_cache_entries) fail("the chain cache outgrew its bound");
    if (router.stream_count() > config.max_sockets * config.max_streams_per_socket) fail("unbounded streams");
    auto c = router.counters();
    if (c.watchers > config.max_sockets * config.max_streams_per_socket) fail("unbounded watchers");
    if (c.queued > c.watchers) fail("more queued than watching");
    if (auto e = router.check(); !e.empty()) {
      std::fprintf(stderr, "signal_fuzz: %s\n", e.c_str());
      fail("a router invariant broke");
    }
  }

  void open_socket(SocketId s, std::uint8_t ip) {
    if (open.count(s)) return;
    auto actions = router.on_open(s, "10.0.0." + std::to_string(ip % 3), now);
    bool refused = !actions.empty();
    if (!refused) {
      open.insert(s);
      sessions.emplace(s, Session("sid" + std::to_string(s), ip & 4 ? Transport::websocket : Transport::polling, now));
    }
    take(actions);
  }

  void close_socket(SocketId s) {
    open.erase(s);
    sessions.erase(s);
    nonce.erase(s);
    take(router.on_close(s, now));
  }

  void deliver(SocketId s, const SessionOutput& out) {
    for (const auto& m : out.messages)
      if (open.count(s)) take(router.on_message(s, m, now));
    if (out.closed) close_socket(s);
  }

  // A join with a correct signature over this socket's current nonce, so the fuzzer reaches
  // admission, placement and forwarding, which random bytes never would.
  void signed_join(SocketId s, Script& in) {
    std::uint8_t b = in.byte();
    const auto& kp = accounts()[b % 5];
    const std::string stream = kStreams[(b >> 2) % 3];
    const bool broadcast = b & 0x40;
    std::string role = broadcast ? "broadcast" : "watch";
    std::string text = "p2pstream-signal:v1:" + role + ":" + stream + ":" + nonce[s];
    Json o;
    o["streamId"] = stream;
    o["auth"]["publicKey"] = to_hex(kp.public_key());
    o["auth"]["signature"] = to_hex(kp.sign(view(text)));
    if (b & 0x80) o["relay"]["slots"] = in.byte() % 4;  // a broadcaster's --max-direct too
    Json ev = Json::array({role, to_hex(kp.public_key()), o});
    if (open.count(s)) take(router.on_message(s, "2" + dump_json(ev), now));
  }

  // offer/answer/candidate/relayFailed between the fuzzer's accounts, so forwarding and
  // re-placement are exercised.
  void signalling(SocketId s, Script& in) {
    std::uint8_t b = in.byte();
    const std::string from = to_hex(accounts()[b % 5].public_key());
    const std::string to = to_hex(accounts()[(b >> 2) % 5].public_key());
    const std::string stream = kStreams[(b >> 4) % 3];
    Json o;
    o["streamId"] = stream;
    Json ev;
    switch (b >> 6) {
      case 0:
        o["userId"] = to;
        o["description"] = {{"type", "offer"}, {"sdp", "v=0"}};
        ev = Json::array({"offer", from, o});
        break;
      case 1:
        o["userId"] = from;
        o["description"] = {{"type", "answer"}, {"sdp", "v=0"}};
        ev = Json::array({"answer", to, o});
        break;
      case 2:
        o["userId"] = from;
        o["candidate"] = {{"candidate", "c"}, {"sdpMid", "0"}, {"sdpMLineIndex", 0}};
        ev = Json::array({"candidate", to, o});
        break;
      default:
        o["parentId"] = to;
        ev = Json::array({"relayFailed", from, o});
        break;
    }
    if (open.count(s)) take(router.on_message(s, "2" + dump_json(ev), now));
  }

  void run(Script& in) {
    while (!in.done()) {
      const std::uint8_t op = in.byte();
      const SocketId s = op >> 4 & 0x7;
      switch (op & 0xf) {
        case 0:
          open_socket(s, in.byte());
          break;
        case 1:
          close_socket(s);
          break;
        case 2:
        case 3: {  // raw Socket.IO text straight to the router
          std::string text = in.bytes(in.byte() | (op & 1 ? 0x100 : 0));
          if (open.count(s)) take(router.on_message(s, text, now));
          break;
        }
        case 4: {  // an Engine.IO frame or polling body through the session first
          std::string frame = in.bytes(in.byte());
          auto it = sessions.find(s);
          if (it == sessions.end()) break;
          bool ws = in.byte() & 1;
          deliver(s, ws ? it->second.on_frame(Transport::websocket, frame, now) : it->second.on_poll_body(frame, now));
          break;
        }
        case 5:
          if (open.count(s)) take(router.on_message(s, "0", now));
          break;
        case 6:
          signed_join(s, in);
          break;
        case 7:
          signalling(s, in);
          break;
        case 8: {
          now += static_cast<std::int64_t>(in.byte()) * 250;
          take(router.on_tick(now));
          std::vector<SocketId> ids;
          for (const auto& [id, sess] : sessions) ids.push_back(id);
          for (auto id : ids)
            if (auto it = sessions.find(id); it != sessions.end()) deliver(id, it->second.on_tick(now));
          break;
        }
        case 9: {
          std::uint8_t b = in.byte();
          StreamAnswer a;
          a.stream_id = kStreams[b % 3];
          a.ok = b & 4;
          if (b & 8) a.broadcaster = accounts()[(b >> 4) % 3].public_key();
          take(router.on_stream_answer(a, now));
          break;
        }
        case 10: {
          std::uint8_t b = in.byte();
          SubscribersAnswer a;
          a.broadcaster = accounts()[b % 3].public_key();
          a.ok = b & 4;
          for (std::size_t i = 0; i < 5; ++i)
            if (b & (8 << i)) a.subscribers.push_back(accounts()[i].public_key());
          take(router.on_subscribers_answer(a, now));
          break;
        }
        case 11: {
          std::uint8_t b = in.byte();
          if (b & 1)
            router.invalidate_stream(kStreams[(b >> 1) % 3]);
          else
            router.invalidate_subscribers(accounts()[(b >> 1) % 3].public_key());
          (void)router.is_broadcasting(to_hex(accounts()[(b >> 3) % 3].public_key()));
          break;
        }
        default: {  // a stop or a query with fuzzed stream ids
          std::uint8_t b = in.byte();
          const char* names[] = {"stopBroadcasting", "stopWatching", "getWatchersCount", "getIsStreaming"};
          Json o;
          o["streamId"] = kStreams[b % 3];
          Json ev = Json::array({names[(b >> 2) % 4], to_hex(accounts()[(b >> 4) % 5].public_key()), o});
          if (open.count(s)) take(router.on_message(s, "2" + dump_json(ev), now));
          break;
        }
      }
    }
    // Closing everything must leave nothing behind.
    std::vector<SocketId> ids(open.begin(), open.end());
    for (auto id : ids) close_socket(id);
    if (router.socket_count() || router.stream_count() || router.pending_count())
      fail("state left behind after every socket closed");
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Script in(data, size);
  Harness h;
  h.run(in);
  // The parsers alone, on the whole input as one frame.
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)parse_payload(text);
  (void)parse_sio(text);
  if (auto p = parse_sio(text); p) {
    if (parse_sio(encode_sio(p.value())).value() != p.value()) fail("Socket.IO encode/parse round trip differs");
  }
  return 0;
}
