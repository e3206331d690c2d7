// Tests for signal/router: scenarios driven purely by events (socket open/close, Socket.IO
// text, ticks, chain answers), checked against the exact packets the router emits.
#include "signal/router.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

using namespace p2p;
using namespace p2p::signal;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

namespace {

using Sent = std::pair<SocketId, std::string>;

keys::Keypair keypair(std::uint8_t fill) {
  keys::Seed seed;
  seed.fill(fill);
  return keys::Keypair::from_seed(seed);
}

std::string hex(const keys::Keypair& kp) { return to_hex(kp.public_key()); }

bool is_challenge(const std::string& packet) { return packet.rfind("42[\"challenge\"", 0) == 0; }

// Sends, in order, leaving out the challenges (checked on their own).
std::vector<Sent> sends(const Actions& actions) {
  std::vector<Sent> out;
  for (const auto& a : actions)
    if (auto* s = std::get_if<SendAction>(&a); s && !is_challenge(s->packet)) out.emplace_back(s->socket, s->packet);
  return out;
}

std::vector<Action> non_sends(const Actions& actions) {
  std::vector<Action> out;
  for (const auto& a : actions)
    if (!std::holds_alternative<SendAction>(a)) out.push_back(a);
  return out;
}

std::string err(std::string_view message) { return R"(42["error",{"message":")" + std::string(message) + R"("}])"; }

struct Harness {
  explicit Harness(RouterConfig c = {})
      : config(c), router(c, [this](std::span<std::uint8_t> out) {
          for (auto& b : out) b = next_random++;
        }) {}

  Actions open(SocketId s, std::string ip = "10.0.0.1") { return router.on_open(s, ip, now); }
  Actions msg(SocketId s, const std::string& text) {
    auto a = router.on_message(s, text, now);
    remember(a);
    return a;
  }
  Actions event(SocketId s, const Json& args) { return msg(s, "2" + dump_json(args)); }
  void connect(SocketId s, std::string ip = "10.0.0.1") {
    EXPECT_TRUE(open(s, ip).empty());
    msg(s, "0");
    EXPECT_TRUE(nonce.count(s));
  }
  void remember(const Actions& actions) {
    for (const auto& a : actions) {
      auto* s = std::get_if<SendAction>(&a);
      if (!s || !is_challenge(s->packet)) continue;
      nonce[s->socket] = parse_json(s->packet.substr(2)).value()[1]["nonce"].get<std::string>();
    }
  }

  Json auth(const keys::Keypair& kp, std::string_view role, std::string_view stream, SocketId nonce_of) {
    std::string text = "p2pstream-signal:v1:" + std::string(role) + ":" + std::string(stream) + ":" + nonce[nonce_of];
    Json a;
    a["publicKey"] = hex(kp);
    a["signature"] = to_hex(kp.sign(view(text)));
    return a;
  }
  Actions broadcast(SocketId s, const keys::Keypair& kp, std::string_view stream, Json extra = Json::object()) {
    Json o;
    o["streamId"] = std::string(stream);
    o["auth"] = auth(kp, "broadcast", stream, s);
    for (auto& [k, v] : extra.items()) o[k] = v;
    return event(s, Json::array({"broadcast", hex(kp), o}));
  }
  Actions watch(SocketId s, const keys::Keypair& kp, std::string_view stream, Json extra = Json::object()) {
    Json o;
    o["streamId"] = std::string(stream);
    o["auth"] = auth(kp, "watch", stream, s);
    for (auto& [k, v] : extra.items()) o[k] = v;
    return event(s, Json::array({"watch", hex(kp), o}));
  }
  Actions owner(std::string_view stream, const keys::Keypair& kp) {
    return router.on_stream_answer({std::string(stream), true, kp.public_key()}, now);
  }
  Actions subscribers(const keys::Keypair& b, std::vector<const keys::Keypair*> subs) {
    SubscribersAnswer a{b.public_key(), true, {}};
    for (auto* s : subs) a.subscribers.push_back(s->public_key());
    return router.on_subscribers_answer(a, now);
  }
  // A live stream `stream` by `kp` on socket s.
  void live(SocketId s, const keys::Keypair& kp, std::string_view stream, Json extra = Json::object()) {
    connect(s);
    broadcast(s, kp, stream, extra);
    owner(stream, kp);
    ASSERT_TRUE(router.is_broadcasting(hex(kp)));
  }
  std::uint64_t refusals(Refusal r) const { return router.counters().refusals[static_cast<std::size_t>(r)]; }

  RouterConfig config;
  std::uint8_t next_random = 0;
  Router router;
  std::int64_t now = 1'700'000'000'000;
  std::map<SocketId, std::string> nonce;
};

const keys::Keypair B = keypair(0xb1);   // the stream's broadcaster
const keys::Keypair W = keypair(0x01);   // a subscribed watcher
const keys::Keypair W2 = keypair(0x02);  // another subscribed watcher
const keys::Keypair X = keypair(0x0e);   // an account subscribed to nobody

}  // namespace

TEST(SignalRouter, ConnectAnswersWithSidAndAChallenge) {
  Harness h;
  EXPECT_TRUE(h.open(1).empty());
  auto a = h.msg(1, "0");
  ASSERT_EQ(a.size(), 2u);
  // The counting RNG gives the sid bytes 0..14 and the nonce bytes 15..46.
  EXPECT_EQ(std::get<SendAction>(a[0]), (SendAction{1, R"(40{"sid":"AAECAwQFBgcICQoLDA0O"})"}));
  Bytes nonce_bytes;
  for (int b = 15; b < 47; ++b) nonce_bytes.push_back(static_cast<std::uint8_t>(b));
  const std::string nonce = to_hex(nonce_bytes);
  EXPECT_EQ(std::get<SendAction>(a[1]),
            (SendAction{1, R"(42["challenge",{"nonce":")" + nonce + R"(","expires":1700000120000}])"}));
  EXPECT_TRUE(h.msg(1, "0").empty());  // a second CONNECT changes nothing
}

TEST(SignalRouter, BroadcasterAndWatcherExchangeOfferAnswerCandidates) {
  Harness h;
  h.connect(1);
  h.connect(2);
  auto a = h.broadcast(1, B, "s1");
  EXPECT_TRUE(sends(a).empty());
  EXPECT_THAT(non_sends(a), ElementsAre(Action{LookupStream{"s1"}}));
  EXPECT_THAT(sends(h.owner("s1", B)), ElementsAre(Sent{1, R"(42["isStreaming",true])"}));

  a = h.watch(2, W, "s1");
  EXPECT_TRUE(sends(a).empty());
  EXPECT_THAT(non_sends(a), ElementsAre(Action{LookupSubscribers{B.public_key()}}));
  const std::string b = hex(B), w = hex(W);
  EXPECT_THAT(sends(h.subscribers(B, {&W})),
              ElementsAre(Sent{1, R"(42["watch",")" + w + R"(",{"streamId":"s1"}])"},
                          Sent{1, R"(42["watchersCount",1])"}, Sent{1, R"(42["isStreaming",true])"},
                          Sent{2, R"(42["watchersCount",1])"}, Sent{2, R"(42["isStreaming",true])"},
                          Sent{2, R"(42["placement",{"parentId":")" + b + R"(","depth":1}])"}));

  // offer and answer travel unchanged, key order and extra fields included.
  const std::string offer = R"({"description":{"type":"offer","sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"},"userId":")" +
                            w + R"(","streamId":"s1","mediaSequence":["microphone","camera"]})";
  EXPECT_THAT(sends(h.msg(1, R"(2["offer",")" + b + "\"," + offer + "]")),
              ElementsAre(Sent{2, R"(42["offer",")" + b + "\"," + offer + "]"}));
  const std::string answer = R"({"userId":")" + w + R"(","streamId":"s1","description":{"type":"answer","sdp":"v=0\r\n"}})";
  EXPECT_THAT(sends(h.msg(2, R"(2["answer",")" + b + "\"," + answer + "]")),
              ElementsAre(Sent{1, R"(42["answer",")" + b + "\"," + answer + "]"}));

  // candidate(targetId, {userId, streamId, candidate}) arrives as candidate(userId, {candidate}).
  const std::string cand = R"({"candidate":"candidate:1 1 udp 2122260223 192.168.1.2 50000 typ host","sdpMid":"0","sdpMLineIndex":0})";
  EXPECT_THAT(sends(h.msg(2, R"(2["candidate",")" + b + R"(",{"candidate":)" + cand + R"(,"userId":")" + w +
                                 R"(","streamId":"s1"}])")),
              ElementsAre(Sent{1, R"(42["candidate",")" + w + R"(",{"candidate":)" + cand + "}]"}));
  // The web app's broadcaster names itself by its SS58 address in candidates.
  const std::string b_ss58 = keys::ss58_encode(B.public_key());
  EXPECT_THAT(sends(h.msg(1, R"(2["candidate",")" + w + R"(",{"userId":")" + b_ss58 + R"(","candidate":)" + cand +
                                 R"(,"streamId":"s1"}])")),
              ElementsAre(Sent{2, R"(42["candidate",")" + b_ss58 + R"(",{"candidate":)" + cand + "}]"}));

  auto c = h.router.counters();
  EXPECT_EQ(c.messages_relayed, 4u);
  EXPECT_EQ(c.streams_live, 1u);
  EXPECT_EQ(c.watchers, 1u);
  EXPECT_EQ(c.connections_open, 2u);
  EXPECT_EQ(c.chain_lookups, 2u);
}

