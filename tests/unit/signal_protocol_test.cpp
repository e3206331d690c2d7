// Tests for signal/protocol: w3bstreaming event validation, the exact packets the server
// emits, the p2pstream challenge text and signature, and the web app's legacy signedMsg.
#include "signal/protocol.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

using namespace p2p;
using namespace p2p::signal;
using ::testing::HasSubstr;

namespace {

keys::Keypair keypair(std::uint8_t fill) {
  keys::Seed seed;
  seed.fill(fill);
  return keys::Keypair::from_seed(seed);
}

Json args(std::string_view text) {
  auto j = parse_json(text);
  EXPECT_TRUE(j) << text;
  return j ? j.value() : Json::array();
}

ClientEvent parse_ok(std::string_view text) {
  auto r = parse_client_event(args(text));
  EXPECT_TRUE(r) << text << ": " << r.error();
  return r ? r.value() : ClientEvent{UnknownEvent{}};
}

std::string parse_error(std::string_view text) {
  auto r = parse_client_event(args(text));
  EXPECT_FALSE(r) << text;
  return r ? std::string() : r.error();
}

std::string sign_hex(const keys::Keypair& kp, std::string_view text) { return to_hex(kp.sign(view(text))); }

const std::string kId = "0x" + std::string(64, 'a');

}  // namespace

// ---- validation ----

TEST(SignalProtocol, ParsesWatchWithEveryField) {
  auto ev = parse_ok(R"(["watch",")" + kId +
                     R"(",{"streamId":"1700000000000My show","signedMsg":"0x01","encodedId":"kGabc",)"
                     R"("auth":{"publicKey":"0x02","signature":"0x03","nonce":"0x04"},"relay":{"slots":3}}])");
  auto* w = std::get_if<WatchMsg>(&ev);
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->user_id, kId);
  EXPECT_EQ(w->stream_id, "1700000000000My show");
  EXPECT_EQ(w->signed_msg, "0x01");
  EXPECT_EQ(w->encoded_id, "kGabc");
  ASSERT_TRUE(w->auth);
  EXPECT_EQ(w->auth->public_key, "0x02");
  EXPECT_EQ(w->auth->signature, "0x03");
  EXPECT_EQ(w->auth->nonce, "0x04");
  EXPECT_EQ(w->relay_slots, 3u);
}

TEST(SignalProtocol, ParsesTheWebAppsEvents) {
  auto w = std::get<WatchMsg>(parse_ok(R"(["watch",")" + kId + R"(",{"streamId":"s"}])"));
  EXPECT_FALSE(w.auth);
  EXPECT_FALSE(w.signed_msg);
  EXPECT_EQ(w.relay_slots, 0u);

  auto b = std::get<BroadcastMsg>(parse_ok(R"(["broadcast",")" + kId + R"(",{"streamId":"s"}])"));
  EXPECT_EQ(b.broadcaster_id, kId);
  EXPECT_FALSE(b.auth);

  auto o = std::get<OfferMsg>(parse_ok(
      R"(["offer","0xb",{"description":{"type":"offer","sdp":"v=0"},"userId":"0xw","streamId":"s","mediaSequence":[1]}])"));
  EXPECT_EQ(o.broadcaster_id, "0xb");
  EXPECT_EQ(o.user_id, "0xw");
  EXPECT_EQ(o.stream_id, "s");
  EXPECT_EQ(dump_json(o.payload),
            R"({"description":{"type":"offer","sdp":"v=0"},"userId":"0xw","streamId":"s","mediaSequence":[1]})");

  auto a = std::get<AnswerMsg>(parse_ok(R"(["answer","0xb",{"userId":"0xw","streamId":"s","description":{"type":"answer","sdp":"x"}}])"));
  EXPECT_EQ(a.user_id, "0xw");

  auto c = std::get<CandidateMsg>(parse_ok(
      R"(["candidate","0xb",{"candidate":{"candidate":"candidate:1 1 udp 1 10.0.0.1 9 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"u"},"userId":"0xw","streamId":"s"}])"));
  EXPECT_EQ(c.target_id, "0xb");
  EXPECT_EQ(c.user_id, "0xw");
  EXPECT_EQ(c.candidate["usernameFragment"], "u");

  EXPECT_EQ(std::get<StopBroadcastingMsg>(parse_ok(R"(["stopBroadcasting","0xb",{"streamId":"s"}])")).broadcaster_id, "0xb");
  EXPECT_EQ(std::get<StopWatchingMsg>(parse_ok(R"(["stopWatching","0xw",{"streamId":"s"}])")).user_id, "0xw");
  // The two queries ignore their first argument, which the web app may leave undefined (null).
  EXPECT_EQ(std::get<GetWatchersCountMsg>(parse_ok(R"(["getWatchersCount",null,{"streamId":"s"}])")).stream_id, "s");
  EXPECT_EQ(std::get<GetIsStreamingMsg>(parse_ok(R"(["getIsStreaming",null,{"streamId":"s"}])")).stream_id, "s");
  EXPECT_EQ(std::get<UnknownEvent>(parse_ok(R"(["updateOffers","0xb",{}])")).name, "updateOffers");
}

