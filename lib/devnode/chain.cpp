// devnode/chain: genesis, validation, the pool and block production of the stand-in node (see chain.hpp).
#include "devnode/chain.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "program/w3bstreaming.hpp"
#include "timespec/timespec.hpp"
#include "util/error.hpp"
#include "w3b/messages.hpp"

namespace p2p::devnode {
namespace {

using metadata::EventRecord;
using metadata::Value;

// Dispatch weights are informative only; fixed numbers keep blocks deterministic.
constexpr std::uint64_t kTimestampWeight = 9'000'000;
constexpr std::uint64_t kBaseFee = 10'000'000'000;   // 0.01 VARA
constexpr std::uint64_t kFeePerByte = 1'000'000;
constexpr std::size_t kMaxEraLookback = 64;          // earlier births tried to tell "expired" from "forged"

std::string hex(ByteView b) { return to_hex(b); }

std::string u128_text(scale::u128 v) {
  if (v == 0) return "0";
  std::string s;
  while (v) {
    s.push_back(static_cast<char>('0' + static_cast<int>(v % 10)));
    v /= 10;
  }
  std::reverse(s.begin(), s.end());
  return s;
}

std::string hex_number(std::uint64_t n) { return fmt::format("0x{:x}", n); }

Value apply_phase(std::uint32_t index) { return Value{{"ApplyExtrinsic", index}}; }

EventRecord record(Value phase, std::string pallet, std::string name, Value fields) {
  EventRecord r;
  r.phase = std::move(phase);
  r.pallet = std::move(pallet);
  r.name = std::move(name);
  r.fields = std::move(fields);
  return r;
}

Value success_event(std::uint64_t ref_time, const char* dispatch_class) {
  return Value{{"dispatch_info",
                {{"weight", {{"ref_time", ref_time}, {"proof_size", 0}}},
                 {"class", dispatch_class},
                 {"pays_fee", "Yes"}}}};
}

// Substrate's treasury account: "modl" ++ PalletId("py/trsry"), zero padded.
Hash32 treasury_account() {
  Hash32 a{};
  std::memcpy(a.data(), "modlpy/trsry", 12);
  return a;
}

Hash32 event_message_id(const Hash32& message, std::uint32_t k) {
  scale::Encoder e;
  e.raw(view("p2pstream-devnode/event"));
  e.arr32(message);
  e.u32(k);
  return blake2b_256(e.out());
}

// Rust's {:?} of a String, which is how Gear's RPC puts a runtime error into "data".
std::string debug_quoted(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) out += fmt::format("\\u{{{:x}}}", static_cast<unsigned>(c));
        else out += c;
    }
  }
  return out + "\"";
}

std::string text_of(ByteView b) { return std::string(b.begin(), b.end()); }

RpcError invalid_tx(std::string why) {
  return RpcError(rpc_code::invalid_transaction, "Invalid Transaction", std::move(why));
}

RpcError trap(ByteView panic_payload) {
  return RpcError(rpc_code::runtime_error, "Runtime error",
                  debug_quoted("Program terminated with a trap: 'Panic occurred: " + text_of(panic_payload) + "'"));
}

const Value kPanicCode = {{"Error", {{"Execution", "UserspacePanic"}}}};
const Value kOutOfGasCode = {{"Error", {{"Execution", "RanOutOfGas"}}}};
const Value kNoProgramCode = {{"Error", {{"UnavailableActor", "ProgramNotCreated"}}}};
constexpr std::string_view kOutOfGasText = "Ran out of gas: the gas limit is below gear_calculateHandleGas's min_limit";
constexpr std::string_view kNoProgramText = "Program not created: the devnode hosts only the W3Bstreaming program";

Value success_code(ByteView reply) { return Value{{"Success", reply.empty() ? "Auto" : "Manual"}}; }

bool is_query(ByteView payload) {
  try {
    (void)w3b::decode_query(payload);
    return true;
  } catch (const Error&) {
    return false;
  }
}