TEST(SignalRouter, WatchersCountAndIsStreamingFollowTheStream) {
  Harness h;
  h.live(1, B, "s1");
  h.connect(2);
  h.connect(3);
  h.connect(4);
  h.watch(2, W, "s1");
  h.subscribers(B, {&W, &W2});
  auto a = h.watch(3, W2, "s1");  // answered from the cache
  EXPECT_TRUE(non_sends(a).empty());
  EXPECT_THAT(sends(a), ElementsAre(Sent{1, R"(42["watch",")" + hex(W2) + R"(",{"streamId":"s1"}])"},
                                    Sent{1, R"(42["watchersCount",2])"}, Sent{1, R"(42["isStreaming",true])"},
                                    Sent{2, R"(42["watchersCount",2])"}, Sent{2, R"(42["isStreaming",true])"},
                                    Sent{3, R"(42["watchersCount",2])"}, Sent{3, R"(42["isStreaming",true])"},
                                    Sent{3, R"(42["placement",{"parentId":")" + hex(B) + R"(","depth":1}])"}));

  EXPECT_THAT(sends(h.msg(4, R"(2["getWatchersCount",null,{"streamId":"s1"}])")), ElementsAre(Sent{4, R"(42["watchersCount",2])"}));
  EXPECT_THAT(sends(h.msg(4, R"(2["getIsStreaming","0x",{"streamId":"s1"}])")), ElementsAre(Sent{4, R"(42["isStreaming",true])"}));
  EXPECT_THAT(sends(h.msg(4, R"(2["getIsStreaming",null,{"streamId":"other"}])")), ElementsAre(Sent{4, R"(42["isStreaming",false])"}));
  EXPECT_THAT(sends(h.msg(4, R"(2["getWatchersCount",null,{"streamId":"other"}])")), ElementsAre(Sent{4, R"(42["watchersCount",0])"}));

  // stopWatching: the broadcaster hears it, everyone left gets the new count.
  EXPECT_THAT(sends(h.event(2, Json::array({"stopWatching", hex(W), {{"streamId", "s1"}}}))),
              ElementsAre(Sent{1, R"(42["stopWatching",")" + hex(W) + R"(",{"streamId":"s1"}])"},
                          Sent{1, R"(42["watchersCount",1])"}, Sent{3, R"(42["watchersCount",1])"}));
  // Someone else's stopWatching for W2 does nothing.
  EXPECT_TRUE(h.event(4, Json::array({"stopWatching", hex(W2), {{"streamId", "s1"}}})).empty());
  EXPECT_EQ(h.router.watcher_count("s1"), 1u);

  // stopBroadcasting: everyone gets isStreaming(false), watchers also stopBroadcasting.
  EXPECT_THAT(sends(h.event(1, Json::array({"stopBroadcasting", hex(B), {{"streamId", "s1"}}}))),
              ElementsAre(Sent{1, R"(42["isStreaming",false])"}, Sent{3, R"(42["isStreaming",false])"},
                          Sent{3, R"(42["stopBroadcasting",")" + hex(B) + R"(",{"streamId":"s1","userId":")" + hex(W2) + R"("}])"}));
  EXPECT_FALSE(h.router.is_broadcasting(hex(B)));
  EXPECT_EQ(h.router.stream_count(), 0u);
}

TEST(SignalRouter, RefusesAWatchOfAStreamNotStarted) {
  Harness h;
  h.connect(2);
  auto a = h.watch(2, W, "s1");
  EXPECT_THAT(sends(a), ElementsAre(Sent{2, err("Stream with id s1 hasn't started yet")}));
  EXPECT_TRUE(non_sends(a).empty());  // no chain read for a stream that is not live
  EXPECT_EQ(h.refusals(Refusal::not_started), 1u);
}

TEST(SignalRouter, RefusesAWatcherWhoIsNotSubscribed) {
  Harness h;
  h.live(1, B, "s1");
  h.connect(3);
  h.watch(3, X, "s1");
  EXPECT_THAT(sends(h.subscribers(B, {&W})), ElementsAre(Sent{3, err("You aren't subscribed to this speaker")}));
  auto again = h.watch(3, X, "s1");  // from the cache, no second chain read
  EXPECT_TRUE(non_sends(again).empty());
  EXPECT_THAT(sends(again), ElementsAre(Sent{3, err("You aren't subscribed to this speaker")}));
  EXPECT_EQ(h.refusals(Refusal::not_subscribed), 2u);
  EXPECT_EQ(h.router.watcher_count("s1"), 0u);
}

TEST(SignalRouter, ChecksTheSignatureFirst) {
  Harness h;
  h.connect(2);
  // A signature by another key, and a signature over the wrong text, on a stream that is not
  // even live: the signature check comes first.
  Json o;
  o["streamId"] = "s1";
  o["auth"] = h.auth(X, "watch", "s1", 2);
  EXPECT_THAT(sends(h.event(2, Json::array({"watch", hex(W), o}))),
              ElementsAre(Sent{2, err("Signature isn't valid: auth.publicKey is not the id you gave")}));
  o["auth"] = h.auth(W, "broadcast", "s1", 2);
  EXPECT_THAT(sends(h.event(2, Json::array({"watch", hex(W), o}))), ElementsAre(Sent{2, err("Signature isn't valid")}));
  o.erase("auth");
  EXPECT_THAT(sends(h.event(2, Json::array({"watch", hex(W), o}))),
              ElementsAre(Sent{2, err("Signature isn't valid: this server needs auth {publicKey, signature} over the challenge")}));
  EXPECT_THAT(sends(h.event(2, Json::array({"watch", "W", o}))),
              ElementsAre(Sent{2, err("watch: userId must be 0x + 64 hex digits")}));
  EXPECT_EQ(h.refusals(Refusal::bad_signature), 3u);
  EXPECT_EQ(h.refusals(Refusal::not_started), 0u);
}

TEST(SignalRouter, ANonceWorksOnceAndAFreshChallengeFollows) {
  Harness h;
  h.live(1, B, "s1");
  h.connect(2);
  const std::string first = h.nonce[2];
  Json o;
  o["streamId"] = "s1";
  o["auth"] = h.auth(W, "watch", "s1", 2);
  const std::string text = "2" + dump_json(Json::array({"watch", hex(W), o}));
  auto a = h.msg(2, text);
  EXPECT_THAT(non_sends(a), ElementsAre(Action{LookupSubscribers{B.public_key()}}));
  EXPECT_NE(h.nonce[2], first);  // a fresh challenge came with it
  h.subscribers(B, {&W});
  EXPECT_EQ(h.router.watcher_count("s1"), 1u);

  // The same packet again is a replay.
  a = h.msg(2, text);
  EXPECT_THAT(sends(a), ElementsAre(Sent{2, err("Signature isn't valid")}));
  // Echoing the old nonce gives the precise reason.
  o["auth"]["nonce"] = first;
  EXPECT_THAT(sends(h.event(2, Json::array({"watch", hex(W), o}))),
              ElementsAre(Sent{2, err("Challenge nonce is not this connection's latest: sign the newest challenge")}));
  EXPECT_EQ(h.refusals(Refusal::stale_nonce), 1u);
}

