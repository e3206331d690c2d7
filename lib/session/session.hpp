// session: resolves flags, environment and config into what a chain command
// needs: the transport (embedded ledger or a node), the program id, and the
// signing key with its passphrase. The CLI builds one per invocation.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "chain/transport.hpp"
#include "config/config.hpp"
#include "gear_rpc/offline.hpp"
#include "keystore/keystore.hpp"
#include "w3b/types.hpp"

namespace p2p::session {

// How messages go to a node (ignored by the embedded ledger).
struct SendOptions {
  bool finalized = false;                  // wait for a finalized block
  std::optional<double> timeout_s;         // how long to wait for inclusion and the reply (default 60)
  std::optional<std::uint64_t> gas;        // a fixed gas limit instead of the node's estimate
  bool offline = false;                    // sign from the flags below and send nothing
  gear_rpc::OfflineParams offline_params;  // gas is taken from `gas` above
  std::optional<std::string> metadata_file;  // runtime metadata for offline signing (default: the embedded copy)
};

struct Overrides {
  std::optional<std::string> endpoint, program, account;
  SendOptions send;
  std::function<void(const std::string&)> progress;  // a node's step-by-step news, for stderr
};

// --offline reads no chain state, so commands that merge it send what an empty program implies; these
// say what the message will then do (empty when nothing is lost).
std::vector<std::string> offline_warnings(const w3b::Command& cmd);

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
  chain::ProgramId program_id() const;   // the ledger's own id on the ledger; --offline needs one given
  // Opened on first use: the ledger, a Gear node (GearTransport), or with --offline a stand-in whose
  // GetState answers an empty program (nothing can be read) and which refuses to send.
  chain::Transport& transport();
  std::string account_name() const;      // UsageError when none is configured
  keys::Keypair signer();

  bool offline() const { return flags_.send.offline; }
  // --offline: UsageError naming every missing or malformed flag, before any key is unlocked.
  void check_offline() const;
  // --offline: the signed extrinsic for this payload (UsageError naming any missing flag).
  gear_rpc::OfflineExtrinsic sign_offline(const keys::Keypair& signer, ByteView payload);

 private:
  config::Paths paths_;
  Overrides flags_;
  config::Settings settings_;
  keystore::Keystore keystore_;
  std::unique_ptr<chain::Transport> transport_;
};

}  // namespace p2p::session
