// program/w3bstreaming: the W3Bstreaming program's behaviour, rule for rule as
// the deployed program (chain.md), quirks included. Pure: state in, state out.
#pragma once
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "util/bytes.hpp"
#include "w3b/types.hpp"

namespace p2p::program {

struct Outcome {
  bool ok = true;              // false: the program panicked, state is unchanged
  std::string panic;           // the panic text when !ok (e.g. "Id is not exist")
  Bytes reply;                 // the reply payload: sails success bytes, or the panic payload
  std::vector<Bytes> events;   // Sails event payloads, in emission order (empty on panic)
};

class W3Bstreaming {
 public:
  W3Bstreaming() = default;
  explicit W3Bstreaming(w3b::ProgramState state, bool terminated = false)
      : state_(std::move(state)), terminated_(terminated) {}

  // The constructor message: `New(dns_id_and_name)`; the deployer becomes the first admin.
  static W3Bstreaming deploy(const w3b::ActorId& deployer,
                             std::optional<std::pair<w3b::ActorId, std::string>> dns = std::nullopt);

  // Runs one message. A payload that does not decode is a panic, as on chain.
  Outcome handle(const w3b::ActorId& sender, ByteView payload, std::uint64_t block_timestamp_ms);
  Outcome handle(const w3b::ActorId& sender, const w3b::Command& cmd, std::uint64_t block_timestamp_ms);

  // Runs a query payload (GetState); the reply bytes, or a panic outcome on a bad payload.
  Outcome query(ByteView payload) const;

  const w3b::ProgramState& state() const { return state_; }
  bool terminated() const { return terminated_; }

 private:
  w3b::ProgramState state_;
  bool terminated_ = false;
};

}  // namespace p2p::program
