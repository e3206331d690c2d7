#include "w3b/client.hpp"

#include <fmt/format.h>

#include "util/error.hpp"
#include "w3b/messages.hpp"

namespace p2p::w3b {

ProgramState Client::state() {
  auto reply = t_.query(program_, encode_query(GetState{}));
  try {
    return decode_state_reply(reply);
  } catch (const Error& e) {
    throw RuntimeError(fmt::format("the program's GetState reply from {} does not decode ({}): is --program right?",
                                   t_.describe(), e.what()));
  }
}

SendResult Client::send(const keys::Keypair& signer, const Command& cmd) {
  SendResult r{t_.send(signer, program_, encode_command(cmd)), {}};
  if (!r.receipt.ok) throw RefusedError(fmt::format("refused by the program: {}", r.receipt.panic));
  if (!is_unit_reply(cmd, r.receipt.reply))
    throw RuntimeError(fmt::format("unexpected reply to {} from {}: {}", method_name(cmd), t_.describe(),
                                   to_hex(r.receipt.reply)));
  for (const auto& ev : r.receipt.events) r.events.push_back(decode_event(ev));
  return r;
}

}  // namespace p2p::w3b