RuntimeVersion version_from(const metadata::Metadata& md, const Options& opts) {
  RuntimeVersion v;
  if (const auto* sys = md.find_pallet("System")) {
    for (const auto& c : sys->constants) {
      if (c.name != "Version") continue;
      Value j = md.decode(c.type, c.value);
      v.spec_name = j.value("spec_name", v.spec_name);
      v.impl_name = j.value("impl_name", v.impl_name);
      v.authoring_version = j.value("authoring_version", v.authoring_version);
      v.spec_version = j.value("spec_version", v.spec_version);
      v.impl_version = j.value("impl_version", v.impl_version);
      v.transaction_version = j.value("transaction_version", v.transaction_version);
      v.state_version = j.value("state_version", v.state_version);
      if (j.contains("apis")) v.apis = j["apis"];
    }
  }
  if (opts.spec_version) v.spec_version = *opts.spec_version;
  if (opts.tx_version) v.transaction_version = *opts.tx_version;
  return v;
}

std::uint64_t block_hash_count_from(const metadata::Metadata& md) {
  if (const auto* sys = md.find_pallet("System"))
    for (const auto& c : sys->constants)
      if (c.name == "BlockHashCount") {
        Value j = md.decode(c.type, c.value);
        if (j.is_number_unsigned() && j.get<std::uint64_t>() > 0) return j.get<std::uint64_t>();
      }
  return 2400;
}

}  // namespace

nlohmann::json RpcError::to_json() const {
  nlohmann::json j = {{"code", code_}, {"message", what()}};
  if (data_) j["data"] = *data_;
  return j;
}

nlohmann::json RuntimeVersion::to_json() const {
  return {{"specName", spec_name},
          {"implName", impl_name},
          {"authoringVersion", authoring_version},
          {"specVersion", spec_version},
          {"implVersion", impl_version},
          {"apis", apis},
          {"transactionVersion", transaction_version},
          {"stateVersion", state_version}};
}

Bytes Header::encode() const {
  scale::Encoder e;
  e.arr32(parent_hash);
  e.compact(number);
  e.arr32(state_root);
  e.arr32(extrinsics_root);
  e.compact(0);  // digest: no logs
  return std::move(e).take();
}

nlohmann::json Header::to_json() const {
  return {{"parentHash", hex(parent_hash)},
          {"number", hex_number(number)},
          {"stateRoot", hex(state_root)},
          {"extrinsicsRoot", hex(extrinsics_root)},
          {"digest", {{"logs", nlohmann::json::array()}}}};
}

nlohmann::json GasInfo::to_json() const {
  return {{"min_limit", min_limit}, {"reserved", reserved}, {"burned", burned},
          {"may_be_returned", may_be_returned}, {"waited", waited}};
}

nlohmann::json ReplyInfo::to_json() const { return {{"payload", hex(payload)}, {"value", 0}, {"code", code}}; }

Hash32 message_id(std::uint32_t block, std::uint32_t index, const keys::PublicKey& sender, ByteView payload) {
  scale::Encoder e;
  e.raw(view("p2pstream-devnode/message"));
  e.u32(block);
  e.u32(index);
  e.arr32(sender);
  e.raw(payload);
  return blake2b_256(e.out());
}

Hash32 reply_id(const Hash32& message) { return blake2b_256(concat({view("reply"), message})); }

