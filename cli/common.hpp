// cli/common: what every subcommand shares: output mode (human or --json),
// verbosity, colour, the standard flags, and the session they resolve to.
#pragma once
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "session/session.hpp"
#include "w3b/client.hpp"
#include "w3b/plan.hpp"
#include "w3b/types.hpp"

namespace p2p::cli {

struct Common {
  bool json = false;
  int verbose = 0;
  bool quiet = false;
  session::Overrides over;
  bool dry_run = false;
};

// Adds --json (unless with_json is false), -v, -q.
void add_output_flags(CLI::App& sub, Common& c, bool with_json = true);
// Adds the output flags plus --endpoint and --program.
void add_chain_flags(CLI::App& sub, Common& c);
// Adds the chain flags plus --account, --dry-run, the node flags (--finalized, --timeout, --gas) and the
// offline-signing flags (--offline, --nonce, --spec-version, --tx-version, --genesis, --era, --block-hash,
// --metadata).
void add_send_flags(CLI::App& sub, Common& c);
// --finalized alone, for commands that read blocks (events).
void add_node_wait_flags(CLI::App& sub, Common& c);

session::Session make_session(const Common& c);

// False when NO_COLOR is set to a non-empty value.
bool no_color_unset();

// stderr messages; info is silenced by -q, debug needs -v.
void info(const Common& c, const std::string& msg);
void debug(const Common& c, const std::string& msg);
void warn(const std::string& msg);

void print_json(const nlohmann::json& j);

// Runs a planned command: --dry-run prints the payload, --offline the signed extrinsic (with warnings about
// the chain state it could not read); otherwise sends it, prints warnings, and returns the result.
// Returns nullopt on a dry run and offline.
std::optional<w3b::SendResult> run_plan(const Common& c, session::Session& s, const w3b::Plan& plan);
// The standard receipt fields, for --json and human output.
nlohmann::json receipt_json(const chain::Receipt& r);
void print_sent(const Common& c, const w3b::SendResult& r, const std::string& what, nlohmann::json extra = {});

// Human and JSON renderings shared by `streams` and `profile`.
nlohmann::json stream_json(const std::string& id, const w3b::Stream& s, std::uint64_t now_ms);
nlohmann::json profile_json(const w3b::ActorId& who, const w3b::Profile& p);
std::string stream_status(const w3b::Stream& s, std::uint64_t now_ms);  // upcoming | live | ended
std::string address(const w3b::ActorId& a);  // Vara SS58

// A flag value that means "clear this field" when empty.
w3b::Patch<std::string> patch_from(const std::optional<std::string>& flag);

// What `broadcast` and `watch` share: where the signalling server is and how peers reach each other.
struct LiveFlags {
  std::optional<std::string> signal;
  std::string stun;
  std::vector<std::string> turn;
  bool tls_insecure = false;
  bool fresh_dtls_key = false;
};
// Adds --signal, --stun, --turn (repeatable), --insecure and --fresh-dtls-key.
void add_live_flags(CLI::App& sub, LiveFlags& f);
// Points the media layer at the stored DTLS key (data_dir/dtls-key.pem) unless --fresh-dtls-key.
void use_stored_dtls_key(const session::Session& s, const LiveFlags& f);
// After a run: says where the DTLS key came from (-v) and why the stored one was not used.
void report_dtls_key(const Common& c);
// --signal, else P2PSTREAM_SIGNAL or the config's `signal`, else http://127.0.0.1:3001.
std::string signal_url(session::Session& s, const LiveFlags& f);

// The one-line live status on stderr: redrawn in place on a terminal, one line per update
// otherwise. Messages go on their own line above it. Silent with -q (messages too, unless forced).
class StatusLine {
 public:
  explicit StatusLine(const Common& c);
  ~StatusLine();
  void update(const std::string& line);
  void message(const std::string& line, bool even_if_quiet = false);
  void finish();  // ends the redrawn line so later output starts clean
  bool tty() const { return tty_; }

 private:
  const Common& c_;
  bool tty_;
  bool drawn_ = false;
};

// Registration, one per subcommand file.
void register_key(CLI::App& app, Common& c);
void register_config(CLI::App& app, Common& c);
void register_profile(CLI::App& app, Common& c);
void register_schedule(CLI::App& app, Common& c);
void register_edit(CLI::App& app, Common& c);
void register_delete(CLI::App& app, Common& c);
void register_subscribe(CLI::App& app, Common& c);
void register_streams(CLI::App& app, Common& c);
void register_ledger(CLI::App& app, Common& c);
void register_events(CLI::App& app, Common& c);
void register_devnode(CLI::App& app, Common& c);
void register_signal(CLI::App& app, Common& c);
void register_broadcast(CLI::App& app, Common& c);
void register_watch(CLI::App& app, Common& c);

}  // namespace p2p::cli
