// signal_prep: writes the chain data the signalling benchmark needs straight into a ledger file:
// one broadcaster (seed 0x11 x 32) with STREAMS scheduled streams, and WATCHERS watcher accounts
// (seed_j: 0x5a x 32 with bytes 0,1 = j little-endian) subscribed to it. Prints the stream ids, in
// the broadcaster's order, one per line to OUT.
//
//   signal_prep LEDGER.db STREAMS WATCHERS OUT
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <string>

#include "keys/ed25519.hpp"
#include "ledger/ledger.hpp"
#include "w3b/messages.hpp"

namespace {

using p2p::w3b::ActorId;

ActorId account(const p2p::keys::Seed& seed) { return p2p::keys::Keypair::from_seed(seed).public_key(); }

p2p::keys::Seed watcher_seed(unsigned j) {
  p2p::keys::Seed s;
  s.fill(0x5a);
  s[0] = static_cast<std::uint8_t>(j & 0xff);
  s[1] = static_cast<std::uint8_t>(j >> 8);
  return s;
}

void send(p2p::ledger::Ledger& l, const ActorId& who, const p2p::w3b::Command& cmd) {
  auto e = l.send(who, p2p::w3b::encode_command(cmd));
  if (!e.ok) throw std::runtime_error("the program refused a message: " + e.panic);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: signal_prep LEDGER.db STREAMS WATCHERS OUT\n");
    return 2;
  }
  try {
    const unsigned streams = static_cast<unsigned>(std::stoul(argv[2]));
    const unsigned watchers = static_cast<unsigned>(std::stoul(argv[3]));
    if (streams == 0 || streams > 100000 || watchers > 65535) throw std::runtime_error("STREAMS 1..100000, WATCHERS 0..65535");
    p2p::ledger::Ledger l(argv[1]);
    p2p::keys::Seed bs;
    bs.fill(0x11);
    const ActorId b = account(bs);
    send(l, b, p2p::w3b::EditProfile{"bench", std::nullopt, std::nullopt, std::string("UTC")});
    const std::uint64_t now = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
    for (unsigned i = 0; i < streams; ++i) {
      p2p::w3b::NewStream s;
      s.title = "bench-" + std::to_string(i);
      s.start_time = now;
      s.end_time = now + 6 * 3600 * 1000;
      s.img_link = "https://img.example/bench.png";
      send(l, b, s);
    }
    for (unsigned j = 0; j < watchers; ++j) {
      const ActorId w = account(watcher_seed(j));
      send(l, w, p2p::w3b::EditProfile{"watcher", std::to_string(j), std::nullopt, std::string("UTC")});
      send(l, w, p2p::w3b::Subscribe{b});
    }
    auto state = l.state();
    const auto* profile = state.find_user(b);
    if (!profile || profile->stream_ids.size() != streams) throw std::runtime_error("the ledger does not hold the streams");
    std::ofstream out(argv[4]);
    for (const auto& id : profile->stream_ids) out << id << '\n';
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "signal_prep: %s\n", e.what());
    return 1;
  }
}
