#include "ledger/ledger.hpp"

#include <fmt/format.h>
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "sails/sails.hpp"
#include "timespec/timespec.hpp"
#include "util/error.hpp"
#include "w3b/messages.hpp"

namespace p2p::ledger {
namespace {

constexpr int kSchemaVersion = 1;

// The embedded program has no deployer key; admin-only calls are refused.
const w3b::ActorId kDeployer{};

class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &s_, nullptr) != SQLITE_OK)
      throw RuntimeError(fmt::format("ledger: {}", sqlite3_errmsg(db)));
  }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& bind(int i, std::int64_t v) { return check(sqlite3_bind_int64(s_, i, v)); }
  Stmt& bind(int i, ByteView v) {
    return check(sqlite3_bind_blob(s_, i, v.empty() ? "" : static_cast<const void*>(v.data()),
                                   static_cast<int>(v.size()), SQLITE_TRANSIENT));
  }
  Stmt& bind(int i, const std::string& v) {
    return check(sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
  }
  // True while there is a row.
  bool step() {
    int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw RuntimeError(fmt::format("ledger: {}", sqlite3_errmsg(db_)));
  }
  std::int64_t i64(int col) { return sqlite3_column_int64(s_, col); }
  Bytes blob(int col) {
    auto p = static_cast<const std::uint8_t*>(sqlite3_column_blob(s_, col));
    return Bytes(p, p + sqlite3_column_bytes(s_, col));
  }
  std::string text(int col) {
    auto p = reinterpret_cast<const char*>(sqlite3_column_text(s_, col));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(s_, col))) : std::string();
  }

 private:
  Stmt& check(int rc) {
    if (rc != SQLITE_OK) throw RuntimeError(fmt::format("ledger: {}", sqlite3_errmsg(db_)));
    return *this;
  }
  sqlite3* db_;
  sqlite3_stmt* s_ = nullptr;
};

// Rolls back unless committed, so an exception never leaves a transaction open.
class Txn {
 public:
  Txn(sqlite3* db, const char* begin) : db_(db) { run(begin); }
  ~Txn() {
    if (!done_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  void commit() {
    run("COMMIT");
    done_ = true;
  }

 private:
  void run(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : "unknown error";
      sqlite3_free(err);
      throw RuntimeError(fmt::format("ledger: {} failed: {}", sql, msg));
    }
  }
  sqlite3* db_;
  bool done_ = false;
};

Bytes encode_body(const w3b::ProgramState& s) {
  scale::Encoder e;
  w3b::encode_state(e, s);
  return std::move(e).take();
}

w3b::ProgramState decode_body(ByteView body) {
  scale::Decoder d(body);
  auto s = w3b::decode_state(d);
  d.expect_end();
  return s;
}

Hash32 message_id(std::uint64_t block, const w3b::ActorId& sender, ByteView payload) {
  scale::Encoder e;
  e.raw(view("p2pstream-ledger/message"));
  e.u64(block);
  e.arr32(sender);
  e.raw(payload);
  return blake2b_256(e.out());
}

struct Head {
  std::uint64_t block;
  std::uint64_t time_ms;
  bool terminated;
  Bytes body;
};

Head read_head(sqlite3* db) {
  Stmt s(db, "SELECT block, time_ms, terminated, body FROM state WHERE id = 1");
  if (!s.step()) throw RuntimeError("ledger: the state row is missing; the file is damaged");
  return {static_cast<std::uint64_t>(s.i64(0)), static_cast<std::uint64_t>(s.i64(1)), s.i64(2) != 0, s.blob(3)};
}

program::W3Bstreaming genesis() { return program::W3Bstreaming::deploy(kDeployer); }

program::W3Bstreaming load_program(const Head& h) {
  w3b::ProgramState st;
  try {
    st = decode_body(h.body);
  } catch (const Error& e) {
    throw RuntimeError(fmt::format("ledger: stored state does not decode ({}); run `p2pstream ledger check`", e.what()));
  }
  return program::W3Bstreaming(std::move(st), h.terminated);
}

LogEntry read_entry(sqlite3* db, Stmt& s) {
  LogEntry e;
  e.block = static_cast<std::uint64_t>(s.i64(0));
  e.time_ms = static_cast<std::uint64_t>(s.i64(1));
  auto sender = s.blob(2);
  if (sender.size() == 32) std::copy(sender.begin(), sender.end(), e.sender.begin());
  e.payload = s.blob(3);
  auto id = s.blob(4);
  if (id.size() == 32) std::copy(id.begin(), id.end(), e.message_id.begin());
  e.ok = s.i64(5) != 0;
  e.panic = s.text(6);
  e.reply = s.blob(7);
  Stmt ev(db, "SELECT payload FROM events WHERE block = ? ORDER BY idx");
  ev.bind(1, static_cast<std::int64_t>(e.block));
  while (ev.step()) e.events.push_back(ev.blob(0));
  return e;
}

}  // namespace

