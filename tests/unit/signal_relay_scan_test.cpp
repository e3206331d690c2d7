// Tests for signal/relay_scan: the fast reader of offer/answer/candidate must accept only what
// the full parser (parse_sio + parse_client_event) accepts, read the same fields, and leave the
// rest to it. A differential test mutates real packets byte by byte to look for disagreement.
#include "signal/relay_scan.hpp"

#include <gtest/gtest.h>

#include <cctype>
#include <random>

#include "signal/router.hpp"

using namespace p2p::signal;

namespace {

const std::string kB = "0xd04ab232742bb4ab3a1368bd4615e4e6d0224ab71a016baf8520a332c9778737";
const std::string kW = "0xa09aa5f47a6759802ff955f8dc2d2a14a5c99d23be97f864127ff9383455a4f0";

std::string offer() {
  return R"(2["offer",")" + kB + R"(",{"streamId":"1700000000000Jam","userId":")" + kW +
         R"(","description":{"type":"offer","sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}}])";
}
std::string answer() {
  return R"(2["answer",")" + kB + R"(", {"streamId": "1700000000000Jam", "userId": ")" + kW +
         R"(", "description": {"sdp": "v=0\r\n", "type": "answer"}, "extra": [1, 2.5e3, null, true]}])";
}
std::string candidate() {
  return R"(2["candidate",")" + kB + R"(",{"userId":")" + kW +
         R"(","streamId":"1700000000000Jam","candidate":{"candidate":"candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host","sdpMid":"0","sdpMLineIndex":0}}])";
}

// What the full parser makes of a packet, as the fields the scanner reports.
std::optional<RelayScan> full(const std::string& text, std::string& storage) {
  auto p = parse_sio(text);
  if (!p || p->type != SioType::event || p->nsp != "/" || p->ack_id) return std::nullopt;
  auto e = parse_client_event(*p->data);
  if (!e) return std::nullopt;
  RelayScan r;
  storage.clear();
  if (auto* o = std::get_if<OfferMsg>(&e.value())) {
    r.kind = RelayScan::Kind::offer;
    storage = o->broadcaster_id + "|" + o->stream_id + "|" + o->user_id;
  } else if (auto* a = std::get_if<AnswerMsg>(&e.value())) {
    r.kind = RelayScan::Kind::answer;
    storage = a->broadcaster_id + "|" + a->stream_id + "|" + a->user_id;
  } else if (auto* c = std::get_if<CandidateMsg>(&e.value())) {
    r.kind = RelayScan::Kind::candidate;
    storage = c->target_id + "|" + c->stream_id + "|" + c->user_id;
  } else {
    return std::nullopt;
  }
  return r;
}

std::string fields(const RelayScan& r) {
  return std::string(r.first) + "|" + std::string(r.stream_id) + "|" + std::string(r.user_id);
}

}  // namespace

TEST(SignalRelayScan, ReadsTheThreeRelayEvents) {
  // The scan's views point into the text: keep it alive.
  const std::string ot = offer(), at = answer(), ct = candidate();
  auto o = scan_relay(ot, {});
  ASSERT_TRUE(o);
  EXPECT_EQ(o->kind, RelayScan::Kind::offer);
  EXPECT_EQ(o->first, kB);
  EXPECT_EQ(o->user_id, kW);
  EXPECT_EQ(o->stream_id, "1700000000000Jam");
  EXPECT_EQ(parse_json(o->payload)->at("description").at("type"), "offer");

  auto a = scan_relay(at, {});
  ASSERT_TRUE(a);
  EXPECT_EQ(a->kind, RelayScan::Kind::answer);
  EXPECT_EQ(a->stream_id, "1700000000000Jam");
  EXPECT_EQ(parse_json(a->payload)->at("extra").size(), 4u);

  auto c = scan_relay(ct, {});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->kind, RelayScan::Kind::candidate);
  EXPECT_EQ(c->first, kB);
  EXPECT_EQ(c->user_id, kW);
  EXPECT_EQ(parse_json(c->candidate)->at("sdpMLineIndex"), 0);
}

