// Tests for signal/engineio and signal/session: Engine.IO v4 / Socket.IO v5 packet text as
// socket.io 4 puts it on the wire, malformed and hostile inputs, and the session state machine.
#include "signal/engineio.hpp"
#include "signal/session.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

using namespace p2p::signal;
using ::testing::HasSubstr;

namespace {

SioPacket parse_ok(std::string_view text) {
  auto p = parse_sio(text);
  EXPECT_TRUE(p) << text << ": " << p.error();
  return p ? p.value() : SioPacket{};
}

std::string parse_error(std::string_view text, const SioLimits& limits = {}) {
  auto p = parse_sio(text, limits);
  EXPECT_FALSE(p) << text;
  return p ? std::string() : p.error();
}

std::string nested(char open, char close, int depth) { return std::string(depth, open) + std::string(depth, close); }

}  // namespace

// ---- Engine.IO ----

TEST(SignalEngineIo, OpenPacketMatchesSocketIoServer) {
  OpenInfo info;
  info.sid = "lv_VI97HAXpY6yYWAAAC";
  info.upgrades = {"websocket"};
  EXPECT_EQ(encode_open(info),
            "0{\"sid\":\"lv_VI97HAXpY6yYWAAAC\",\"upgrades\":[\"websocket\"],\"pingInterval\":25000,"
            "\"pingTimeout\":20000,\"maxPayload\":1000000}");
}

TEST(SignalEngineIo, ParsesEveryPacketType) {
  const std::pair<const char*, EioPacket> cases[] = {
      {"0{\"sid\":\"x\"}", {EioType::open, "{\"sid\":\"x\"}"}},
      {"1", {EioType::close, ""}},
      {"2", {EioType::ping, ""}},
      {"2probe", {EioType::ping, "probe"}},
      {"3probe", {EioType::pong, "probe"}},
      {"42[\"watch\"]", {EioType::message, "2[\"watch\"]"}},
      {"5", {EioType::upgrade, ""}},
      {"6", {EioType::noop, ""}},
  };
  for (const auto& [text, want] : cases) {
    auto p = parse_eio(text);
    ASSERT_TRUE(p) << text << ": " << p.error();
    EXPECT_EQ(p.value(), want) << text;
    EXPECT_EQ(encode(p.value()), text);
  }
}

TEST(SignalEngineIo, RejectsMalformedFrames) {
  EXPECT_THAT(parse_eio("").error(), HasSubstr("empty"));
  EXPECT_THAT(parse_eio("7").error(), HasSubstr("unknown Engine.IO packet type '7'"));
  EXPECT_THAT(parse_eio("x42").error(), HasSubstr("'x'"));
  EXPECT_THAT(parse_eio(std::string("\x01", 1)).error(), HasSubstr("\\x01"));
  EXPECT_THAT(parse_eio("bAQID").error(), HasSubstr("binary"));
  EXPECT_THAT(parse_eio("4" + std::string(100, 'a'), 100).error(), HasSubstr("101 bytes exceeds the 100-byte limit"));
  EXPECT_TRUE(parse_eio("4" + std::string(99, 'a'), 100));
}

TEST(SignalEngineIo, SplitsAndJoinsPollingPayloads) {
  auto p = parse_payload("4hello\x1e" "2\x1e" "42[\"a\"]");
  ASSERT_TRUE(p) << p.error();
  ASSERT_EQ(p.value().size(), 3u);
  EXPECT_EQ(p.value()[0], (EioPacket{EioType::message, "hello"}));
  EXPECT_EQ(p.value()[1], (EioPacket{EioType::ping, ""}));
  EXPECT_EQ(p.value()[2], (EioPacket{EioType::message, "2[\"a\"]"}));
  EXPECT_EQ(join_payload({"4hello", "2", "42[\"a\"]"}), "4hello\x1e" "2\x1e" "42[\"a\"]");
  EXPECT_EQ(join_payload({"6"}), "6");
}

TEST(SignalEngineIo, RejectsBadPollingPayloads) {
  EXPECT_THAT(parse_payload("4a\x1e").error(), HasSubstr("packet 2 of the payload: empty"));
  EXPECT_THAT(parse_payload("4a\x1e" "9").error(), HasSubstr("packet 2"));
  EXPECT_THAT(parse_payload("").error(), HasSubstr("empty"));
  EXPECT_THAT(parse_payload(std::string(50, '6'), 10).error(), HasSubstr("exceeds"));
  std::string many = "6";
  for (int i = 0; i < 5; ++i) many += "\x1e" "6";
  EXPECT_THAT(parse_payload(many, 1000, 5).error(), HasSubstr("more than 5 packets"));
  EXPECT_TRUE(parse_payload(many, 1000, 6));
}

