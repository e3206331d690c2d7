// Tests for lib/devnode/chain: genesis, validation as a Substrate node does it, the pool, block production
// and the System.Events it writes, decoded back with the real Vara metadata. Extrinsics are built by the
// client's gear_rpc::build_signed, so these tests also pin the two sides to one wire format.
#include "devnode/chain.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "vara_metadata/embedded.hpp"
#include "gear_rpc/extrinsic.hpp"
#include "config/temp_dir.hpp"
#include "w3b/messages.hpp"

namespace p2p::devnode {
namespace {

using gear_rpc::Era;
using metadata::EventRecord;
using metadata::Value;

// chain.md's examples.
const char* kNewStreamHex = "0x3057334273747265616d696e67244e657753747265616d047400010000000000000002000000000000000469";
const char* kGetStateHex = "0x3057334273747265616d696e67204765745374617465";

Bytes hex(std::string_view h) {
  auto b = from_hex(h);
  EXPECT_TRUE(b) << h;
  return b.value_or(Bytes{});
}

const metadata::Metadata& vara() {
  static const metadata::Metadata m = metadata::Metadata::parse(vara_metadata::embedded());
  return m;
}

using p2p::config::TempDir;

keys::Keypair key(std::uint8_t n) {
  keys::Seed s{};
  s.fill(n);
  return keys::Keypair::from_seed(s);
}

Bytes edit_profile(const std::string& name) {
  w3b::EditProfile p;
  p.name = name;
  return w3b::encode_command(p);
}

// One devnode over a fresh ledger with fixed clocks.
struct Node {
  TempDir dir;
  ledger::Ledger ledger;
  Chain chain;
  explicit Node(Options opts = {})
      : ledger(dir.path() / "ledger.db", ledger::Options{.busy_timeout_ms = 5000, .fixed_time_ms = 1'700'000'000'000}),
        chain(vara(), ledger, with_clock(std::move(opts))) {}
  static Options with_clock(Options o) {
    if (!o.clock) o.clock = [] { return std::uint64_t{1'700'000'000'000}; };
    return o;
  }

