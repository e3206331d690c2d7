// session: resolves flags, environment and config into what a chain command
// needs: the transport (embedded ledger or a node), the program id, and the
// signing key with its passphrase. The CLI builds one per invocation.
#pragma once
#include <memory>
#include <optional>
#include <string>

#include "chain/transport.hpp"
#include "config/config.hpp"
#include "keystore/keystore.hpp"

namespace p2p::session {

struct Overrides {
  std::optional<std::string> endpoint, program, account;
};

// P2PSTREAM_PASSPHRASE if set, else a prompt on the terminal (no echo), else none.
keystore::PassphraseSource passphrase_source();

// Reads a line from the terminal with echo off; nullopt when there is no terminal.
std::optional<std::string> prompt_secret(const std::string& prompt);

class Session {
 public:
  Session(config::Paths paths, Overrides flags);
  ~Session();

  const config::Paths& paths() const { return paths_; }
  config::Settings& settings() { return settings_; }
  keystore::Keystore& keystore() { return keystore_; }

  std::string endpoint() const;          // "ledger" unless configured otherwise
  chain::ProgramId program_id() const;   // the ledger's own id on the ledger
  chain::Transport& transport();         // opened on first use
  std::string account_name() const;      // UsageError when none is configured
  keys::Keypair signer();

 private:
  config::Paths paths_;
  Overrides flags_;
  config::Settings settings_;
  keystore::Keystore keystore_;
  std::unique_ptr<chain::Transport> transport_;
};

}  // namespace p2p::session