TEST(SignalRouter, ANonceIsBoundToItsSocket) {
  Harness h;
  h.live(1, B, "s1");
  h.connect(2);
  h.connect(3);
  Json o;
  o["streamId"] = "s1";
  o["auth"] = h.auth(W, "watch", "s1", /*nonce of*/ 3);
  EXPECT_THAT(sends(h.event(2, Json::array({"watch", hex(W), o}))), ElementsAre(Sent{2, err("Signature isn't valid")}));
  o["auth"] = h.auth(W, "watch", "s1", 3);
  o["auth"]["nonce"] = h.nonce[3];
  EXPECT_THAT(sends(h.event(2, Json::array({"watch", hex(W), o}))),
              ElementsAre(Sent{2, err("Challenge nonce is not this connection's latest: sign the newest challenge")}));
  // Socket 3's nonce is still good on socket 3.
  EXPECT_THAT(non_sends(h.watch(3, W, "s1")), ElementsAre(Action{LookupSubscribers{B.public_key()}}));
}

TEST(SignalRouter, AnExpiredNonceIsRefused) {
  RouterConfig cfg;
  cfg.nonce_ttl_ms = 1000;
  Harness h(cfg);
  h.connect(1);
  h.now += 1001;
  EXPECT_THAT(sends(h.broadcast(1, B, "s1")), ElementsAre(Sent{1, err("Challenge expired: sign the newest challenge")}));
  EXPECT_THAT(non_sends(h.broadcast(1, B, "s1")), ElementsAre(Action{LookupStream{"s1"}}));  // the fresh one works
}

TEST(SignalRouter, OnlyTheChainsBroadcasterMayStartAStream) {
  Harness h;
  h.connect(1);
  EXPECT_THAT(non_sends(h.broadcast(1, X, "s1")), ElementsAre(Action{LookupStream{"s1"}}));
  EXPECT_THAT(sends(h.owner("s1", B)), ElementsAre(Sent{1, err("Only the broadcaster of stream s1 may start it")}));
  EXPECT_FALSE(h.router.is_broadcasting(hex(X)));

  h.broadcast(1, B, "nope");
  EXPECT_THAT(sends(h.router.on_stream_answer({"nope", true, std::nullopt}, h.now)),
              ElementsAre(Sent{1, err("Stream with id nope doesn't exist on chain")}));

  Json o;
  o["streamId"] = "s1";
  EXPECT_THAT(sends(h.event(1, Json::array({"broadcast", hex(B), o}))),
              ElementsAre(Sent{1, err("Signature isn't valid: broadcast needs auth {publicKey, signature} over the challenge")}));
  EXPECT_EQ(h.refusals(Refusal::not_owner), 1u);
  EXPECT_EQ(h.refusals(Refusal::unknown_stream), 1u);
  EXPECT_EQ(h.refusals(Refusal::bad_signature), 1u);

  // The owner answer was cached: B starts s1 without a second chain read.
  auto a = h.broadcast(1, B, "s1");
  EXPECT_TRUE(non_sends(a).empty());
  EXPECT_THAT(sends(a), ElementsAre(Sent{1, R"(42["isStreaming",true])"}));
}

TEST(SignalRouter, RefusesASecondLiveStream) {
  Harness h;
  h.live(1, B, "s1");
  auto a = h.broadcast(1, B, "s1");
  EXPECT_THAT(sends(a), ElementsAre(Sent{1, err("You already have a stream running")}));
  EXPECT_TRUE(non_sends(a).empty());
  h.connect(2);
  EXPECT_THAT(sends(h.broadcast(2, B, "s2")), ElementsAre(Sent{2, err("You already have a stream running")}));
  EXPECT_EQ(h.refusals(Refusal::already_live), 2u);
  // The HTTP check the web app makes before going live.
  EXPECT_TRUE(h.router.is_broadcasting(keys::ss58_encode(B.public_key())));
  EXPECT_FALSE(h.router.is_broadcasting(hex(W)));
  EXPECT_FALSE(h.router.is_broadcasting("junk"));
}

TEST(SignalRouter, ABroadcastersDisconnectEndsItsStream) {
  Harness h;
  h.live(1, B, "s1");
  h.connect(2);
  h.connect(3);
  h.watch(2, W, "s1");
  h.subscribers(B, {&W, &W2});
  h.watch(3, W2, "s1");
  auto a = h.router.on_close(1, h.now);
  EXPECT_THAT(sends(a), ElementsAre(Sent{2, R"(42["isStreaming",false])"},
                                    Sent{2, R"(42["stopBroadcasting",")" + hex(B) + R"(",{"streamId":"s1","userId":")" + hex(W) + R"("}])"},
                                    Sent{3, R"(42["isStreaming",false])"},
                                    Sent{3, R"(42["stopBroadcasting",")" + hex(B) + R"(",{"streamId":"s1","userId":")" + hex(W2) + R"("}])"}));
  EXPECT_EQ(h.router.stream_count(), 0u);
  EXPECT_EQ(h.router.socket_count(), 2u);
  EXPECT_TRUE(h.router.on_close(1, h.now).empty());  // twice is harmless
  // The watchers are free again: nothing of s1 is left on their sockets.
  EXPECT_TRUE(h.router.on_close(2, h.now).empty());
}

TEST(SignalRouter, AWatchersDisconnectIsAStopWatching) {
  Harness h;
  h.live(1, B, "s1");
  h.connect(2);
  h.connect(3);
  h.watch(2, W, "s1");
  h.subscribers(B, {&W, &W2});
  h.watch(3, W2, "s1");
  EXPECT_THAT(sends(h.router.on_close(2, h.now)),
              ElementsAre(Sent{1, R"(42["stopWatching",")" + hex(W) + R"(",{"streamId":"s1"}])"},
                          Sent{1, R"(42["watchersCount",1])"}, Sent{3, R"(42["watchersCount",1])"}));
  // A Socket.IO DISCONNECT ("41") leaves too, and the socket must CONNECT again to send events.
  EXPECT_THAT(sends(h.msg(3, "1")), ElementsAre(Sent{1, R"(42["stopWatching",")" + hex(W2) + R"(",{"streamId":"s1"}])"},
                                              Sent{1, R"(42["watchersCount",0])"}));
  EXPECT_EQ(h.router.watcher_count("s1"), 0u);
  auto a = h.msg(3, "0");  // CONNECT again: a new sid and a new challenge
  ASSERT_EQ(a.size(), 2u);
  EXPECT_THAT(std::get<SendAction>(a[0]).packet, HasSubstr("40{\"sid\":"));
  EXPECT_THAT(sends(h.msg(3, R"(2["getIsStreaming",null,{"streamId":"s1"}])")), ElementsAre(Sent{3, R"(42["isStreaming",true])"}));
}

TEST(SignalRouter, RateLimitBreachWarnsThenCloses) {
  RouterConfig cfg;
  cfg.messages_per_second = 1;
  cfg.message_burst = 2;
  Harness h(cfg);
  h.connect(1);  // the CONNECT takes one token
  const std::string q = R"(2["getIsStreaming",null,{"streamId":"s"}])";
  EXPECT_THAT(sends(h.msg(1, q)), ElementsAre(Sent{1, R"(42["isStreaming",false])"}));
  EXPECT_THAT(sends(h.msg(1, q)), ElementsAre(Sent{1, err("Too many messages: slow down to 1 per second")}));
  auto a = h.msg(1, q);
  EXPECT_THAT(a, ElementsAre(Action{CloseAction{1, "Too many messages: slow down to 1 per second"}}));
  EXPECT_EQ(h.router.socket_count(), 0u);
  EXPECT_EQ(h.refusals(Refusal::rate_limited), 2u);
  EXPECT_EQ(h.router.counters().closes_by_server, 1u);
  EXPECT_TRUE(h.msg(1, q).empty());  // a closed socket is forgotten
}

TEST(SignalRouter, AnIsolatedBreachIsForgiven) {
  RouterConfig cfg;
  cfg.messages_per_second = 1;
  cfg.message_burst = 1;
  cfg.strike_window_ms = 5000;
  Harness h(cfg);
  h.connect(1);
  const std::string q = R"(2["getIsStreaming",null,{"streamId":"s"}])";
  EXPECT_THAT(sends(h.msg(1, q)), ElementsAre(Sent{1, err("Too many messages: slow down to 1 per second")}));
  h.now += 6000;
  EXPECT_THAT(sends(h.msg(1, q)), ElementsAre(Sent{1, R"(42["isStreaming",false])"}));
  EXPECT_THAT(sends(h.msg(1, q)), ElementsAre(Sent{1, err("Too many messages: slow down to 1 per second")}));
  EXPECT_EQ(h.router.socket_count(), 1u);
}