// ---- Socket.IO ----

TEST(SignalSocketIo, ParsesConnect) {
  auto p = parse_ok("0");
  EXPECT_EQ(p.type, SioType::connect);
  EXPECT_EQ(p.nsp, "/");
  EXPECT_FALSE(p.data);

  p = parse_ok("0{\"token\":\"abc\"}");
  ASSERT_TRUE(p.data);
  EXPECT_EQ((*p.data)["token"], "abc");

  p = parse_ok("0/admin,{\"token\":\"abc\"}");
  EXPECT_EQ(p.nsp, "/admin");
  EXPECT_EQ((*p.data)["token"], "abc");

  p = parse_ok("0/admin,");
  EXPECT_EQ(p.nsp, "/admin");
  EXPECT_FALSE(p.data);
}

TEST(SignalSocketIo, ParsesEventsWithAndWithoutAckIds) {
  auto p = parse_ok("2[\"watch\",\"0xab\",{\"streamId\":\"s\"}]");
  EXPECT_EQ(p.type, SioType::event);
  EXPECT_FALSE(p.ack_id);
  EXPECT_EQ((*p.data)[0], "watch");
  EXPECT_EQ((*p.data)[2]["streamId"], "s");

  p = parse_ok("21[\"getIsStreaming\",null,{\"streamId\":\"s\"}]");
  EXPECT_EQ(p.ack_id, 1u);

  p = parse_ok("31[\"ok\"]");
  EXPECT_EQ(p.type, SioType::ack);
  EXPECT_EQ(p.ack_id, 1u);

  p = parse_ok("2/ns,[\"a\",1]");
  EXPECT_EQ(p.nsp, "/ns");
  EXPECT_FALSE(p.ack_id);

  p = parse_ok("2/ns,42[\"a\"]");
  EXPECT_EQ(p.nsp, "/ns");
  EXPECT_EQ(p.ack_id, 42u);

  p = parse_ok("4{\"message\":\"Invalid namespace\"}");
  EXPECT_EQ(p.type, SioType::connect_error);
  p = parse_ok("1");
  EXPECT_EQ(p.type, SioType::disconnect);
}

TEST(SignalSocketIo, EncodesLikeSocketIoParser) {
  EXPECT_EQ(encode_sio({SioType::connect, "/", std::nullopt, std::nullopt}), "0");
  Json sid;
  sid["sid"] = "abc";
  EXPECT_EQ(encode_message({SioType::connect, "/", std::nullopt, sid}), "40{\"sid\":\"abc\"}");
  Json args = Json::array({"hello", 1});
  EXPECT_EQ(encode_message({SioType::event, "/", 12, args}), "4212[\"hello\",1]");
  EXPECT_EQ(encode_message({SioType::ack, "/", 3, Json::array()}), "433[]");
  EXPECT_EQ(encode_sio({SioType::event, "/chat", std::nullopt, args}), "2/chat,[\"hello\",1]");
  EXPECT_EQ(encode_sio({SioType::disconnect, "/chat", std::nullopt, std::nullopt}), "1/chat,");
}

TEST(SignalSocketIo, RoundTripsCanonicalPackets) {
  for (const char* text : {"0", "0{\"a\":1}", "0/x,{\"a\":1}", "1", "1/x,", "2[\"e\"]", "27[\"e\",{\"b\":[1,2],\"a\":null}]",
                           "2/x,7[\"e\"]", "37[]", "4\"no\"", "4{\"message\":\"m\"}"}) {
    EXPECT_EQ(encode_sio(parse_ok(text)), text);
  }
}

TEST(SignalSocketIo, KeepsTheSendersKeyOrder) {
  auto p = parse_ok("2[\"offer\",{\"z\":1,\"a\":2,\"m\":{\"y\":1,\"b\":2}}]");
  EXPECT_EQ(dump_json((*p.data)[1]), "{\"z\":1,\"a\":2,\"m\":{\"y\":1,\"b\":2}}");
}

