#include "common.hpp"

#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include "config/config.hpp"
#include "media/dtls_key.hpp"
#include "keys/ed25519.hpp"
#include "timespec/timespec.hpp"
#include "w3b/messages.hpp"

namespace p2p::cli {

void add_output_flags(CLI::App& sub, Common& c, bool with_json) {
  if (with_json) sub.add_flag("--json", c.json, "Print the result as JSON on stdout");
  sub.add_flag("-v,--verbose", c.verbose, "More detail on stderr (repeatable)");
  sub.add_flag("-q,--quiet", c.quiet, "Only errors on stderr");
}

void add_chain_flags(CLI::App& sub, Common& c) {
  add_output_flags(sub, c);
  sub.add_option("--endpoint", c.over.endpoint,
                 "ledger (embedded, the default), mainnet, testnet, local, or an http(s):// or ws(s):// node URL "
                 "[env P2PSTREAM_ENDPOINT]");
  sub.add_option("--program", c.over.program, "W3Bstreaming program id, 0x + 64 hex [env P2PSTREAM_PROGRAM]");
}

void add_node_wait_flags(CLI::App& sub, Common& c) {
  sub.add_flag("--finalized", c.over.send.finalized, "On a node: wait for a finalized block, not the best one");
}

void add_send_flags(CLI::App& sub, Common& c) {
  add_chain_flags(sub, c);
  auto& o = c.over.send;
  sub.add_option("--account", c.over.account, "Key to sign with [env P2PSTREAM_ACCOUNT, config account]");
  sub.add_flag("--dry-run", c.dry_run, "Print the hex Sails payload and send nothing");
  add_node_wait_flags(sub, c);
  sub.add_option("--timeout", o.timeout_s, "On a node: seconds to wait for inclusion and the reply (default 60)");
  sub.add_option("--gas", o.gas, "Gas limit, instead of the node's estimate plus 10% (needed with --offline)");
  sub.add_flag("--offline", o.offline, "Print the signed extrinsic (hex) and send nothing; needs the flags below");
  sub.add_option("--nonce", o.offline_params.nonce, "Offline: the account's next nonce");
  sub.add_option("--spec-version", o.offline_params.spec_version, "Offline: the runtime's spec version");
  sub.add_option("--tx-version", o.offline_params.tx_version, "Offline: the runtime's transaction version");
  sub.add_option("--genesis", o.offline_params.genesis, "Offline: the chain's genesis hash, 0x + 64 hex");
  sub.add_option("--era", o.offline_params.era,
                 "immortal, or offline PERIOD@BLOCK (e.g. 64@1000); on a node the default is 64 blocks from the best");
  sub.add_option("--block-hash", o.offline_params.block_hash, "Offline: the hash of the era's block (mortal eras)");
  sub.add_option("--metadata", o.metadata_file,
                 "Offline: runtime metadata file (state_getMetadata bytes; default: the built-in Vara copy)");
}

session::Session make_session(const Common& c) {
  const auto& p = c.over.send.offline_params;
  bool online_era = !p.era || *p.era == "immortal";  // a node anchors a mortal era itself
  if (!c.over.send.offline && (p.nonce || p.spec_version || p.tx_version || p.genesis || !online_era || p.block_hash ||
                               c.over.send.metadata_file))
    throw UsageError(
        "--nonce, --spec-version, --tx-version, --genesis, --era PERIOD@BLOCK, --block-hash and --metadata apply only "
        "with --offline");
  session::Overrides over = c.over;
  const Common* cp = &c;
  over.progress = [cp](const std::string& msg) { info(*cp, msg); };
  return session::Session(config::default_paths(), std::move(over));
}

// no-color.org: only a non-empty NO_COLOR turns colour off.
bool no_color_unset() {
  const char* v = std::getenv("NO_COLOR");
  return !v || !*v;
}

static bool color() {
  static const bool on = no_color_unset() && ::isatty(STDERR_FILENO);
  return on;
}

void info(const Common& c, const std::string& msg) {
  if (!c.quiet) std::cerr << msg << '\n';
}
void debug(const Common& c, const std::string& msg) {
  if (c.verbose > 0 && !c.quiet) std::cerr << msg << '\n';
}
void warn(const std::string& msg) {
  std::cerr << (color() ? "\033[33mwarning:\033[0m " : "warning: ") << msg << '\n';
}

void print_json(const nlohmann::json& j) { std::cout << j.dump(2) << std::endl; }

std::optional<w3b::SendResult> run_plan(const Common& c, session::Session& s, const w3b::Plan& plan) {
  for (const auto& w : plan.warnings) warn(w);
  auto payload = w3b::encode_command(plan.command);
  if (c.dry_run) {
    if (c.json)
      print_json({{"dry_run", true},
                  {"method", std::string(w3b::method_name(plan.command))},
                  {"destination", to_hex(s.program_id())},
                  {"payload", to_hex(payload)}});
    else
      std::cout << to_hex(payload) << std::endl;
    return std::nullopt;
  }
  if (s.offline()) {
    s.check_offline();
    for (const auto& w : session::offline_warnings(plan.command)) warn(w);
    auto signer = s.signer();
    auto x = s.sign_offline(signer, payload);
    if (c.json)
      print_json({{"extrinsic", to_hex(x.extrinsic)}, {"hash", to_hex(x.hash)}});
    else
      std::cout << to_hex(x.extrinsic) << std::endl;
    return std::nullopt;
  }
  auto signer = s.signer();
  debug(c, fmt::format("sending {} as {} to {}", w3b::method_name(plan.command), address(signer.public_key()),
                       s.transport().describe()));
  w3b::Client client(s.transport(), s.program_id());
  return client.send(signer, plan.command);
}

nlohmann::json receipt_json(const chain::Receipt& r) {
  nlohmann::json j = {{"block", r.block_number},
                      {"block_time", timespec::format_utc(r.block_time_ms)},
                      {"message_id", to_hex(r.message_id)}};
  if (!r.block_hash.empty()) j["block_hash"] = r.block_hash;
  if (r.gas_limit) j["gas_limit"] = *r.gas_limit;
  if (r.fee) j["fee"] = *r.fee;
  return j;
}

void print_sent(const Common& c, const w3b::SendResult& r, const std::string& what, nlohmann::json extra) {
  nlohmann::json events = nlohmann::json::array();
  for (const auto& e : r.events) events.push_back(std::string(w3b::event_name(e)));
  if (c.json) {
    nlohmann::json j = receipt_json(r.receipt);
    j["events"] = events;
    if (extra.is_object()) j.update(extra);
    print_json(j);
    return;
  }
  std::cout << what << std::endl;
  info(c, fmt::format("block {} · message {}", r.receipt.block_number, to_hex(r.receipt.message_id)));
}

std::string stream_status(const w3b::Stream& s, std::uint64_t now) {
  if (now < s.start_time) return "upcoming";
  if (now < s.end_time) return "live";
  return "ended";
}

std::string address(const w3b::ActorId& a) { return keys::ss58_encode(a); }

nlohmann::json stream_json(const std::string& id, const w3b::Stream& s, std::uint64_t now) {
  return {{"id", id},
          {"title", s.title},
          {"broadcaster", address(s.broadcaster)},
          {"broadcaster_hex", to_hex(s.broadcaster)},
          {"start_time", s.start_time},
          {"end_time", s.end_time},
          {"start", timespec::format_utc(s.start_time)},
          {"end", timespec::format_utc(s.end_time)},
          {"status", stream_status(s, now)},
          {"description", s.description ? nlohmann::json(*s.description) : nlohmann::json(nullptr)},
          {"img_link", s.img_link}};
}

static nlohmann::json opt(const std::optional<std::string>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

nlohmann::json profile_json(const w3b::ActorId& who, const w3b::Profile& p) {
  nlohmann::json subs = nlohmann::json::array(), subscriptions = nlohmann::json::array();
  for (const auto& s : p.subscribers) subs.push_back(address(s));
  for (const auto& s : p.subscriptions)
    subscriptions.push_back({{"account", address(s.account_id)}, {"since", timespec::format_utc(s.sub_date)}});
  return {{"address", address(who)},
          {"hex", to_hex(who)},
          {"name", opt(p.name)},
          {"surname", opt(p.surname)},
          {"img_link", opt(p.img_link)},
          {"time_zone", opt(p.time_zone)},
          {"stream_ids", p.stream_ids},
          {"subscribers", subs},
          {"subscriptions", subscriptions}};
}

void add_live_flags(CLI::App& sub, LiveFlags& f) {
  sub.add_option("--signal", f.signal,
                 "Signalling server URL, http(s):// or ws(s):// [env P2PSTREAM_SIGNAL, config signal; default "
                 "http://127.0.0.1:3001]");
  sub.add_option("--stun", f.stun, "STUN server, stun://host:port (default: none; enough on one LAN)");
  sub.add_option("--turn", f.turn, "TURN server, turn(s)://user:password@host:port (repeatable)");
  sub.add_flag("--insecure", f.tls_insecure, "Accept any TLS certificate from the signalling server (test servers)");
  sub.add_flag("--fresh-dtls-key", f.fresh_dtls_key,
               "Make a new DTLS key for this run (0.1-0.7 s) instead of the one kept for a week in "
               "$XDG_DATA_HOME/p2pstream/dtls-key.pem");
}

void use_stored_dtls_key(const session::Session& s, const LiveFlags& f) {
  media::use_dtls_key_file(f.fresh_dtls_key ? std::filesystem::path() : s.paths().data_dir / "dtls-key.pem");
}

void report_dtls_key(const Common& c) {
  const media::DtlsKeyOrigin o = media::last_dtls_key();
  if (!o.warning.empty()) warn(o.warning);
  static constexpr const char* kFrom[] = {"not made", "read from its file", "made and stored", "made"};
  debug(c, fmt::format("DTLS key {} in {:.1f} ms", kFrom[o.source], o.ms));
}

std::string signal_url(session::Session& s, const LiveFlags& f) {
  if (f.signal) {
    config::check_value("signal", *f.signal);
    return *f.signal;
  }
  if (auto v = s.settings().get("signal")) return *v;
  return "http://127.0.0.1:3001";
}

StatusLine::StatusLine(const Common& c) : c_(c), tty_(::isatty(STDERR_FILENO) != 0) {}
StatusLine::~StatusLine() { finish(); }

void StatusLine::update(const std::string& line) {
  if (c_.quiet) return;
  if (tty_) {
    std::cerr << '\r' << line << "\033[K" << std::flush;
    drawn_ = true;
  } else {
    std::cerr << line << std::endl;
  }
}

void StatusLine::message(const std::string& line, bool even_if_quiet) {
  if (c_.quiet && !even_if_quiet) return;
  if (drawn_) std::cerr << "\r\033[K";
  drawn_ = false;
  std::cerr << line << std::endl;
}

void StatusLine::finish() {
  if (drawn_) std::cerr << std::endl;
  drawn_ = false;
}

w3b::Patch<std::string> patch_from(const std::optional<std::string>& flag) {
  if (!flag) return std::nullopt;
  if (flag->empty()) return std::optional<std::string>(std::nullopt);
  return std::optional<std::string>(*flag);
}

}  // namespace p2p::cli
