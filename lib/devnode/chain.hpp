// devnode/chain: the stand-in Gear node's pure core: genesis, blocks, account nonces, the transaction pool,
// validation as a Substrate node does it, and block production that runs Gear.send_message through the
// embedded ledger and records System.Events in the runtime metadata's own encoding. No sockets, no clocks
// of its own (the clock is injected), single-threaded: the RPC face calls it from one loop.
#pragma once
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gear_rpc/extrinsic.hpp"
#include "keys/ed25519.hpp"
#include "ledger/ledger.hpp"
#include "metadata/metadata.hpp"
#include "util/bytes.hpp"

namespace p2p::devnode {

// The JSON-RPC error codes a Substrate/Gear node answers with.
namespace rpc_code {
inline constexpr int parse_error = -32700;
inline constexpr int invalid_request = -32600;
inline constexpr int method_not_found = -32601;
inline constexpr int invalid_params = -32602;
inline constexpr int internal_error = -32603;
inline constexpr int oversized_request = -32007;  // jsonrpsee's "Request is too big"
inline constexpr int bad_format = 1001;           // "Extrinsic has invalid format: ..."
inline constexpr int invalid_transaction = 1010;  // "Invalid Transaction", data says why
inline constexpr int already_imported = 1013;     // "Transaction Already Imported"
inline constexpr int too_low_priority = 1014;     // same sender and nonce already in the pool
inline constexpr int immediately_dropped = 1016;  // the pool is full
inline constexpr int runtime_error = 8000;        // gear_* runtime API failures ("Runtime error")
}  // namespace rpc_code

// A JSON-RPC error object: the node refused the request.
class RpcError : public std::runtime_error {
 public:
  RpcError(int code, std::string message, std::optional<std::string> data = std::nullopt)
      : std::runtime_error(std::move(message)), code_(code), data_(std::move(data)) {}
  int code() const noexcept { return code_; }
  const std::optional<std::string>& data() const noexcept { return data_; }
  nlohmann::json to_json() const;  // {"code", "message"[, "data"]}

 private:
  int code_;
  std::optional<std::string> data_;
};

// What state_getRuntimeVersion answers (camelCase as Substrate serialises it). The Chain fills it from the
// metadata's System.Version constant; these defaults stand only when that constant is missing.
struct RuntimeVersion {
  std::string spec_name = "vara";
  std::string impl_name = "p2pstream-devnode";
  std::uint32_t authoring_version = 1;
  std::uint32_t spec_version = 1900;
  std::uint32_t impl_version = 1;
  std::uint32_t transaction_version = 1;
  std::uint32_t state_version = 1;
  nlohmann::json apis = nlohmann::json::array();  // [["0x<8 bytes>", version], ...]
  nlohmann::json to_json() const;
};

struct Header {
  Hash32 parent_hash{};
  std::uint32_t number = 0;
  Hash32 state_root{};
  Hash32 extrinsics_root{};
  // SCALE: parent ++ Compact(number) ++ state root ++ extrinsics root ++ digest (always empty here).
  Bytes encode() const;
  Hash32 hash() const { return blake2b_256(encode()); }
  // {"parentHash", "number": "0x..", "stateRoot", "extrinsicsRoot", "digest": {"logs": []}}
  nlohmann::json to_json() const;
};

struct Block {
  Header header;
  Hash32 hash{};
  std::uint64_t timestamp_ms = 0;
  std::vector<Bytes> extrinsics;  // each one fully encoded (length prefix included), as chain_getBlock shows
  Bytes events;                   // the System.Events storage value at this block
};

struct Options {
  // Override the runtime version read from the metadata's System.Version constant (tests use it to
  // sign for the wrong spec).
  std::optional<std::uint32_t> spec_version;
  std::optional<std::uint32_t> tx_version;
  std::uint32_t finality_lag = 1;     // the block `lag` below the best is final
  std::size_t pool_limit = 8192;      // transactions waiting, ready and future together
  std::size_t pool_bytes = 20u << 20; // and their total size
  std::size_t max_block_extrinsics = 256;
  std::function<std::uint64_t()> clock;  // ms since the epoch; the wall clock when empty
};

enum class TxStatus { ready, future };

struct Submitted {
  Hash32 hash{};
  TxStatus status = TxStatus::ready;
};

// gear_calculateHandleGas's answer.
struct GasInfo {
  std::uint64_t min_limit = 0, reserved = 0, burned = 0, may_be_returned = 0;
  bool waited = false;
  nlohmann::json to_json() const;  // snake_case keys, numbers
};

// gear_calculateReplyForHandle's answer; code in the metadata Value shape, e.g. {"Success": "Manual"}.
struct ReplyInfo {
  Bytes payload;
  metadata::Value code;
  nlohmann::json to_json() const;  // {"payload": "0x..", "value": 0, "code": ...}
};

// The message id the devnode gives the i-th extrinsic of a block:
//   blake2b-256("p2pstream-devnode/message" ++ u32 LE block number ++ u32 LE extrinsic index ++ sender ++ payload)
Hash32 message_id(std::uint32_t block, std::uint32_t index, const keys::PublicKey& sender, ByteView payload);
// A reply's id, as Gear derives it: blake2b-256("reply" ++ message id).
Hash32 reply_id(const Hash32& message);
// The gas the devnode charges for a payload: 1e9 + 1000 per payload byte.
std::uint64_t gas_for(ByteView payload);

class Chain {
 public:
  // Builds genesis and reads the nonces back from the ledger's log (one message per extrinsic).
  // RuntimeError when the metadata lacks an event or call the devnode needs.
  Chain(const metadata::Metadata& md, ledger::Ledger& ledger, Options opts = {});

