// ledger: the embedded chain. One SQLite file (WAL) holds the W3Bstreaming
// program's state and an append-only log of every message; each message is one
// IMMEDIATE transaction, so concurrent processes serialise and a crash rolls back.
#pragma once
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "chain/transport.hpp"
#include "program/w3bstreaming.hpp"

struct sqlite3;

namespace p2p::ledger {

struct LogEntry {
  std::uint64_t block = 0;
  std::uint64_t time_ms = 0;
  w3b::ActorId sender{};
  Bytes payload;
  Hash32 message_id{};
  bool ok = true;
  std::string panic;
  Bytes reply;
  std::vector<Bytes> events;
};

struct Options {
  int busy_timeout_ms = 30000;
  // Fixed block time source for tests; 0 means the wall clock.
  std::uint64_t fixed_time_ms = 0;
};

class Ledger {
 public:
  // Opens or creates the file (and its directory). RuntimeError if it is not a p2pstream ledger.
  explicit Ledger(const std::filesystem::path& file, Options opts = {});
  ~Ledger();
  Ledger(const Ledger&) = delete;
  Ledger& operator=(const Ledger&) = delete;

  // The program id the embedded ledger reports for its one program.
  static chain::ProgramId program_id();

  // Runs one message in its own transaction and appends it to the log.
  LogEntry send(const w3b::ActorId& sender, ByteView payload);
  // Runs a query against the latest committed state.
  program::Outcome query(ByteView payload);
  w3b::ProgramState state();

  std::uint64_t height();
  // Log entries with block > after, oldest first, at most limit.
  std::vector<LogEntry> log(std::uint64_t after = 0, std::size_t limit = SIZE_MAX);

  // Replays the whole log from genesis and compares with the stored state;
  // returns an empty string when they agree, else what differs.
  std::string check();

  const std::filesystem::path& file() const { return file_; }

 private:
  void exec(const char* sql);
  void refuse_foreign_database();
  std::filesystem::path file_;
  Options opts_;
  sqlite3* db_ = nullptr;
};

// The ledger behind the chain::Transport interface.
class LedgerTransport : public chain::Transport {
 public:
  explicit LedgerTransport(const std::filesystem::path& file, Options opts = {}) : ledger_(file, opts) {}
  chain::Receipt send(const keys::Keypair& signer, const chain::ProgramId& program, ByteView payload) override;
  Bytes query(const chain::ProgramId& program, ByteView payload) override;
  std::string describe() const override;
  Ledger& ledger() { return ledger_; }

 private:
  void check_program(const chain::ProgramId& program) const;
  Ledger ledger_;
};

}  // namespace p2p::ledger
