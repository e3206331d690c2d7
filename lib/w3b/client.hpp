// w3b/client: the typed W3Bstreaming client over any chain::Transport.
// It encodes commands, reads replies and events back, and turns a program panic
// into a RefusedError carrying the program's reason.
#pragma once
#include <vector>

#include "chain/transport.hpp"
#include "w3b/types.hpp"

namespace p2p::w3b {

struct SendResult {
  chain::Receipt receipt;
  std::vector<Event> events;
};

class Client {
 public:
  Client(chain::Transport& transport, const chain::ProgramId& program) : t_(transport), program_(program) {}

  ProgramState state();
  // Throws RefusedError("refused by the program: <reason>") on a panic reply.
  SendResult send(const keys::Keypair& signer, const Command& cmd);

  chain::Transport& transport() { return t_; }
  const chain::ProgramId& program() const { return program_; }

 private:
  chain::Transport& t_;
  chain::ProgramId program_;
};

}  // namespace p2p::w3b