TEST(SignalRouter, LimitsConnectionsPerIp) {
  RouterConfig cfg;
  cfg.max_connections_per_ip = 2;
  Harness h(cfg);
  EXPECT_TRUE(h.open(1, "192.0.2.1").empty());
  EXPECT_TRUE(h.open(2, "192.0.2.1").empty());
  EXPECT_THAT(h.open(3, "192.0.2.1"),
              ElementsAre(Action{CloseAction{3, "too many connections from 192.0.2.1; close some first"}}));
  EXPECT_TRUE(h.open(4, "192.0.2.2").empty());
  h.router.on_close(1, h.now);
  EXPECT_TRUE(h.open(5, "192.0.2.1").empty());
  EXPECT_EQ(h.router.socket_count(), 3u);
  EXPECT_EQ(h.refusals(Refusal::too_many_connections), 1u);
}

TEST(SignalRouter, OneChainReadServesEveryQueuedJoin) {
  Harness h;
  h.live(1, B, "s1");
  h.connect(2);
  h.connect(3);
  h.connect(4);
  EXPECT_THAT(non_sends(h.watch(2, W, "s1")), ElementsAre(Action{LookupSubscribers{B.public_key()}}));
  EXPECT_TRUE(non_sends(h.watch(3, W2, "s1")).empty());
  EXPECT_TRUE(non_sends(h.watch(4, X, "s1")).empty());
  EXPECT_EQ(h.router.pending_count(), 3u);
  EXPECT_EQ(h.router.lookups_in_flight(), 1u);
  auto a = h.subscribers(B, {&W, &W2});
  EXPECT_EQ(h.router.pending_count(), 0u);
  EXPECT_EQ(h.router.lookups_in_flight(), 0u);
  EXPECT_EQ(h.router.watcher_count("s1"), 2u);
  auto s = sends(a);
  EXPECT_EQ(s.back(), (Sent{4, err("You aren't subscribed to this speaker")}));
  EXPECT_EQ(h.router.counters().chain_lookups, 2u);  // the stream owner and one subscriber set
}

TEST(SignalRouter, CachedAnswersExpire) {
  RouterConfig cfg;
  cfg.cache_ttl_ms = 1000;
  Harness h(cfg);
  h.live(1, B, "s1");
  h.connect(2);
  h.connect(3);
  h.connect(4);
  h.watch(2, W, "s1");
  h.subscribers(B, {&W, &W2, &X});
  h.now += 999;
  EXPECT_TRUE(non_sends(h.watch(3, W2, "s1")).empty());
  h.now += 1;
  h.router.on_tick(h.now);
  EXPECT_EQ(h.router.cache_size(), 0u);
  EXPECT_THAT(non_sends(h.watch(4, X, "s1")), ElementsAre(Action{LookupSubscribers{B.public_key()}}));
  h.subscribers(B, {&W, &W2, &X});
  EXPECT_EQ(h.router.watcher_count("s1"), 3u);

  // A chain event invalidates at once.
  h.router.invalidate_subscribers(B.public_key());
  h.router.on_close(4, h.now);
  h.connect(5);
  EXPECT_THAT(non_sends(h.watch(5, X, "s1")), ElementsAre(Action{LookupSubscribers{B.public_key()}}));
}

TEST(SignalRouter, ChainFailuresAndTimeoutsRefuseTheWaitingJoins) {
  RouterConfig cfg;
  cfg.chain_timeout_ms = 5000;
  Harness h(cfg);
  h.live(1, B, "s1");
  h.connect(2);
  h.watch(2, W, "s1");
  EXPECT_THAT(sends(h.router.on_subscribers_answer({B.public_key(), false, {}}, h.now)),
              ElementsAre(Sent{2, err("Could not read subscriptions from the chain: try again")}));
  EXPECT_THAT(non_sends(h.watch(2, W, "s1")), ElementsAre(Action{LookupSubscribers{B.public_key()}}));
  h.now += 4999;
  EXPECT_TRUE(h.router.on_tick(h.now).empty());
  h.now += 1;
  EXPECT_THAT(sends(h.router.on_tick(h.now)), ElementsAre(Sent{2, err("Could not read subscriptions from the chain: try again")}));
  EXPECT_EQ(h.router.pending_count(), 0u);
  EXPECT_EQ(h.router.lookups_in_flight(), 0u);
  EXPECT_EQ(h.refusals(Refusal::chain_unavailable), 2u);
}

TEST(SignalRouter, BoundsTheJoinsWaitingForTheChain) {
  RouterConfig cfg;
  cfg.max_pending_per_socket = 1;
  Harness h(cfg);
  h.live(1, B, "s1");
  h.connect(2);
  h.watch(2, W, "s1");
  EXPECT_THAT(sends(h.watch(2, W2, "s1")), ElementsAre(Sent{2, err("Too many joins are waiting for the chain: try again shortly")}));
  EXPECT_EQ(h.router.pending_count(), 1u);
  h.router.on_close(2, h.now);
  EXPECT_EQ(h.router.pending_count(), 0u);
}

TEST(SignalRouter, BoundsTheChainLookupsInFlight) {
  RouterConfig cfg;
  cfg.max_pending_joins = 2;
  Harness h(cfg);
  h.live(1, B, "s1");
  h.connect(2);
  h.connect(3);
  h.connect(4);
  h.watch(2, W, "s1");
  EXPECT_THAT(non_sends(h.broadcast(3, X, "s9")), ElementsAre(Action{LookupStream{"s9"}}));
  h.router.on_close(2, h.now);
  h.router.on_close(3, h.now);
  // The joins are gone but their two lookups are still out: a third is refused.
  EXPECT_EQ(h.router.pending_count(), 0u);
  EXPECT_EQ(h.router.lookups_in_flight(), 2u);
  EXPECT_THAT(sends(h.broadcast(4, X, "s8")), ElementsAre(Sent{4, err("Too many joins are waiting for the chain: try again shortly")}));
  h.router.on_stream_answer({"s9", true, X.public_key()}, h.now);
  EXPECT_THAT(non_sends(h.broadcast(4, X, "s8")), ElementsAre(Action{LookupStream{"s8"}}));
}

TEST(SignalRouter, LegacySignedMsgIsOffByDefault) {
  Harness h;
  h.live(1, B, "s1");
  h.connect(2);
  const std::string address = keys::ss58_encode(W.public_key());
  Json o;
  o["streamId"] = "s1";
  o["signedMsg"] = to_hex(W.sign(view("<Bytes>" + address + "</Bytes>")));
  o["encodedId"] = address;
  EXPECT_THAT(sends(h.event(2, Json::array({"watch", hex(W), o}))),
              ElementsAre(Sent{2, err("Signature isn't valid: this server needs auth {publicKey, signature} over the challenge")}));
}

TEST(SignalRouter, LegacySignedMsgWhenSwitchedOn) {
  RouterConfig cfg;
  cfg.legacy_signed_msg = true;
  Harness h(cfg);
  h.live(1, B, "s1");
  h.connect(2);
  // Exactly what the web app sends: watch(decodedAddress, {streamId, signedMsg, encodedId}).
  const std::string address = keys::ss58_encode(W.public_key());
  Json o;
  o["streamId"] = "s1";
  o["signedMsg"] = to_hex(W.sign(view("<Bytes>" + address + "</Bytes>")));
  o["encodedId"] = address;
  const Json watch = Json::array({"watch", hex(W), o});
  EXPECT_THAT(non_sends(h.event(2, watch)), ElementsAre(Action{LookupSubscribers{B.public_key()}}));
  h.subscribers(B, {&W, &X});
  EXPECT_EQ(h.router.watcher_count("s1"), 1u);
  // The web app repeats watch every 2 s until media flows: the broadcaster hears it again.
  EXPECT_THAT(sends(h.event(2, watch)),
              ElementsAre(Sent{1, R"(42["watch",")" + hex(W) + R"(",{"streamId":"s1"}])"},
                          Sent{1, R"(42["watchersCount",1])"}, Sent{1, R"(42["isStreaming",true])"},
                          Sent{2, R"(42["watchersCount",1])"}, Sent{2, R"(42["isStreaming",true])"},
                          Sent{2, R"(42["placement",{"parentId":")" + hex(B) + R"(","depth":1}])"}));
  EXPECT_EQ(h.router.watcher_count("s1"), 1u);

  // W's legacy signature does not let X watch as X, nor as W with X's address.
  h.connect(3);
  Json stolen = Json::array({"watch", hex(X), o});
  EXPECT_THAT(sends(h.event(3, stolen)), ElementsAre(Sent{3, err("Signature isn't valid")}));
  const std::string x_address = keys::ss58_encode(X.public_key());
  Json mixed = o;
  mixed["encodedId"] = x_address;
  mixed["signedMsg"] = to_hex(X.sign(view("<Bytes>" + x_address + "</Bytes>")));
  EXPECT_THAT(sends(h.event(3, Json::array({"watch", hex(W), mixed}))), ElementsAre(Sent{3, err("Signature isn't valid")}));
  // The challenge still works in legacy mode.
  EXPECT_THAT(sends(h.watch(3, X, "s1")).back(), (Sent{3, R"(42["placement",{"parentId":")" + hex(B) + R"(","depth":1}])"}));
  EXPECT_EQ(h.router.watcher_count("s1"), 2u);
}

