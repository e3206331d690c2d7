// Tests for w3b/messages: byte-exact payloads (chain.md vectors and hand-built ones),
// round trips of every message and of a full state, and refusal of every malformed payload.
#include <gtest/gtest.h>

#include <set>

#include "sails/sails.hpp"
#include "w3b/messages.hpp"

namespace p2p::w3b {
namespace {

using scale::DecodeError;

Bytes hex(std::string_view h) {
  auto b = from_hex(h);
  if (!b) throw std::invalid_argument("bad hex in test");
  return *b;
}

ActorId actor(std::uint8_t fill) {
  ActorId a;
  a.fill(fill);
  return a;
}

std::string actor_hex(std::uint8_t fill) { return to_hex(actor(fill), false); }

// Hex of SCALE("W3Bstreaming"): 12 << 2 = 0x30, then the ASCII bytes.
constexpr std::string_view kServiceHex = "3057334273747265616d696e67";

// The message of the DecodeError that f throws ("" if it throws nothing).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const DecodeError& e) {
    return e.what();
  }
  return "";
}

// ---- chain.md vectors and hand-built payloads ----

TEST(W3bMessagesVectors, NewStreamFromChainMd) {
  Command c = NewStream{"t", std::nullopt, 1, 2, "i"};
  EXPECT_EQ(to_hex(encode_command(c)),
            "0x3057334273747265616d696e67244e657753747265616d047400010000000000000002000000000000000469");
  EXPECT_EQ(decode_command(hex("0x3057334273747265616d696e67244e657753747265616d04740001000000000000000200000000"
                               "0000000469")),
            c);
}

TEST(W3bMessagesVectors, GetStateFromChainMd) {
  EXPECT_EQ(to_hex(encode_query(GetState{})), "0x3057334273747265616d696e67204765745374617465");
  EXPECT_EQ(decode_query(hex("0x3057334273747265616d696e67204765745374617465")), Query{GetState{}});
}

TEST(W3bMessagesVectors, Subscribe) {
  // "Subscribe" is 9 bytes: length byte 0x24.
  std::string expect = "0x" + std::string(kServiceHex) + "24537562736372696265" + actor_hex(0x11);
  EXPECT_EQ(to_hex(encode_command(Subscribe{actor(0x11)})), expect);
}

TEST(W3bMessagesVectors, EditStreamOptions) {
  EditStream m{"1t", 5, std::nullopt, std::nullopt, "x", std::nullopt};
  std::string expect = "0x" + std::string(kServiceHex) + "284564697453747265616d" +
                       "083174"                 // stream_id "1t"
                       "010500000000000000"     // start_time Some(5)
                       "00"                     // end_time None
                       "00"                     // title None
                       "010478"                 // img_link Some("x")
                       "00";                    // description None
  EXPECT_EQ(to_hex(encode_command(m)), expect);
  EXPECT_EQ(decode_command(hex(expect)), Command{m});
}

TEST(W3bMessagesVectors, EditProfile) {
  EditProfile m{"a", std::nullopt, std::nullopt, "UTC"};
  std::string expect = "0x" + std::string(kServiceHex) + "2c4564697450726f66696c65" + "010461" "00" "00" "010c555443";
  EXPECT_EQ(to_hex(encode_command(m)), expect);
}

TEST(W3bMessagesVectors, Events) {
  EXPECT_EQ(to_hex(encode_event(StreamIsScheduled{"1t"})),
            "0x" + std::string(kServiceHex) + "4453747265616d49735363686564756c6564" "083174");
  EXPECT_EQ(to_hex(encode_event(Killed{actor(9)})), "0x" + std::string(kServiceHex) + "184b696c6c6564" + actor_hex(9));
  // A unit event is the bare route: no enum index byte.
  EXPECT_EQ(encode_event(StreamEdited{}), sails::route("W3Bstreaming", "StreamEdited"));
}