// The deployed web app answers {watcherId, description} and sends candidates as {id, candidate}:
// no streamId (the router infers it) and other names for userId. The payload goes on unchanged.
TEST(SignalProtocol, ParsesTheWebAppsAnswerAndCandidateShapes) {
  auto a = std::get<AnswerMsg>(parse_ok(R"(["answer","0xb",{"watcherId":"0xw","description":{"type":"answer","sdp":"x"}}])"));
  EXPECT_EQ(a.broadcaster_id, "0xb");
  EXPECT_EQ(a.user_id, "0xw");
  EXPECT_EQ(a.stream_id, "");
  EXPECT_EQ(dump_json(a.payload), R"({"watcherId":"0xw","description":{"type":"answer","sdp":"x"}})");

  auto c = std::get<CandidateMsg>(parse_ok(R"(["candidate","0xw",{"id":"0xb","candidate":{"candidate":"c","sdpMid":"0","sdpMLineIndex":0}}])"));
  EXPECT_EQ(c.target_id, "0xw");
  EXPECT_EQ(c.user_id, "0xb");
  EXPECT_EQ(c.stream_id, "");
  EXPECT_EQ(dump_json(c.candidate), R"({"candidate":"c","sdpMid":"0","sdpMLineIndex":0})");

  // userId wins over the alias when both are there; a null userId counts as absent.
  auto both = std::get<AnswerMsg>(parse_ok(
      R"(["answer","0xb",{"userId":"0xu","watcherId":"0xw","streamId":"s","description":{"type":"answer","sdp":"x"}}])"));
  EXPECT_EQ(both.user_id, "0xu");
  EXPECT_EQ(both.stream_id, "s");
  EXPECT_EQ(std::get<CandidateMsg>(parse_ok(R"(["candidate","0xw",{"userId":null,"id":"0xb","candidate":{"candidate":"c"}}])")).user_id,
            "0xb");
  // offer takes watcherId too.
  auto o = std::get<OfferMsg>(parse_ok(R"(["offer","0xb",{"watcherId":"0xw","streamId":"s","description":{"type":"offer","sdp":"x"}}])"));
  EXPECT_EQ(o.user_id, "0xw");
}

