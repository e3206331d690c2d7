// Tests for gear_rpc/block_events: a block's events are built in lib/metadata's shapes, sent through the real
// Vara metadata's encoder and decoder (so the shapes are the ones a node's bytes give), then searched.
#include "gear_rpc/block_events.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "sails/sails.hpp"

namespace p2p::gear_rpc {
namespace {

using metadata::EventRecord;
using metadata::Value;

const metadata::Metadata& vara() {
  static const metadata::Metadata m = [] {
    std::ifstream in(std::string(P2P_SHARED_DATA) + "/vara_runtime.scale", std::ios::binary);
    return metadata::Metadata::parse(Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()));
  }();
  return m;
}

Hash32 filled(std::uint8_t b) {
  Hash32 h;
  h.fill(b);
  return h;
}

const Hash32 kUser = filled(0xd4), kOther = filled(0x8e), kProgram = filled(0x5c), kZero{};
const Hash32 kMsg = filled(0x01), kOtherMsg = filled(0x02);

EventRecord record(Value phase, std::string pallet, std::string name, Value fields) {
  EventRecord r;
  r.phase = std::move(phase);
  r.pallet = std::move(pallet);
  r.name = std::move(name);
  r.fields = std::move(fields);
  return r;
}

Value in_xt(std::uint32_t i) { return Value{{"ApplyExtrinsic", i}}; }

EventRecord queued(std::uint32_t xt, const Hash32& id, const Hash32& from, const Hash32& to) {
  return record(in_xt(xt), "Gear", "MessageQueued",
                {{"id", to_hex(id)}, {"source", to_hex(from)}, {"destination", to_hex(to)}, {"entry", "Handle"}});
}

EventRecord sent(std::uint8_t id, const Hash32& from, const Hash32& to, ByteView payload, Value details) {
  return record("Finalization", "Gear", "UserMessageSent",
                {{"message",
                  {{"id", to_hex(filled(id))},
                   {"source", to_hex(from)},
                   {"destination", to_hex(to)},
                   {"payload", to_hex(payload)},
                   {"value", "0"},
                   {"details", std::move(details)}}},
                 {"expiration", nullptr}});
}

Value reply_to(const Hash32& id, Value code) { return {{"to", to_hex(id)}, {"code", std::move(code)}}; }
const Value kAuto = {{"Success", "Auto"}};
const Value kPanic = {{"Error", {{"Execution", "UserspacePanic"}}}};

EventRecord fee(std::uint32_t xt, const char* amount) {
  return record(in_xt(xt), "TransactionPayment", "TransactionFeePaid",
                {{"who", to_hex(kUser)}, {"actual_fee", amount}, {"tip", "0"}});
}

// Through the real metadata's bytes and back, so the tests read what a node's System.Events decodes to.
std::vector<EventRecord> through_bytes(const std::vector<EventRecord>& in) {
  return vara().decode_events(vara().encode_events(in));
}

Bytes ev(const char* name) { return sails::route("W3Bstreaming", name); }

TEST(GearRpcEvents, FindsMessageReplyEventsAndFee) {
  auto events = through_bytes({
      record(in_xt(0), "System", "ExtrinsicSuccess",
             {{"dispatch_info", {{"weight", {{"ref_time", 1}, {"proof_size", 2}}}, {"class", "Mandatory"}, {"pays_fee", "Yes"}}}}),
      queued(1, kMsg, kUser, kProgram),
      fee(1, "123456789012345678901"),
      sent(0x10, kProgram, kZero, ev("StreamIsScheduled"), nullptr),
      sent(0x11, kProgram, kUser, {}, reply_to(kMsg, kAuto)),
  });
  EXPECT_EQ(queued_message(events, 1, kUser, kProgram), kMsg);
  EXPECT_EQ(queued_message(events, 0, kUser, kProgram), std::nullopt);   // other extrinsic
  EXPECT_EQ(queued_message(events, 1, kOther, kProgram), std::nullopt);  // other sender
  EXPECT_EQ(queued_message(events, 1, kUser, kOther), std::nullopt);     // other program
  EXPECT_EQ(fee_paid(events, 1), "123456789012345678901");
  EXPECT_EQ(fee_paid(events, 0), std::nullopt);
  EXPECT_EQ(extrinsic_failure(vara(), events, 1), std::nullopt);
  auto r = find_reply(events, kMsg, kProgram);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->ok);
  EXPECT_TRUE(r->payload.empty());
  ASSERT_EQ(r->events.size(), 1u);
  EXPECT_EQ(r->events[0], ev("StreamIsScheduled"));
  EXPECT_FALSE(find_reply(events, kOtherMsg, kProgram));
}