  gear_rpc::SigningContext context(std::uint64_t nonce) const {
    gear_rpc::SigningContext ctx;
    ctx.spec_version = chain.runtime_version().spec_version;
    ctx.tx_version = chain.runtime_version().transaction_version;
    ctx.genesis = chain.genesis_hash();
    ctx.era_block_hash = chain.genesis_hash();
    ctx.nonce = nonce;
    return ctx;
  }
  Bytes call(ByteView payload, std::optional<Hash32> dest = std::nullopt, std::uint64_t gas = 10'000'000'000) const {
    gear_rpc::SendMessageCall c;
    c.destination = dest.value_or(chain.program_id());
    c.payload.assign(payload.begin(), payload.end());
    c.gas_limit = gas;
    return gear_rpc::encode_send_message(vara(), c);
  }
  Bytes signed_tx(const keys::Keypair& k, ByteView payload, std::uint64_t nonce) const {
    return gear_rpc::build_signed(vara(), k, call(payload), context(nonce));
  }
  std::vector<EventRecord> events(const Block& b) const { return vara().decode_events(b.events); }
};

template <class F>
Options options(F&& set) {
  Options o;
  set(o);
  return o;
}

// Expects RpcError with this code and data.
template <class F>
void expect_rpc_error(F&& f, int code, const std::string& data) {
  try {
    f();
    ADD_FAILURE() << "no RpcError; expected " << code << " " << data;
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_EQ(e.data().value_or("<none>"), data) << e.what();
  }
}

std::vector<std::string> names(const std::vector<EventRecord>& evs) {
  std::vector<std::string> out;
  for (const auto& e : evs) out.push_back(e.phase.dump() + " " + e.pallet + "." + e.name);
  return out;
}

Hash32 expected_message_id(std::uint32_t block, std::uint32_t index, const keys::PublicKey& who, ByteView payload) {
  Bytes pre(std::string_view("p2pstream-devnode/message").begin(), std::string_view("p2pstream-devnode/message").end());
  for (int i = 0; i < 4; ++i) pre.push_back(static_cast<std::uint8_t>(block >> (8 * i)));
  for (int i = 0; i < 4; ++i) pre.push_back(static_cast<std::uint8_t>(index >> (8 * i)));
  pre.insert(pre.end(), who.begin(), who.end());
  pre.insert(pre.end(), payload.begin(), payload.end());
  return blake2b_256(pre);
}

// ---------------------------------------------------------------------------------------------

TEST(DevnodeChain, EmbeddedMetadataIsTheCommittedFile) {
  std::ifstream in(std::string(P2P_TEST_DATA) + "/../../data/vara_runtime.scale", std::ios::binary);
  ASSERT_TRUE(in);
  Bytes file(std::istreambuf_iterator<char>(in), {});
  ByteView embedded = vara_metadata::embedded();
  ASSERT_EQ(embedded.size(), file.size());
  EXPECT_TRUE(std::equal(file.begin(), file.end(), embedded.begin()));
}

TEST(DevnodeChain, GenesisIsDeterministicAndWellFormed) {
  Node a, b;
  EXPECT_EQ(a.chain.genesis_hash(), b.chain.genesis_hash());
  const Block& g = a.chain.best();
  EXPECT_EQ(g.header.number, 0u);
  EXPECT_EQ(g.header.parent_hash, Hash32{});
  EXPECT_EQ(g.hash, blake2b_256(g.header.encode()));
  // parent (32) ++ Compact(0) ++ two roots ++ empty digest
  EXPECT_EQ(g.header.encode().size(), 32u + 1 + 32 + 32 + 1);
  EXPECT_TRUE(a.events(g).empty());
  EXPECT_EQ(&a.chain.finalized(), &a.chain.best());
  EXPECT_EQ(a.chain.block(g.hash), &g);
}

TEST(DevnodeChain, RuntimeVersionFollowsTheMetadataUnlessOverridden) {
  Node n;
  // data/vara_runtime.scale is a testnet runtime: System.Version says so.
  EXPECT_EQ(n.chain.runtime_version().spec_name, "vara-testnet");
  EXPECT_EQ(n.chain.runtime_version().spec_version, 20000u);
  EXPECT_EQ(n.chain.runtime_version().transaction_version, 1u);
  auto j = n.chain.runtime_version().to_json();
  EXPECT_EQ(j["specVersion"], 20000);
  EXPECT_EQ(j["apis"][0][0], "0xcbca25e39f142387");
  Node o(options([](Options& x) {
    x.spec_version = 1900;
    x.tx_version = 7;
  }));
  EXPECT_EQ(o.chain.runtime_version().spec_version, 1900u);
  EXPECT_EQ(o.chain.runtime_version().transaction_version, 7u);
}

TEST(DevnodeChain, EmptyBlocksCarryOnlyTheTimestampInherent) {
  Node n;
  const Block& b1 = n.chain.produce_block();
  ASSERT_EQ(b1.extrinsics.size(), 1u);
  // Compact(10) ++ 0x04 (unsigned v4) ++ Timestamp.set (1, 0) ++ Compact<u64>(1.7e12)
  scale::Encoder now;
  now.compact(1'700'000'000'000);
  EXPECT_EQ(to_hex(b1.extrinsics[0]), "0x28040100" + to_hex(now.out(), false));
  EXPECT_EQ(names(n.events(b1)), std::vector<std::string>{"{\"ApplyExtrinsic\":0} System.ExtrinsicSuccess"});
  const Block& b2 = n.chain.produce_block();
  EXPECT_EQ(b2.header.number, 2u);
  EXPECT_EQ(b2.header.parent_hash, n.chain.block(1)->hash);
  EXPECT_GT(b2.timestamp_ms, n.chain.block(1)->timestamp_ms);  // a fixed clock still moves forward
  EXPECT_EQ(n.chain.finalized().header.number, 1u);
}

TEST(DevnodeChain, SubmitThenProduceRunsTheMessageAndRecordsEvents) {
  Node n;
  auto alice = key(1);
  Bytes payload = edit_profile("Alice");
  Bytes tx = n.signed_tx(alice, payload, 0);
  auto s = n.chain.submit(tx);
  EXPECT_EQ(s.hash, blake2b_256(tx));
  EXPECT_EQ(s.status, TxStatus::ready);
  EXPECT_EQ(n.chain.account_next_index(alice.public_key()), 1u);
  EXPECT_EQ(n.chain.pending(), std::vector<Bytes>{tx});

  const Block& b = n.chain.produce_block();
  ASSERT_EQ(b.extrinsics.size(), 2u);
  EXPECT_EQ(b.extrinsics[1], tx);
  EXPECT_TRUE(n.chain.pending().empty());
  EXPECT_FALSE(n.chain.pool_status(s.hash));
  EXPECT_EQ(n.chain.account_next_index(alice.public_key()), 1u);
  EXPECT_EQ(n.ledger.height(), 1u);
  ASSERT_EQ(n.ledger.state().users.size(), 1u);
  EXPECT_EQ(n.ledger.state().users[0].first, alice.public_key());

  auto evs = n.events(b);
  EXPECT_EQ(names(evs), (std::vector<std::string>{
                            "{\"ApplyExtrinsic\":0} System.ExtrinsicSuccess",
                            "{\"ApplyExtrinsic\":1} Balances.Withdraw",
                            "{\"ApplyExtrinsic\":1} Gear.MessageQueued",
                            "{\"ApplyExtrinsic\":1} Gear.UserMessageSent",
                            "{\"ApplyExtrinsic\":1} Gear.UserMessageSent",
                            "{\"ApplyExtrinsic\":1} TransactionPayment.TransactionFeePaid",
                            "{\"ApplyExtrinsic\":1} System.ExtrinsicSuccess",
                            "\"Finalization\" Balances.Deposit",
                            "\"Finalization\" Gear.MessagesDispatched",
                        }));
  const std::string me = to_hex(alice.public_key());
  const Hash32 id = expected_message_id(1, 1, alice.public_key(), payload);
  EXPECT_EQ(id, message_id(1, 1, alice.public_key(), payload));
  EXPECT_EQ(evs[2].fields, (Value{{"id", to_hex(id)},
                                  {"source", me},
                                  {"destination", to_hex(n.chain.program_id())},
                                  {"entry", "Handle"}}));
  // The Sails event goes to ActorId zero, with no reply details.
  const Value& event = evs[3].fields["message"];
  EXPECT_EQ(event["source"], to_hex(n.chain.program_id()));
  EXPECT_EQ(event["destination"], to_hex(Hash32{}));
  EXPECT_EQ(event["details"], nullptr);
  EXPECT_EQ(w3b::decode_event(hex(event["payload"].get<std::string>())), w3b::Event(w3b::ProfileEdited{}));
  // The reply: auto, empty, addressed to the sender, pointing back at the message.
  const Value& reply = evs[4].fields["message"];
  EXPECT_EQ(reply["id"], to_hex(blake2b_256(concat({view("reply"), id}))));
  EXPECT_EQ(reply["destination"], me);
  EXPECT_EQ(reply["payload"], "0x");
  EXPECT_EQ(reply["details"], (Value{{"to", to_hex(id)}, {"code", {{"Success", "Auto"}}}}));
  EXPECT_EQ(evs[4].fields["expiration"], nullptr);
  // The fee the client can print.
  std::uint64_t fee = 10'000'000'000 + 1'000'000 * tx.size();
  EXPECT_EQ(evs[5].fields, (Value{{"who", me}, {"actual_fee", std::to_string(fee)}, {"tip", "0"}}));
  EXPECT_EQ(evs[1].fields["amount"], std::to_string(fee));
  EXPECT_EQ(evs[8].fields["statuses"], (Value::array({Value::array({to_hex(id), "Success"})})));
}

TEST(DevnodeChain, APanicIsAnErrorReplyInASuccessfulExtrinsic) {
  Node n;
  auto bob = key(2);
  Bytes payload = hex(kNewStreamHex);  // bob has no profile
  n.chain.submit(n.signed_tx(bob, payload, 0));
  const Block& b = n.chain.produce_block();
  auto evs = n.events(b);
  ASSERT_EQ(evs.size(), 8u);  // no Sails event this time
  const Value& reply = evs[3].fields["message"];
  EXPECT_EQ(reply["details"]["code"], (Value{{"Error", {{"Execution", "UserspacePanic"}}}}));
  auto text = hex(reply["payload"].get<std::string>());
  EXPECT_EQ(std::string(text.begin(), text.end()), "panicked with 'Account is no registered'");
  EXPECT_EQ(evs[5].name, "ExtrinsicSuccess");
  EXPECT_EQ(evs[7].fields["statuses"][0][1], "Failed");
  EXPECT_EQ(evs[7].fields["state_changes"], Value::array());
  EXPECT_EQ(n.chain.account_next_index(bob.public_key()), 1u);  // the nonce is spent all the same
}

TEST(DevnodeChain, OtherDestinationsAndLowGasGetErrorRepliesWithoutTouchingTheLedger) {
  Node n;
  auto k = key(3);
  Hash32 elsewhere{};
  elsewhere.fill(0x42);
  n.chain.submit(gear_rpc::build_signed(vara(), k, n.call(edit_profile("x"), elsewhere), n.context(0)));
  n.chain.submit(gear_rpc::build_signed(vara(), k, n.call(edit_profile("x"), std::nullopt, 5), n.context(1)));
  const Block& b = n.chain.produce_block();
  ASSERT_EQ(b.extrinsics.size(), 3u);
  EXPECT_EQ(n.ledger.height(), 0u);
  std::vector<Value> codes;
  for (const auto& e : n.events(b))
    if (e.name == "UserMessageSent") codes.push_back(e.fields["message"]["details"]["code"]);
  EXPECT_EQ(codes, (std::vector<Value>{{{"Error", {{"UnavailableActor", "ProgramNotCreated"}}}},
                                       {{"Error", {{"Execution", "RanOutOfGas"}}}}}));
}

TEST(DevnodeChain, BadSignatureWrongGenesisWrongVersionsAreBadSignatures) {
  Node n;
  auto k = key(4);
  Bytes payload = edit_profile("k");
  const std::string bad = "Transaction has a bad signature";

  Bytes flipped = n.signed_tx(k, payload, 0);
  flipped[41] ^= 0x01;  // inside the signature: Compact(len) 2 ++ 0x84 ++ 0x00 ++ signer 32 ++ 0x00, then 64 bytes
  expect_rpc_error([&] { n.chain.submit(flipped); }, rpc_code::invalid_transaction, bad);

  Bytes tampered = n.signed_tx(k, payload, 0);
  tampered.back() ^= 0x01;  // keep_alive flips: the call no longer matches what was signed
  expect_rpc_error([&] { n.chain.submit(tampered); }, rpc_code::invalid_transaction, bad);

  auto ctx = n.context(0);
  ctx.genesis.fill(7);
  expect_rpc_error([&] { n.chain.submit(gear_rpc::build_signed(vara(), k, n.call(payload), ctx)); },
                   rpc_code::invalid_transaction, bad);
  ctx = n.context(0);
  ctx.spec_version += 1;
  expect_rpc_error([&] { n.chain.submit(gear_rpc::build_signed(vara(), k, n.call(payload), ctx)); },
                   rpc_code::invalid_transaction, bad);
  ctx = n.context(0);
  ctx.tx_version += 1;
  expect_rpc_error([&] { n.chain.submit(gear_rpc::build_signed(vara(), k, n.call(payload), ctx)); },
                   rpc_code::invalid_transaction, bad);
  EXPECT_TRUE(n.chain.pending().empty());
  // The right context still works.
  EXPECT_NO_THROW(n.chain.submit(n.signed_tx(k, payload, 0)));
}

TEST(DevnodeChain, StaleNonceIsOutdated) {
  Node n;
  auto k = key(5);
  n.chain.submit(n.signed_tx(k, edit_profile("a"), 0));
  n.chain.produce_block();
  expect_rpc_error([&] { n.chain.submit(n.signed_tx(k, edit_profile("b"), 0)); }, rpc_code::invalid_transaction,
                   "Transaction is outdated");
}

TEST(DevnodeChain, FutureNonceWaitsInThePoolUntilTheGapIsFilled) {
  Node n;
  auto k = key(6);
  Bytes later = n.signed_tx(k, edit_profile("second"), 1);
  auto s1 = n.chain.submit(later);
  EXPECT_EQ(s1.status, TxStatus::future);
  EXPECT_EQ(n.chain.account_next_index(k.public_key()), 0u);
  EXPECT_EQ(n.chain.produce_block().extrinsics.size(), 1u);
  EXPECT_EQ(n.chain.pool_status(s1.hash), TxStatus::future);

  Bytes first = n.signed_tx(k, edit_profile("first"), 0);
  EXPECT_EQ(n.chain.submit(first).status, TxStatus::ready);
  EXPECT_EQ(n.chain.pool_status(s1.hash), TxStatus::ready);
  EXPECT_EQ(n.chain.account_next_index(k.public_key()), 2u);
  const Block& b = n.chain.produce_block();
  ASSERT_EQ(b.extrinsics.size(), 3u);
  EXPECT_EQ(b.extrinsics[1], first);  // nonce order, not arrival order
  EXPECT_EQ(b.extrinsics[2], later);
  EXPECT_EQ(n.ledger.state().users.at(0).second.name, "second");
}

TEST(DevnodeChain, DuplicatesAndSameNonceReplacementsAreRefused) {
  Node n;
  auto k = key(7);
  Bytes tx = n.signed_tx(k, edit_profile("a"), 0);
  auto s = n.chain.submit(tx);
  expect_rpc_error([&] { n.chain.submit(tx); }, rpc_code::already_imported, to_hex(s.hash));
  try {
    n.chain.submit(n.signed_tx(k, edit_profile("other"), 0));
    ADD_FAILURE() << "a second transaction with the same nonce was accepted";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), rpc_code::too_low_priority);
  }
  EXPECT_EQ(n.chain.pending().size(), 1u);
}