TEST(W3bMessagesVectors, SmallStateReply) {
  ProgramState s;
  s.streams.push_back({"1t", Stream{actor(1), 1, 2, "t", "i", std::nullopt}});
  Profile p;
  p.name = "n";
  p.stream_ids = {"1t"};
  p.subscribers = {actor(3)};
  p.subscriptions = {Subscription{actor(4), 7}};
  s.users.push_back({actor(2), p});
  s.admins = {actor(5)};
  s.dns_info = std::pair{actor(6), std::string("dns")};
  std::string expect = "0x" + std::string(kServiceHex) + "204765745374617465" +  // route GetState
                       "04" "083174" + actor_hex(1) +                              // 1 stream "1t"
                       "0100000000000000" "0200000000000000" "0474" "0469" "00" +  // times, title, img, no desc
                       "04" + actor_hex(2) +                                       // 1 user
                       "01046e" "00" "00" "00" +                                   // name only
                       "04083174" "04" + actor_hex(3) +                            // stream_ids, subscribers
                       "04" + actor_hex(4) + "0700000000000000" +                  // subscriptions
                       "04" + actor_hex(5) +                                       // admins
                       "01" + actor_hex(6) + "0c646e73";                           // dns_info
  EXPECT_EQ(to_hex(encode_state_reply(s)), expect);
  EXPECT_EQ(decode_state_reply(hex(expect)), s);
}

// ---- round trips ----

std::vector<Command> all_commands() {
  return {
      NewStream{"title", std::nullopt, 1700000000000, 1700003600000, "https://img/x.png"},
      NewStream{"Ünïcödé 📺", "a description", 0, UINT64_MAX, ""},
      EditStream{"1700000000000title", std::nullopt, std::nullopt, std::nullopt, std::nullopt, std::nullopt},
      EditStream{"id", 10, 20, "new title", "new img", "new desc"},
      DeleteStream{"1700000000000title"},
      Subscribe{actor(0xaa)},
      Unsubscribe{actor(0xbb)},
      EditProfile{},
      EditProfile{"Ada", "Lovelace", "https://img/a.png", "Europe/London"},
      AddAdmin{actor(0x01)},
      Kill{actor(0xfe)},
  };
}

std::vector<Event> all_events() {
  return {StreamIsScheduled{"1700000000000title"}, StreamDeleted{"x"}, StreamEdited{}, Subscribed{},
          Unsubscribed{}, ProfileEdited{}, AdminAdded{actor(7)}, Killed{actor(8)}};
}

TEST(W3bMessagesRoundTrip, EveryCommand) {
  std::set<std::string_view> names;
  for (const auto& c : all_commands()) {
    Bytes b = encode_command(c);
    auto h = sails::read_header(b);
    EXPECT_EQ(h.service, "W3Bstreaming");
    EXPECT_EQ(h.method, method_name(c));
    EXPECT_EQ(decode_command(b), c) << method_name(c);
    names.insert(method_name(c));
  }
  EXPECT_EQ(names, (std::set<std::string_view>{"NewStream", "EditStream", "DeleteStream", "Subscribe",
                                               "Unsubscribe", "EditProfile", "AddAdmin", "Kill"}));
}

TEST(W3bMessagesRoundTrip, EveryEvent) {
  std::set<std::string_view> names;
  for (const auto& e : all_events()) {
    Bytes b = encode_event(e);
    EXPECT_EQ(sails::read_header(b).method, event_name(e));
    EXPECT_EQ(decode_event(b), e) << event_name(e);
    names.insert(event_name(e));
  }
  EXPECT_EQ(names.size(), 8u);
  EXPECT_TRUE(names.count("StreamIsScheduled") && names.count("AdminAdded") && names.count("Killed"));
}