TEST(SignalRouter, PlacesRelayWatchersAndReplacesOrphans) {
  RouterConfig cfg;
  cfg.broadcaster_slots = 1;
  Harness h(cfg);
  h.live(1, B, "s1");
  h.connect(2);
  h.connect(3);
  h.connect(4);
  Json relay;
  relay["relay"]["slots"] = 1;
  h.watch(2, W, "s1", relay);
  EXPECT_THAT(sends(h.subscribers(B, {&W, &W2, &X})).back(),
              (Sent{2, R"(42["placement",{"parentId":")" + hex(B) + R"(","depth":1}])"}));
  // The broadcaster is full: W2 goes under W, which is told to make the offer.
  EXPECT_THAT(sends(h.watch(3, W2, "s1")),
              ElementsAre(Sent{2, R"(42["watch",")" + hex(W2) + R"(",{"streamId":"s1","relay":true}])"},
                          Sent{1, R"(42["watchersCount",2])"}, Sent{1, R"(42["isStreaming",true])"},
                          Sent{2, R"(42["watchersCount",2])"}, Sent{2, R"(42["isStreaming",true])"},
                          Sent{3, R"(42["watchersCount",2])"}, Sent{3, R"(42["isStreaming",true])"},
                          Sent{3, R"(42["placement",{"parentId":")" + hex(W) + R"(","depth":2}])"}));
  // Everyone is full now: X waits in the queue, on the stream but under nobody.
  EXPECT_THAT(sends(h.watch(4, X, "s1")),
              ElementsAre(Sent{1, R"(42["watchersCount",3])"}, Sent{1, R"(42["isStreaming",true])"},
                          Sent{2, R"(42["watchersCount",3])"}, Sent{2, R"(42["isStreaming",true])"},
                          Sent{3, R"(42["watchersCount",3])"}, Sent{3, R"(42["isStreaming",true])"},
                          Sent{4, R"(42["watchersCount",3])"}, Sent{4, R"(42["isStreaming",true])"},
                          Sent{4, err("No relay slot free")}));
  EXPECT_EQ(h.router.counters().queued, 1u);

  // Only a parent may offer to its child; the relay's offer goes through.
  const std::string offer = R"({"streamId":"s1","userId":")" + hex(W2) + R"(","description":{"type":"offer","sdp":"x"}})";
  EXPECT_TRUE(sends(h.msg(1, R"(2["offer",")" + hex(B) + "\"," + offer + "]")).empty());
  EXPECT_THAT(sends(h.msg(2, R"(2["offer",")" + hex(W) + "\"," + offer + "]")),
              ElementsAre(Sent{3, R"(42["offer",")" + hex(W) + "\"," + offer + "]"}));
  const std::string answer = R"({"streamId":"s1","userId":")" + hex(W2) + R"(","description":{"type":"answer","sdp":"y"}})";
  EXPECT_THAT(sends(h.msg(3, R"(2["answer",")" + hex(W) + "\"," + answer + "]")),
              ElementsAre(Sent{2, R"(42["answer",")" + hex(W) + "\"," + answer + "]"}));

  // The relay leaves: W2 moves under the broadcaster; W2 is a leaf, so X still waits.
  EXPECT_THAT(sends(h.router.on_close(2, h.now)),
              ElementsAre(Sent{1, R"(42["stopWatching",")" + hex(W) + R"(",{"streamId":"s1"}])"},
                          Sent{1, R"(42["watch",")" + hex(W2) + R"(",{"streamId":"s1"}])"},
                          Sent{3, R"(42["placement",{"parentId":")" + hex(B) + R"(","depth":1}])"},
                          Sent{1, R"(42["watchersCount",2])"}, Sent{3, R"(42["watchersCount",2])"},
                          Sent{4, R"(42["watchersCount",2])"}));
  EXPECT_EQ(h.router.check(), "");
}

TEST(SignalRouter, AnOrphanKeepsItsSubtree) {
  RouterConfig cfg;
  cfg.broadcaster_slots = 1;
  Harness h(cfg);
  const keys::Keypair W3 = keypair(0x03);
  h.live(1, B, "s1");
  for (SocketId s : {2, 3, 4}) h.connect(s);
  Json relay;
  relay["relay"]["slots"] = 1;
  h.watch(2, W, "s1", relay);    // B -> W
  h.subscribers(B, {&W, &W2, &W3});
  h.watch(3, W2, "s1", relay);   // B -> W -> W2
  h.watch(4, W3, "s1");          // B -> W -> W2 -> W3
  // W leaves: W2 moves under B and keeps W3, which only learns its new depth.
  EXPECT_THAT(sends(h.router.on_close(2, h.now)),
              ElementsAre(Sent{1, R"(42["stopWatching",")" + hex(W) + R"(",{"streamId":"s1"}])"},
                          Sent{1, R"(42["watch",")" + hex(W2) + R"(",{"streamId":"s1"}])"},
                          Sent{3, R"(42["placement",{"parentId":")" + hex(B) + R"(","depth":1}])"},
                          Sent{4, R"(42["placement",{"parentId":")" + hex(W2) + R"(","depth":2}])"},
                          Sent{1, R"(42["watchersCount",2])"}, Sent{3, R"(42["watchersCount",2])"},
                          Sent{4, R"(42["watchersCount",2])"}));
  // W3's relay parent is still W2: W2 may offer to it, B may not.
  const std::string offer = R"({"streamId":"s1","userId":")" + hex(W3) + R"(","description":{"type":"offer","sdp":"x"}})";
  EXPECT_EQ(sends(h.msg(3, R"(2["offer",")" + hex(W2) + "\"," + offer + "]")).size(), 1u);
  EXPECT_TRUE(sends(h.msg(1, R"(2["offer",")" + hex(B) + "\"," + offer + "]")).empty());
}

TEST(SignalRouter, AnOrphanWithNowhereToGoWaitsInTheQueue) {
  RouterConfig cfg;
  cfg.broadcaster_slots = 1;
  Harness h(cfg);
  const keys::Keypair W3 = keypair(0x03);
  h.live(1, B, "s1");
  for (SocketId s : {2, 3, 4}) h.connect(s);
  Json relay;
  relay["relay"]["slots"] = 2;
  h.watch(2, W, "s1", relay);  // B -> W -> {W2, W3}
  h.subscribers(B, {&W, &W2, &W3});
  h.watch(3, W2, "s1");
  h.watch(4, W3, "s1");
  EXPECT_THAT(sends(h.router.on_close(2, h.now)),
              ElementsAre(Sent{1, R"(42["stopWatching",")" + hex(W) + R"(",{"streamId":"s1"}])"},
                          Sent{1, R"(42["watch",")" + hex(W2) + R"(",{"streamId":"s1"}])"},
                          Sent{3, R"(42["placement",{"parentId":")" + hex(B) + R"(","depth":1}])"},
                          Sent{4, err("No relay slot free")},
                          Sent{1, R"(42["watchersCount",2])"}, Sent{3, R"(42["watchersCount",2])"},
                          Sent{4, R"(42["watchersCount",2])"}));
  EXPECT_EQ(h.router.watcher_count("s1"), 2u);
  EXPECT_EQ(h.refusals(Refusal::no_slot), 1u);
  EXPECT_EQ(h.router.counters().queued, 1u);
  // W2 leaves: its slot at the broadcaster goes to W3 at once.
  EXPECT_THAT(sends(h.router.on_close(3, h.now)),
              ElementsAre(Sent{1, R"(42["stopWatching",")" + hex(W2) + R"(",{"streamId":"s1"}])"},
                          Sent{1, R"(42["watch",")" + hex(W3) + R"(",{"streamId":"s1"}])"},
                          Sent{4, R"(42["placement",{"parentId":")" + hex(B) + R"(","depth":1}])"},
                          Sent{1, R"(42["watchersCount",1])"}, Sent{4, R"(42["watchersCount",1])"}));
  EXPECT_EQ(h.router.counters().queued, 0u);
  EXPECT_EQ(h.router.check(), "");
}