TEST(SignalSocketIo, RejectsMalformedPackets) {
  EXPECT_THAT(parse_error(""), HasSubstr("empty"));
  EXPECT_THAT(parse_error("9"), HasSubstr("unknown Socket.IO packet type '9'"));
  EXPECT_THAT(parse_error("x"), HasSubstr("unknown"));
  EXPECT_THAT(parse_error("2"), HasSubstr("EVENT payload must be a non-empty JSON array"));
  EXPECT_THAT(parse_error("2[]"), HasSubstr("non-empty"));
  EXPECT_THAT(parse_error("2{\"a\":1}"), HasSubstr("array"));
  EXPECT_THAT(parse_error("2[1,2]"), HasSubstr("must be a string"));
  EXPECT_THAT(parse_error("2[\"disconnect\"]"), HasSubstr("reserved"));
  EXPECT_THAT(parse_error("2[\"connect\",1]"), HasSubstr("reserved"));
  EXPECT_THAT(parse_error("2[\"a\""), HasSubstr("invalid JSON"));
  EXPECT_THAT(parse_error("2[\"a\"]x"), HasSubstr("invalid JSON"));
  EXPECT_THAT(parse_error("0[1]"), HasSubstr("CONNECT payload must be a JSON object"));
  EXPECT_THAT(parse_error("1{}"), HasSubstr("DISCONNECT carries no payload"));
  EXPECT_THAT(parse_error("3[]"), HasSubstr("without an ack id"));
  EXPECT_THAT(parse_error("31{}"), HasSubstr("ACK payload must be a JSON array"));
  EXPECT_THAT(parse_error("4[1]"), HasSubstr("CONNECT_ERROR"));
  EXPECT_THAT(parse_error("51-[\"a\",{\"_placeholder\":true,\"num\":0}]"), HasSubstr("binary"));
  EXPECT_THAT(parse_error("61-0[]"), HasSubstr("binary"));
  EXPECT_THAT(parse_error("21234567890123456[\"a\"]"), HasSubstr("more than 15 digits"));
  EXPECT_TRUE(parse_sio("2123456789012345[\"a\"]"));
  // Invalid UTF-8 inside a JSON string is refused by the parser, so dump_json never meets it.
  EXPECT_THAT(parse_error("2[\"\xff\"]"), HasSubstr("invalid JSON"));
}

TEST(SignalSocketIo, BoundsSizeDepthAndNamespace) {
  SioLimits small;
  small.max_size = 20;
  EXPECT_THAT(parse_error("2[\"" + std::string(30, 'a') + "\"]", small), HasSubstr("exceeds the 20-byte limit"));

  // 32 levels pass, 33 do not; brackets inside strings do not count.
  EXPECT_TRUE(parse_sio("2[\"a\"," + nested('[', ']', 31) + "]"));
  EXPECT_THAT(parse_error("2[\"a\"," + nested('[', ']', 32) + "]"), HasSubstr("deeper than 32"));
  EXPECT_THAT(parse_error("2[\"a\"," + nested('{', '}', 40) + "]"), HasSubstr("deeper than 32"));
  EXPECT_TRUE(parse_sio("2[\"a\",\"" + std::string(100, '[') + "\"]"));
  EXPECT_TRUE(parse_sio("2[\"a\",\"\\\"[[[[\"]"));
  // A deep unterminated prefix is refused before the parser sees it.
  EXPECT_THAT(parse_error("2" + std::string(50000, '[')), HasSubstr("deeper than 32"));

  EXPECT_THAT(parse_error("2/" + std::string(200, 'n') + ",[\"a\"]"), HasSubstr("namespace"));
}

// ---- Session ----

TEST(SignalSession, OpenPacketDependsOnTransport) {
  Session polling("sid1", Transport::polling, 0);
  EXPECT_EQ(polling.open_packet(),
            "0{\"sid\":\"sid1\",\"upgrades\":[\"websocket\"],\"pingInterval\":25000,\"pingTimeout\":20000,"
            "\"maxPayload\":1000000}");
  SessionConfig cfg;
  cfg.ping_interval_ms = 1000;
  cfg.ping_timeout_ms = 500;
  cfg.max_payload = 4096;
  Session ws("sid2", Transport::websocket, 0, cfg);
  EXPECT_EQ(ws.open_packet(),
            "0{\"sid\":\"sid2\",\"upgrades\":[],\"pingInterval\":1000,\"pingTimeout\":500,\"maxPayload\":4096}");
}

