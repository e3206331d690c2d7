// signal_server/chain_source: the ChainSource the CLI uses: the same session::Session (and so the
// same chain::Transport) as the chain subcommands, the embedded ledger unless --endpoint says
// otherwise. On the ledger it also reads the message log to drop cached answers early.
#pragma once
#include <memory>

#include "config/config.hpp"
#include "session/session.hpp"
#include "signal_server/chain_worker.hpp"

namespace p2p::signal_server {

// Builds the source on the calling (worker) thread. Errors opening the chain are thrown there
// and turn into refusals (chain_unavailable), not crashes.
ChainSourceFactory session_source(config::Paths paths, session::Overrides overrides);

// Changes named by one ledger message: its sender, payload and events (used by session_source,
// exposed for tests).
void collect_changes(const Bytes& payload, const std::vector<Bytes>& events, ChainChanges& out);

}  // namespace p2p::signal_server