// The deployed web app answers {watcherId, description} and sends candidates as {id, candidate},
// without streamId: the sender's one stream is meant, and the payload goes on unchanged.
TEST(SignalRouter, RelaysTheWebAppsAnswerAndCandidateShapes) {
  Harness h;
  h.live(1, B, "s1");
  h.connect(2);
  h.connect(3);
  h.watch(2, W, "s1");
  h.subscribers(B, {&W, &W2});
  h.watch(3, W2, "s1");
  const std::string b = hex(B), w = hex(W);

  const std::string answer = R"({"watcherId":")" + w + R"(","description":{"type":"answer","sdp":"v=0\r\n"}})";
  EXPECT_THAT(sends(h.msg(2, R"(2["answer",")" + b + "\"," + answer + "]")),
              ElementsAre(Sent{1, R"(42["answer",")" + b + "\"," + answer + "]"}));
  const std::string cand = R"({"candidate":"candidate:1 1 udp 2122260223 192.168.1.2 50000 typ host","sdpMid":"0","sdpMLineIndex":0})";
  EXPECT_THAT(sends(h.msg(2, R"(2["candidate",")" + b + R"(",{"id":")" + w + R"(","candidate":)" + cand + "}]")),
              ElementsAre(Sent{1, R"(42["candidate",")" + w + R"(",{"candidate":)" + cand + "}]"}));
  EXPECT_THAT(sends(h.msg(1, R"(2["candidate",")" + w + R"(",{"id":")" + b + R"(","candidate":)" + cand + "}]")),
              ElementsAre(Sent{2, R"(42["candidate",")" + b + R"(",{"candidate":)" + cand + "}]"}));
  EXPECT_EQ(h.router.counters().messages_relayed, 3u);

  // The alias is checked like userId: W cannot answer in W2's name.
  const std::string spoof = R"({"watcherId":")" + hex(W2) + R"(","description":{"type":"answer","sdp":"y"}})";
  EXPECT_THAT(sends(h.msg(2, R"(2["answer",")" + b + "\"," + spoof + "]")),
              ElementsAre(Sent{2, err("answer: this connection is not " + hex(W2) + " on stream s1")}));
  EXPECT_EQ(h.refusals(Refusal::spoofed), 1u);

  // Neither userId nor its alias: the parser's error, nothing relayed.
  auto none = sends(h.msg(2, R"(2["candidate",")" + b + R"(",{"candidate":)" + cand + "}]"));
  ASSERT_EQ(none.size(), 1u);
  EXPECT_EQ(none[0].first, 2u);
  EXPECT_THAT(none[0].second, HasSubstr("candidate: userId is missing"));
  none = sends(h.msg(2, R"(2["answer",")" + b + R"(",{"description":{"type":"answer","sdp":"y"}}])"));
  ASSERT_EQ(none.size(), 1u);
  EXPECT_THAT(none[0].second, HasSubstr("answer: userId is missing"));
  EXPECT_EQ(h.router.counters().messages_relayed, 3u);
}

TEST(SignalRouter, AMissingStreamIdNeedsExactlyOneStream) {
  const keys::Keypair B2 = keypair(0xb2);
  Harness h;
  h.live(1, B, "s1");
  h.live(2, B2, "s2");
  h.connect(3);
  h.watch(3, W, "s1");
  h.subscribers(B, {&W});
  h.watch(3, W, "s2");
  h.subscribers(B2, {&W});
  const std::string w = hex(W);
  const std::string cand = R"({"candidate":"c"})";

  // In two streams: which one is unclear, so the sender is told to say.
  EXPECT_THAT(sends(h.msg(3, R"(2["candidate",")" + hex(B2) + R"(",{"id":")" + w + R"(","candidate":)" + cand + "}]")),
              ElementsAre(Sent{3, err("candidate: streamId is missing and this connection is in 2 streams: send streamId")}));
  // With streamId it goes through.
  EXPECT_THAT(sends(h.msg(3, R"(2["candidate",")" + hex(B2) + R"(",{"id":")" + w + R"(","streamId":"s2","candidate":)" + cand + "}]")),
              ElementsAre(Sent{2, R"(42["candidate",")" + w + R"(",{"candidate":)" + cand + "}]"}));

  // In no stream at all.
  h.connect(4);
  const std::string answer = R"({"watcherId":")" + hex(W2) + R"(","description":{"type":"answer","sdp":"y"}})";
  EXPECT_THAT(sends(h.msg(4, R"(2["answer",")" + hex(B) + "\"," + answer + "]")),
              ElementsAre(Sent{4, err("answer: streamId is missing and this connection is in no stream: send streamId")}));
  EXPECT_EQ(h.refusals(Refusal::bad_request), 2u);
  EXPECT_EQ(h.router.counters().messages_relayed, 1u);
}

TEST(SignalRouter, RefusesSpoofedSignalling) {
  Harness h;
  h.live(1, B, "s1");
  h.connect(2);
  h.connect(3);
  h.watch(2, W, "s1");
  h.subscribers(B, {&W, &W2});
  h.watch(3, W2, "s1");
  // W pretends to be the broadcaster and offers to W2.
  const std::string offer = R"({"streamId":"s1","userId":")" + hex(W2) + R"(","description":{"type":"offer","sdp":"x"}})";
  EXPECT_THAT(sends(h.msg(2, R"(2["offer",")" + hex(B) + "\"," + offer + "]")),
              ElementsAre(Sent{2, err("offer: this connection is not " + hex(B) + " on stream s1")}));
  // W answers in W2's name.
  const std::string answer = R"({"streamId":"s1","userId":")" + hex(W2) + R"(","description":{"type":"answer","sdp":"y"}})";
  EXPECT_THAT(sends(h.msg(2, R"(2["answer",")" + hex(B) + "\"," + answer + "]")),
              ElementsAre(Sent{2, err("answer: this connection is not " + hex(W2) + " on stream s1")}));
  // Watchers are not each other's peers: a candidate from W to W2 goes nowhere.
  const std::string cand = R"({"userId":")" + hex(W) + R"(","streamId":"s1","candidate":{"candidate":"c"}})";
  EXPECT_TRUE(sends(h.msg(2, R"(2["candidate",")" + hex(W2) + "\"," + cand + "]")).empty());
  // Non-owners cannot stop the stream.
  EXPECT_THAT(sends(h.event(2, Json::array({"stopBroadcasting", hex(B), {{"streamId", "s1"}}}))),
              ElementsAre(Sent{2, err("Only the broadcaster can stop stream s1")}));
  EXPECT_EQ(h.refusals(Refusal::spoofed), 2u);
  EXPECT_EQ(h.router.counters().messages_relayed, 0u);
}

TEST(SignalRouter, OversizeAndMalformedPacketsStrikeThenClose) {
  RouterConfig cfg;
  cfg.max_frame = 100;
  Harness h(cfg);
  h.connect(1);
  EXPECT_THAT(sends(h.msg(1, "2[\"" + std::string(100, 'a') + "\"]")),
              ElementsAre(Sent{1, err("Message of 105 bytes exceeds the 100-byte limit")}));
  auto a = h.msg(1, "2[\"a\"");
  ASSERT_EQ(a.size(), 1u);
  EXPECT_THAT(std::get<CloseAction>(a[0]).reason, HasSubstr("Malformed Socket.IO packet"));
  EXPECT_EQ(h.refusals(Refusal::too_large), 1u);
  EXPECT_EQ(h.refusals(Refusal::protocol), 1u);

  // Wrong argument types are answered, not punished: the web app sends some.
  h.connect(2);
  for (int i = 0; i < 3; ++i)
    EXPECT_THAT(sends(h.msg(2, R"(2["watch",5,{}])")),
                ElementsAre(Sent{2, err("watch: argument 1 (userId) must be a non-empty string of at most 128 bytes")}));
  EXPECT_EQ(h.router.socket_count(), 1u);
}

