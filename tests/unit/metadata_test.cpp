// Tests for lib/metadata against the real Vara runtime metadata, small hand-built V14/V15 registries, and
// the @polkadot/types oracle in tests/js/encode_events.mjs.
#include "metadata/metadata.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <tuple>
#include <fstream>
#include <iterator>

namespace p2p::metadata {
namespace {

const std::string kVaraMetadata = std::string(P2P_SHARED_DATA) + "/vara_runtime.scale";
const std::string kJsDir = std::string(P2P_TEST_DATA) + "/../js";

Bytes read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << "cannot open " << path;
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

Bytes hex(std::string_view h) {
  auto b = from_hex(h);
  EXPECT_TRUE(b) << h;
  return b.value_or(Bytes{});
}

// Parsed once: the blob is 300 kB and many tests read it.
const Metadata& vara() {
  static const Metadata m = Metadata::parse(read_file(kVaraMetadata));
  return m;
}

const Variant& variant(const Metadata& m, TypeId enum_type, std::string_view name) {
  const Enum* e = m.type(enum_type).as<Enum>();
  if (!e) throw std::runtime_error("not an enum");
  for (const auto& v : e->variants)
    if (v.name == name) return v;
  throw std::runtime_error("no variant " + std::string(name));
}

// Follows single-field newtypes down to what they wrap.
const Type& unwrap(const Metadata& m, TypeId id) {
  for (int i = 0; i < 8; ++i) {
    const Composite* c = m.type(id).as<Composite>();
    if (!c || c->fields.size() != 1) break;
    id = c->fields[0].type;
  }
  return m.type(id);
}

// ---------------------------------------------------------------------------------------------
// The real Vara metadata

TEST(MetadataVara, ParsesAsV15) {
  const Metadata& m = vara();
  EXPECT_EQ(m.version(), 15);
  EXPECT_GT(m.types().size(), 500u);
  EXPECT_NE(m.find_pallet("System"), nullptr);
  EXPECT_EQ(m.extrinsic().version, 4);
  ASSERT_TRUE(m.extrinsic().call_type.has_value());
  EXPECT_EQ(m.type(m.event_type()).path_string(), "vara_runtime::RuntimeEvent");
  EXPECT_EQ(m.type(m.call_type()).path_string(), "vara_runtime::RuntimeCall");
  EXPECT_FALSE(m.runtime_apis().empty());
}

TEST(MetadataVara, ParsesFromRpcHex) {
  Bytes blob = read_file(kVaraMetadata);
  Metadata m = Metadata::parse_hex(to_hex(blob));
  EXPECT_EQ(m.types().size(), vara().types().size());
  EXPECT_EQ(m.pallets().size(), vara().pallets().size());
  EXPECT_THROW(Metadata::parse_hex("0x6d6574610z"), scale::DecodeError);
}

TEST(MetadataVara, GearIndicesComeFromTheMetadata) {
  const Metadata& m = vara();
  EXPECT_EQ(m.pallet_by_name("Gear").index, 104);
  EXPECT_EQ(m.call_index("Gear", "send_message"), std::make_pair(std::uint8_t{104}, std::uint8_t{3}));
  EXPECT_EQ(m.event_index("Gear", "MessageQueued"), std::make_pair(std::uint8_t{104}, std::uint8_t{0}));
  EXPECT_EQ(m.event_index("Gear", "UserMessageSent"), std::make_pair(std::uint8_t{104}, std::uint8_t{1}));
  EXPECT_EQ(m.find_pallet_by_index(104), &m.pallet_by_name("Gear"));
  EXPECT_THROW(m.pallet_by_name("NoSuchPallet"), RuntimeError);
  EXPECT_THROW(m.call_index("Gear", "no_such_call"), RuntimeError);
  EXPECT_THROW(m.event_index("Gear", "NoSuchEvent"), RuntimeError);
}

// chain.md: destination [u8;32], payload Vec<u8>, gas_limit u64, value u128, keep_alive bool.
TEST(MetadataVara, SendMessageArgumentsMatchChainNotes) {
  const Metadata& m = vara();
  const Variant& call = variant(m, *m.pallet_by_name("Gear").calls, "send_message");
  std::vector<std::string> names;
  for (const auto& f : call.fields) names.push_back(f.name.value_or("?"));
  EXPECT_EQ(names, (std::vector<std::string>{"destination", "payload", "gas_limit", "value", "keep_alive"}));
  ASSERT_EQ(call.fields.size(), 5u);
  const Array* dest = unwrap(m, call.fields[0].type).as<Array>();
  ASSERT_NE(dest, nullptr);
  EXPECT_EQ(dest->len, 32u);
  EXPECT_NE(m.type(call.fields[1].type).as<Sequence>(), nullptr);
  EXPECT_EQ(*m.type(call.fields[2].type).as<Primitive>(), Primitive::U64);
  EXPECT_EQ(*m.type(call.fields[3].type).as<Primitive>(), Primitive::U128);
  EXPECT_EQ(*m.type(call.fields[4].type).as<Primitive>(), Primitive::Bool);
}

TEST(MetadataVara, SignedExtensionsInChainNotesOrder) {
  std::vector<std::string> ids;
  for (const auto& s : vara().signed_extensions()) ids.push_back(s.identifier);
  EXPECT_EQ(ids, (std::vector<std::string>{"StakingBlackList", "CheckNonZeroSender", "CheckSpecVersion",
                                           "CheckTxVersion", "CheckGenesis", "CheckMortality", "CheckNonce",
                                           "CheckWeight", "ChargeTransactionPayment", "CheckMetadataHash"}));
}

// The extra/additional columns of the table in chain.md, checked by encoding through the metadata's types.
TEST(MetadataVara, SignedExtensionPayloadsMatchChainNotes) {
  const Metadata& m = vara();
  std::map<std::string, SignedExtension> ext;
  for (const auto& s : m.signed_extensions()) ext[s.identifier] = s;
  for (const char* none : {"StakingBlackList", "CheckNonZeroSender", "CheckSpecVersion", "CheckTxVersion",
                           "CheckGenesis", "CheckWeight"}) {
    EXPECT_EQ(m.min_encoded_size(ext[none].type), 0u) << none;
    EXPECT_TRUE(m.encode(ext[none].type, Value::array()).empty()) << none;
  }
  for (const char* none : {"StakingBlackList", "CheckNonZeroSender", "CheckNonce", "CheckWeight",
                           "ChargeTransactionPayment"})
    EXPECT_TRUE(m.encode(ext[none].additional_signed, Value::array()).empty()) << none;
  EXPECT_EQ(m.encode(ext["CheckSpecVersion"].additional_signed, 1100), hex("4c040000"));
  EXPECT_EQ(m.encode(ext["CheckTxVersion"].additional_signed, 1), hex("01000000"));
  std::string genesis = "0x" + std::string(64, 'f');
  EXPECT_EQ(m.encode(ext["CheckGenesis"].additional_signed, genesis), hex(genesis));
  EXPECT_EQ(m.encode(ext["CheckMortality"].type, "Immortal"), hex("00"));
  EXPECT_EQ(m.encode(ext["CheckMortality"].type, Value{{"Mortal4", 0xc5}}).size(), 2u);
  EXPECT_EQ(m.encode(ext["CheckMortality"].additional_signed, genesis), hex(genesis));
  EXPECT_EQ(m.encode(ext["CheckNonce"].type, 5), hex("14"));
  EXPECT_EQ(m.encode(ext["ChargeTransactionPayment"].type, "1000000"), hex("02093d00"));
  EXPECT_EQ(m.encode(ext["CheckMetadataHash"].type, Value{{"mode", "Disabled"}}), hex("00"));
  EXPECT_EQ(m.encode(ext["CheckMetadataHash"].additional_signed, nullptr), hex("00"));
}

TEST(MetadataVara, StorageKeys) {
  const Metadata& m = vara();
  EXPECT_EQ(to_hex(m.storage_key("System", "Events")),
            "0x26aa394eea5630e07c48ae0c9558cef780d41e5e16056765bc8461851072c9d7");
  EXPECT_THROW(m.storage_key("System", "Account"), UsageError);
  EXPECT_THROW(m.storage_key("System", "NoSuchEntry"), RuntimeError);
  // The widely published System.Account key of //Alice (Blake2_128Concat of the AccountId32).
  Bytes alice = hex("d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d");
  EXPECT_EQ(to_hex(m.storage_key("System", "Account", {alice})),
            "0x26aa394eea5630e07c48ae0c9558cef7b99d880ec681799c0cf30e8886371da9"
            "de1e86a9a8c739864cf3cc5ec2bea59fd43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d");
  EXPECT_THROW(m.storage_key("System", "Account", {}), UsageError);
}

TEST(MetadataVara, TwoxMatchesPolkadotJs) {
  // Values from @polkadot/util-crypto xxhashAsHex.
  EXPECT_EQ(to_hex(twox(view("System"), 16)), "0x26aa394eea5630e07c48ae0c9558cef7");
  EXPECT_EQ(to_hex(twox(view("Sails"), 32)), "0xd294e4a4782e23be5d36f822803b193ea6205524b9eff312044b8fd6d5a3136f");
  Bytes alice = hex("d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d");
  EXPECT_EQ(to_hex(storage_hash(Hasher::Twox64Concat, alice)),
            "0x518366b5b1bc7c99d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d");
  EXPECT_THROW(twox(view("x"), 12), RuntimeError);
}

TEST(MetadataVara, MalformedBlobsThrow) {
  Bytes blob = read_file(kVaraMetadata);
  Bytes bad_magic = blob;
  bad_magic[0] = 'M';
  EXPECT_THROW(Metadata::parse(bad_magic), scale::DecodeError);
  Bytes v13 = blob;
  v13[4] = 13;
  EXPECT_THROW(Metadata::parse(v13), scale::DecodeError);
  Bytes trailing = blob;
  trailing.push_back(0);
  EXPECT_THROW(Metadata::parse(trailing), scale::DecodeError);
  EXPECT_THROW(Metadata::parse(Bytes{}), scale::DecodeError);
  // Truncation anywhere, including inside the header, the registry and the last section.
  for (std::size_t len : {std::size_t{3}, std::size_t{5}, std::size_t{6}, blob.size() / 3, blob.size() / 2,
                          blob.size() - 100, blob.size() - 1})
    EXPECT_THROW(Metadata::parse(ByteView(blob).first(len)), scale::DecodeError) << len;
  for (std::size_t len = 7; len < blob.size(); len += 16411)
    EXPECT_THROW(Metadata::parse(ByteView(blob).first(len)), scale::DecodeError) << len;
}

// The call the Gear transport will send, per chain.md: 0x68 0x03, dest, Vec<u8>, u64 LE, u128 LE, bool.
TEST(MetadataVara, EncodesSendMessageCall) {
  const Metadata& m = vara();
  Value call = {{"Gear", {{"send_message", {{"destination", "0x" + std::string(64, 'a')},
                                            {"payload", "0x0102"},
                                            {"gas_limit", 1000000000},
                                            {"value", "5"},
                                            {"keep_alive", true}}}}}};
  Bytes bytes = m.encode(m.call_type(), call);
  EXPECT_EQ(to_hex(bytes), "0x6803" + std::string(64, 'a') + "080102" + "00ca9a3b00000000" +
                               "05000000000000000000000000000000" + "01");
  EXPECT_EQ(m.decode(m.call_type(), bytes), call);
}

// Hand-written bytes (not from any encoder): one Gear.MessageQueued under ApplyExtrinsic(1).
TEST(MetadataVara, DecodesHandWrittenMessageQueued) {
  std::string id(64, '1'), src(64, '2'), dst(64, '3');
  Bytes blob = hex("04" "0001000000" "6800" + id + src + dst + "01" "00");
  auto events = vara().decode_events(blob);
  ASSERT_EQ(events.size(), 1u);
  const EventRecord& e = events[0];
  EXPECT_EQ(e.phase, Value({{"ApplyExtrinsic", 1}}));
  EXPECT_EQ(e.pallet, "Gear");
  EXPECT_EQ(e.name, "MessageQueued");
  EXPECT_EQ(e.pallet_index, 104);
  EXPECT_EQ(e.event_index, 0);
  EXPECT_EQ(e.fields, Value({{"id", "0x" + id}, {"source", "0x" + src}, {"destination", "0x" + dst},
                             {"entry", "Handle"}}));
  EXPECT_TRUE(e.topics.empty());
  EXPECT_EQ(vara().encode_events(events), blob);

  Bytes bad_entry = blob;
  bad_entry[bad_entry.size() - 2] = 9;  // MessageEntry has no variant 9
  EXPECT_THROW(vara().decode_events(bad_entry), scale::DecodeError);
  Bytes bad_pallet = blob;
  bad_pallet[6] = 200;  // no pallet 200 in RuntimeEvent
  EXPECT_THROW(vara().decode_events(bad_pallet), scale::DecodeError);
  Bytes huge = hex("fffffffff3");  // Vec length far beyond the input
  EXPECT_THROW(vara().decode_events(huge), scale::DecodeError);
}

std::vector<EventRecord> sample_records() {
  const Metadata& m = vara();
  EventRecord queued;
  queued.phase = {{"ApplyExtrinsic", 3}};
  queued.pallet = "Gear";
  queued.name = "MessageQueued";
  queued.fields = {{"id", "0x" + std::string(64, '7')}, {"source", "0x" + std::string(64, '8')},
                   {"destination", "0x" + std::string(64, '9')}, {"entry", {{"Reply", "0x" + std::string(64, 'e')}}}};
  queued.topics = {hash32_from_hex(std::string(64, 'd')).value()};
  EventRecord sent;
  sent.phase = "Finalization";
  sent.pallet = "Gear";
  sent.name = "UserMessageSent";
  sent.fields = {{"message", {{"id", "0x" + std::string(64, '1')}, {"source", "0x" + std::string(64, '2')},
                              {"destination", "0x" + std::string(64, '3')}, {"payload", "0x616263"},
                              {"value", "18446744073709551616"},
                              {"details", {{"to", "0x" + std::string(64, '7')}, {"code", {{"Success", "Manual"}}}}}}},
                 {"expiration", 77}};
  EventRecord updated;
  updated.phase = "Initialization";
  updated.pallet = "System";
  updated.name = "CodeUpdated";
  std::vector<EventRecord> out{queued, sent, updated};
  for (auto& r : out) std::tie(r.pallet_index, r.event_index) = m.event_index(r.pallet, r.name);
  return out;
}

TEST(MetadataVara, EventsRoundTrip) {
  const Metadata& m = vara();
  auto records = sample_records();
  Bytes blob = m.encode_events(records);
  auto back = m.decode_events(blob);
  ASSERT_EQ(back.size(), records.size());
  for (std::size_t i = 0; i < records.size(); ++i) {
    EXPECT_EQ(back[i].phase, records[i].phase) << i;
    EXPECT_EQ(back[i].pallet, records[i].pallet) << i;
    EXPECT_EQ(back[i].name, records[i].name) << i;
    EXPECT_EQ(back[i].pallet_index, records[i].pallet_index) << i;
    EXPECT_EQ(back[i].event_index, records[i].event_index) << i;
    EXPECT_EQ(back[i].fields, records[i].fields) << i;
    EXPECT_EQ(back[i].topics, records[i].topics) << i;
  }
  EXPECT_TRUE(back[2].fields.is_null());
}

TEST(MetadataVara, EveryPrefixOfAnEventsBlobThrows) {
  const Metadata& m = vara();
  Bytes blob = m.encode_events(sample_records());
  for (std::size_t len = 0; len < blob.size(); ++len)
    EXPECT_THROW(m.decode_events(ByteView(blob).first(len)), scale::DecodeError) << len;
  EXPECT_NO_THROW(m.decode_events(blob));
}

TEST(MetadataVara, EncodeRejectsValuesThatDoNotFit) {
  const Metadata& m = vara();
  auto records = sample_records();
  auto expect_usage = [&](const std::function<void(std::vector<EventRecord>&)>& spoil, const std::string& needle) {
    auto r = records;
    spoil(r);
    try {
      (void)m.encode_events(r);
      ADD_FAILURE() << "no error for " << needle;
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_usage([](auto& r) { r[0].fields.erase("entry"); }, "entry: the field is missing");
  expect_usage([](auto& r) { r[0].fields["extra"] = 1; }, "unknown field \"extra\"");
  expect_usage([](auto& r) { r[0].fields["entry"] = "Sideways"; }, "no variant named \"Sideways\"");
  expect_usage([](auto& r) { r[0].fields["entry"] = "Reply"; }, "has fields");
  expect_usage([](auto& r) { r[0].fields["id"] = "0x1234"; }, "expected 32 bytes");
  expect_usage([](auto& r) { r[1].fields["message"]["value"] = "-1"; }, "message.value");
  expect_usage([](auto& r) { r[1].fields["message"]["value"] = "340282366920938463463374607431768211456"; },
               "128-bit unsigned");
  expect_usage([](auto& r) { r[1].fields["expiration"] = 4294967296; }, "32-bit unsigned");
  expect_usage([](auto& r) { r[1].fields["expiration"] = 1.5; }, "expected an integer");
  expect_usage([](auto& r) { r[1].fields["message"]["payload"] = "xyz"; }, "hex");
  EXPECT_THROW(m.encode(static_cast<TypeId>(m.types().size()), 0), RuntimeError);
}

// ---------------------------------------------------------------------------------------------
// Hand-built registries: the V14 layout, and the corners the Vara metadata does not exercise.

enum : TypeId {
  kU8, kU32, kBytes32, kH256, kPhase, kDemoEvent, kRuntimeEvent, kRecord, kTopics, kRecords,
  kTree, kUnit, kUnits, kI8, kI128, kU256, kChar, kBitsLsb8, kLsb0, kMsb0, kBitsMsb32, kCompactU8,
  kOptU32, kStr, kBool, kI64, kExtrinsic, kRuntimeCall, kDemoCall, kPerbill, kCompactPerbill, kPair,
  kTypeCount
};

class MiniMeta {
 public:
  explicit MiniMeta(int version) : v15_(version == 15) {}

  Bytes build() {
    e_.raw(view("meta"));
    e_.u8(v15_ ? 15 : 14);
    e_.compact(kTypeCount);
    for (TypeId id = 0; id < kTypeCount; ++id) type(id);
    pallets();
    extrinsic();
    e_.compact(kRuntimeEvent);  // the runtime type: any valid id
    if (v15_) {
      e_.compact(0);  // runtime apis
      e_.compact(kRuntimeCall);
      e_.compact(kRuntimeEvent);
      e_.compact(kU8);  // error enum: any valid id
      e_.compact(0);    // custom
    }
    return std::move(e_).take();
  }

 private:
  void strs(std::vector<std::string> v) { e_.vec(v, [](scale::Encoder& e, const std::string& s) { e.str(s); }); }
  void head(std::vector<std::string> path, std::vector<std::pair<std::string, TypeId>> params = {}) {
    strs(std::move(path));
    e_.compact(params.size());
    for (auto& [n, t] : params) {
      e_.str(n);
      e_.u8(1);
      e_.compact(t);
    }
  }
  void field(std::optional<std::string> name, TypeId t) {
    e_.option(name, [](scale::Encoder& e, const std::string& s) { e.str(s); });
    e_.compact(t);
    e_.u8(0);      // type_name: None
    e_.compact(0);  // docs
  }
  void composite(std::vector<std::pair<std::optional<std::string>, TypeId>> fields) {
    e_.u8(0);
    e_.compact(fields.size());
    for (auto& [n, t] : fields) field(n, t);
  }
  struct V {
    std::string name;
    std::uint8_t index;
    std::vector<std::pair<std::optional<std::string>, TypeId>> fields;
  };
  void variants(std::vector<V> vs) {
    e_.u8(1);
    e_.compact(vs.size());
    for (auto& v : vs) {
      e_.str(v.name);
      e_.compact(v.fields.size());
      for (auto& [n, t] : v.fields) field(n, t);
      e_.u8(v.index);
      e_.compact(0);
    }
  }
  void prim(Primitive p) {
    e_.u8(5);
    e_.u8(static_cast<std::uint8_t>(p));
  }
  void seq(TypeId t) {
    e_.u8(2);
    e_.compact(t);
  }

  void type(TypeId id) {
    e_.compact(id);
    using P = Primitive;
    switch (id) {
      case kU8: head({}); prim(P::U8); break;
      case kU32: head({}); prim(P::U32); break;
      case kBytes32: head({}); e_.u8(3); e_.u32(32); e_.compact(kU8); break;
      case kH256: head({"primitive_types", "H256"}); composite({{std::nullopt, kBytes32}}); break;
      case kPhase:
        head({"frame_system", "Phase"});
        variants({{"ApplyExtrinsic", 0, {{std::nullopt, kU32}}}, {"Finalization", 1, {}}, {"Initialization", 2, {}}});
        break;
      case kDemoEvent:
        head({"pallet_demo", "pallet", "Event"});
        variants({{"Ping", 0, {{"who", kH256}, {"n", kCompactU8}}}, {"Pong", 5, {}},
                  {"Pair", 6, {{std::nullopt, kU8}, {std::nullopt, kOptU32}}}});
        break;
      case kRuntimeEvent:
        head({"demo_runtime", "RuntimeEvent"});
        variants({{"Demo", 7, {{std::nullopt, kDemoEvent}}}});
        break;
      case kRecord:
        head({"frame_system", "EventRecord"}, {{"E", kRuntimeEvent}, {"T", kH256}});
        composite({{"phase", kPhase}, {"event", kRuntimeEvent}, {"topics", kTopics}});
        break;
      case kTopics: head({}); seq(kH256); break;
      case kRecords: head({}); seq(kRecord); break;
      case kTree: head({"demo", "Tree"}); variants({{"Leaf", 0, {}}, {"Node", 1, {{std::nullopt, kTree}}}}); break;
      case kUnit: head({}); e_.u8(4); e_.compact(0); break;
      case kUnits: head({}); seq(kUnit); break;
      case kI8: head({}); prim(P::I8); break;
      case kI128: head({}); prim(P::I128); break;
      case kU256: head({}); prim(P::U256); break;
      case kChar: head({}); prim(P::Char); break;
      case kBitsLsb8: head({}); e_.u8(7); e_.compact(kU8); e_.compact(kLsb0); break;
      case kLsb0: head({"bitvec", "order", "Lsb0"}); composite({}); break;
      case kMsb0: head({"bitvec", "order", "Msb0"}); composite({}); break;
      case kBitsMsb32: head({}); e_.u8(7); e_.compact(kU32); e_.compact(kMsb0); break;
      case kCompactU8: head({}); e_.u8(6); e_.compact(kU8); break;
      case kOptU32:
        head({"Option"}, {{"T", kU32}});
        variants({{"None", 0, {}}, {"Some", 1, {{std::nullopt, kU32}}}});
        break;
      case kStr: head({}); prim(P::Str); break;
      case kBool: head({}); prim(P::Bool); break;
      case kI64: head({}); prim(P::I64); break;
      case kExtrinsic:
        head({"sp_runtime", "generic", "UncheckedExtrinsic"},
             {{"Address", kH256}, {"Call", kRuntimeCall}, {"Signature", kH256}, {"Extra", kUnit}});
        composite({{std::nullopt, kBytes32}});
        break;
      case kRuntimeCall: head({"demo_runtime", "RuntimeCall"}); variants({{"Demo", 7, {{std::nullopt, kDemoCall}}}}); break;
      case kDemoCall: head({"pallet_demo", "pallet", "Call"}); variants({{"poke", 2, {{"x", kU32}}}}); break;
      case kPerbill: head({"sp_arithmetic", "Perbill"}); composite({{std::nullopt, kU32}}); break;
      case kCompactPerbill: head({}); e_.u8(6); e_.compact(kPerbill); break;
      case kPair: head({}); e_.u8(4); e_.compact(2); e_.compact(kI8); e_.compact(kStr); break;
      default: throw std::logic_error("unhandled type id");
    }
    e_.compact(0);  // docs
  }

  void pallets() {
    e_.compact(2);
    // System: storage Events (plain), no calls/events.
    e_.str("System");
    e_.u8(1);
    e_.str("System");
    e_.compact(1);
    e_.str("Events");
    e_.u8(1);  // Default
    e_.u8(0);  // Plain
    e_.compact(kRecords);
    e_.bytes(hex("00"));
    e_.compact(0);
    e_.u8(0);  // calls
    e_.u8(0);  // event
    e_.compact(0);  // constants
    e_.u8(0);  // error
    e_.u8(0);  // index
    if (v15_) e_.compact(0);
    // Demo: calls and events, one constant.
    e_.str("Demo");
    e_.u8(0);
    e_.u8(1);
    e_.compact(kDemoCall);
    e_.u8(1);
    e_.compact(kDemoEvent);
    e_.compact(1);
    e_.str("Limit");
    e_.compact(kU32);
    e_.bytes(hex("2a000000"));
    e_.compact(0);
    e_.u8(0);
    e_.u8(7);
    if (v15_) e_.compact(0);
  }

  void extrinsic() {
    if (!v15_) e_.compact(kExtrinsic);
    e_.u8(4);
    if (v15_)
      for (TypeId t : {kH256, kRuntimeCall, kH256, kUnit}) e_.compact(t);
    e_.compact(2);
    e_.str("CheckNonce");
    e_.compact(kCompactU8);
    e_.compact(kUnit);
    e_.str("CheckGenesis");
    e_.compact(kUnit);
    e_.compact(kH256);
  }

  bool v15_;
  scale::Encoder e_;
};

const Metadata& mini(int version) {
  static const Metadata m14 = Metadata::parse(MiniMeta(14).build());
  static const Metadata m15 = Metadata::parse(MiniMeta(15).build());
  return version == 14 ? m14 : m15;
}

class MetadataMini : public ::testing::TestWithParam<int> {};

TEST_P(MetadataMini, ParsesLayoutAndLookups) {
  const Metadata& m = mini(GetParam());
  EXPECT_EQ(m.version(), GetParam());
  EXPECT_EQ(m.types().size(), std::size_t{kTypeCount});
  EXPECT_EQ(m.event_type(), kRuntimeEvent);  // V14 finds it through System.Events
  EXPECT_EQ(m.call_type(), kRuntimeCall);    // V14 finds it through the extrinsic's Call parameter
  EXPECT_EQ(m.call_index("Demo", "poke"), std::make_pair(std::uint8_t{7}, std::uint8_t{2}));
  EXPECT_EQ(m.event_index("Demo", "Pong"), std::make_pair(std::uint8_t{7}, std::uint8_t{5}));
  ASSERT_EQ(m.signed_extensions().size(), 2u);
  EXPECT_EQ(m.signed_extensions()[1].identifier, "CheckGenesis");
  EXPECT_EQ(m.signed_extensions()[1].additional_signed, kH256);
  EXPECT_EQ(m.extrinsic().extrinsic_type.has_value(), GetParam() == 14);
  EXPECT_EQ(m.pallet_by_name("Demo").constants.at(0).value, hex("2a000000"));
  EXPECT_EQ(m.storage_key("System", "Events"), vara().storage_key("System", "Events"));
  EXPECT_EQ(m.type(kTree).path_string(), "demo::Tree");
  EXPECT_EQ(m.min_encoded_size(kRecord), 4u);  // phase >= 1 (Finalization), event >= 2 (Demo Pong), topics >= 1
}

TEST_P(MetadataMini, DecodesEventsWithVariantIndexGaps) {
  const Metadata& m = mini(GetParam());
  std::string who(64, 'c');
  Bytes blob = hex("0c"
                   "00" "05000000" "07" "00" + who + "fd03" "00"   // Ping{who, n: Compact<u8> 255}
                   "01" "07" "05" "04" + who +                     // Pong, one topic
                   "02" "07" "06" "09" "01" "2a000000" "00");      // Pair(9, Some(42))
  auto ev = m.decode_events(blob);
  ASSERT_EQ(ev.size(), 3u);
  EXPECT_EQ(ev[0].phase, Value({{"ApplyExtrinsic", 5}}));
  EXPECT_EQ(ev[0].fields, Value({{"who", "0x" + who}, {"n", 255}}));
  EXPECT_EQ(ev[1].phase, "Finalization");
  EXPECT_EQ(ev[1].name, "Pong");
  EXPECT_EQ(ev[1].event_index, 5);
  EXPECT_TRUE(ev[1].fields.is_null());
  ASSERT_EQ(ev[1].topics.size(), 1u);
  EXPECT_EQ(to_hex(ev[1].topics[0]), "0x" + who);
  EXPECT_EQ(ev[2].fields, Value({9, 42}));
  EXPECT_EQ(m.encode_events(ev), blob);
  // Compact<u8> holding 256 does not fit.
  Bytes too_big = blob;
  too_big[40] = 0x01;
  too_big[41] = 0x04;
  EXPECT_THROW(m.decode_events(too_big), scale::DecodeError);
  // A variant index with no variant (1 is a gap in the Demo event enum).
  Bytes gap = blob;
  gap[7] = 0x01;
  EXPECT_THROW(m.decode_events(gap), scale::DecodeError);
}

INSTANTIATE_TEST_SUITE_P(MetadataV14AndV15, MetadataMini, ::testing::Values(14, 15));

TEST(MetadataCodec, PrimitivesRoundTripWithKnownBytes) {
  const Metadata& m = mini(15);
  struct Case {
    TypeId type;
    Value value;
    const char* bytes;
  };
  const Case cases[] = {
      {kI8, -128, "80"},
      {kI8, 127, "7f"},
      {kI64, -2, "feffffffffffffff"},
      {kI128, "-1", "ffffffffffffffffffffffffffffffff"},
      {kI128, "-170141183460469231731687303715884105728", "00000000000000000000000000000080"},
      {kI128, "170141183460469231731687303715884105727", "ffffffffffffffffffffffffffffff7f"},
      {kU256, "115792089237316195423570985008687907853269984665640564039457584007913129639935",
       "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"},
      {kU256, "256", "0001000000000000000000000000000000000000000000000000000000000000"},
      {kChar, "\xe2\x82\xac", "ac200000"},  // U+20AC
      {kStr, "h\xc3\xa9", "0c68c3a9"},
      {kBool, true, "01"},
      {kOptU32, nullptr, "00"},
      {kOptU32, 7, "0107000000"},
      {kPair, Value({-1, "x"}), "ff0478"},
      {kCompactPerbill, 1000000000, "02286bee"},
      {kBitsLsb8, Value({true, false, true}), "0c05"},
      {kBitsMsb32, Value({true, false, true}), "0c000000a0"},
      {kTree, Value({{"Node", {{"Node", "Leaf"}}}}), "010100"},
      {kUnits, Value({Value::array(), Value::array()}), "08"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(to_hex(m.encode(c.type, c.value), false), c.bytes) << c.value.dump();
    EXPECT_EQ(m.decode(c.type, hex(c.bytes)), c.value) << c.bytes;
  }
  EXPECT_EQ(m.encode(kI8, "-5"), m.encode(kI8, -5));  // decimal strings work for any width
  EXPECT_THROW(m.encode(kI8, 128), UsageError);
  EXPECT_THROW(m.encode(kI8, "-129"), UsageError);
  EXPECT_THROW(m.encode(kI128, "170141183460469231731687303715884105728"), UsageError);
  EXPECT_THROW(m.encode(kChar, "ab"), UsageError);
  EXPECT_THROW(m.encode(kStr, "\xff"), UsageError);
  EXPECT_THROW(m.encode(kBitsLsb8, Value({1})), UsageError);
}

TEST(MetadataCodec, MalformedInputThrows) {
  const Metadata& m = mini(15);
  EXPECT_THROW(m.decode(kBool, hex("02")), scale::DecodeError);
  EXPECT_THROW(m.decode(kOptU32, hex("02")), scale::DecodeError);
  EXPECT_THROW(m.decode(kChar, hex("00d80000")), scale::DecodeError);   // surrogate
  EXPECT_THROW(m.decode(kChar, hex("00001100")), scale::DecodeError);   // beyond U+10FFFF
  EXPECT_THROW(m.decode(kStr, hex("04ff")), scale::DecodeError);        // not UTF-8
  EXPECT_THROW(m.decode(kCompactU8, hex("0104")), scale::DecodeError);  // 256 in Compact<u8>
  EXPECT_THROW(m.decode(kCompactU8, hex("0500")), scale::DecodeError);  // non-canonical
  EXPECT_THROW(m.decode(kBitsLsb8, hex("2405")), scale::DecodeError);   // 9 bits need 2 bytes
  EXPECT_THROW(m.decode(kU32, hex("0100000000")), scale::DecodeError);  // trailing byte
  EXPECT_THROW(m.decode(kH256, hex("00")), scale::DecodeError);
  EXPECT_THROW(m.decode(kTopics, hex("fdff")), scale::DecodeError);     // 16383 hashes, 0 bytes left
}

TEST(MetadataCodec, NestingAndZeroSizeItemsAreBounded) {
  const Metadata& m = mini(15);
  Bytes deep(100, 0x01);
  deep.push_back(0x00);
  EXPECT_NO_THROW(m.decode(kTree, deep));
  Bytes too_deep(300, 0x01);
  too_deep.push_back(0x00);
  EXPECT_THROW(m.decode(kTree, too_deep), scale::DecodeError);
  Value v = "Leaf";
  for (int i = 0; i < 300; ++i) v = Value{{"Node", v}};
  EXPECT_THROW(m.encode(kTree, v), UsageError);
  // Vec<()> claiming 2^60 items: nothing to read, so only the value budget stops it.
  scale::Encoder e;
  e.compact(std::uint64_t{1} << 60);
  EXPECT_THROW(m.decode(kUnits, e.out()), scale::DecodeError);
}

// ---------------------------------------------------------------------------------------------
// The @polkadot/types oracle.

struct NodeOutput {
  bool ran = false;
  std::string out;
};

NodeOutput run_oracle() {
  NodeOutput r;
  std::string cmd = "node '" + kJsDir + "/encode_events.mjs' '" + kVaraMetadata + "'";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  std::size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  r.ran = pclose(p) == 0;
  return r;
}

TEST(MetadataOracle, EventsMatchPolkadotJs) {
  if (std::system("command -v node >/dev/null 2>&1") != 0)
    GTEST_FAIL() << "node is not installed; install Node.js >= 18 and run `npm ci` in tests/js";
  if (!std::filesystem::exists(kJsDir + "/node_modules/@polkadot/types"))
    GTEST_FAIL() << "tests/js/node_modules is missing; run `npm ci --prefix tests/js`";
  NodeOutput o = run_oracle();
  ASSERT_TRUE(o.ran) << "node tests/js/encode_events.mjs failed; output: " << o.out;
  Value oracle = Value::parse(o.out);
  Bytes blob = hex(oracle.at("hex").get<std::string>());
  const Value& want = oracle.at("events");
  ASSERT_EQ(want.size(), 7u);

  const Metadata& m = vara();
  auto got = m.decode_events(blob);
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    SCOPED_TRACE(want[i].dump());
    EXPECT_EQ(got[i].phase, want[i].at("phase"));
    EXPECT_EQ(got[i].pallet, want[i].at("pallet"));
    EXPECT_EQ(got[i].name, want[i].at("name"));
    EXPECT_EQ(got[i].pallet_index, want[i].at("pallet_index"));
    EXPECT_EQ(got[i].event_index, want[i].at("event_index"));
    EXPECT_EQ(got[i].fields, want[i].at("fields"));
    std::vector<std::string> topics;
    for (const auto& t : got[i].topics) topics.push_back(to_hex(t));
    EXPECT_EQ(Value(topics), want[i].at("topics"));
  }
  // Gear events the transport relies on, with the indices chain.md gives.
  EXPECT_EQ(got[2].pallet_index, 104);
  EXPECT_EQ(got[2].event_index, 0);
  EXPECT_EQ(got[3].event_index, 1);
  EXPECT_EQ(got[3].fields["message"]["details"]["to"], got[2].fields["id"]);

  // Our encoder gives back polkadot-js' bytes, from our decoding and from the oracle's JSON alike.
  EXPECT_EQ(to_hex(m.encode_events(got)), to_hex(blob));
  std::vector<EventRecord> from_json;
  for (const auto& w : want) {
    EventRecord r;
    r.phase = w.at("phase");
    r.pallet = w.at("pallet");
    r.name = w.at("name");
    r.fields = w.at("fields");
    for (const auto& t : w.at("topics")) r.topics.push_back(hash32_from_hex(t.get<std::string>()).value());
    from_json.push_back(r);
  }
  EXPECT_EQ(to_hex(m.encode_events(from_json)), to_hex(blob));

  for (std::size_t len = 0; len < blob.size(); ++len)
    EXPECT_THROW(m.decode_events(ByteView(blob).first(len)), scale::DecodeError) << len;
}

}  // namespace
}  // namespace p2p::metadata