TEST(DevnodeChain, MortalErasNeedAKnownLiveBirthBlock) {
  Node n;
  auto k = key(8);
  Bytes c = n.call(edit_profile("m"));
  for (int i = 0; i < 10; ++i) n.chain.produce_block();  // best = 10

  auto signed_with = [&](Era era, std::uint64_t nonce) {
    auto ctx = n.context(nonce);
    ctx.era = era;
    const Block* birth = n.chain.block(era.birth_block);
    ctx.era_block_hash = birth ? birth->hash : Hash32{};
    return gear_rpc::build_signed(vara(), k, c, ctx);
  };
  // Born at block 6 with period 4: that era ended at block 10, before block 11 (the one being built).
  expect_rpc_error([&] { n.chain.submit(signed_with(Era::mortal(4, 6), 0)); }, rpc_code::invalid_transaction,
                   "Transaction has an ancient birth block");
  // Born at a block that does not exist yet.
  Era ahead;
  ahead.immortal = false;
  ahead.period = 64;
  ahead.birth_block = 30;
  expect_rpc_error([&] { n.chain.submit(signed_with(ahead, 0)); }, rpc_code::invalid_transaction,
                   "Transaction has an ancient birth block");
  // A live era is accepted and included.
  auto s = n.chain.submit(signed_with(Era::mortal(64, 10), 0));
  EXPECT_EQ(n.chain.produce_block().extrinsics.size(), 2u);
  EXPECT_FALSE(n.chain.pool_status(s.hash));
}

