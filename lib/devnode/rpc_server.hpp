// devnode/rpc_server: the stand-in node's network face on libsoup-3.0 and the GLib main loop: JSON-RPC over
// HTTP POST and WebSocket on one loopback port, the block timer, and SIGINT/SIGTERM. It only moves bytes:
// every request goes to devnode::Rpc, every block comes from devnode::Chain.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "devnode/chain.hpp"
#include "devnode/rpc.hpp"

namespace p2p::devnode {

struct ServerOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 9944;               // 0 picks a free port
  std::uint64_t block_time_ms = 1000;
  std::size_t max_body = 10u << 20;        // HTTP bodies and WebSocket messages; larger ones are refused
  std::function<void(const std::string&)> log;  // progress lines (blocks with extrinsics, warnings)
  bool log_every_block = false;
};

// "HOST:PORT", "[::1]:PORT" or ":PORT". Only loopback hosts are accepted: the devnode has no authentication
// and signs nothing, but anyone who reaches it can fill its ledger. Throws UsageError otherwise.
std::pair<std::string, std::uint16_t> parse_listen(std::string_view text);

class RpcServer {
 public:
  // Listens at once; UsageError for a bad address, RuntimeError when the port cannot be bound.
  RpcServer(Chain& chain, Rpc& rpc, ServerOptions opts);
  ~RpcServer();
  RpcServer(const RpcServer&) = delete;
  RpcServer& operator=(const RpcServer&) = delete;

  std::uint16_t port() const;
  std::string url() const;  // http://HOST:PORT (the same port speaks ws://)

  // Produces blocks and serves requests until stop(), SIGINT or SIGTERM.
  void run();
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace p2p::devnode
