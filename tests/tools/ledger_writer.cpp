// ledger_writer: a test helper that appends messages to a ledger from its own
// process, so tests can run several writers at once or kill one mid-write.
// Usage: ledger_writer DBPATH SEED_BYTE COUNT
//   sends, as the ActorId filled with SEED_BYTE, one EditProfile and then
//   COUNT-1 NewStream titled "w<seed>-<i>" (i = 1..COUNT-1). Exits 0 on success.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>
#include <string>

#include "ledger/ledger.hpp"
#include "w3b/messages.hpp"

namespace {

// Parses a non-negative integer in [0, max]; false on anything else.
bool parse_uint(const char* text, unsigned long max, unsigned long& out) {
  if (!text || !*text || *text == '-') return false;
  char* end = nullptr;
  errno = 0;
  out = std::strtoul(text, &end, 0);
  return errno == 0 && *end == '\0' && out <= max;
}

int run(const char* db, unsigned seed, unsigned long count) {
  p2p::ledger::Ledger ledger(db);
  p2p::w3b::ActorId sender{};
  sender.fill(static_cast<std::uint8_t>(seed));

  p2p::w3b::EditProfile profile{"writer", std::to_string(seed), std::nullopt, std::string("UTC")};
  for (unsigned long i = 0; i < count; ++i) {
    p2p::w3b::Command cmd;
    if (i == 0) {
      cmd = profile;
    } else {
      p2p::w3b::NewStream s;
      s.title = "w" + std::to_string(seed) + "-" + std::to_string(i);
      s.start_time = 2'000'000'000'000 + i;
      s.end_time = s.start_time + 3'600'000;
      s.img_link = "https://img.example/" + s.title;
      cmd = s;
    }
    auto e = ledger.send(sender, p2p::w3b::encode_command(cmd));
    if (!e.ok) {
      std::fprintf(stderr, "ledger_writer: message %lu panicked: %s\n", i, e.panic.c_str());
      return 3;
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  unsigned long seed = 0, count = 0;
  if (argc != 4 || !parse_uint(argv[2], 255, seed) || !parse_uint(argv[3], 100'000'000, count)) {
    std::fprintf(stderr, "usage: ledger_writer DBPATH SEED_BYTE(0..255) COUNT\n");
    return 2;
  }
  try {
    return run(argv[1], static_cast<unsigned>(seed), count);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ledger_writer: %s\n", e.what());
    return 1;
  }
}