  const metadata::Metadata& md() const { return md_; }
  const RuntimeVersion& runtime_version() const { return version_; }
  const Hash32& genesis_hash() const { return blocks_.front().hash; }
  chain::ProgramId program_id() const { return ledger::Ledger::program_id(); }

  const Block& best() const { return blocks_.back(); }
  const Block& finalized() const;
  const Block* block(std::uint64_t number) const;
  const Block* block(const Hash32& hash) const;

  // Validates and pools an extrinsic; throws RpcError exactly as a node would refuse it.
  Submitted submit(ByteView extrinsic);
  // The pool's view of a transaction: nullopt once included or dropped.
  std::optional<TxStatus> pool_status(const Hash32& hash) const;
  std::vector<Bytes> pending() const;  // author_pendingExtrinsics

  // Seals the next block with the ready transactions; drops those whose era has run out.
  const Block& produce_block();
  // Transactions dropped since the last call (expired era, ledger failure), for watchers.
  std::vector<Hash32> take_dropped();
  // Problems met while producing blocks, for the operator's log.
  std::vector<std::string> take_warnings();

  // system_accountNextIndex: the account's nonce plus its ready run of pooled transactions.
  std::uint64_t account_next_index(const keys::PublicKey& who) const;

  // state_getStorage: System.Events and System.Number at a block; nullopt for any other key.
  std::optional<Bytes> storage(ByteView key, const Block& at) const;

  // Off-chain runs on a copy of the program state. Throw RpcError 8000 where Gear does.
  GasInfo calculate_handle_gas(const Hash32& source, const Hash32& destination, ByteView payload);
  ReplyInfo calculate_reply_for_handle(const Hash32& origin, const Hash32& destination, ByteView payload,
                                       std::uint64_t gas_limit);

 private:
  struct PoolTx {
    Bytes bytes;
    Hash32 hash{};
    keys::PublicKey signer{};
    std::uint64_t nonce = 0;
    scale::u128 tip = 0;
    gear_rpc::Era era;
    std::uint64_t birth = 0;  // the era's birth block, fixed at submission
    gear_rpc::SendMessageCall call;
  };

  void check_metadata() const;
  Block make_genesis() const;
  void load_nonces();
  std::uint64_t nonce_of(const keys::PublicKey& who) const;
  std::set<std::uint64_t> pooled_nonces(const keys::PublicKey& who) const;
  std::uint64_t now() const;
  std::optional<Hash32> hash_of(std::uint64_t number) const;  // only blocks a mortal era may still name
  PoolTx validate(ByteView extrinsic, const Hash32& hash) const;
  void check_signature(const gear_rpc::DecodedExtrinsic& x, std::uint64_t& birth) const;
  void check_room(const PoolTx& tx) const;
  std::vector<PoolTx> take_ready(std::uint64_t number);
  Bytes timestamp_inherent(std::uint64_t now_ms) const;
  void apply(const PoolTx& tx, std::uint32_t number, std::uint32_t index, std::vector<metadata::EventRecord>& records,
             nlohmann::json& dispatched, scale::u128& fees);

  const metadata::Metadata& md_;
  ledger::Ledger& ledger_;
  Options opts_;
  RuntimeVersion version_;
  std::uint64_t block_hash_count_ = 2400;
  std::deque<Block> blocks_;
  std::map<Hash32, std::uint64_t> numbers_;
  std::map<keys::PublicKey, std::uint64_t> nonces_;
  std::vector<PoolTx> pool_;  // arrival order
  std::size_t pool_size_ = 0;
  std::vector<Hash32> dropped_;
  std::vector<std::string> warnings_;
};

}  // namespace p2p::devnode
