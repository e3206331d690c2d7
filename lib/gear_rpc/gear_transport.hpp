// gear_rpc/gear_transport: chain::Transport over a Gear node's JSON-RPC. send() estimates gas (which
// doubles as the pre-flight check), signs a Gear.send_message extrinsic, submits it, finds the block that
// includes it and reads the reply and Sails events from System.Events; query() runs off chain.
#pragma once
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "chain/transport.hpp"
#include "gear_rpc/extrinsic.hpp"
#include "gear_rpc/rpc.hpp"
#include "metadata/metadata.hpp"

namespace p2p::gear_rpc {

struct GearOptions {
  bool finalized = false;                     // wait for finality rather than best-block inclusion
  std::chrono::milliseconds timeout{60000};   // from submission to the reply
  // Where state_getMetadata blobs are cached per genesis and spec version. nullopt: $XDG_CACHE_HOME/p2pstream
  // (or ~/.cache/p2pstream); an empty path: no cache.
  std::optional<std::filesystem::path> cache_dir;
  bool immortal = false;
  std::uint64_t era_period = 64;
  std::optional<std::uint64_t> gas_limit;     // skips the estimate (and with it the pre-flight check)
  unsigned gas_margin_percent = 10;
  std::chrono::milliseconds poll_max{0};      // longest wait between polls; 0: half the runtime's block time
  std::function<void(const std::string&)> progress;  // human-readable steps, for stderr
  RpcOptions rpc;
};

struct ChainInfo {
  Hash32 genesis{};
  std::uint32_t spec_version = 0;
  std::uint32_t tx_version = 0;
  std::string spec_name;
};

// One Sails event the program emitted, with where it was seen.
struct ProgramEvent {
  std::uint64_t block_number = 0;
  std::string block_hash;
  Bytes payload;
};

class GearTransport : public chain::Transport {
 public:
  GearTransport(std::unique_ptr<RpcClient> rpc, GearOptions opts = {});
  // Resolves mainnet/testnet/local or a URL and connects.
  static std::unique_ptr<GearTransport> open(const std::string& endpoint, GearOptions opts = {});
  ~GearTransport() override;

  chain::Receipt send(const keys::Keypair& signer, const chain::ProgramId& program, ByteView payload) override;
  Bytes query(const chain::ProgramId& program, ByteView payload) override;
  std::string describe() const override;

  const ChainInfo& chain_info();
  const metadata::Metadata& metadata();     // fetched, or read from the cache, on first use
  std::uint64_t head_number();              // the best block, or the finalized one with opts.finalized
  std::string block_hash(std::uint64_t number);
  // The program's Sails events in blocks from..to (inclusive), oldest first.
  std::vector<ProgramEvent> program_events(const chain::ProgramId& program, std::uint64_t from, std::uint64_t to);
  std::chrono::milliseconds poll_interval();  // the longest pause between polls
  RpcClient& rpc() { return *rpc_; }

 private:
  struct Inclusion;
  void progress(const std::string& msg) const;
  std::optional<chain::Receipt> preflight(const keys::Keypair& signer, const chain::ProgramId& program,
                                          ByteView payload, std::uint64_t& gas_limit);
  chain::Receipt await_reply(const keys::Keypair& signer, const chain::ProgramId& program, const Hash32& xt_hash,
                             std::uint64_t best_number, std::uint64_t gas);
  Inclusion wait_for_inclusion(const Hash32& xt_hash, std::uint64_t after,
                               std::chrono::steady_clock::time_point deadline);
  std::vector<metadata::EventRecord> events_at(const std::string& block_hash);
  std::uint64_t block_time_ms(const std::string& block_hash);
  std::optional<std::filesystem::path> cache_file();

  std::unique_ptr<RpcClient> rpc_;
  GearOptions opts_;
  std::optional<ChainInfo> info_;
  std::optional<metadata::Metadata> md_;
};

// gear_calculateHandleGas / gear_calculateReplyForHandle report a program panic as an RPC error; this is
// the panic's text (sails::panic_message of the part from "panicked with"), or nullopt for other errors.
std::optional<std::string> panic_from_rpc_error(const RpcError& e);

// The metadata cache's directory by the XDG rules, or nullopt when neither XDG_CACHE_HOME nor HOME is set.
std::optional<std::filesystem::path> default_cache_dir();

// "0x1a" (a header's number) as a number; RuntimeError naming `what` when it is not one.
std::uint64_t parse_block_number(const nlohmann::json& v, const std::string& what);

}  // namespace p2p::gear_rpc