ProgramState full_state() {
  ProgramState s;
  s.streams.push_back({"1700000000000Morning show", Stream{actor(1), 1700000000000, 1700003600000, "Morning show",
                                                           "https://img/m.png", "Coffee and news"}});
  s.streams.push_back(
      {"1700000100000Quiet", Stream{actor(2), 1700000100000, 1700000200000, "Quiet", "", std::nullopt}});
  s.streams.push_back({"x", Stream{actor(1), 0, UINT64_MAX, "x", "y", std::string()}});  // Some("") is not None
  Profile full{"Ada", "Lovelace", "https://img/a.png", "Europe/London",
               {"1700000000000Morning show", "x"},
               {actor(2), actor(3), actor(2)},  // duplicates happen on chain
               {Subscription{actor(2), 1700000000001}, Subscription{actor(3), 42}}};
  Profile bare;  // every optional unset, every vector empty
  Profile partial{std::nullopt, "Only-surname", std::nullopt, "UTC",
                  {"1700000100000Quiet"}, {}, {Subscription{actor(1), 5}}};
  s.users = {{actor(1), full}, {actor(2), bare}, {actor(3), partial}};
  s.admins = {actor(1), actor(0xff)};
  s.dns_info = std::pair{actor(0x42), std::string("w3bstreaming.vara")};
  return s;
}

TEST(W3bMessagesRoundTrip, FullState) {
  ProgramState s = full_state();
  Bytes reply = encode_state_reply(s);
  EXPECT_EQ(decode_state_reply(reply), s);
  // The reply is the GetState route followed by the bare state body.
  scale::Encoder body;
  encode_state(body, s);
  EXPECT_EQ(reply, concat({sails::route("W3Bstreaming", "GetState"), body.out()}));
  scale::Decoder d(body.out());
  EXPECT_EQ(decode_state(d), s);
  EXPECT_TRUE(d.at_end());
}

TEST(W3bMessagesRoundTrip, EmptyState) {
  ProgramState s;
  Bytes reply = encode_state_reply(s);
  EXPECT_EQ(to_hex(reply), "0x" + std::string(kServiceHex) + "204765745374617465" "00000000");
  EXPECT_EQ(decode_state_reply(reply), s);
}

TEST(W3bMessagesState, FindStreamAndUser) {
  ProgramState s = full_state();
  ASSERT_NE(s.find_stream("1700000100000Quiet"), nullptr);
  EXPECT_EQ(s.find_stream("1700000100000Quiet")->title, "Quiet");
  EXPECT_EQ(s.find_stream("missing"), nullptr);
  ASSERT_NE(s.find_user(actor(3)), nullptr);
  EXPECT_EQ(s.find_user(actor(3))->surname, "Only-surname");
  EXPECT_EQ(s.find_user(actor(9)), nullptr);
}

// ---- malformed payloads ----

TEST(W3bMessagesReject, EveryTruncationOfFullState) {
  Bytes reply = encode_state_reply(full_state());
  for (std::size_t cut = 0; cut < reply.size(); ++cut) {
    Bytes prefix(reply.begin(), reply.begin() + static_cast<std::ptrdiff_t>(cut));
    EXPECT_THROW(decode_state_reply(prefix), DecodeError) << "cut at " << cut << " of " << reply.size();
  }
}

TEST(W3bMessagesReject, EveryTruncationOfEveryCommand) {
  for (const auto& c : all_commands()) {
    Bytes b = encode_command(c);
    for (std::size_t cut = 0; cut < b.size(); ++cut)
      EXPECT_THROW(decode_command(ByteView(b.data(), cut)), DecodeError) << method_name(c) << " cut at " << cut;
  }
}

TEST(W3bMessagesReject, TrailingBytes) {
  for (const auto& c : all_commands()) {
    Bytes b = encode_command(c);
    b.push_back(0);
    EXPECT_THROW(decode_command(b), DecodeError) << method_name(c);
  }
  for (const auto& e : all_events()) {
    Bytes b = encode_event(e);
    b.push_back(0);
    EXPECT_THROW(decode_event(b), DecodeError) << event_name(e);
  }
  Bytes q = encode_query(GetState{});
  q.push_back(0);
  EXPECT_THROW(decode_query(q), DecodeError);
  Bytes s = encode_state_reply(full_state());
  s.push_back(0);
  EXPECT_NE(error_of([&] { decode_state_reply(s); }).find("trailing"), std::string::npos);
}

