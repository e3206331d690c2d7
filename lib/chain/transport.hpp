// chain/transport: where a message goes. The embedded ledger and a Gear node
// both sit behind this one interface; lib/w3b knows nothing else.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "keys/ed25519.hpp"
#include "util/bytes.hpp"

namespace p2p::chain {

using ProgramId = std::array<std::uint8_t, 32>;

struct Receipt {
  std::uint64_t block_number = 0;
  std::string block_hash;          // 0x hex; empty where the transport has none
  std::uint64_t block_time_ms = 0;
  Hash32 message_id{};
  bool ok = true;                  // false: the program replied with a panic
  std::string panic;               // the program's reason when !ok
  Bytes reply;                     // reply payload
  std::vector<Bytes> events;       // Sails event payloads the message emitted
  std::optional<std::uint64_t> gas_limit;   // what we paid for, where known
  std::optional<std::string> fee;           // fee paid, in the chain's smallest unit
};

class Transport {
 public:
  virtual ~Transport() = default;
  // Sends a message and waits for its reply. Throws Error on transport failures;
  // a program panic is not an exception but Receipt::ok == false.
  virtual Receipt send(const keys::Keypair& signer, const ProgramId& program, ByteView payload) = 0;
  // Runs a query off chain and returns the reply payload; a panic throws RefusedError.
  virtual Bytes query(const ProgramId& program, ByteView payload) = 0;
  // Human-readable name for messages ("ledger /path/ledger.db", "wss://...").
  virtual std::string describe() const = 0;
};

}  // namespace p2p::chain