TEST(SignalRelayScan, LeavesEverythingElseToTheFullParser) {
  const std::vector<std::string> others = {
      "",
      "2",
      "0",
      R"(2["watch",")" + kB + R"(",{"streamId":"s"}])",                 // not a relay event
      R"(21["offer",")" + kB + R"(",{}])",                               // ack id
      R"(2/ns,["offer","a",{}])",                                        // namespace
      R"(2 ["offer","a",{}])",                                           // whitespace first
      R"(2["offer",")" + kB + R"(",{"streamId":"s","userId":"u"}])",     // no description
      R"(2["offer",")" + kB + R"(",{"streamId":"s","userId":"u","description":{"type":"offer"}}])",
      R"(2["offer",")" + kB + R"(",{"streamId":"","userId":"u","description":{"type":"a","sdp":"b"}}])",
      R"(2["offer","",{"streamId":"s","userId":"u","description":{"type":"a","sdp":"b"}}])",
      R"(2["offer","a\"b",{"streamId":"s","userId":"u","description":{"type":"a","sdp":"b"}}])",   // escaped id
      R"(2["offer","a",{"streamId":"s","userId":"u","description":{"type":"a","sdp":"\u0041"}}])",  // \u escape
      R"(2["offer","a",{"streamId":"s","userId":"u","description":{"type":"a","sdp":"b"}},4])",    // 4 arguments
      R"(2["offer","a",{"streamId":"s","streamId":"t","userId":"u","description":{"type":"a","sdp":"b"}}])",  // dup key
      R"(2["offer","a",{"streamId":"s","userId":"u","description":{"type":"a","sdp":"b"}}] x)",    // trailing bytes
      R"(2["offer","a",{"streamId":"s","userId":"u","description":{"type":"a","sdp":"b",}}])",     // trailing comma
      R"(2["candidate","a",{"userId":"u","streamId":"s","candidate":{"candidate":"c","sdpMLineIndex":-1}}])",
      R"(2["candidate","a",{"userId":"u","streamId":"s","candidate":{"candidate":"c","sdpMLineIndex":1.0}}])",
      R"(2["candidate","a",{"userId":"u","streamId":"s","candidate":{"candidate":"c","sdpMid":5}}])",
      R"(2["candidate","a",{"userId":"u","streamId":"s","candidate":"c"}])",
      R"(2["candidate","a",{"userId":"u","streamId":"s","candidate":{"candidate":"c","x":01}}])",  // bad number
      "2[\"candidate\",\"a\",{\"userId\":\"u\",\"streamId\":\"s\",\"candidate\":{\"candidate\":\"\xc3\xa9\"}}]",  // non-ASCII
      "2[\"candidate\",\"a\",{\"userId\":\"u\",\"streamId\":\"s\",\"candidate\":{\"candidate\":\"\x01\"}}]",      // control
      R"(2["offer","a",{"streamId":"s","userId":"u","description":{"type":"a","sdp":"b","x":)" + std::string(40, '[') +
          std::string(40, ']') + "}}]",  // too deep
  };
  for (const auto& t : others) EXPECT_FALSE(scan_relay(t, {})) << t;
  // Limits come from ProtocolLimits, as in the full path.
  ProtocolLimits tight;
  tight.max_id = 10;
  EXPECT_FALSE(scan_relay(candidate(), tight));
}

// The web app's answer {watcherId, description} and candidate {id, candidate} carry no
// streamId: the scanner leaves them to the full parser, which accepts them and lets the router
// infer the stream.
TEST(SignalRelayScan, LeavesTheWebAppsShapesToTheFullParser) {
  const std::vector<std::string> app = {
      R"(2["answer",")" + kB + R"(",{"watcherId":")" + kW + R"(","description":{"type":"answer","sdp":"v=0\r\n"}}])",
      R"(2["candidate",")" + kB + R"(",{"id":")" + kW + R"(","candidate":{"candidate":"c","sdpMid":"0","sdpMLineIndex":0}}])",
      R"(2["candidate",")" + kW + R"(",{"id":")" + kB + R"(","streamId":"s","candidate":{"candidate":"c"}}])",
  };
  for (const auto& t : app) {
    EXPECT_FALSE(scan_relay(t, {})) << t;
    auto p = parse_sio(t);
    ASSERT_TRUE(p) << t;
    EXPECT_TRUE(parse_client_event(*p->data)) << t;
  }
}