Ledger::Ledger(const std::filesystem::path& file, Options opts) : file_(file), opts_(opts) {
  std::error_code ec;
  if (file.has_parent_path()) std::filesystem::create_directories(file.parent_path(), ec);
  if (sqlite3_open_v2(file.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw RuntimeError(fmt::format("cannot open ledger {}: {}", file.string(), msg));
  }
  sqlite3_busy_timeout(db_, opts_.busy_timeout_ms);
  try {
    refuse_foreign_database();
    // Switching a new file to WAL needs it alone, and SQLite answers "database is locked" at once,
    // without its busy handler, while another process is creating the same file: wait here.
    for (auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(opts_.busy_timeout_ms);;) {
      int rc = sqlite3_exec(db_, "PRAGMA journal_mode=WAL", nullptr, nullptr, nullptr);
      if (rc == SQLITE_OK) break;
      if ((rc != SQLITE_BUSY && rc != SQLITE_LOCKED) || std::chrono::steady_clock::now() > until) {
        throw RuntimeError(fmt::format("ledger: {}", sqlite3_errmsg(db_)));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    exec("PRAGMA synchronous=FULL");
    exec("PRAGMA foreign_keys=ON");
    Txn t(db_, "BEGIN IMMEDIATE");
    exec(R"sql(
      CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        block INTEGER NOT NULL, time_ms INTEGER NOT NULL, terminated INTEGER NOT NULL, body BLOB NOT NULL);
      CREATE TABLE IF NOT EXISTS messages (
        block INTEGER PRIMARY KEY, time_ms INTEGER NOT NULL, sender BLOB NOT NULL, payload BLOB NOT NULL,
        message_id BLOB NOT NULL, ok INTEGER NOT NULL, panic TEXT NOT NULL, reply BLOB NOT NULL);
      CREATE TABLE IF NOT EXISTS events (
        block INTEGER NOT NULL REFERENCES messages(block), idx INTEGER NOT NULL, payload BLOB NOT NULL,
        PRIMARY KEY (block, idx));
      CREATE TRIGGER IF NOT EXISTS messages_no_update BEFORE UPDATE ON messages
        BEGIN SELECT RAISE(ABORT, 'the message log is append-only'); END;
      CREATE TRIGGER IF NOT EXISTS messages_no_delete BEFORE DELETE ON messages
        BEGIN SELECT RAISE(ABORT, 'the message log is append-only'); END;
      CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
        BEGIN SELECT RAISE(ABORT, 'the message log is append-only'); END;
      CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
        BEGIN SELECT RAISE(ABORT, 'the message log is append-only'); END;
    )sql");
    Stmt v(db_, "SELECT value FROM meta WHERE key = 'schema'");
    if (v.step()) {
      if (v.text(0) != std::to_string(kSchemaVersion))
        throw RuntimeError(fmt::format("ledger {} has schema {}, this p2pstream reads {}", file.string(),
                                       v.text(0), kSchemaVersion));
    } else {
      Stmt m(db_, "INSERT INTO meta (key, value) VALUES ('schema', ?), ('kind', 'p2pstream-ledger')");
      m.bind(1, std::to_string(kSchemaVersion));
      m.step();
      Stmt s(db_, "INSERT INTO state (id, block, time_ms, terminated, body) VALUES (1, 0, 0, 0, ?)");
      s.bind(1, encode_body(genesis().state()));
      s.step();
    }
    t.commit();
  } catch (const Error& e) {
    sqlite3_close(db_);
    db_ = nullptr;
    // "file is not a database" and friends: say which file.
    throw RuntimeError(fmt::format("cannot use {} as a ledger: {}", file.string(), e.what()));
  }
}

Ledger::~Ledger() {
  if (db_) sqlite3_close(db_);
}

// Never convert someone else's SQLite file into a ledger: only an empty file or one we made.
void Ledger::refuse_foreign_database() {
  Stmt tables(db_, "SELECT count(*) FROM sqlite_master");
  if (!tables.step() || tables.i64(0) == 0) return;
  Stmt meta(db_, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'");
  if (meta.step() && meta.i64(0) == 1) {
    Stmt kind(db_, "SELECT value FROM meta WHERE key = 'kind'");
    if (kind.step() && kind.text(0) == "p2pstream-ledger") return;
  }
  throw RuntimeError("it is an SQLite database but not a p2pstream ledger; choose another file");
}

void Ledger::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    throw RuntimeError(fmt::format("ledger: {}", msg));
  }
}

chain::ProgramId Ledger::program_id() { return blake2b_256(view("p2pstream/ledger/W3Bstreaming")); }

LogEntry Ledger::send(const w3b::ActorId& sender, ByteView payload) {
  Txn t(db_, "BEGIN IMMEDIATE");
  Head head = read_head(db_);
  auto prog = load_program(head);

  LogEntry e;
  e.block = head.block + 1;
  // Strictly increasing block times keep stream ids (time ++ title) unique per title.
  std::uint64_t now = opts_.fixed_time_ms ? opts_.fixed_time_ms : timespec::now_ms();
  e.time_ms = std::max(now, head.time_ms + 1);
  e.sender = sender;
  e.payload.assign(payload.begin(), payload.end());
  e.message_id = message_id(e.block, sender, payload);

  auto out = prog.handle(sender, payload, e.time_ms);
  e.ok = out.ok;
  e.panic = out.panic;
  e.reply = out.reply;
  e.events = out.events;

  Stmt m(db_,
         "INSERT INTO messages (block, time_ms, sender, payload, message_id, ok, panic, reply) "
         "VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
  m.bind(1, static_cast<std::int64_t>(e.block))
      .bind(2, static_cast<std::int64_t>(e.time_ms))
      .bind(3, ByteView(sender))
      .bind(4, payload)
      .bind(5, ByteView(e.message_id))
      .bind(6, e.ok ? 1 : 0)
      .bind(7, e.panic)
      .bind(8, ByteView(e.reply));
  m.step();
  for (std::size_t i = 0; i < e.events.size(); ++i) {
    Stmt ev(db_, "INSERT INTO events (block, idx, payload) VALUES (?, ?, ?)");
    ev.bind(1, static_cast<std::int64_t>(e.block)).bind(2, static_cast<std::int64_t>(i)).bind(3, ByteView(e.events[i]));
    ev.step();
  }
  // A panicked message is still in its block, as on chain; only the state stays.
  Stmt s(db_, out.ok ? "UPDATE state SET block = ?, time_ms = ?, terminated = ?, body = ? WHERE id = 1"
                     : "UPDATE state SET block = ?, time_ms = ?, terminated = ? WHERE id = 1");
  s.bind(1, static_cast<std::int64_t>(e.block)).bind(2, static_cast<std::int64_t>(e.time_ms)).bind(3, prog.terminated() ? 1 : 0);
  if (out.ok) s.bind(4, encode_body(prog.state()));
  s.step();
  t.commit();
  return e;
}

program::Outcome Ledger::query(ByteView payload) {
  Head head = [&] {
    Txn t(db_, "BEGIN");
    auto h = read_head(db_);
    t.commit();
    return h;
  }();
  return load_program(head).query(payload);
}

w3b::ProgramState Ledger::state() {
  Txn t(db_, "BEGIN");
  auto h = read_head(db_);
  t.commit();
  return load_program(h).state();
}

std::uint64_t Ledger::height() {
  Stmt s(db_, "SELECT block FROM state WHERE id = 1");
  return s.step() ? static_cast<std::uint64_t>(s.i64(0)) : 0;
}

std::vector<LogEntry> Ledger::log(std::uint64_t after, std::size_t limit) {
  Txn t(db_, "BEGIN");
  Stmt s(db_,
         "SELECT block, time_ms, sender, payload, message_id, ok, panic, reply FROM messages "
         "WHERE block > ? ORDER BY block LIMIT ?");
  s.bind(1, static_cast<std::int64_t>(after))
      .bind(2, static_cast<std::int64_t>(std::min<std::size_t>(limit, INT64_MAX)));
  std::vector<LogEntry> out;
  while (s.step()) out.push_back(read_entry(db_, s));
  t.commit();
  return out;
}

std::string Ledger::check() {
  Txn t(db_, "BEGIN");
  {
    Stmt ic(db_, "PRAGMA integrity_check");
    if (ic.step() && ic.text(0) != "ok") return "SQLite integrity check: " + ic.text(0);
  }
  Head head = read_head(db_);
  auto prog = genesis();
  std::uint64_t expect_block = 0, last_time = 0;
  Stmt s(db_,
         "SELECT block, time_ms, sender, payload, message_id, ok, panic, reply FROM messages ORDER BY block");
  while (s.step()) {
    LogEntry e = read_entry(db_, s);
    if (e.block != ++expect_block) return fmt::format("block {} is missing from the log", expect_block);
    if (e.time_ms <= last_time) return fmt::format("block {} does not advance the time", e.block);
    last_time = e.time_ms;
    auto out = prog.handle(e.sender, e.payload, e.time_ms);
    if (out.ok != e.ok || out.reply != e.reply || out.events != e.events)
      return fmt::format("block {} replays to a different outcome", e.block);
  }
  t.commit();
  if (head.block != expect_block) return fmt::format("state is at block {}, the log ends at {}", head.block, expect_block);
  if (encode_body(prog.state()) != head.body || prog.terminated() != head.terminated)
    return "the stored state differs from the replayed log";
  return {};
}

chain::Receipt LedgerTransport::send(const keys::Keypair& signer, const chain::ProgramId& program, ByteView payload) {
  check_program(program);
  auto e = ledger_.send(signer.public_key(), payload);
  chain::Receipt r;
  r.block_number = e.block;
  r.block_time_ms = e.time_ms;
  r.message_id = e.message_id;
  r.ok = e.ok;
  r.panic = e.panic;
  r.reply = e.reply;
  r.events = e.events;
  return r;
}

Bytes LedgerTransport::query(const chain::ProgramId& program, ByteView payload) {
  check_program(program);
  auto out = ledger_.query(payload);
  if (!out.ok) throw RefusedError(fmt::format("the program refused the query: {}", out.panic));
  return out.reply;
}

std::string LedgerTransport::describe() const { return "ledger " + ledger_.file().string(); }

void LedgerTransport::check_program(const chain::ProgramId& program) const {
  if (program != Ledger::program_id())
    throw UsageError(fmt::format("the embedded ledger hosts one program, {}; unset --program or choose an --endpoint",
                                 to_hex(Ledger::program_id())));
}

}  // namespace p2p::ledger