std::uint64_t gas_for(ByteView payload) { return 1'000'000'000 + 1000 * static_cast<std::uint64_t>(payload.size()); }

Chain::Chain(const metadata::Metadata& md, ledger::Ledger& ledger, Options opts)
    : md_(md), ledger_(ledger), opts_(std::move(opts)) {
  check_metadata();
  version_ = version_from(md_, opts_);
  block_hash_count_ = block_hash_count_from(md_);
  Block g = make_genesis();
  numbers_[g.hash] = 0;
  blocks_.push_back(std::move(g));
  load_nonces();
}

// Fail at start-up, not at the first block, when the metadata is not a Gear runtime's.
void Chain::check_metadata() const {
  const std::pair<const char*, const char*> events[] = {
      {"System", "ExtrinsicSuccess"},          {"Balances", "Withdraw"},   {"Balances", "Deposit"},
      {"TransactionPayment", "TransactionFeePaid"}, {"Gear", "MessageQueued"}, {"Gear", "UserMessageSent"},
      {"Gear", "MessagesDispatched"}};
  try {
    for (const auto& [p, e] : events) (void)md_.event_index(p, e);
    (void)md_.call_index("Gear", "send_message");
    (void)md_.call_index("Timestamp", "set");
    (void)md_.storage_key("System", "Events");
    (void)md_.storage_key("System", "Number");
  } catch (const Error& e) {
    throw RuntimeError(fmt::format("devnode: the runtime metadata is not a Gear runtime's ({}); use the Vara "
                                   "metadata (the default) or a --metadata file from a Gear node",
                                   e.what()));
  }
}

Block Chain::make_genesis() const {
  Block g;
  g.header.state_root = blake2b_256(concat({view("p2pstream-devnode/genesis"), program_id()}));
  g.header.extrinsics_root = blake2b_256(view("p2pstream-devnode/extrinsics"));
  g.hash = g.header.hash();
  g.events = md_.encode_events({});
  return g;
}

// The ledger holds one message per included extrinsic, so a persisted ledger gives the nonces back.
void Chain::load_nonces() {
  for (const auto& e : ledger_.log()) ++nonces_[e.sender];
}

std::uint64_t Chain::now() const { return opts_.clock ? opts_.clock() : timespec::now_ms(); }

const Block& Chain::finalized() const {
  std::uint64_t best_n = best().header.number;
  return blocks_[best_n > opts_.finality_lag ? best_n - opts_.finality_lag : 0];
}

const Block* Chain::block(std::uint64_t number) const { return number < blocks_.size() ? &blocks_[number] : nullptr; }

const Block* Chain::block(const Hash32& hash) const {
  auto it = numbers_.find(hash);
  return it == numbers_.end() ? nullptr : &blocks_[it->second];
}

std::optional<Hash32> Chain::hash_of(std::uint64_t number) const {
  std::uint64_t best_n = best().header.number;
  if (number > best_n) return std::nullopt;
  if (number != 0 && best_n - number > block_hash_count_) return std::nullopt;  // pruned from System.BlockHash
  return blocks_[number].hash;
}

std::uint64_t Chain::nonce_of(const keys::PublicKey& who) const {
  auto it = nonces_.find(who);
  return it == nonces_.end() ? 0 : it->second;
}

std::set<std::uint64_t> Chain::pooled_nonces(const keys::PublicKey& who) const {
  std::set<std::uint64_t> out;
  for (const auto& tx : pool_)
    if (tx.signer == who) out.insert(tx.nonce);
  return out;
}

std::uint64_t Chain::account_next_index(const keys::PublicKey& who) const {
  auto pooled = pooled_nonces(who);
  std::uint64_t next = nonce_of(who);
  while (pooled.count(next)) ++next;
  return next;
}

// Substrate's order: the era's birth block must be known, then the signature, then the nonce.
void Chain::check_signature(const gear_rpc::DecodedExtrinsic& x, std::uint64_t& birth) const {
  const std::uint64_t current = best().header.number + 1;
  auto verifies = [&](const Hash32& era_hash) {
    return gear_rpc::verify_signed(md_, x, version_.spec_version, version_.transaction_version, genesis_hash(),
                                   era_hash);
  };
  birth = x.era.immortal ? 0 : x.era.birth(current);
  auto era_hash = x.era.immortal ? std::optional<Hash32>(genesis_hash()) : hash_of(birth);
  if (!era_hash) throw invalid_tx("Transaction has an ancient birth block");
  if (verifies(*era_hash)) return;
  // A real node calls an expired era a bad signature; naming it helps the developer more.
  if (!x.era.immortal)
    for (std::size_t k = 1; k <= kMaxEraLookback && birth >= k * x.era.period; ++k) {
      auto earlier = hash_of(birth - k * x.era.period);
      if (!earlier) break;
      if (verifies(*earlier)) throw invalid_tx("Transaction has an ancient birth block");
    }
  throw invalid_tx("Transaction has a bad signature");
}

Chain::PoolTx Chain::validate(ByteView extrinsic, const Hash32& hash) const {
  gear_rpc::DecodedExtrinsic x;
  try {
    x = gear_rpc::decode_signed(md_, extrinsic);
  } catch (const scale::DecodeError& e) {
    throw RpcError(rpc_code::bad_format, fmt::format("Extrinsic has invalid format: {}", e.what()));
  } catch (const Error& e) {
    throw invalid_tx(e.what());  // unsigned, another version, or a signature the devnode cannot check
  }
  auto want = md_.call_index("Gear", "send_message");
  if (x.call.size() < 2 || x.call[0] != want.first || x.call[1] != want.second)
    throw invalid_tx("Call not supported by devnode");

  PoolTx tx;
  try {
    tx.call = gear_rpc::decode_send_message(md_, x.call);
  } catch (const Error& e) {
    throw RpcError(rpc_code::bad_format, fmt::format("Extrinsic has invalid format: {}", e.what()));
  }
  check_signature(x, tx.birth);
  if (x.nonce < nonce_of(x.signer)) throw invalid_tx("Transaction is outdated");

  tx.bytes.assign(extrinsic.begin(), extrinsic.end());
  tx.hash = hash;
  tx.signer = x.signer;
  tx.nonce = x.nonce;
  tx.tip = x.tip;
  tx.era = x.era;
  return tx;
}

void Chain::check_room(const PoolTx& tx) const {
  for (const auto& p : pool_)
    if (p.signer == tx.signer && p.nonce == tx.nonce)
      throw RpcError(rpc_code::too_low_priority, "Priority is too low: (0 vs 0)",
                     "The transaction has too low priority to replace another transaction already in the pool.");
  if (pool_.size() >= opts_.pool_limit || pool_size_ + tx.bytes.size() > opts_.pool_bytes)
    throw RpcError(rpc_code::immediately_dropped, "Immediately Dropped",
                   "The transaction couldn't enter the pool because of the limit");
}

Submitted Chain::submit(ByteView extrinsic) {
  Hash32 hash = gear_rpc::extrinsic_hash(extrinsic);
  for (const auto& p : pool_)
    if (p.hash == hash) throw RpcError(rpc_code::already_imported, "Transaction Already Imported", hex(hash));
  PoolTx tx = validate(extrinsic, hash);
  check_room(tx);
  TxStatus status = tx.nonce == account_next_index(tx.signer) ? TxStatus::ready : TxStatus::future;
  pool_size_ += tx.bytes.size();
  pool_.push_back(std::move(tx));
  return {hash, status};
}

std::optional<TxStatus> Chain::pool_status(const Hash32& hash) const {
  for (const auto& p : pool_)
    if (p.hash == hash)  // ready when every lower nonce of the sender is pooled
      return p.nonce < account_next_index(p.signer) ? TxStatus::ready : TxStatus::future;
  return std::nullopt;
}

std::vector<Bytes> Chain::pending() const {
  std::vector<Bytes> out;
  for (const auto& p : pool_) out.push_back(p.bytes);
  return out;
}

std::vector<Hash32> Chain::take_dropped() { return std::exchange(dropped_, {}); }
std::vector<std::string> Chain::take_warnings() { return std::exchange(warnings_, {}); }

// Removes what block `number` would reject, then takes each sender's run of consecutive nonces, in
// arrival order.
std::vector<Chain::PoolTx> Chain::take_ready(std::uint64_t number) {
  auto expired = [&](const PoolTx& tx) { return !tx.era.immortal && tx.era.birth(number) != tx.birth; };
  auto stale = [&](const PoolTx& tx) { return tx.nonce < nonce_of(tx.signer); };
  std::vector<PoolTx> keep, ready;
  std::map<keys::PublicKey, std::uint64_t> next;
  for (auto& tx : pool_) {
    if (expired(tx) || stale(tx)) {
      dropped_.push_back(tx.hash);
      pool_size_ -= tx.bytes.size();
    } else {
      keep.push_back(std::move(tx));
    }
  }
  pool_.clear();
  for (bool advanced = true; advanced && ready.size() < opts_.max_block_extrinsics;) {
    advanced = false;
    for (auto& tx : keep) {
      if (tx.bytes.empty() || ready.size() >= opts_.max_block_extrinsics) continue;  // taken already
      auto [it, fresh] = next.try_emplace(tx.signer, nonce_of(tx.signer));
      if (tx.nonce != it->second) continue;
      ++it->second;
      pool_size_ -= tx.bytes.size();
      ready.push_back(std::move(tx));
      tx.bytes.clear();
      advanced = true;
    }
  }
  for (auto& tx : keep)
    if (!tx.bytes.empty()) pool_.push_back(std::move(tx));
  return ready;
}

// The unsigned Timestamp.set inherent every real block starts with (v4: Compact(len) ++ 0x04 ++ call).
Bytes Chain::timestamp_inherent(std::uint64_t now_ms) const {
  Bytes call = md_.encode(md_.call_type(), Value{{"Timestamp", {{"set", {{"now", now_ms}}}}}});
  Bytes body = concat({Bytes{0x04}, call});
  scale::Encoder e;
  e.bytes(body);
  return std::move(e).take();
}

const Block& Chain::produce_block() {
  const Block& parent = best();
  const std::uint32_t number = parent.header.number + 1;
  Block b;
  b.timestamp_ms = std::max(now(), parent.timestamp_ms + 1);
  b.extrinsics.push_back(timestamp_inherent(b.timestamp_ms));
  std::vector<EventRecord> records;
  records.push_back(record(apply_phase(0), "System", "ExtrinsicSuccess", success_event(kTimestampWeight, "Mandatory")));

  nlohmann::json dispatched = nlohmann::json::array();
  scale::u128 fees = 0;
  auto ready = take_ready(number);
  for (std::size_t i = 0; i < ready.size(); ++i) {
    auto& tx = ready[i];
    auto index = static_cast<std::uint32_t>(b.extrinsics.size());
    try {
      apply(tx, number, index, records, dispatched, fees);
    } catch (const std::exception& e) {
      // The ledger could not store the message (disk full, locked file): leave it out, and return the rest
      // to the pool so no sender's nonces skip one.
      warnings_.push_back(fmt::format("dropped extrinsic {}: {}", hex(tx.hash), e.what()));
      dropped_.push_back(tx.hash);
      for (std::size_t j = i + 1; j < ready.size(); ++j) {
        pool_size_ += ready[j].bytes.size();
        pool_.push_back(std::move(ready[j]));
      }
      break;
    }
    ++nonces_[tx.signer];
    b.extrinsics.push_back(std::move(tx.bytes));
  }
  if (!dispatched.empty()) {
    // Fees go to the treasury, and Gear reports what it dispatched: events a client must skip.
    records.push_back(record("Finalization", "Balances", "Deposit",
                             Value{{"who", hex(treasury_account())}, {"amount", u128_text(fees)}}));
    std::sort(dispatched.begin(), dispatched.end(),
              [](const Value& a, const Value& c) { return a[0].get<std::string>() < c[0].get<std::string>(); });
    bool changed = std::any_of(dispatched.begin(), dispatched.end(), [](const Value& d) { return d[1] == "Success"; });
    Value changes = changed ? Value::array({hex(program_id())}) : Value::array();
    records.push_back(record("Finalization", "Gear", "MessagesDispatched",
                             Value{{"total", dispatched.size()}, {"statuses", dispatched}, {"state_changes", changes}}));
  }

  b.header.parent_hash = parent.hash;
  b.header.number = number;
  Bytes all;
  for (const auto& x : b.extrinsics) all.insert(all.end(), x.begin(), x.end());
  b.header.extrinsics_root = blake2b_256(concat({view("p2pstream-devnode/extrinsics"), all}));
  b.header.state_root = blake2b_256(concat({view("p2pstream-devnode/state"), parent.header.state_root,
                                            b.header.extrinsics_root}));
  b.hash = b.header.hash();
  b.events = md_.encode_events(records);
  numbers_[b.hash] = number;
  blocks_.push_back(std::move(b));
  return blocks_.back();
}

// Runs one Gear.send_message and appends its events; throws (before appending anything) only when the
// ledger fails.
void Chain::apply(const PoolTx& tx, std::uint32_t number, std::uint32_t index, std::vector<EventRecord>& records,
                  nlohmann::json& dispatched, scale::u128& fees) {
  const auto& call = tx.call;
  const Hash32 msg = message_id(number, index, tx.signer, call.payload);
  const Hash32 program = program_id();
  const bool to_program = call.destination == program;
  const bool enough_gas = call.gas_limit >= gas_for(call.payload);

  std::optional<ledger::LogEntry> run;
  if (to_program && enough_gas) run = ledger_.send(tx.signer, call.payload);

  Value code;
  Bytes reply;
  if (!to_program) {
    code = kNoProgramCode;
    reply.assign(kNoProgramText.begin(), kNoProgramText.end());
  } else if (!enough_gas) {
    code = kOutOfGasCode;
    reply.assign(kOutOfGasText.begin(), kOutOfGasText.end());
  } else {
    code = run->ok ? success_code(run->reply) : kPanicCode;
    reply = run->reply;
  }

  const std::uint64_t fee = kBaseFee + kFeePerByte * tx.bytes.size();
  fees += fee + tx.tip;
  const Value phase = apply_phase(index);
  const std::string sender = hex(tx.signer);
  records.push_back(record(phase, "Balances", "Withdraw", Value{{"who", sender}, {"amount", u128_text(fee + tx.tip)}}));
  records.push_back(record(phase, "Gear", "MessageQueued",
                           Value{{"id", hex(msg)}, {"source", sender}, {"destination", hex(call.destination)},
                                 {"entry", "Handle"}}));
  if (run) {
    for (std::size_t k = 0; k < run->events.size(); ++k) {
      Value message = {{"id", hex(event_message_id(msg, static_cast<std::uint32_t>(k)))},
                       {"source", hex(program)},
                       {"destination", hex(Hash32{})},
                       {"payload", hex(run->events[k])},
                       {"value", "0"},
                       {"details", nullptr}};
      records.push_back(record(phase, "Gear", "UserMessageSent", Value{{"message", message}, {"expiration", nullptr}}));
    }
  }
  Value message = {{"id", hex(reply_id(msg))},
                   {"source", hex(call.destination)},
                   {"destination", sender},
                   {"payload", hex(reply)},
                   {"value", "0"},
                   {"details", {{"to", hex(msg)}, {"code", code}}}};
  records.push_back(record(phase, "Gear", "UserMessageSent", Value{{"message", message}, {"expiration", nullptr}}));
  records.push_back(record(phase, "TransactionPayment", "TransactionFeePaid",
                           Value{{"who", sender}, {"actual_fee", u128_text(fee)}, {"tip", u128_text(tx.tip)}}));
  records.push_back(record(phase, "System", "ExtrinsicSuccess", success_event(gas_for(call.payload), "Normal")));
  dispatched.push_back(Value::array({hex(msg), run && run->ok ? "Success" : "Failed"}));
}

std::optional<Bytes> Chain::storage(ByteView key, const Block& at) const {
  auto is = [&](const Bytes& k) { return k.size() == key.size() && std::equal(k.begin(), k.end(), key.begin()); };
  if (is(md_.storage_key("System", "Events"))) return at.events;
  if (is(md_.storage_key("System", "Number"))) {
    scale::Encoder e;
    e.u32(at.header.number);
    return std::move(e).take();
  }
  return std::nullopt;
}

GasInfo Chain::calculate_handle_gas(const Hash32& source, const Hash32& destination, ByteView payload) {
  if (destination != program_id())
    throw RpcError(rpc_code::runtime_error, "Runtime error",
                   debug_quoted(fmt::format("Program {} not found: the devnode hosts only {}", hex(destination),
                                            hex(program_id()))));
  // A copy of the state: the run must leave no trace.
  program::W3Bstreaming copy(ledger_.state());
  auto out = copy.handle(source, payload, now());
  if (!out.ok) throw trap(out.reply);
  GasInfo g;
  g.min_limit = gas_for(payload);
  g.burned = g.min_limit - 100'000'000;
  g.may_be_returned = 100'000'000;
  return g;
}

ReplyInfo Chain::calculate_reply_for_handle(const Hash32& origin, const Hash32& destination, ByteView payload,
                                            std::uint64_t gas_limit) {
  ReplyInfo r;
  auto set = [&](Value code, std::string_view text) {
    r.code = std::move(code);
    r.payload.assign(text.begin(), text.end());
    return r;
  };
  if (destination != program_id()) return set(kNoProgramCode, kNoProgramText);
  if (gas_limit < gas_for(payload)) return set(kOutOfGasCode, kOutOfGasText);
  program::Outcome out;
  if (is_query(payload)) {
    out = ledger_.query(payload);
    if (out.ok) {
      r.code = Value{{"Success", "Manual"}};
      r.payload = out.reply;
      return r;
    }
  } else {
    program::W3Bstreaming copy(ledger_.state());
    out = copy.handle(origin, payload, now());
  }
  r.code = out.ok ? success_code(out.reply) : kPanicCode;
  r.payload = out.reply;
  return r;
}

}  // namespace p2p::devnode