TEST(DevnodeChain, AnEraThatRunsOutInThePoolIsDropped) {
  Node n;
  auto k = key(9);
  auto ctx = n.context(1);  // a future nonce keeps it waiting
  ctx.era = Era::mortal(4, 0);
  ctx.era_block_hash = n.chain.genesis_hash();
  auto s = n.chain.submit(gear_rpc::build_signed(vara(), k, n.call(edit_profile("x")), ctx));
  for (int i = 0; i < 3; ++i) n.chain.produce_block();
  EXPECT_EQ(n.chain.pool_status(s.hash), TxStatus::future);
  EXPECT_TRUE(n.chain.take_dropped().empty());
  n.chain.produce_block();  // block 4 starts the next era
  EXPECT_FALSE(n.chain.pool_status(s.hash));
  EXPECT_EQ(n.chain.take_dropped(), std::vector<Hash32>{s.hash});
}

TEST(DevnodeChain, OnlyGearSendMessageIsAccepted) {
  Node n;
  auto k = key(10);
  Bytes remark = vara().encode(vara().call_type(), Value{{"System", {{"remark", {{"remark", "0x01"}}}}}});
  expect_rpc_error([&] { n.chain.submit(gear_rpc::build_signed(vara(), k, remark, n.context(0))); },
                   rpc_code::invalid_transaction, "Call not supported by devnode");
  try {
    n.chain.submit(hex("0x1234"));
    ADD_FAILURE() << "garbage accepted";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), rpc_code::bad_format);
  }
  try {
    n.chain.submit(n.chain.produce_block().extrinsics[0]);  // the Timestamp inherent
    ADD_FAILURE() << "an unsigned extrinsic was accepted";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), rpc_code::invalid_transaction);
  }
}