TEST(SignalProtocol, RefusesWrongArgumentTypes) {
  EXPECT_THAT(parse_error(R"(["watch",42,{"streamId":"s"}])"), HasSubstr("watch: argument 1 (userId) must be a non-empty string"));
  EXPECT_THAT(parse_error(R"(["watch","0xw"])"), HasSubstr("watch: argument 2 must be an object"));
  EXPECT_THAT(parse_error(R"(["watch","0xw","s"])"), HasSubstr("argument 2 must be an object"));
  EXPECT_THAT(parse_error(R"(["watch","0xw",{}])"), HasSubstr("streamId is missing"));
  EXPECT_THAT(parse_error(R"(["watch","0xw",{"streamId":7}])"), HasSubstr("streamId must be a non-empty string"));
  EXPECT_THAT(parse_error(R"(["watch","0xw",{"streamId":""}])"), HasSubstr("streamId must be a non-empty string"));
  EXPECT_THAT(parse_error(R"(["watch","0xw",{"streamId":"s","signedMsg":5}])"), HasSubstr("signedMsg must be"));
  EXPECT_THAT(parse_error(R"(["watch","0xw",{"streamId":"s","auth":"x"}])"), HasSubstr("auth must be an object"));
  EXPECT_THAT(parse_error(R"(["watch","0xw",{"streamId":"s","auth":{"publicKey":"0x1"}}])"), HasSubstr("signature is missing"));
  EXPECT_THAT(parse_error(R"(["watch","0xw",{"streamId":"s","relay":{"slots":-1}}])"), HasSubstr("relay must be {slots: k}"));
  EXPECT_THAT(parse_error(R"(["watch","0xw",{"streamId":"s","relay":{"slots":17}}])"), HasSubstr("from 0 to 16"));
  EXPECT_THAT(parse_error(R"(["watch","0xw",{"streamId":"s","relay":{"slots":1.5}}])"), HasSubstr("relay"));
  EXPECT_THAT(parse_error(R"(["broadcast","0xb",{"streamId":["s"]}])"), HasSubstr("broadcast: streamId"));
  EXPECT_THAT(parse_error(R"(["offer","0xb",{"streamId":"s","userId":"0xw"}])"), HasSubstr("offer: description must be an object"));
  EXPECT_THAT(parse_error(R"(["offer","0xb",{"streamId":"s","userId":"0xw","description":{"type":"offer"}}])"),
              HasSubstr("string fields"));
  // Neither userId nor the web app's alias: the error names the documented field.
  EXPECT_THAT(parse_error(R"(["answer","0xb",{"description":{"type":"answer","sdp":"x"}}])"),
              HasSubstr("answer: userId is missing"));
  EXPECT_THAT(parse_error(R"(["candidate","0xb",{"candidate":{"candidate":"c"}}])"), HasSubstr("candidate: userId is missing"));
  EXPECT_THAT(parse_error(R"(["candidate","0xb",{"id":7,"candidate":{"candidate":"c"}}])"),
              HasSubstr("candidate: id must be a non-empty string"));
  EXPECT_THAT(parse_error(R"(["answer","0xb",{"watcherId":"0xw","streamId":5,"description":{"type":"answer","sdp":"x"}}])"),
              HasSubstr("answer: streamId must be a non-empty string"));
  // offer still needs its streamId; only answer and candidate may leave it out.
  EXPECT_THAT(parse_error(R"(["offer","0xb",{"userId":"0xw","description":{"type":"offer","sdp":"x"}}])"),
              HasSubstr("offer: streamId is missing"));
  EXPECT_THAT(parse_error(R"(["candidate","0xb",{"userId":"0xw","streamId":"s"}])"), HasSubstr("candidate is missing"));
  EXPECT_THAT(parse_error(R"(["candidate","0xb",{"userId":"0xw","streamId":"s","candidate":"a"}])"),
              HasSubstr("candidate must be an object"));
  EXPECT_THAT(parse_error(R"(["candidate","0xb",{"userId":"0xw","streamId":"s","candidate":{"candidate":"a","sdpMLineIndex":"0"}}])"),
              HasSubstr("sdpMLineIndex"));
  EXPECT_THAT(parse_error(R"(["stopWatching",null,{"streamId":"s"}])"), HasSubstr("stopWatching: argument 1 (userId)"));
  EXPECT_THAT(parse_error(R"(["watch",")" + std::string(129, 'a') + R"(",{"streamId":"s"}])"), HasSubstr("at most 128 bytes"));
  EXPECT_THAT(parse_error(R"(["watch","0xw",{"streamId":")" + std::string(257, 's') + R"("}])"), HasSubstr("at most 256 bytes"));
  EXPECT_THAT(parse_error(R"([1])"), HasSubstr("[\"name\""));
}

