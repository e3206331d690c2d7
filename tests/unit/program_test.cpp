// Unit tests for program/w3bstreaming: every rule and refusal of the deployed
// program, its quirks, and the payload path (bytes in, reply and events out).
#include <gtest/gtest.h>

#include <string>

#include "program/w3bstreaming.hpp"
#include "sails/sails.hpp"
#include "w3b/messages.hpp"

namespace p2p::program {
namespace {

using namespace p2p::w3b;

ActorId actor(std::uint8_t fill) {
  ActorId a{};
  a.fill(fill);
  return a;
}

const ActorId kAdmin = actor(0xAD);
const ActorId kAlice = actor(0xA1);
const ActorId kBob = actor(0xB0);
const ActorId kCarol = actor(0xC0);
const ActorId kNobody = actor(0x99);

Bytes state_bytes(const W3Bstreaming& p) {
  scale::Encoder e;
  encode_state(e, p.state());
  return std::move(e).take();
}

Bytes ascii(std::string_view s) { return Bytes(s.begin(), s.end()); }

// Sends the command as its encoded payload, so the decode path runs too.
Outcome send(W3Bstreaming& p, const ActorId& sender, const Command& cmd, std::uint64_t ts = 1000) {
  return p.handle(sender, encode_command(cmd), ts);
}

// Asserts a unit success with exactly one event, and returns that event decoded.
Event expect_ok(const Outcome& out) {
  EXPECT_TRUE(out.ok) << out.panic;
  EXPECT_TRUE(out.panic.empty());
  EXPECT_TRUE(out.reply.empty()) << "a unit method replies with the empty auto-reply";
  EXPECT_EQ(out.events.size(), 1u);
  if (out.events.size() != 1) return Event{};
  return decode_event(out.events[0]);
}

// Sends cmd, asserts the exact panic text, the panic reply, no events, and a byte-identical state.
void expect_refused(W3Bstreaming& p, const ActorId& sender, const Command& cmd, std::string_view text,
                    std::uint64_t ts = 1000) {
  const Bytes before = state_bytes(p);
  const ProgramState before_state = p.state();
  Outcome out = send(p, sender, cmd, ts);
  EXPECT_FALSE(out.ok);
  EXPECT_EQ(out.panic, text);
  EXPECT_EQ(sails::panic_message(out.reply), text);
  EXPECT_TRUE(out.events.empty());
  EXPECT_EQ(state_bytes(p), before) << "a panic must leave the state unchanged";
  EXPECT_EQ(p.state(), before_state);
}

EditProfile profile(std::optional<std::string> name, std::optional<std::string> surname,
                    std::optional<std::string> img, std::optional<std::string> tz) {
  return EditProfile{std::move(name), std::move(surname), std::move(img), std::move(tz)};
}

// A deployed program where Alice, Bob and Carol have profiles.
W3Bstreaming with_users() {
  W3Bstreaming p = W3Bstreaming::deploy(kAdmin);
  for (const ActorId& who : {kAlice, kBob, kCarol}) {
    EXPECT_TRUE(send(p, who, profile("n", std::nullopt, std::nullopt, std::nullopt)).ok);
  }
  return p;
}

NewStream stream_cmd(std::string title, std::optional<std::string> desc = "d") {
  return NewStream{std::move(title), std::move(desc), 10, 20, "img"};
}

// ---------------------------------------------------------------- deploy

TEST(ProgramDeploy, DeployerIsTheOnlyAdminAndDnsIsStored) {
  auto p = W3Bstreaming::deploy(kAdmin, std::make_pair(kBob, std::string("w3b")));
  EXPECT_EQ(p.state().admins, std::vector<ActorId>{kAdmin});
  ASSERT_TRUE(p.state().dns_info.has_value());
  EXPECT_EQ(p.state().dns_info->first, kBob);
  EXPECT_EQ(p.state().dns_info->second, "w3b");
  EXPECT_TRUE(p.state().streams.empty());
  EXPECT_TRUE(p.state().users.empty());
  EXPECT_FALSE(p.terminated());
}

TEST(ProgramDeploy, WithoutDnsTheStateEncodesToKnownBytes) {
  auto p = W3Bstreaming::deploy(kAdmin);
  // streams: Vec len 0, users: len 0, admins: len 1 + 32 bytes, dns_info: None.
  Bytes want = {0x00, 0x00, 0x04};
  want.insert(want.end(), kAdmin.begin(), kAdmin.end());
  want.push_back(0x00);
  EXPECT_EQ(state_bytes(p), want);
}

// ---------------------------------------------------------------- payload path

TEST(ProgramPayload, ChainMdNewStreamBytesCreateTheStream) {
  auto p = with_users();
  // NewStream("t", None, 1, 2, "i") exactly as chain.md gives it.
  auto payload = from_hex(
      "0x3057334273747265616d696e67244e657753747265616d047400010000000000000002000000000000000469");
  ASSERT_TRUE(payload);
  Outcome out = p.handle(kAlice, *payload, 5);
  Event ev = expect_ok(out);
  EXPECT_EQ(ev, Event(StreamIsScheduled{"5t"}));
  // The event on the wire: route ++ SCALE("StreamIsScheduled") ++ SCALE("5t"), no enum index.
  Bytes want = ascii("\x30W3Bstreaming\x44StreamIsScheduled\x08" "5t");
  ASSERT_EQ(out.events.size(), 1u);
  EXPECT_EQ(out.events[0], want);
  const Stream* s = p.state().find_stream("5t");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(*s, (Stream{kAlice, 1, 2, "t", "i", std::nullopt}));
}

TEST(ProgramPayload, UndecodablePayloadsPanicAndLeaveStateAlone) {
  auto p = with_users();
  ASSERT_TRUE(send(p, kAlice, stream_cmd("x")).ok);
  const Bytes before = state_bytes(p);

  Bytes good = encode_command(stream_cmd("y"));
  Bytes trailing = good;
  trailing.push_back(0x00);
  Bytes truncated(good.begin(), good.end() - 1);
  scale::Encoder wrong_service;
  wrong_service.str("Other");
  wrong_service.str("NewStream");
  scale::Encoder unknown_method;
  unknown_method.str("W3Bstreaming");
  unknown_method.str("NoSuchMethod");
  const std::vector<Bytes> bad = {
      {}, {0xff, 0xff, 0xff}, trailing, truncated, wrong_service.out(), unknown_method.out(),
      // Subscribe with an ActorId cut short.
      concat({sails::route("W3Bstreaming", "Subscribe"), Bytes(31, 0x01)}),
  };
  for (const Bytes& payload : bad) {
    Outcome out = p.handle(kAlice, payload, 7);
    EXPECT_FALSE(out.ok) << to_hex(payload);
    EXPECT_EQ(out.panic.rfind("Can't decode request: ", 0), 0u) << out.panic;
    EXPECT_GT(out.panic.size(), std::string("Can't decode request: ").size()) << "says what was wrong";
    EXPECT_EQ(sails::panic_message(out.reply), out.panic);
    EXPECT_TRUE(out.events.empty());
    EXPECT_EQ(state_bytes(p), before);
  }
}

TEST(ProgramPayload, TypedAndPayloadHandlingAgree) {
  auto a = with_users();
  auto b = with_users();
  const std::vector<Command> script = {
      stream_cmd("one"), Subscribe{kBob}, EditStream{"1000one", 11, std::nullopt, "uno", std::nullopt, "dd"},
      Subscribe{kNobody}, DeleteStream{"1000one"}, AddAdmin{kAlice},
  };
  for (const Command& c : script) {
    Outcome x = a.handle(kAlice, c, 1000);
    Outcome y = b.handle(kAlice, encode_command(c), 1000);
    EXPECT_EQ(x.ok, y.ok);
    EXPECT_EQ(x.panic, y.panic);
    EXPECT_EQ(x.reply, y.reply);
    EXPECT_EQ(x.events, y.events);
  }
  EXPECT_EQ(a.state(), b.state());
}

// ---------------------------------------------------------------- query

TEST(ProgramQuery, GetStateBytesFromChainMdReturnTheState) {
  auto p = with_users();
  ASSERT_TRUE(send(p, kAlice, stream_cmd("live")).ok);
  ASSERT_TRUE(send(p, kBob, Subscribe{kAlice}, 3).ok);
  auto payload = from_hex("0x3057334273747265616d696e67204765745374617465");
  ASSERT_TRUE(payload);
  Outcome out = p.query(*payload);
  ASSERT_TRUE(out.ok) << out.panic;
  EXPECT_TRUE(out.events.empty());
  EXPECT_EQ(decode_state_reply(out.reply), p.state());
  // The reply is the prefix followed by the SCALE state.
  EXPECT_EQ(out.reply, concat({*payload, state_bytes(p)}));
}

TEST(ProgramQuery, BadQueryPayloadPanics) {
  auto p = with_users();
  for (const Bytes& payload : {Bytes{}, Bytes{0x01, 0x02}, sails::route("W3Bstreaming", "GetStat"),
                               encode_command(stream_cmd("x"))}) {
    Outcome out = p.query(payload);
    EXPECT_FALSE(out.ok);
    EXPECT_EQ(out.panic.rfind("Can't decode request: ", 0), 0u) << out.panic;
    EXPECT_EQ(sails::panic_message(out.reply), out.panic);
  }
}

// ---------------------------------------------------------------- EditProfile

TEST(ProgramProfile, CreateStoresTheFourFieldsAsGiven) {
  auto p = W3Bstreaming::deploy(kAdmin);
  Event ev = expect_ok(send(p, kAlice, profile("Ann", std::nullopt, "pic.png", "UTC+2")));
  EXPECT_EQ(ev, Event(ProfileEdited{}));
  ASSERT_EQ(p.state().users.size(), 1u);
  EXPECT_EQ(p.state().users[0].first, kAlice);
  Profile want;
  want.name = "Ann";
  want.img_link = "pic.png";
  want.time_zone = "UTC+2";  // on creation time_zone is stored correctly
  EXPECT_EQ(p.state().users[0].second, want);
}

TEST(ProgramProfile, NewProfilesAreAppended) {
  auto p = W3Bstreaming::deploy(kAdmin);
  ASSERT_TRUE(send(p, kBob, profile("b", std::nullopt, std::nullopt, std::nullopt)).ok);
  ASSERT_TRUE(send(p, kAlice, profile("a", std::nullopt, std::nullopt, std::nullopt)).ok);
  ASSERT_EQ(p.state().users.size(), 2u);
  EXPECT_EQ(p.state().users[0].first, kBob);
  EXPECT_EQ(p.state().users[1].first, kAlice);
}

TEST(ProgramProfile, EditOverwritesEveryFieldAndNoneClears) {
  auto p = W3Bstreaming::deploy(kAdmin);
  ASSERT_TRUE(send(p, kAlice, profile("Ann", "Lee", "pic.png", "UTC")).ok);
  Event ev = expect_ok(send(p, kAlice, profile(std::nullopt, "Li", std::nullopt, "UTC+5")));
  EXPECT_EQ(ev, Event(ProfileEdited{}));
  const Profile* pr = p.state().find_user(kAlice);
  ASSERT_NE(pr, nullptr);
  EXPECT_EQ(pr->name, std::nullopt) << "None clears the name";
  EXPECT_EQ(pr->surname, "Li");
  EXPECT_EQ(pr->img_link, std::nullopt) << "None clears the image";
  EXPECT_EQ(pr->time_zone, std::nullopt) << "time_zone takes the (absent) img_link, not UTC+5";
  EXPECT_EQ(p.state().users.size(), 1u);
}

TEST(ProgramProfile, EditSetsTimeZoneToImgLink) {
  auto p = W3Bstreaming::deploy(kAdmin);
  ASSERT_TRUE(send(p, kAlice, profile("Ann", std::nullopt, std::nullopt, "UTC")).ok);
  ASSERT_TRUE(send(p, kAlice, profile("Ann", std::nullopt, "https://x/a.png", "Europe/Paris")).ok);
  const Profile* pr = p.state().find_user(kAlice);
  ASSERT_NE(pr, nullptr);
  EXPECT_EQ(pr->img_link, "https://x/a.png");
  EXPECT_EQ(pr->time_zone, "https://x/a.png");
}

TEST(ProgramProfile, EditKeepsStreamsAndSubscriptions) {
  auto p = with_users();
  ASSERT_TRUE(send(p, kAlice, stream_cmd("s"), 1).ok);
  ASSERT_TRUE(send(p, kBob, Subscribe{kAlice}, 2).ok);
  ASSERT_TRUE(send(p, kAlice, Subscribe{kCarol}, 3).ok);
  ASSERT_TRUE(send(p, kAlice, profile("new", std::nullopt, std::nullopt, std::nullopt)).ok);
  const Profile* pr = p.state().find_user(kAlice);
  ASSERT_NE(pr, nullptr);
  EXPECT_EQ(pr->name, "new");
  EXPECT_EQ(pr->stream_ids, std::vector<std::string>{"1s"});
  EXPECT_EQ(pr->subscribers, std::vector<ActorId>{kBob});
  EXPECT_EQ(pr->subscriptions, (std::vector<Subscription>{{kCarol, 3}}));
  EXPECT_EQ(p.state().users[0].first, kAlice) << "an edited profile keeps its position";
}

// ---------------------------------------------------------------- NewStream

TEST(ProgramNewStream, IdIsDecimalTimestampThenTitle) {
  auto p = with_users();
  Event ev = expect_ok(send(p, kAlice, NewStream{"Jazz night", "live", 1700000100000, 1700000200000, "j.png"},
                            1700000000123));
  EXPECT_EQ(ev, Event(StreamIsScheduled{"1700000000123Jazz night"}));
  ASSERT_EQ(p.state().streams.size(), 1u);
  EXPECT_EQ(p.state().streams[0].first, "1700000000123Jazz night");
  EXPECT_EQ(p.state().streams[0].second,
            (Stream{kAlice, 1700000100000, 1700000200000, "Jazz night", "j.png", "live"}));
  EXPECT_EQ(p.state().find_user(kAlice)->stream_ids, std::vector<std::string>{"1700000000123Jazz night"});
}

TEST(ProgramNewStream, ZeroTimestampAndEmptyTitle) {
  auto p = with_users();
  EXPECT_EQ(expect_ok(send(p, kAlice, stream_cmd("a"), 0)), Event(StreamIsScheduled{"0a"}));
  EXPECT_EQ(expect_ok(send(p, kAlice, stream_cmd(""), 42)), Event(StreamIsScheduled{"42"}));
  EXPECT_NE(p.state().find_stream("42"), nullptr);
}

TEST(ProgramNewStream, UnregisteredSenderIsRefused) {
  auto p = with_users();
  expect_refused(p, kNobody, stream_cmd("x"), "Account is no registered");
}

TEST(ProgramNewStream, NewIdsAreAppendedInOrder) {
  auto p = with_users();
  ASSERT_TRUE(send(p, kAlice, stream_cmd("b"), 5).ok);
  ASSERT_TRUE(send(p, kBob, stream_cmd("a"), 5).ok);
  ASSERT_TRUE(send(p, kAlice, stream_cmd("b"), 6).ok);  // same title, other block: a distinct id
  ASSERT_EQ(p.state().streams.size(), 3u);
  EXPECT_EQ(p.state().streams[0].first, "5b");
  EXPECT_EQ(p.state().streams[1].first, "5a");
  EXPECT_EQ(p.state().streams[2].first, "6b");
  EXPECT_EQ(p.state().find_user(kAlice)->stream_ids, (std::vector<std::string>{"5b", "6b"}));
}

TEST(ProgramNewStream, SameTimestampAndTitleOverwritesInPlace) {
  auto p = with_users();
  ASSERT_TRUE(send(p, kAlice, NewStream{"T", "first", 1, 2, "one.png"}, 9).ok);
  ASSERT_TRUE(send(p, kAlice, stream_cmd("other"), 9).ok);
  Event ev = expect_ok(send(p, kAlice, NewStream{"T", std::nullopt, 3, 4, "two.png"}, 9));
  EXPECT_EQ(ev, Event(StreamIsScheduled{"9T"}));
  ASSERT_EQ(p.state().streams.size(), 2u);
  EXPECT_EQ(p.state().streams[0].first, "9T") << "the overwritten stream keeps its position";
  EXPECT_EQ(p.state().streams[0].second, (Stream{kAlice, 3, 4, "T", "two.png", std::nullopt}));
  EXPECT_EQ(p.state().find_user(kAlice)->stream_ids, (std::vector<std::string>{"9T", "9other", "9T"}))
      << "the id is pushed again with no duplicate check";
}

TEST(ProgramNewStream, CollisionAcrossUsersHandsTheStreamToTheLastSender) {
  auto p = with_users();
  ASSERT_TRUE(send(p, kAlice, stream_cmd("T"), 9).ok);
  ASSERT_TRUE(send(p, kBob, stream_cmd("T"), 9).ok);
  ASSERT_EQ(p.state().streams.size(), 1u);
  EXPECT_EQ(p.state().find_stream("9T")->broadcaster, kBob);
  EXPECT_EQ(p.state().find_user(kAlice)->stream_ids, std::vector<std::string>{"9T"});
  EXPECT_EQ(p.state().find_user(kBob)->stream_ids, std::vector<std::string>{"9T"});
}

// ---------------------------------------------------------------- DeleteStream

TEST(ProgramDeleteStream, OwnerDeletes) {
  auto p = with_users();
  ASSERT_TRUE(send(p, kAlice, stream_cmd("a"), 1).ok);
  ASSERT_TRUE(send(p, kAlice, stream_cmd("b"), 2).ok);
  Event ev = expect_ok(send(p, kAlice, DeleteStream{"1a"}));
  EXPECT_EQ(ev, Event(StreamDeleted{"1a"}));
  ASSERT_EQ(p.state().streams.size(), 1u);
  EXPECT_EQ(p.state().streams[0].first, "2b");
  EXPECT_EQ(p.state().find_user(kAlice)->stream_ids, std::vector<std::string>{"2b"});
}

TEST(ProgramDeleteStream, UnregisteredSenderIsRefused) {
  auto p = with_users();
  ASSERT_TRUE(send(p, kAlice, stream_cmd("a"), 1).ok);
  expect_refused(p, kNobody, DeleteStream{"1a"}, "Account is no registered");
}

TEST(ProgramDeleteStream, UnknownIdIsRefused) {
  auto p = with_users();
  ASSERT_TRUE(send(p, kAlice, stream_cmd("a"), 1).ok);
  expect_refused(p, kAlice, DeleteStream{"1b"}, "Id is not exist");
}

TEST(ProgramDeleteStream, NonOwnerHearsIdIsNotExist) {
  // The deployed order checks the sender's own stream_ids first, so a registered
  // non-owner never reaches the broadcaster check.
  auto p = with_users();
  ASSERT_TRUE(send(p, kAlice, stream_cmd("a"), 1).ok);
  expect_refused(p, kBob, DeleteStream{"1a"}, "Id is not exist");
  EXPECT_NE(p.state().find_stream("1a"), nullptr);
}

TEST(ProgramDeleteStream, RemovesOnlyTheFirstMatchingIdThenTheStreamIsGone) {
  auto p = with_users();
  ASSERT_TRUE(send(p, kAlice, stream_cmd("T"), 9).ok);
  ASSERT_TRUE(send(p, kAlice, stream_cmd("T"), 9).ok);  // collision: "9T" listed twice
  ASSERT_EQ(p.state().find_user(kAlice)->stream_ids, (std::vector<std::string>{"9T", "9T"}));
  expect_ok(send(p, kAlice, DeleteStream{"9T"}));
  EXPECT_EQ(p.state().find_user(kAlice)->stream_ids, std::vector<std::string>{"9T"});
  EXPECT_TRUE(p.state().streams.empty());
  // The id is still in Alice's list but the stream is missing.
  expect_refused(p, kAlice, DeleteStream{"9T"}, "Id is not exist");
}

TEST(ProgramDeleteStream, NotBroadcasterFromHandMadeState) {
  ProgramState s;
  s.admins = {kAdmin};
  Profile bob;
  bob.stream_ids = {"1x"};
  s.users = {{kBob, bob}, {kAlice, Profile{}}};
  s.streams = {{"1x", Stream{kAlice, 1, 2, "x", "i", std::nullopt}}};
  W3Bstreaming p(s);
  expect_refused(p, kBob, DeleteStream{"1x"}, "You are not broadcaster");
  EXPECT_EQ(p.state(), s);
}

TEST(ProgramDeleteStream, NotBroadcasterAfterAnIdCollision) {
  // The same state arises on chain: Bob's colliding NewStream takes Alice's stream over.
  auto p = with_users();
  ASSERT_TRUE(send(p, kAlice, stream_cmd("T"), 9).ok);
  ASSERT_TRUE(send(p, kBob, stream_cmd("T"), 9).ok);
  expect_refused(p, kAlice, DeleteStream{"9T"}, "You are not broadcaster");
  expect_ok(send(p, kBob, DeleteStream{"9T"}));
  EXPECT_TRUE(p.state().streams.empty());
}

// ---------------------------------------------------------------- EditStream

TEST(ProgramEditStream, SomeFieldsReplaceOthersStay) {
  auto p = with_users();
  ASSERT_TRUE(send(p, kAlice, NewStream{"t", "d", 10, 20, "i"}, 1).ok);
  Event ev = expect_ok(send(p, kAlice, EditStream{"1t", std::nullopt, 25, "new", std::nullopt, "d2"}));
  EXPECT_EQ(ev, Event(StreamEdited{}));
  EXPECT_EQ(*p.state().find_stream("1t"), (Stream{kAlice, 10, 25, "new", "i", "d2"}));
  expect_ok(send(p, kAlice, EditStream{"1t", 11, std::nullopt, std::nullopt, "j", "d2"}));
  EXPECT_EQ(*p.state().find_stream("1t"), (Stream{kAlice, 11, 25, "new", "j", "d2"}));
  ASSERT_EQ(p.state().streams.size(), 1u);
  EXPECT_EQ(p.state().streams[0].first, "1t") << "a title edit does not change the id";
}

TEST(ProgramEditStream, DescriptionNoneClears) {
  auto p = with_users();
  ASSERT_TRUE(send(p, kAlice, NewStream{"t", "keep me", 10, 20, "i"}, 1).ok);
  expect_ok(send(p, kAlice, EditStream{"1t", std::nullopt, std::nullopt, std::nullopt, std::nullopt,
                                       std::nullopt}));
  EXPECT_EQ(*p.state().find_stream("1t"), (Stream{kAlice, 10, 20, "t", "i", std::nullopt}));
}

TEST(ProgramEditStream, UnknownIdIsRefused) {
  auto p = with_users();
  ASSERT_TRUE(send(p, kAlice, stream_cmd("t"), 1).ok);
  expect_refused(p, kAlice, EditStream{"2t", 1, 2, "x", "y", "z"}, "Id is not exist");
  expect_refused(p, kNobody, EditStream{"2t", 1, 2, "x", "y", "z"}, "Id is not exist");
}

TEST(ProgramEditStream, NonBroadcasterIsRefused) {
  auto p = with_users();
  ASSERT_TRUE(send(p, kAlice, stream_cmd("t"), 1).ok);
  expect_refused(p, kBob, EditStream{"1t", 1, 2, "x", "y", "z"}, "You are not broadcaster");
  expect_refused(p, kNobody, EditStream{"1t", 1, 2, "x", "y", "z"}, "You are not broadcaster");
}

TEST(ProgramEditStream, BroadcasterNeedsNoProfile) {
  ProgramState s;
  s.streams = {{"1x", Stream{kAlice, 1, 2, "x", "i", std::nullopt}}};
  W3Bstreaming p(s);
  expect_ok(send(p, kAlice, EditStream{"1x", std::nullopt, std::nullopt, "y", std::nullopt, "d"}));
  EXPECT_EQ(p.state().find_stream("1x")->title, "y");
}

// ---------------------------------------------------------------- Subscribe / Unsubscribe

TEST(ProgramSubscribe, RecordsBothSidesWithTheBlockTime) {
  auto p = with_users();
  Event ev = expect_ok(send(p, kBob, Subscribe{kAlice}, 777));
  EXPECT_EQ(ev, Event(Subscribed{}));
  EXPECT_EQ(p.state().find_user(kAlice)->subscribers, std::vector<ActorId>{kBob});
  EXPECT_EQ(p.state().find_user(kBob)->subscriptions, (std::vector<Subscription>{{kAlice, 777}}));
  EXPECT_TRUE(p.state().find_user(kBob)->subscribers.empty());
  EXPECT_TRUE(p.state().find_user(kAlice)->subscriptions.empty());
}

TEST(ProgramSubscribe, DuplicateSubscribeRecordsTwoEntries) {
  auto p = with_users();
  ASSERT_TRUE(send(p, kBob, Subscribe{kAlice}, 1).ok);
  expect_ok(send(p, kBob, Subscribe{kAlice}, 2));
  EXPECT_EQ(p.state().find_user(kAlice)->subscribers, (std::vector<ActorId>{kBob, kBob}));
  EXPECT_EQ(p.state().find_user(kBob)->subscriptions, (std::vector<Subscription>{{kAlice, 1}, {kAlice, 2}}));
}

TEST(ProgramSubscribe, RefusalsInTheDeployedOrder) {
  auto p = with_users();
  expect_refused(p, kBob, Subscribe{kNobody}, "The user is not found");
  expect_refused(p, kNobody, Subscribe{kAlice}, "You are not registered");
  // Both missing: the target is checked first.
  expect_refused(p, kNobody, Subscribe{actor(0x55)}, "The user is not found");
}

TEST(ProgramUnsubscribe, RemovesAllMatchingEntriesAndNothingElse) {
  auto p = with_users();
  ASSERT_TRUE(send(p, kBob, Subscribe{kAlice}, 1).ok);
  ASSERT_TRUE(send(p, kBob, Subscribe{kCarol}, 2).ok);
  ASSERT_TRUE(send(p, kCarol, Subscribe{kAlice}, 3).ok);
  ASSERT_TRUE(send(p, kBob, Subscribe{kAlice}, 4).ok);
  Event ev = expect_ok(send(p, kBob, Unsubscribe{kAlice}));
  EXPECT_EQ(ev, Event(Unsubscribed{}));
  EXPECT_EQ(p.state().find_user(kAlice)->subscribers, std::vector<ActorId>{kCarol});
  EXPECT_EQ(p.state().find_user(kBob)->subscriptions, (std::vector<Subscription>{{kCarol, 2}}));
  EXPECT_EQ(p.state().find_user(kCarol)->subscribers, std::vector<ActorId>{kBob});
}

TEST(ProgramUnsubscribe, NotSubscribedIsANoOpSuccess) {
  auto p = with_users();
  const Bytes before = state_bytes(p);
  EXPECT_EQ(expect_ok(send(p, kBob, Unsubscribe{kAlice})), Event(Unsubscribed{}));
  EXPECT_EQ(state_bytes(p), before);
}

TEST(ProgramUnsubscribe, RefusalsInTheDeployedOrder) {
  auto p = with_users();
  ASSERT_TRUE(send(p, kBob, Subscribe{kAlice}, 1).ok);
  expect_refused(p, kBob, Unsubscribe{kNobody}, "The user is not found");
  expect_refused(p, kNobody, Unsubscribe{kAlice}, "You are not registered");
  expect_refused(p, kNobody, Unsubscribe{actor(0x55)}, "The user is not found");
}

// ---------------------------------------------------------------- admin

TEST(ProgramAdmin, AdminAddsAdminsWithoutDuplicateCheck) {
  auto p = with_users();
  EXPECT_EQ(expect_ok(send(p, kAdmin, AddAdmin{kAlice})), Event(AdminAdded{kAlice}));
  expect_ok(send(p, kAlice, AddAdmin{kBob}));  // the new admin has the right too
  expect_ok(send(p, kAdmin, AddAdmin{kBob}));
  EXPECT_EQ(p.state().admins, (std::vector<ActorId>{kAdmin, kAlice, kBob, kBob}));
}

TEST(ProgramAdmin, NonAdminIsRefused) {
  auto p = with_users();
  expect_refused(p, kAlice, AddAdmin{kAlice}, "Not admin");
  expect_refused(p, kNobody, AddAdmin{kNobody}, "Not admin");
}

TEST(ProgramKill, NonAdminIsRefused) {
  auto p = with_users();
  expect_refused(p, kAlice, Kill{kAlice}, "Not admin");
  EXPECT_FALSE(p.terminated());
}

TEST(ProgramKill, AdminKillsAndEverythingAfterIsRefused) {
  auto p = with_users();
  ASSERT_TRUE(send(p, kAlice, stream_cmd("s"), 1).ok);
  EXPECT_EQ(expect_ok(send(p, kAdmin, Kill{kCarol})), Event(Killed{kCarol}));
  EXPECT_TRUE(p.terminated());
  // Every later message, even from an admin and even an undecodable one, is refused.
  expect_refused(p, kAdmin, AddAdmin{kBob}, "Program terminated");
  expect_refused(p, kAlice, stream_cmd("t"), "Program terminated");
  expect_refused(p, kAlice, profile("x", "y", "z", "w"), "Program terminated");
  expect_refused(p, kAdmin, Kill{kAdmin}, "Program terminated");
  Outcome raw = p.handle(kAlice, Bytes{0x00}, 2);
  EXPECT_FALSE(raw.ok);
  EXPECT_EQ(raw.panic, "Program terminated");
  Outcome typed = p.handle(kAlice, Command(DeleteStream{"1s"}), 2);
  EXPECT_EQ(typed.panic, "Program terminated");
  Outcome q = p.query(encode_query(GetState{}));
  EXPECT_FALSE(q.ok);
  EXPECT_EQ(q.panic, "Program terminated");
  EXPECT_NE(p.state().find_stream("1s"), nullptr) << "the last state stays readable in-process";
}

}  // namespace
}  // namespace p2p::program