TEST(DevnodeChain, PoolLimitDropsImmediately) {
  Node n(options([](Options& x) { x.pool_limit = 1; }));
  n.chain.submit(n.signed_tx(key(11), edit_profile("a"), 0));
  expect_rpc_error([&] { n.chain.submit(n.signed_tx(key(12), edit_profile("b"), 0)); }, rpc_code::immediately_dropped,
                   "The transaction couldn't enter the pool because of the limit");
}

TEST(DevnodeChain, FinalityLagsTheBestBlock) {
  Node n(options([](Options& x) { x.finality_lag = 3; }));
  for (int i = 0; i < 5; ++i) n.chain.produce_block();
  EXPECT_EQ(n.chain.finalized().header.number, 2u);
  Node m(options([](Options& x) { x.finality_lag = 0; }));
  m.chain.produce_block();
  EXPECT_EQ(&m.chain.finalized(), &m.chain.best());
}

TEST(DevnodeChain, StorageServesEventsAndNumberOnly) {
  Node n;
  n.chain.submit(n.signed_tx(key(13), edit_profile("s"), 0));
  const Block& b1 = n.chain.produce_block();
  n.chain.produce_block();
  auto events_key = hex("0x26aa394eea5630e07c48ae0c9558cef780d41e5e16056765bc8461851072c9d7");
  EXPECT_EQ(n.chain.storage(events_key, b1), b1.events);
  EXPECT_NE(n.chain.storage(events_key, n.chain.best()), b1.events);
  EXPECT_EQ(n.chain.storage(vara().storage_key("System", "Number"), b1), hex("0x01000000"));
  EXPECT_FALSE(n.chain.storage(vara().storage_key("System", "ParentHash"), b1));
  EXPECT_FALSE(n.chain.storage(hex("0x"), b1));
}