TEST(W3bMessagesReject, WrongService) {
  Bytes b = concat({sails::route("Other", "NewStream"), hex("0x04740001000000000000000200000000000000" "0469")});
  std::string err = error_of([&] { decode_command(b); });
  EXPECT_NE(err.find("'Other'"), std::string::npos) << err;
  EXPECT_THROW(decode_query(sails::route("w3bstreaming", "GetState")), DecodeError);  // case matters
  EXPECT_THROW(decode_event(sails::route("Other", "StreamEdited")), DecodeError);
  EXPECT_THROW(decode_state_reply(concat({sails::route("Other", "GetState"), hex("0x00000000")})), DecodeError);
}

TEST(W3bMessagesReject, UnknownNames) {
  EXPECT_NE(error_of([] { decode_command(sails::route("W3Bstreaming", "Foo")); })
                .find("unknown W3Bstreaming method 'Foo'"),
            std::string::npos);
  // A query is not a command, and a command is not an event.
  EXPECT_NE(error_of([] { decode_command(encode_query(GetState{})); }).find("method 'GetState'"), std::string::npos);
  EXPECT_NE(error_of([] { decode_event(encode_command(Subscribe{})); }).find("unknown W3Bstreaming event 'Subscribe'"),
            std::string::npos);
  EXPECT_NE(error_of([] { decode_query(sails::route("W3Bstreaming", "GetStats")); }).find("query 'GetStats'"),
            std::string::npos);
  // A state reply must answer GetState.
  EXPECT_THROW(decode_state_reply(concat({sails::route("W3Bstreaming", "NewStream"), hex("0x00000000")})),
               DecodeError);
}

TEST(W3bMessagesReject, BadArgumentNamesTheMethod) {
  // NewStream with description tag 2.
  Bytes b = hex("0x3057334273747265616d696e67244e657753747265616d047402");
  std::string err = error_of([&] { decode_command(b); });
  EXPECT_NE(err.find("NewStream"), std::string::npos) << err;
  EXPECT_NE(err.find("Option tag"), std::string::npos) << err;
}

TEST(W3bMessagesReject, InvalidUtf8InArgument) {
  Bytes b = concat({sails::route("W3Bstreaming", "DeleteStream"), hex("0x08c328")});
  EXPECT_NE(error_of([&] { decode_command(b); }).find("UTF-8"), std::string::npos);
}

TEST(W3bMessagesReject, HugeLengthsInState) {
  Bytes route = sails::route("W3Bstreaming", "GetState");
  // streams: 2^30 entries with 4 bytes left.
  EXPECT_THROW(decode_state_reply(concat({route, hex("0x0300000040000000")})), DecodeError);
  // admins: 2^64-1 entries.
  EXPECT_THROW(decode_state_reply(concat({route, hex("0x000013ffffffffffffffff00")})), DecodeError);
  // dns name with a length of 2^62.
  Bytes dns = concat({route, hex("0x00000001"), actor(1), hex("0x13000000000000004000")});
  EXPECT_THROW(decode_state_reply(dns), DecodeError);
}

TEST(W3bMessagesReject, BadTagsInState) {
  Bytes good = encode_state_reply(ProgramState{{}, {}, {}, std::pair{actor(1), std::string("d")}});
  Bytes bad = good;
  bad[22 + 3] = 2;  // dns_info Option tag
  EXPECT_THROW(decode_state_reply(bad), DecodeError);
  EXPECT_EQ(decode_state_reply(good).dns_info->second, "d");
}

TEST(W3bMessagesUnitReply, EmptyOrPrefix) {
  Command c = DeleteStream{"x"};
  EXPECT_TRUE(is_unit_reply(c, {}));
  EXPECT_TRUE(is_unit_reply(c, sails::route("W3Bstreaming", "DeleteStream")));
  EXPECT_FALSE(is_unit_reply(c, sails::route("W3Bstreaming", "NewStream")));
  EXPECT_FALSE(is_unit_reply(c, hex("0x00")));
}

}  // namespace
}  // namespace p2p::w3b
