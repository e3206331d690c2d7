// p2pstream devnode: a local stand-in Gear node for development and tests (Substrate/Gear JSON-RPC over
// HTTP and WebSocket, backed by a ledger file).

#include <fstream>
#include <iostream>
#include <iterator>

#include "common.hpp"
#include "config/config.hpp"
#include "config/temp_dir.hpp"
#include "devnode/chain.hpp"
#include "vara_metadata/embedded.hpp"
#include "devnode/rpc.hpp"
#include "devnode/rpc_server.hpp"
#include "ledger/ledger.hpp"
#include "timespec/timespec.hpp"
#include "util/error.hpp"

namespace p2p::cli {
namespace {

struct DevnodeFlags {
  std::string listen = "127.0.0.1:9944";
  std::string block_time = "1s";
  std::optional<std::string> ledger;
  bool persist = false;
  std::optional<std::string> metadata;
  std::uint32_t finality_lag = 1;
};

// "200ms" as well as the durations timespec knows ("1s", "2m").
std::uint64_t parse_block_time(const std::string& text) {
  if (text.size() > 2 && text.ends_with("ms") &&
      text.find_first_not_of("0123456789") == text.size() - 2 && text.size() <= 12) {
    std::uint64_t ms = std::stoull(text.substr(0, text.size() - 2));
    if (ms > 0) return ms;
  } else {
    try {
      std::uint64_t ms = timespec::parse_duration(text);
      if (ms > 0) return ms;
    } catch (const UsageError&) {
    }
  }
  throw UsageError(fmt::format("--block-time {}: write a positive duration such as 200ms, 1s or 6s", text));
}

Bytes read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError(fmt::format("--metadata {}: cannot read the file", path));
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

void run_devnode(const Common& c, const DevnodeFlags& f) {
  auto [host, port] = devnode::parse_listen(f.listen);
  std::uint64_t block_ms = parse_block_time(f.block_time);

  Bytes blob = f.metadata ? read_file(*f.metadata) : Bytes(vara_metadata::embedded().begin(), vara_metadata::embedded().end());
  auto md = metadata::Metadata::parse(blob);

  std::optional<config::TempDir> tmp;  // a fresh ledger, removed when the node stops
  std::filesystem::path ledger_path;
  if (f.ledger) ledger_path = *f.ledger;
  else if (f.persist) ledger_path = config::default_paths().data_dir / "devnode.db";
  else ledger_path = tmp.emplace("p2pstream-devnode").path() / "ledger.db";
  ledger::Ledger ledger(ledger_path);

  devnode::Options opts;
  opts.finality_lag = f.finality_lag;
  devnode::Chain chain(md, ledger, opts);
  devnode::RpcOptions ropts;
  ropts.node_version = P2PSTREAM_VERSION;
  devnode::Rpc rpc(chain, blob, ropts);
  if (c.verbose > 0) rpc.on_request = [&c](const std::string& method) { debug(c, "rpc " + method); };

  devnode::ServerOptions sopts;
  sopts.host = host;
  sopts.port = port;
  sopts.block_time_ms = block_ms;
  sopts.log_every_block = c.verbose > 0;
  sopts.log = [&c](const std::string& line) { info(c, line); };
  devnode::RpcServer server(chain, rpc, sopts);

  // The first stdout line is the contract with scripts and tests: they read the port from it.
  std::cout << "listening on " << server.url() << std::endl;
  std::cout << "program " << to_hex(chain.program_id()) << std::endl;
  info(c, fmt::format("devnode: genesis {}, spec {} v{}, tx v{}; ledger {}{}", to_hex(chain.genesis_hash()),
                      chain.runtime_version().spec_name, chain.runtime_version().spec_version,
                      chain.runtime_version().transaction_version, ledger_path.string(),
                      tmp ? " (temporary)" : ""));
  info(c, fmt::format("use it with: --endpoint {} --program {}", server.url(), to_hex(chain.program_id())));
  server.run();
  info(c, fmt::format("devnode stopped at block #{}", chain.best().header.number));
}

}  // namespace

void register_devnode(CLI::App& app, Common& c) {
  auto* sub = app.add_subcommand("devnode", "Run a local stand-in Gear node (JSON-RPC over HTTP and WebSocket)");
  auto f = std::make_shared<DevnodeFlags>();
  sub->add_option("--listen", f->listen, "Loopback HOST:PORT (default 127.0.0.1:9944); port 0 picks a free one");
  sub->add_option("--block-time", f->block_time, "Time between blocks, e.g. 200ms (default 1s)");
  auto* led = sub->add_option("--ledger", f->ledger, "Ledger file (default: a fresh temporary one)");
  sub->add_flag("--persist", f->persist, "Keep the ledger in $XDG_DATA_HOME/p2pstream/devnode.db")->excludes(led);
  sub->add_option("--metadata", f->metadata, "Runtime metadata file to serve (default: the built-in Vara metadata)");
  sub->add_option("--finality-lag", f->finality_lag, "Blocks between the best and the finalized block (default 1)");
  add_output_flags(*sub, c, false);
  sub->footer(
      "The node signs nothing and checks Ed25519 signatures, nonces, eras, genesis and versions like a real\n"
      "node; it runs Gear.send_message to its one W3Bstreaming program on the ledger. The first stdout line is\n"
      "`listening on http://HOST:PORT` (the same port speaks ws://); the second is the program id.\n"
      "Examples:\n"
      "  p2pstream devnode\n"
      "  p2pstream devnode --listen 127.0.0.1:0 --block-time 200ms -v\n"
      "  p2pstream streams --endpoint ws://127.0.0.1:9944 --program 0x...");
  sub->callback([&c, f] { run_devnode(c, *f); });
}

}  // namespace p2p::cli