TEST(SignalRouter, SocketIoHousekeeping) {
  Harness h;
  EXPECT_TRUE(h.open(1).empty());
  // Events before CONNECT close the socket at once, as socket.io does.
  EXPECT_THAT(h.msg(1, R"(2["getIsStreaming",null,{"streamId":"s"}])"),
              ElementsAre(Action{CloseAction{1, "protocol error: event before CONNECT"}}));
  h.open(2);
  EXPECT_THAT(h.msg(2, "0/admin,"), ElementsAre(Action{SendAction{2, R"(44/admin,{"message":"Invalid namespace"})"}}));
  h.msg(2, "0");
  // An ack id gets an empty ack; unknown events and acks from the client are ignored.
  EXPECT_THAT(sends(h.msg(2, R"(25["getIsStreaming",null,{"streamId":"s"}])")),
              ElementsAre(Sent{2, R"(42["isStreaming",false])"}, Sent{2, "435[]"}));
  EXPECT_TRUE(h.msg(2, R"(2["updateOffers","0x",{}])").empty());
  EXPECT_TRUE(h.msg(2, "31[]").empty());
  // A socket that never CONNECTs is closed after the connect timeout.
  h.open(3);
  EXPECT_TRUE(h.router.on_tick(h.now + 44999).empty());
  EXPECT_THAT(h.router.on_tick(h.now + 45000), ElementsAre(Action{CloseAction{3, "no Socket.IO CONNECT in time"}}));
  EXPECT_EQ(refusal_name(Refusal::not_subscribed), "not_subscribed");
  EXPECT_EQ(refusal_name(Refusal::busy), "busy");
}

// The tick looks only at sockets without a CONNECT (oldest first), not at every socket: connected
// ones are never timed out, one that leaves the namespace is timed from its opening again, and
// one that closes is forgotten.
TEST(SignalRouter, ConnectDeadlinesFollowConnectDisconnectAndClose) {
  Harness h;
  const auto t0 = h.now;
  h.open(1);
  h.msg(1, "0");
  h.open(2);
  h.msg(2, "0");
  h.open(3);
  h.router.on_close(3, t0);
  h.open(4);
  EXPECT_EQ(h.router.check(), "");
  EXPECT_TRUE(h.msg(2, "1").empty());  // Socket.IO DISCONNECT: back to waiting for CONNECT
  EXPECT_EQ(h.router.check(), "");
  EXPECT_TRUE(h.router.on_tick(t0 + 44999).empty());
  auto closes = h.router.on_tick(t0 + 45000);
  std::vector<SocketId> closed;
  for (const auto& a : closes)
    if (auto* c = std::get_if<CloseAction>(&a)) closed.push_back(c->socket);
  EXPECT_THAT(closed, ElementsAre(2, 4));
  EXPECT_EQ(h.router.check(), "");
  EXPECT_TRUE(h.router.on_tick(t0 + 90000).empty());  // socket 1 stays: it is connected
  EXPECT_EQ(h.router.counters().connections_open, 1u);
}

// ---- relay trees ----

namespace {

Json relay_slots(int k) {
  Json o;
  o["relay"]["slots"] = k;
  return o;
}

std::string placement(const keys::Keypair& parent, int depth) {
  return R"(42["placement",{"parentId":")" + hex(parent) + R"(","depth":)" + std::to_string(depth) + "}]";
}
std::string relay_watch(const keys::Keypair& child) {
  return R"(42["watch",")" + hex(child) + R"(",{"streamId":"s1","relay":true}])";
}
std::string direct_watch(const keys::Keypair& child) {
  return R"(42["watch",")" + hex(child) + R"(",{"streamId":"s1"}])";
}
std::string stop_watching(const keys::Keypair& child) {
  return R"(42["stopWatching",")" + hex(child) + R"(",{"streamId":"s1"}])";
}
bool contains(const std::vector<Sent>& sent, const Sent& one) {
  return std::find(sent.begin(), sent.end(), one) != sent.end();
}

// Sockets 10.. hold relay watchers R[0..]; the broadcaster B is on socket 1.
std::vector<keys::Keypair> relays(std::size_t n) {
  std::vector<keys::Keypair> out;
  for (std::size_t i = 0; i < n; ++i) out.push_back(keypair(static_cast<std::uint8_t>(0x20 + i)));
  return out;
}
void subscribe_all(Harness& h, const std::vector<keys::Keypair>& rs, std::vector<const keys::Keypair*> more = {}) {
  for (const auto& r : rs) more.push_back(&r);
  h.subscribers(B, more);
}

}  // namespace

TEST(SignalRelay, MaxDirectTwoAndTenRelaysOfTwoMakeATreeThreeDeep) {
  Harness h;
  h.live(1, B, "s1", relay_slots(2));  // broadcast(.., {streamId, auth, relay:{slots:2}})
  auto rs = relays(10);
  for (SocketId s = 10; s < 20; ++s) h.connect(s);
  h.watch(10, rs[0], "s1", relay_slots(2));
  subscribe_all(h, rs);
  for (std::size_t i = 1; i < 10; ++i) h.watch(10 + i, rs[i], "s1", relay_slots(2));
  const RelayTree* t = h.router.tree("s1");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->max_depth(), 3u);
  EXPECT_EQ(t->children_of(B.public_key()).size(), 2u);  // the broadcaster feeds --max-direct, no more
  EXPECT_EQ(t->parent_of(rs[2].public_key()), rs[0].public_key());
  EXPECT_EQ(t->parent_of(rs[9].public_key()), rs[3].public_key());
  EXPECT_EQ(h.router.check(), "");

  // An 11th: the oldest depth-2 relay with a free slot is its parent, told with relay:true.
  const keys::Keypair late = keypair(0x40);
  h.connect(30);
  h.router.invalidate_subscribers(B.public_key());
  h.watch(30, late, "s1");
  auto sent = sends(h.subscribers(B, {&late}));
  EXPECT_TRUE(contains(sent, Sent{14, relay_watch(late)}));
  EXPECT_EQ(sent.back(), (Sent{30, placement(rs[4], 3)}));
}

TEST(SignalRelay, TheServerCapAndMaxDirectGiveTheTighter) {
  for (auto [cap, asked, want] : {std::tuple{3, 5, 3u}, {3, 1, 1u}, {0, 2, 2u}, {3, 0, 3u}, {0, 0, 0u}}) {
    RouterConfig cfg;
    cfg.broadcaster_slots = static_cast<std::size_t>(cap);
    Harness h(cfg);
    h.live(1, B, "s1", asked ? relay_slots(asked) : Json::object());
    ASSERT_NE(h.router.tree("s1"), nullptr);
    EXPECT_EQ(h.router.tree("s1")->root_slots(), want) << cap << " " << asked;
  }
  // A malformed relay field is refused and the stream does not start.
  Harness h;
  h.connect(1);
  Json bad;
  bad["relay"]["slots"] = -1;
  EXPECT_THAT(sends(h.broadcast(1, B, "s1", bad)).back().second, HasSubstr("relay must be {slots: k}"));
  EXPECT_FALSE(h.router.is_broadcasting(hex(B)));
}

TEST(SignalRelay, BrowserWatchersAreLeaves) {
  Harness h;
  h.live(1, B, "s1", relay_slots(1));
  h.connect(2);
  h.connect(3);
  h.watch(2, W, "s1");  // no relay field, as the web app sends it
  h.subscribers(B, {&W, &W2});
  // The broadcaster is full and W never relays: W2 waits rather than going under W.
  auto sent = sends(h.watch(3, W2, "s1", relay_slots(2)));
  EXPECT_EQ(sent.back(), (Sent{3, err("No relay slot free")}));
  for (const auto& [s, packet] : sent) EXPECT_FALSE(s == 2 && packet.find(R"("watch")") != std::string::npos) << packet;
  EXPECT_TRUE(h.router.tree("s1")->children_of(W.public_key()).empty());
  EXPECT_TRUE(h.router.tree("s1")->queued(W2.public_key()));
}