TEST(DevnodeChain, GasCalculationRunsOnACopy) {
  Node n;
  auto k = key(14);
  Bytes payload = edit_profile("gas");
  GasInfo g = n.chain.calculate_handle_gas(k.public_key(), n.chain.program_id(), payload);
  EXPECT_EQ(g.min_limit, 1'000'000'000 + 1000 * payload.size());
  EXPECT_LE(g.burned, g.min_limit);
  EXPECT_EQ(g.to_json()["min_limit"], g.min_limit);
  EXPECT_EQ(n.ledger.height(), 0u);
  EXPECT_TRUE(n.ledger.state().users.empty());

  expect_rpc_error([&] { n.chain.calculate_handle_gas(k.public_key(), n.chain.program_id(), hex(kNewStreamHex)); },
                   rpc_code::runtime_error,
                   "\"Program terminated with a trap: 'Panic occurred: panicked with 'Account is no registered''\"");
  Hash32 other{};
  other.fill(9);
  try {
    n.chain.calculate_handle_gas(k.public_key(), other, payload);
    ADD_FAILURE() << "gas for a missing program";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), rpc_code::runtime_error);
    EXPECT_EQ(std::string(e.what()), "Runtime error");
  }
}

TEST(DevnodeChain, ReplyForHandleAnswersQueriesAndPredictsPanics) {
  Node n;
  auto k = key(15);
  n.chain.submit(n.signed_tx(k, edit_profile("q"), 0));
  n.chain.produce_block();
  ReplyInfo r = n.chain.calculate_reply_for_handle(Hash32{}, n.chain.program_id(), hex(kGetStateHex), 750'000'000'000);
  EXPECT_EQ(r.code, (Value{{"Success", "Manual"}}));
  auto state = w3b::decode_state_reply(r.payload);
  ASSERT_EQ(state.users.size(), 1u);
  EXPECT_EQ(state.users[0].first, k.public_key());
  EXPECT_EQ(r.to_json()["value"], 0);
  EXPECT_EQ(r.to_json()["payload"], to_hex(r.payload));

  ReplyInfo p = n.chain.calculate_reply_for_handle(key(16).public_key(), n.chain.program_id(), hex(kNewStreamHex),
                                                   750'000'000'000);
  EXPECT_EQ(p.code, (Value{{"Error", {{"Execution", "UserspacePanic"}}}}));
  EXPECT_EQ(std::string(p.payload.begin(), p.payload.end()), "panicked with 'Account is no registered'");
  ReplyInfo ok = n.chain.calculate_reply_for_handle(k.public_key(), n.chain.program_id(), edit_profile("z"),
                                                    750'000'000'000);
  EXPECT_EQ(ok.code, (Value{{"Success", "Auto"}}));
  EXPECT_EQ(n.ledger.state().users.at(0).second.name, "q");  // the copy changed, not the ledger
}

TEST(DevnodeChain, NoncesComeBackFromAPersistedLedger) {
  TempDir dir;
  auto file = dir.path() / "l.db";
  auto k = key(17);
  Hash32 genesis{};
  {
    ledger::Ledger l(file);
    Chain c(vara(), l);
    genesis = c.genesis_hash();
    for (std::uint64_t i = 0; i < 2; ++i) {
      gear_rpc::SigningContext ctx;
      ctx.spec_version = c.runtime_version().spec_version;
      ctx.tx_version = c.runtime_version().transaction_version;
      ctx.genesis = ctx.era_block_hash = c.genesis_hash();
      ctx.nonce = i;
      gear_rpc::SendMessageCall call;
      call.destination = c.program_id();
      call.payload = edit_profile("p" + std::to_string(i));
      call.gas_limit = 10'000'000'000;
      c.submit(gear_rpc::build_signed(vara(), k, gear_rpc::encode_send_message(vara(), call), ctx));
    }
    EXPECT_EQ(c.produce_block().extrinsics.size(), 3u);
  }
  ledger::Ledger l(file);
  Chain again(vara(), l);
  EXPECT_EQ(again.genesis_hash(), genesis);
  EXPECT_EQ(again.account_next_index(k.public_key()), 2u);
}

TEST(DevnodeChain, HeadersChainAndSerialiseLikeSubstrate) {
  Node n;
  for (int i = 0; i < 3; ++i) n.chain.produce_block();
  for (std::uint64_t i = 1; i <= 3; ++i) {
    const Block* b = n.chain.block(i);
    ASSERT_TRUE(b);
    EXPECT_EQ(b->header.parent_hash, n.chain.block(i - 1)->hash);
    EXPECT_EQ(b->hash, blake2b_256(b->header.encode()));
    EXPECT_EQ(n.chain.block(b->hash), b);
  }
  auto j = n.chain.best().header.to_json();
  EXPECT_EQ(j["number"], "0x3");
  EXPECT_EQ(j["parentHash"], to_hex(n.chain.block(2)->hash));
  EXPECT_EQ(j["digest"], (nlohmann::json{{"logs", nlohmann::json::array()}}));
  EXPECT_FALSE(n.chain.block(4));
}


// ---------------------------------------------------------------------------------------------
// Oracle: polkadot-js (tests/js) reads the devnode's headers, extrinsics and System.Events with the same
// metadata. Skipped when node or tests/js/node_modules is missing.

const char* kOracleScript = R"js(// Reads devnode blocks with @polkadot/types: node oracle.mjs <tests/js dir> <input.json>
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
const [jsDir, inputPath] = process.argv.slice(2);
const require = createRequire(jsDir + '/package.json');
const warn = console.warn;
console.warn = (...a) => { if (!String(a.join(' ')).includes('Unknown signed extensions')) warn(...a); };
const { TypeRegistry, Metadata } = require('@polkadot/types');
const input = JSON.parse(readFileSync(inputPath, 'utf8'));
const registry = new TypeRegistry();
const metadata = new Metadata(registry, new Uint8Array(readFileSync(input.metadata)));
registry.setMetadata(metadata);
const out = { blocks: [] };
for (const b of input.blocks) {
  const header = registry.createType('Header', b.header);
  const events = registry.createType('Vec<EventRecord>', b.events).map((e) => [e.phase.toJSON(), e.event.section, e.event.method]);
  const extrinsics = b.extrinsics.map((x) => {
    const ex = registry.createType('Extrinsic', x);
    const o = { signed: ex.isSigned, section: ex.method.section, method: ex.method.method };
    if (ex.isSigned) {
      const s = ex.signer.toHex();  // MultiAddress::Id: the tag byte, then the account
      o.signer = '0x' + s.slice(-64);
      o.nonce = ex.nonce.toNumber();
      o.destination = ex.method.args[0].toHex();
    }
    return o;
  });
  out.blocks.push({ hash: header.hash.toHex(), number: header.number.toNumber(), events, extrinsics });
}
console.log(JSON.stringify(out));
)js";

TEST(DevnodeOracle, PolkadotJsReadsBlocksExtrinsicsAndEvents) {
  const std::string js_dir = std::string(P2P_TEST_DATA) + "/../js";
  if (std::system("node --version >/dev/null 2>&1") != 0 ||
      !std::filesystem::exists(js_dir + "/node_modules/@polkadot/types"))
    GTEST_FAIL() << "node or tests/js/node_modules missing: run scripts/install-deps.sh (npm ci --prefix tests/js)";
  Node n;
  auto k = key(21);
  Bytes tx = n.signed_tx(k, edit_profile("oracle"), 0);
  n.chain.submit(tx);
  n.chain.produce_block();
  n.chain.produce_block();

  nlohmann::json input = {{"metadata", std::string(P2P_TEST_DATA) + "/../../data/vara_runtime.scale"},
                          {"blocks", nlohmann::json::array()}};
  for (std::uint64_t i = 1; i <= 2; ++i) {
    const Block& b = *n.chain.block(i);
    nlohmann::json xs = nlohmann::json::array();
    for (const auto& x : b.extrinsics) xs.push_back(to_hex(x));
    input["blocks"].push_back({{"header", b.header.to_json()}, {"events", to_hex(b.events)}, {"extrinsics", xs}});
  }
  {
    std::ofstream(n.dir.path() / "oracle.mjs") << kOracleScript;
    std::ofstream(n.dir.path() / "input.json") << input.dump();
  }
  std::string cmd = "node '" + (n.dir.path() / "oracle.mjs").string() + "' '" + js_dir + "' '" +
                    (n.dir.path() / "input.json").string() + "' 2>&1";
  std::string text;
  if (FILE* p = ::popen(cmd.c_str(), "r")) {
    char buf[4096];
    std::size_t got;
    while ((got = std::fread(buf, 1, sizeof buf, p)) > 0) text.append(buf, got);
    ASSERT_EQ(::pclose(p), 0) << text;
  }
  nlohmann::json out = nlohmann::json::parse(text, nullptr, false);
  ASSERT_FALSE(out.is_discarded()) << text;

  const auto& b1 = out["blocks"][0];
  EXPECT_EQ(b1["hash"], to_hex(n.chain.block(1)->hash));  // same header bytes, same hash
  EXPECT_EQ(out["blocks"][1]["hash"], to_hex(n.chain.block(2)->hash));
  EXPECT_EQ(b1["number"], 1);
  ASSERT_EQ(b1["extrinsics"].size(), 2u);
  EXPECT_EQ(b1["extrinsics"][0], (nlohmann::json{{"signed", false}, {"section", "timestamp"}, {"method", "set"}}));
  EXPECT_EQ(b1["extrinsics"][1], (nlohmann::json{{"signed", true},
                                                 {"section", "gear"},
                                                 {"method", "sendMessage"},
                                                 {"signer", to_hex(k.public_key())},
                                                 {"nonce", 0},
                                                 {"destination", to_hex(n.chain.program_id())}}));
  std::vector<std::string> events;
  for (const auto& e : b1["events"]) events.push_back(e[0].dump() + " " + e[1].get<std::string>() + "." + e[2].get<std::string>());
  EXPECT_EQ(events, (std::vector<std::string>{
                        "{\"applyExtrinsic\":0} system.ExtrinsicSuccess",
                        "{\"applyExtrinsic\":1} balances.Withdraw",
                        "{\"applyExtrinsic\":1} gear.MessageQueued",
                        "{\"applyExtrinsic\":1} gear.UserMessageSent",
                        "{\"applyExtrinsic\":1} gear.UserMessageSent",
                        "{\"applyExtrinsic\":1} transactionPayment.TransactionFeePaid",
                        "{\"applyExtrinsic\":1} system.ExtrinsicSuccess",
                        "{\"finalization\":null} balances.Deposit",
                        "{\"finalization\":null} gear.MessagesDispatched",
                    }));
}

}  // namespace
}  // namespace p2p::devnode
