// Tests for sails: route bytes, header parsing, unit replies and panic reply text.
#include <gtest/gtest.h>

#include "sails/sails.hpp"

namespace p2p::sails {
namespace {

Bytes hex(std::string_view h) {
  auto b = from_hex(h);
  if (!b) throw std::invalid_argument("bad hex in test");
  return *b;
}

std::string msg_of(std::string_view raw) { return panic_message(view(raw)); }

// "W3Bstreaming" and "GetState" as SCALE strings, written out by hand.
constexpr std::string_view kGetStateRoute = "0x3057334273747265616d696e67204765745374617465";

TEST(SailsRoute, GetStateBytes) { EXPECT_EQ(to_hex(route("W3Bstreaming", "GetState")), kGetStateRoute); }

TEST(SailsRoute, EmptyNames) { EXPECT_EQ(to_hex(route("", "")), "0x0000"); }

TEST(SailsHeader, ReadsServiceMethodAndOffset) {
  Bytes p = hex(std::string(kGetStateRoute) + "abcd");
  Header h = read_header(p);
  EXPECT_EQ(h.service, "W3Bstreaming");
  EXPECT_EQ(h.method, "GetState");
  EXPECT_EQ(h.args_offset, 22u);
  EXPECT_EQ(p[h.args_offset], 0xab);
}

TEST(SailsHeader, RejectsMissingOrBrokenStrings) {
  Bytes full = hex(kGetStateRoute);
  for (std::size_t cut = 0; cut < full.size(); ++cut) {
    ByteView prefix(full.data(), cut);
    EXPECT_THROW(read_header(prefix), scale::DecodeError) << "cut at " << cut;
  }
  EXPECT_THROW(read_header(hex("0x04ff04ff")), scale::DecodeError);  // invalid UTF-8 names
}

TEST(SailsUnitReply, EmptyOrExactPrefixOnly) {
  Bytes prefix = route("W3Bstreaming", "NewStream");
  EXPECT_TRUE(is_unit_reply({}, "W3Bstreaming", "NewStream"));
  EXPECT_TRUE(is_unit_reply(prefix, "W3Bstreaming", "NewStream"));
  EXPECT_FALSE(is_unit_reply(prefix, "W3Bstreaming", "EditStream"));
  Bytes longer = prefix;
  longer.push_back(0);
  EXPECT_FALSE(is_unit_reply(longer, "W3Bstreaming", "NewStream"));
  Bytes shorter(prefix.begin(), prefix.end() - 1);
  EXPECT_FALSE(is_unit_reply(shorter, "W3Bstreaming", "NewStream"));
}

TEST(SailsPanic, PayloadBytes) {
  EXPECT_EQ(to_hex(panic_payload("Id is not exist")),
            "0x" "70616e69636b6564207769746820"  // "panicked with "
            "27" "4964206973206e6f74206578697374" "27");
}

TEST(SailsPanic, MessageOnly) {
  EXPECT_EQ(msg_of("panicked with 'Account is no registered'"), "Account is no registered");
}

TEST(SailsPanic, MessageWithLocation) {
  EXPECT_EQ(msg_of("panicked with 'You are not broadcaster' at 'app/src/lib.rs:120:13'"), "You are not broadcaster");
}

TEST(SailsPanic, QuotesInsideMessage) {
  EXPECT_EQ(msg_of("panicked with 'can't find 'x''"), "can't find 'x'");
  EXPECT_EQ(msg_of("panicked with 'it's 'here' at 'there'' at 'src/lib.rs:1:1'"), "it's 'here' at 'there'");
}

TEST(SailsPanic, RoundTripsPanicPayload) {
  for (std::string_view m : {"Id is not exist", "The user is not found", "a 'quoted' word", "ünïcödé"})
    EXPECT_EQ(panic_message(panic_payload(m)), m);
}

TEST(SailsPanic, EmptyPayloadOrEmptyMessage) {
  EXPECT_EQ(panic_message({}), "(no reason given)");
  EXPECT_EQ(msg_of("panicked with ''"), "(no reason given)");
}

TEST(SailsPanic, OtherTextReturnedAsIs) {
  EXPECT_EQ(msg_of("Program terminated"), "Program terminated");
  EXPECT_EQ(msg_of("panicked with 'unterminated"), "panicked with 'unterminated");
  EXPECT_EQ(msg_of("panicked with '"), "panicked with '");
}

TEST(SailsPanic, GarbageMadePrintable) {
  EXPECT_EQ(panic_message(hex("0x41ff420a43c3")), "A?B?C?");   // invalid byte, newline, cut sequence
  EXPECT_EQ(panic_message(hex("0x1b5b33316d78")), "?[31mx");    // ESC of a terminal colour code
  EXPECT_EQ(panic_message(hex("0xc29b41")), "?A");              // C1 control U+009B
  EXPECT_EQ(panic_message(hex("0xc3a9e282ac")), "\xc3\xa9\xe2\x82\xac");  // valid é€ kept
  // The same cleaning applies inside a well-formed panic.
  EXPECT_EQ(msg_of("panicked with 'a\x07" "b'"), "a?b");
}

}  // namespace
}  // namespace p2p::sails