TEST(SignalRelayScan, AgreesWithTheFullParserOnMutatedPackets) {
  std::mt19937 rng(12345);
  const std::string bytes = "\"\\{}[],: 0123456789.-eE+truefalsnul\x01\x7f\xc3";
  std::size_t accepted = 0;
  for (const auto& base : {offer(), answer(), candidate()}) {
    for (int round = 0; round < 4000; ++round) {
      std::string t = base;
      const int edits = 1 + static_cast<int>(rng() % 3);
      for (int e = 0; e < edits; ++e) {
        std::size_t at = rng() % t.size();
        switch (rng() % 3) {
          case 0: t[at] = bytes[rng() % bytes.size()]; break;
          case 1: t.erase(at, 1 + rng() % 3); break;
          default: t.insert(at, 1, bytes[rng() % bytes.size()]);
        }
        if (t.empty()) t = "2";
      }
      auto fast = scan_relay(t, {});
      if (!fast) continue;
      ++accepted;
      std::string want;
      auto slow = full(t, want);
      ASSERT_TRUE(slow) << "scanner accepted what the full parser refuses: " << t;
      EXPECT_EQ(fast->kind, slow->kind) << t;
      EXPECT_EQ(fields(*fast), want) << t;
      // The raw payload (or candidate) is one valid JSON value.
      EXPECT_TRUE(parse_json(fast->kind == RelayScan::Kind::candidate ? fast->candidate : fast->payload)) << t;
    }
  }
  EXPECT_GT(accepted, 500u) << "mutations that keep a packet valid should still take the fast path";
}

TEST(SignalRelayScan, RouterForwardsScannedEventsLikeParsedOnes) {
  // A broadcaster (socket 1) and a watcher (socket 2), joined through the router itself.
  RouterConfig cfg;
  std::uint8_t counter = 0;
  Router router(cfg, [&](std::span<std::uint8_t> out) {
    for (auto& b : out) b = ++counter;
  });
  auto keypair = [](std::uint8_t fill) {
    p2p::keys::Seed seed;
    seed.fill(fill);
    return p2p::keys::Keypair::from_seed(seed);
  };
  auto b = keypair(0x11), w = keypair(0x22);
  const std::string bid = p2p::to_hex(b.public_key()), wid = p2p::to_hex(w.public_key());
  const std::string stream = "1700000000000Jam";
  auto nonce_of = [](const Actions& acts, SocketId s) {
    std::string n;
    for (const auto& a : acts)
      if (auto* send = std::get_if<SendAction>(&a); send && send->socket == s && send->packet.rfind("42[\"challenge\"", 0) == 0)
        n = parse_json(send->packet.substr(2))->at(1).at("nonce").get<std::string>();
    return n;
  };
  auto join = [&](SocketId s, const p2p::keys::Keypair& k, Role role, const std::string& event) {
    router.on_open(s, "127.0.0.1", 1000);
    auto nonce = nonce_of(router.on_message(s, "0", 1000), s);
    auto text = challenge_message(role, stream, nonce);
    Json auth = {{"publicKey", p2p::to_hex(k.public_key())}, {"signature", p2p::to_hex(k.sign(p2p::view(text)))}};
    Json args = Json::array({event, p2p::to_hex(k.public_key()), Json{{"streamId", stream}, {"auth", auth}}});
    return router.on_message(s, "2" + dump_json(args), 1000);
  };
  auto acts = join(1, b, Role::broadcast, "broadcast");
  ASSERT_EQ(acts.size(), 2u);  // a fresh challenge, and a chain lookup
  router.on_stream_answer(StreamAnswer{stream, true, b.public_key()}, 1000);
  acts = join(2, w, Role::watch, "watch");
  router.on_subscribers_answer(SubscribersAnswer{b.public_key(), true, {w.public_key()}}, 1000);

  auto sent_to = [](const Actions& a, SocketId s) {
    std::vector<std::string> out;
    for (const auto& x : a)
      if (auto* send = std::get_if<SendAction>(&x); send && send->socket == s) out.push_back(send->packet);
    return out;
  };
  const std::string cand = R"({"candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host","sdpMid":"0","sdpMLineIndex":0})";
  const std::string fast = R"(2["candidate",")" + bid + R"(",{"userId":")" + wid + R"(","streamId":")" + stream +
                           R"(","candidate":)" + cand + "}]";
  ASSERT_TRUE(scan_relay(fast, cfg.protocol));
  auto out = sent_to(router.on_message(2, fast, 1001), 1);
  ASSERT_EQ(out.size(), 1u);
  // The same event with a \u escape takes the full path; both must say the same thing.
  std::string slow = fast;
  slow.replace(slow.find("typ host"), 8, "typ \\u0068ost");
  ASSERT_FALSE(scan_relay(slow, cfg.protocol));
  auto out2 = sent_to(router.on_message(2, slow, 1002), 1);
  ASSERT_EQ(out2.size(), 1u);
  EXPECT_EQ(parse_json(out[0].substr(2)).value(), parse_json(out2[0].substr(2)).value());
  EXPECT_EQ(out[0], "42[\"candidate\",\"" + wid + "\",{\"candidate\":" + cand + "}]");

  // A socket that is not the sender it claims to be is refused on the fast path too.
  router.on_open(3, "127.0.0.1", 1000);
  router.on_message(3, "0", 1000);
  auto spoof = sent_to(router.on_message(3, fast, 1003), 3);
  ASSERT_EQ(spoof.size(), 1u);
  EXPECT_NE(spoof[0].find("candidate: this connection is not " + wid), std::string::npos) << spoof[0];
  EXPECT_EQ(router.counters().refusals[static_cast<std::size_t>(Refusal::spoofed)], 1u);
  EXPECT_EQ(router.counters().messages_relayed, 2u);

  // Members are found by their id's text first; another spelling of the same key (upper-case
  // hex) still reaches them, on the fast path, as sender and as target.
  auto upper = [](std::string id) {
    for (std::size_t i = 2; i < id.size(); ++i) id[i] = static_cast<char>(std::toupper(static_cast<unsigned char>(id[i])));
    return id;
  };
  const std::string spelled = R"(2["candidate",")" + upper(bid) + R"(",{"userId":")" + upper(wid) + R"(","streamId":")" +
                              stream + R"(","candidate":)" + cand + "}]";
  ASSERT_TRUE(scan_relay(spelled, cfg.protocol));
  auto out3 = sent_to(router.on_message(2, spelled, 1004), 1);
  ASSERT_EQ(out3.size(), 1u);
  EXPECT_EQ(out3[0], "42[\"candidate\",\"" + upper(wid) + "\",{\"candidate\":" + cand + "}]");
  EXPECT_EQ(router.counters().messages_relayed, 3u);
}