TEST(SignalRelay, QueuedWatchersArePlacedFirstInFirstOut) {
  Harness h;
  h.live(1, B, "s1", relay_slots(1));
  const keys::Keypair W3 = keypair(0x03);
  for (SocketId s : {2, 3, 4}) h.connect(s);
  h.watch(2, W, "s1");
  h.subscribers(B, {&W, &W2, &W3});
  EXPECT_EQ(sends(h.watch(3, W2, "s1")).back(), (Sent{3, err("No relay slot free")}));
  EXPECT_EQ(sends(h.watch(4, W3, "s1")).back(), (Sent{4, err("No relay slot free")}));
  EXPECT_EQ(h.refusals(Refusal::no_slot), 2u);
  // The web app repeats watch while it waits: it is reminded, not counted or queued twice.
  EXPECT_EQ(sends(h.watch(3, W2, "s1")).back(), (Sent{3, err("No relay slot free")}));
  EXPECT_EQ(h.refusals(Refusal::no_slot), 2u);
  EXPECT_EQ(h.router.tree("s1")->queue_size(), 2u);
  // W stops watching: the oldest waiter, W2, gets the slot and the broadcaster offers to it.
  auto sent = sends(h.event(2, Json::array({"stopWatching", hex(W), {{"streamId", "s1"}}})));
  EXPECT_THAT(sent, ElementsAre(Sent{1, stop_watching(W)}, Sent{1, direct_watch(W2)}, Sent{3, placement(B, 1)},
                                Sent{1, R"(42["watchersCount",2])"}, Sent{3, R"(42["watchersCount",2])"},
                                Sent{4, R"(42["watchersCount",2])"}));
  EXPECT_EQ(h.router.counters().queued, 1u);
  EXPECT_EQ(h.router.check(), "");
}

TEST(SignalRelay, AQueuedWatcherThatDisconnectsIsDropped) {
  Harness h;
  h.live(1, B, "s1", relay_slots(1));
  const keys::Keypair W3 = keypair(0x03);
  for (SocketId s : {2, 3, 4}) h.connect(s);
  h.watch(2, W, "s1");
  h.subscribers(B, {&W, &W2, &W3});
  h.watch(3, W2, "s1");
  h.watch(4, W3, "s1");
  h.router.on_close(3, h.now);  // W2 gives up while queued
  EXPECT_EQ(h.router.tree("s1")->queue_size(), 1u);
  EXPECT_EQ(h.router.watcher_count("s1"), 2u);
  auto sent = sends(h.router.on_close(2, h.now));
  EXPECT_TRUE(contains(sent, Sent{4, placement(B, 1)}));
  EXPECT_TRUE(contains(sent, Sent{1, direct_watch(W3)}));
  EXPECT_FALSE(contains(sent, Sent{1, direct_watch(W2)}));
  EXPECT_EQ(h.router.counters().queued, 0u);
  EXPECT_EQ(h.router.check(), "");
}

TEST(SignalRelay, OrphansOfAStoppedOrClosedRelayKeepTheirSubtrees) {
  Harness h;
  h.live(1, B, "s1", relay_slots(2));
  auto rs = relays(10);
  for (SocketId s = 10; s < 20; ++s) h.connect(s);
  h.watch(10, rs[0], "s1", relay_slots(2));
  subscribe_all(h, rs);
  for (std::size_t i = 1; i < 10; ++i) h.watch(10 + i, rs[i], "s1", relay_slots(2));
  // rs[0] feeds rs[2] {rs[6], rs[7]} and rs[3] {rs[8], rs[9]}. It dies (socket close / missed pings).
  auto sent = sends(h.router.on_close(10, h.now));
  EXPECT_TRUE(contains(sent, Sent{1, direct_watch(rs[2])}));           // rs[2] takes the free direct slot
  EXPECT_TRUE(contains(sent, Sent{12, placement(B, 1)}));
  EXPECT_TRUE(contains(sent, Sent{16, placement(rs[2], 2)}));         // its children only learn their depth
  EXPECT_TRUE(contains(sent, Sent{14, relay_watch(rs[3])}));           // rs[3] goes to the oldest free depth-2 relay
  EXPECT_TRUE(contains(sent, Sent{13, placement(rs[4], 3)}));
  EXPECT_TRUE(contains(sent, Sent{18, placement(rs[3], 4)}));
  // Nobody offers to the grandchildren again: their parents did not change.
  for (std::size_t i : {6u, 7u, 8u, 9u}) {
    EXPECT_FALSE(contains(sent, Sent{12, relay_watch(rs[i])}));
    EXPECT_FALSE(contains(sent, Sent{13, relay_watch(rs[i])}));
  }
  const RelayTree* t = h.router.tree("s1");
  EXPECT_EQ(t->parent_of(rs[6].public_key()), rs[2].public_key());
  EXPECT_EQ(t->parent_of(rs[8].public_key()), rs[3].public_key());
  EXPECT_EQ(h.router.check(), "");

  // The same through stopWatching: rs[1] feeds rs[4] {rs[3] {rs[8], rs[9]}} and rs[5].
  sent = sends(h.event(11, Json::array({"stopWatching", hex(rs[1]), {{"streamId", "s1"}}})));
  EXPECT_TRUE(contains(sent, Sent{14, placement(B, 1)}));
  EXPECT_EQ(t->parent_of(rs[3].public_key()), rs[4].public_key());
  EXPECT_EQ(t->depth_of(rs[8].public_key()), 3u);
  EXPECT_EQ(h.router.check(), "");
}

TEST(SignalRelay, RelayFailedMovesTheChildAndEndsTheOldLink) {
  Harness h;
  h.live(1, B, "s1", relay_slots(2));
  const keys::Keypair W3 = keypair(0x03);
  for (SocketId s : {2, 3, 4}) h.connect(s);
  h.watch(2, W, "s1", relay_slots(2));
  h.subscribers(B, {&W, &W2, &W3});
  h.watch(3, W2, "s1", relay_slots(2));
  h.watch(4, W3, "s1", relay_slots(1));  // B -> {W -> W3, W2}
  ASSERT_EQ(h.router.tree("s1")->parent_of(W3.public_key()), W.public_key());
  auto failed = [&](SocketId s, const keys::Keypair& who, const keys::Keypair& parent) {
    return h.event(s, Json::array({"relayFailed", hex(who), {{"streamId", "s1"}, {"parentId", hex(parent)}}}));
  };
  // Someone else cannot report for W3, nor the broadcaster for itself.
  EXPECT_THAT(sends(failed(3, W3, W)),
              ElementsAre(Sent{3, err("relayFailed: this connection is not a watcher " + hex(W3) + " on stream s1")}));
  EXPECT_EQ(sends(failed(1, B, W)).size(), 1u);
  EXPECT_EQ(h.refusals(Refusal::spoofed), 2u);
  // A stale report (W2 is not W3's parent) changes nothing.
  EXPECT_TRUE(sends(failed(4, W3, W2)).empty());

  EXPECT_THAT(sends(failed(4, W3, W)),
              ElementsAre(Sent{2, stop_watching(W3)}, Sent{3, relay_watch(W3)}, Sent{4, placement(W2, 2)}));
  EXPECT_EQ(h.router.tree("s1")->parent_of(W3.public_key()), W2.public_key());
  EXPECT_EQ(h.router.counters().relay_failures, 1u);
  // Signalling follows the new link: W2 may offer to W3, W no longer.
  const std::string offer = R"({"streamId":"s1","userId":")" + hex(W3) + R"(","description":{"type":"offer","sdp":"x"}})";
  EXPECT_TRUE(sends(h.msg(2, R"(2["offer",")" + hex(W) + "\"," + offer + "]")).empty());
  EXPECT_EQ(sends(h.msg(3, R"(2["offer",")" + hex(W2) + "\"," + offer + "]")).size(), 1u);

  // It can fail again, and go back to a parent that failed before this one.
  EXPECT_THAT(sends(failed(4, W3, W2)), ElementsAre(Sent{3, stop_watching(W3)}, Sent{2, relay_watch(W3)},
                                                    Sent{4, placement(W, 2)}));
  EXPECT_THAT(sends(failed(4, W3, W)), ElementsAre(Sent{2, stop_watching(W3)}, Sent{3, relay_watch(W3)},
                                                   Sent{4, placement(W2, 2)}));
  EXPECT_EQ(h.router.check(), "");
  // The link to the broadcaster can fail too: the broadcaster has a free slot again, but W goes
  // to W2's instead.
  EXPECT_THAT(sends(failed(2, W, B)),
              ElementsAre(Sent{1, stop_watching(W)}, Sent{3, relay_watch(W)}, Sent{2, placement(W2, 2)}));
  EXPECT_EQ(h.router.check(), "");

  // Bad arguments are answered as such.
  EXPECT_THAT(sends(h.event(4, Json::array({"relayFailed", hex(W3), {{"streamId", "s1"}}}))),
              ElementsAre(Sent{4, err("relayFailed: parentId is missing: it must be a string")}));
}