TEST(SignalProtocol, ParsesTheRelayTreeAdditions) {
  // broadcast(.., {relay: {slots: N}}): the broadcaster's --max-direct; absent = no limit of its own.
  auto b = std::get<BroadcastMsg>(parse_ok(R"(["broadcast",")" + kId + R"(",{"streamId":"s","relay":{"slots":64}}])"));
  EXPECT_EQ(b.max_direct, 64u);
  EXPECT_FALSE(std::get<BroadcastMsg>(parse_ok(R"(["broadcast","0xb",{"streamId":"s"}])")).max_direct);
  EXPECT_FALSE(std::get<BroadcastMsg>(parse_ok(R"(["broadcast","0xb",{"streamId":"s","relay":null}])")).max_direct);
  // More than a watcher's 16, up to max_direct_slots (the CLI's --max-direct range).
  EXPECT_EQ(std::get<BroadcastMsg>(parse_ok(R"(["broadcast","0xb",{"streamId":"s","relay":{"slots":100000}}])")).max_direct,
            100000u);
  EXPECT_THAT(parse_error(R"(["broadcast","0xb",{"streamId":"s","relay":{"slots":100001}}])"), HasSubstr("from 0 to 100000"));
  EXPECT_THAT(parse_error(R"(["broadcast","0xb",{"streamId":"s","relay":2}])"), HasSubstr("broadcast: relay must be {slots: k}"));
  EXPECT_THAT(parse_error(R"(["broadcast","0xb",{"streamId":"s","relay":{"slots":"2"}}])"), HasSubstr("relay must be"));

  // relayFailed(userId, {streamId, parentId}).
  auto f = std::get<RelayFailedMsg>(parse_ok(R"(["relayFailed","0xw",{"streamId":"s","parentId":"0xp"}])"));
  EXPECT_EQ(f.user_id, "0xw");
  EXPECT_EQ(f.stream_id, "s");
  EXPECT_EQ(f.parent_id, "0xp");
  EXPECT_THAT(parse_error(R"(["relayFailed","0xw",{"streamId":"s"}])"), HasSubstr("relayFailed: parentId is missing"));
  EXPECT_THAT(parse_error(R"(["relayFailed","0xw",{"streamId":"s","parentId":7}])"), HasSubstr("parentId must be"));
  EXPECT_THAT(parse_error(R"(["relayFailed",null,{"streamId":"s","parentId":"0xp"}])"), HasSubstr("argument 1 (userId)"));
  EXPECT_THAT(parse_error(R"(["relayFailed","0xw",{"parentId":"0xp"}])"), HasSubstr("streamId is missing"));
  EXPECT_THAT(parse_error(R"(["relayFailed","0xw",{"streamId":"s","parentId":")" + std::string(129, 'p') + R"("}])"),
              HasSubstr("at most 128 bytes"));

  EXPECT_EQ(placement_event("0xp", 2), R"(42["placement",{"parentId":"0xp","depth":2}])");
  EXPECT_EQ(error_event("No relay slot free"), R"(42["error",{"message":"No relay slot free"}])");
}

// ---- emitted packets ----

TEST(SignalProtocol, EmitsTheWireFormat) {
  EXPECT_EQ(error_event("You aren't subscribed to this speaker"),
            R"(42["error",{"message":"You aren't subscribed to this speaker"}])");
  EXPECT_EQ(watch_event("0xw", "s", false), R"(42["watch","0xw",{"streamId":"s"}])");
  EXPECT_EQ(watch_event("0xw", "s", true), R"(42["watch","0xw",{"streamId":"s","relay":true}])");
  Json cand = args(R"({"candidate":"c","sdpMid":"0","sdpMLineIndex":0})");
  EXPECT_EQ(candidate_event("0xw", cand), R"(42["candidate","0xw",{"candidate":{"candidate":"c","sdpMid":"0","sdpMLineIndex":0}}])");
  EXPECT_EQ(offer_event("0xb", args(R"({"z":1,"a":2})")), R"(42["offer","0xb",{"z":1,"a":2}])");
  EXPECT_EQ(answer_event("0xb", args(R"({"z":1})")), R"(42["answer","0xb",{"z":1}])");
  EXPECT_EQ(watchers_count_event(3), R"(42["watchersCount",3])");
  EXPECT_EQ(is_streaming_event(false), R"(42["isStreaming",false])");
  EXPECT_EQ(stop_broadcasting_event("0xb", "s", "0xw"), R"(42["stopBroadcasting","0xb",{"streamId":"s","userId":"0xw"}])");
  EXPECT_EQ(stop_watching_event("0xw", "s"), R"(42["stopWatching","0xw",{"streamId":"s"}])");
  EXPECT_EQ(challenge_event("0x00ff", 1700000000123), R"(42["challenge",{"nonce":"0x00ff","expires":1700000000123}])");
  EXPECT_EQ(placement_event("0xb", 1), R"(42["placement",{"parentId":"0xb","depth":1}])");
  EXPECT_EQ(error_event("quote \" and \\"), R"(42["error",{"message":"quote \" and \\"}])");
}

// ---- ids and signatures ----

TEST(SignalProtocol, ParsesIdsInHexAndSs58) {
  auto kp = keypair(7);
  const auto& pk = kp.public_key();
  EXPECT_EQ(parse_id(to_hex(pk)), pk);
  EXPECT_EQ(parse_id(keys::ss58_encode(pk)), pk);
  EXPECT_EQ(parse_id(keys::ss58_encode(pk, 42)), pk);
  EXPECT_EQ(id_hex(pk), to_hex(pk));
  EXPECT_FALSE(parse_id(""));
  EXPECT_FALSE(parse_id("0x1234"));
  EXPECT_FALSE(parse_id("not an id"));
  EXPECT_FALSE(parse_id(std::string(500, '1')));
}