// Strings are scanned eight bytes at a time: a byte that ends, escapes or invalidates a string
// must be seen at every position within such a word, and a string of any length must end right.
TEST(SignalRelayScan, SeesEverySpecialByteAtAnyOffsetInAString) {
  auto packet = [](const std::string& text) {
    return R"(2["candidate",")" + kB + R"(",{"userId":")" + kW +
           R"(","streamId":"1700000000000Jam","candidate":{"candidate":")" + text + R"(","sdpMid":"0"}}])";
  };
  for (std::size_t len = 0; len < 40; ++len) {
    const std::string plain(len, 'a');
    auto ok = scan_relay(packet(plain), {});
    ASSERT_TRUE(ok) << len;
    EXPECT_EQ(parse_json(ok->candidate)->at("candidate"), plain);
    for (std::size_t at = 0; at < len; ++at) {
      for (char bad : {'\x01', '\x1f', '\x80', '\xc3', '\xff'}) {
        std::string t = plain;
        t[at] = bad;
        EXPECT_FALSE(scan_relay(packet(t), {})) << len << " " << at << " " << static_cast<int>(bad);
      }
      for (const char* esc : {"\\\"", "\\\\", "\\n", "\\/"}) {  // kept: valid escapes
        std::string t = plain;
        t.replace(at, 1, esc);
        auto r = scan_relay(packet(t), {});
        ASSERT_TRUE(r) << t;
        std::string storage;
        EXPECT_TRUE(full(packet(t), storage)) << t;
        EXPECT_NE(r->candidate.find(esc), std::string_view::npos) << t;  // passed on as written
        EXPECT_EQ(parse_json(r->candidate)->at("candidate").get<std::string>().size(), len) << t;
      }
      std::string cut = plain;  // a bare quote ends the string early: the JSON breaks
      cut[at] = '"';
      EXPECT_FALSE(scan_relay(packet(cut), {})) << cut;
      std::string del = plain;  // DEL (0x7f) is plain JSON
      del[at] = '\x7f';
      EXPECT_TRUE(scan_relay(packet(del), {})) << at;
    }
  }
}

// The one-pass scan counts nesting as the full parser does: array 1, payload 2, candidate 3.
TEST(SignalRelayScan, CountsDepthLikeTheFullParser) {
  const std::string ct = candidate(), ot = offer();
  EXPECT_TRUE(scan_relay(ct, {}, 3));
  EXPECT_TRUE(scan_relay(ot, {}, 3));
  for (int depth : {0, 1, 2}) {
    EXPECT_FALSE(scan_relay(ct, {}, depth)) << depth;
    EXPECT_FALSE(scan_relay(ot, {}, depth)) << depth;
  }
  // White space between the arguments is fine; the payload views stay exact.
  const std::string spaced = R"(2[ "candidate" , ")" + kB + R"(" , {"userId":")" + kW +
                             R"(","streamId":"s","candidate":{"candidate":"c"}} ])";
  auto r = scan_relay(spaced, {});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->first, kB);
  EXPECT_EQ(r->payload.front(), '{');
  EXPECT_EQ(r->payload.back(), '}');
  EXPECT_EQ(r->candidate, R"({"candidate":"c"})");
}