TEST(GearRpcEvents, PanicReplyCarriesTheReason) {
  Bytes panic = sails::panic_payload("Account is no registered");
  auto events = through_bytes({queued(2, kMsg, kUser, kProgram), sent(0x11, kProgram, kUser, panic, reply_to(kMsg, kPanic))});
  auto r = find_reply(events, kMsg, kProgram);
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->ok);
  EXPECT_EQ(r->panic, "Account is no registered");
  EXPECT_EQ(r->payload, panic);
  EXPECT_TRUE(r->events.empty());
}

TEST(GearRpcEvents, ErrorWithoutPayloadNamesTheCode) {
  Value out_of_gas = {{"Error", {{"Execution", "RanOutOfGas"}}}};
  auto events = through_bytes({queued(1, kMsg, kUser, kProgram), sent(0x11, kProgram, kUser, {}, reply_to(kMsg, out_of_gas))});
  auto r = find_reply(events, kMsg, kProgram);
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->ok);
  EXPECT_EQ(r->panic, "the message failed: Error::Execution::RanOutOfGas");
}

TEST(GearRpcEvents, TwoMessagesToTheProgramSplitEventsAtReplies) {
  // Another user's message is processed first; each program's events precede its reply.
  auto events = through_bytes({
      queued(1, kOtherMsg, kOther, kProgram),
      queued(2, kMsg, kUser, kProgram),
      sent(0x20, kProgram, kZero, ev("Subscribed"), nullptr),
      sent(0x21, kProgram, kOther, {}, reply_to(kOtherMsg, kAuto)),
      sent(0x22, kProgram, kZero, ev("StreamDeleted"), nullptr),
      sent(0x23, kProgram, kZero, ev("ProfileEdited"), nullptr),
      sent(0x24, kProgram, kUser, {}, reply_to(kMsg, kAuto)),
      sent(0x25, kProgram, kZero, ev("Unsubscribed"), nullptr),  // someone else's, after ours
  });
  auto mine = find_reply(events, kMsg, kProgram);
  ASSERT_TRUE(mine);
  EXPECT_EQ(mine->events, (std::vector<Bytes>{ev("StreamDeleted"), ev("ProfileEdited")}));
  auto theirs = find_reply(events, kOtherMsg, kProgram);
  ASSERT_TRUE(theirs);
  EXPECT_EQ(theirs->events, (std::vector<Bytes>{ev("Subscribed")}));
  EXPECT_EQ(program_events(events, kProgram).size(), 4u);
  EXPECT_TRUE(program_events(events, kOther).empty());
}

TEST(GearRpcEvents, SoleMessageTakesAllTheProgramsEventsWhateverTheOrder) {
  // A node that writes the reply before the events still attributes them when ours is the only message.
  auto events = through_bytes({
      queued(1, kMsg, kUser, kProgram),
      sent(0x24, kProgram, kUser, {}, reply_to(kMsg, kAuto)),
      sent(0x25, kProgram, kZero, ev("StreamEdited"), nullptr),
      sent(0x26, kOther, kZero, ev("Foreign"), nullptr),  // another program's event
  });
  auto r = find_reply(events, kMsg, kProgram);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->events, (std::vector<Bytes>{ev("StreamEdited")}));
}

TEST(GearRpcEvents, ExtrinsicFailureNamesThePalletError) {
  auto events = through_bytes({
      record(in_xt(3), "System", "ExtrinsicFailed",
             {{"dispatch_error", {{"Module", {{"index", 104}, {"error", "0x01000000"}}}}},
              {"dispatch_info", {{"weight", {{"ref_time", 1}, {"proof_size", 2}}}, {"class", "Normal"}, {"pays_fee", "Yes"}}}}),
      record(in_xt(4), "System", "ExtrinsicFailed",
             {{"dispatch_error", "BadOrigin"},
              {"dispatch_info", {{"weight", {{"ref_time", 1}, {"proof_size", 2}}}, {"class", "Normal"}, {"pays_fee", "Yes"}}}}),
  });
  EXPECT_EQ(extrinsic_failure(vara(), events, 3), "Gear.InsufficientBalance");
  EXPECT_EQ(extrinsic_failure(vara(), events, 4), "BadOrigin");
  EXPECT_EQ(extrinsic_failure(vara(), events, 5), std::nullopt);
}

}  // namespace
}  // namespace p2p::gear_rpc