TEST(SignalProtocol, ParsesSignatures) {
  std::string sig64 = "0x" + std::string(128, 'a');
  ASSERT_TRUE(parse_signature(sig64));
  EXPECT_EQ((*parse_signature(sig64))[0], 0xaa);
  auto tagged = parse_signature("0x00" + std::string(128, 'b'));  // MultiSignature::Ed25519
  ASSERT_TRUE(tagged);
  EXPECT_EQ((*tagged)[0], 0xbb);
  EXPECT_FALSE(parse_signature("0x01" + std::string(128, 'b')));  // sr25519 tag
  EXPECT_FALSE(parse_signature("0x" + std::string(126, 'a')));
  EXPECT_FALSE(parse_signature("0x" + std::string(127, 'a') + "g"));
}

TEST(SignalProtocol, ChallengeTextAndSignature) {
  const std::string nonce = "0x" + std::string(64, '5');
  EXPECT_EQ(challenge_message(Role::watch, "17000My show", nonce), "p2pstream-signal:v1:watch:17000My show:" + nonce);
  EXPECT_EQ(challenge_message(Role::broadcast, "s", "0x01"), "p2pstream-signal:v1:broadcast:s:0x01");

  auto kp = keypair(1);
  auto other = keypair(2);
  const auto& pk = kp.public_key();
  AuthProof proof{to_hex(pk), sign_hex(kp, "p2pstream-signal:v1:watch:s:" + nonce), std::nullopt};
  EXPECT_EQ(verify_challenge(proof, pk, Role::watch, "s", nonce), AuthCheck::ok);
  EXPECT_EQ(verify_challenge(proof, pk, Role::broadcast, "s", nonce), AuthCheck::bad_signature);
  EXPECT_EQ(verify_challenge(proof, pk, Role::watch, "t", nonce), AuthCheck::bad_signature);
  EXPECT_EQ(verify_challenge(proof, pk, Role::watch, "s", "0x" + std::string(64, '6')), AuthCheck::bad_signature);
  EXPECT_EQ(verify_challenge(proof, other.public_key(), Role::watch, "s", nonce), AuthCheck::wrong_key);
  AuthProof garbled = proof;
  garbled.signature = "0xzz";
  EXPECT_EQ(verify_challenge(garbled, pk, Role::watch, "s", nonce), AuthCheck::bad_encoding);
  AuthProof by_other{to_hex(other.public_key()), sign_hex(other, "p2pstream-signal:v1:watch:s:" + nonce), std::nullopt};
  EXPECT_EQ(verify_challenge(by_other, pk, Role::watch, "s", nonce), AuthCheck::wrong_key);
}

TEST(SignalProtocol, LegacySignedMsgAsTheWebAppSignsIt) {
  auto kp = keypair(3);
  const auto& pk = kp.public_key();
  const std::string address = keys::ss58_encode(pk);  // account.address, the encodedId
  // polkadot{.js} signRaw({type:'bytes', data: stringToHex(address)}) signs the wrapped bytes.
  const std::string wrapped = sign_hex(kp, "<Bytes>" + address + "</Bytes>");
  const std::string bare = sign_hex(kp, address);
  EXPECT_TRUE(verify_legacy(wrapped, address, pk));
  EXPECT_TRUE(verify_legacy(bare, address, pk));
  EXPECT_EQ(legacy_message(address), Bytes(address.begin(), address.end()));

  // encodedId must be userId's key, and the signature must cover encodedId's text.
  EXPECT_FALSE(verify_legacy(wrapped, address, keypair(4).public_key()));
  EXPECT_FALSE(verify_legacy(sign_hex(kp, "<Bytes>" + to_hex(pk) + "</Bytes>"), address, pk));
  const std::string other_address = keys::ss58_encode(keypair(4).public_key());
  EXPECT_FALSE(verify_legacy(sign_hex(kp, other_address), other_address, pk));
  EXPECT_FALSE(verify_legacy("0x1234", address, pk));
  EXPECT_FALSE(verify_legacy(wrapped, "garbage", pk));

  // A 0x-hex encodedId stands for its bytes, as in @polkadot/util's u8aToU8a.
  const std::string hex = to_hex(pk);
  EXPECT_EQ(legacy_message(hex), Bytes(pk.begin(), pk.end()));
  EXPECT_TRUE(verify_legacy(to_hex(kp.sign(concat({view("<Bytes>"), pk, view("</Bytes>")}))), hex, pk));
}