TEST(SignalSession, PingsOnScheduleAndTimesOut) {
  Session s("x", Transport::websocket, 1000);
  EXPECT_TRUE(s.on_tick(25999).send.empty());
  EXPECT_EQ(s.next_deadline(), 26000);
  auto out = s.on_tick(26000);
  ASSERT_EQ(out.send.size(), 1u);
  EXPECT_EQ(out.send[0], std::make_pair(Transport::websocket, std::string("2")));
  EXPECT_EQ(s.next_deadline(), 46000);
  EXPECT_TRUE(s.on_tick(30000).send.empty());  // no second ping while waiting

  s.on_frame(Transport::websocket, "3", 30000);  // pong
  EXPECT_EQ(s.next_deadline(), 55000);
  EXPECT_FALSE(s.on_tick(54999).closed);
  ASSERT_EQ(s.on_tick(55000).send.size(), 1u);
  EXPECT_FALSE(s.on_tick(74999).closed);
  out = s.on_tick(75000);
  EXPECT_TRUE(out.closed);
  EXPECT_EQ(out.reason, "ping timeout");
  EXPECT_TRUE(s.closed());
  EXPECT_TRUE(s.on_frame(Transport::websocket, "4x", 75001).messages.empty());
}

TEST(SignalSession, HandsMessagesUpFromPollingBodies) {
  Session s("x", Transport::polling, 0);
  auto out = s.on_poll_body("40\x1e" "42[\"watch\"]\x1e" "6", 10);
  EXPECT_FALSE(out.closed);
  EXPECT_EQ(out.messages, (std::vector<std::string>{"0", "2[\"watch\"]"}));
  out = s.on_poll_body("4a\x1e" "0", 10);  // a client may not send open
  EXPECT_TRUE(out.closed);
  EXPECT_THAT(out.reason, HasSubstr("unexpected Engine.IO packet '0'"));
}

TEST(SignalSession, UpgradesFromPollingToWebsocket) {
  Session s("x", Transport::polling, 0);
  auto out = s.on_frame(Transport::websocket, "2probe", 5);
  EXPECT_TRUE(s.upgrading());
  ASSERT_EQ(out.send.size(), 2u);
  EXPECT_EQ(out.send[0], std::make_pair(Transport::websocket, std::string("3probe")));
  EXPECT_EQ(out.send[1], std::make_pair(Transport::polling, std::string("6")));
  EXPECT_EQ(s.transport(), Transport::polling);

  out = s.on_frame(Transport::websocket, "5", 6);
  EXPECT_FALSE(out.closed);
  EXPECT_EQ(s.transport(), Transport::websocket);
  EXPECT_FALSE(s.upgrading());
  EXPECT_EQ(s.on_frame(Transport::websocket, "42[\"a\"]", 7).messages, std::vector<std::string>{"2[\"a\"]"});
  // The first ping after the upgrade leaves on the websocket.
  out = s.on_tick(25000);
  ASSERT_EQ(out.send.size(), 1u);
  EXPECT_EQ(out.send[0].first, Transport::websocket);

  out = s.on_poll_body("42[\"a\"]", 8);
  EXPECT_TRUE(out.closed);
  EXPECT_THAT(out.reason, HasSubstr("after the upgrade"));
}

TEST(SignalSession, RejectsAnInvalidUpgrade) {
  Session a("x", Transport::polling, 0);
  auto out = a.on_frame(Transport::websocket, "5", 1);  // upgrade without probe
  EXPECT_TRUE(out.closed);
  EXPECT_THAT(out.reason, HasSubstr("invalid upgrade"));

  Session b("x", Transport::polling, 0);
  b.on_frame(Transport::websocket, "2probe", 1);
  EXPECT_TRUE(b.on_frame(Transport::websocket, "42[\"a\"]", 2).closed);
}

TEST(SignalSession, ClosesOnCloseAndOnGarbage) {
  Session a("x", Transport::websocket, 0);
  auto out = a.on_frame(Transport::websocket, "1", 1);
  EXPECT_TRUE(out.closed);
  EXPECT_EQ(out.reason, "client closed the session");

  Session b("x", Transport::websocket, 0);
  out = b.on_frame(Transport::websocket, "bAAAA", 1);
  EXPECT_TRUE(out.closed);
  EXPECT_THAT(out.reason, HasSubstr("binary"));

  SessionConfig cfg;
  cfg.max_payload = 10;
  Session c("x", Transport::websocket, 0, cfg);
  EXPECT_TRUE(c.on_frame(Transport::websocket, "4" + std::string(10, 'a'), 1).closed);
}

TEST(SignalSession, MakesBase64UrlSids) {
  std::uint8_t next = 0;
  auto counting = [&](std::span<std::uint8_t> out) {
    for (auto& b : out) b = next++;
  };
  EXPECT_EQ(make_sid(counting), "AAECAwQFBgcICQoLDA0O");  // base64url of bytes 0..14
  auto ones = [](std::span<std::uint8_t> out) {
    for (auto& b : out) b = 0xff;
  };
  EXPECT_EQ(make_sid(ones), "____________________");
}
