// Unit tests for ledger/ledger: the embedded chain's blocks, log, replay check,
// append-only guarantees, file handling, and real multi-process and crash safety
// (the last two spawn tests/tools/ledger_writer).
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "keys/ed25519.hpp"
#include "config/temp_dir.hpp"
#include "ledger/ledger.hpp"
#include "program/w3bstreaming.hpp"
#include "sails/sails.hpp"
#include "util/error.hpp"
#include "w3b/messages.hpp"

extern char** environ;

namespace p2p::ledger {
namespace {

namespace fs = std::filesystem;
using namespace p2p::w3b;

using p2p::config::TempDir;

// A second, raw connection to the file, as a tamperer would use.
class RawDb {
 public:
  explicit RawDb(const fs::path& file) {
    if (sqlite3_open_v2(file.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) != SQLITE_OK)
      throw std::runtime_error("cannot open " + file.string());
    sqlite3_busy_timeout(db_, 10000);
  }
  ~RawDb() { sqlite3_close(db_); }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;

  // Returns the SQLite result code; the error text is kept in last_error.
  int exec(const std::string& sql) {
    char* err = nullptr;
    int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
    last_error = err ? err : "";
    sqlite3_free(err);
    return rc;
  }
  // First column of the first row as text ("" when there is no row).
  std::string scalar(const std::string& sql) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr) != SQLITE_OK)
      throw std::runtime_error(sqlite3_errmsg(db_));
    std::string out;
    if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
      out = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    return out;
  }
  // Runs sql with one blob parameter; returns the result code of the step.
  int exec_blob(const std::string& sql, ByteView blob) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr) != SQLITE_OK)
      throw std::runtime_error(sqlite3_errmsg(db_));
    sqlite3_bind_blob(s, 1, blob.data(), static_cast<int>(blob.size()), SQLITE_TRANSIENT);
    int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    return rc;
  }
  std::string last_error;

 private:
  sqlite3* db_ = nullptr;
};

ActorId actor(std::uint8_t fill) {
  ActorId a{};
  a.fill(fill);
  return a;
}

const ActorId kAlice = actor(0xA1);
const ActorId kBob = actor(0xB0);

Bytes profile_cmd(std::string name) {
  return encode_command(EditProfile{std::move(name), std::string("Doe"), std::string("https://i/a.png"), std::string("UTC")});
}

Bytes stream_cmd(std::string title) {
  return encode_command(NewStream{std::move(title), std::string("about"), 2'000'000'000'000, 2'000'003'600'000,
                                  "https://i/s.png"});
}

Bytes state_bytes(const ProgramState& s) {
  scale::Encoder e;
  encode_state(e, s);
  return std::move(e).take();
}

// The stream id a StreamIsScheduled event carries.
std::string scheduled_id(const Bytes& event) {
  auto ev = decode_event(event);
  auto* s = std::get_if<StreamIsScheduled>(&ev);
  return s ? s->id : std::string();
}

// ---------------------------------------------------------------------------------------------

TEST(LedgerGenesis, FreshFileHoldsTheDeployedProgram) {
  TempDir dir;
  const fs::path file = dir.path() / "nested" / "deeper" / "ledger.db";
  Ledger l(file);
  EXPECT_TRUE(fs::exists(file)) << "the constructor creates the file and its directories";
  EXPECT_EQ(l.file(), file);
  EXPECT_EQ(l.height(), 0u);
  EXPECT_TRUE(l.log().empty());
  ProgramState st = l.state();
  EXPECT_TRUE(st.streams.empty());
  EXPECT_TRUE(st.users.empty());
  ASSERT_EQ(st.admins.size(), 1u);
  EXPECT_EQ(st.admins[0], ActorId{}) << "the embedded program's deployer is the zero id";
  EXPECT_FALSE(st.dns_info.has_value());
  EXPECT_EQ(st, program::W3Bstreaming::deploy(ActorId{}).state());
  EXPECT_EQ(l.check(), "");
}

TEST(LedgerGenesis, ProgramIdIsStableAndNonZero) {
  EXPECT_EQ(Ledger::program_id(), Ledger::program_id());
  EXPECT_NE(Ledger::program_id(), chain::ProgramId{});
}

TEST(LedgerSend, SuccessAdvancesTheBlockAndTheState) {
  TempDir dir;
  Ledger l(dir.path() / "l.db", Options{.busy_timeout_ms = 5000, .fixed_time_ms = 1'000'000});
  const Bytes payload = profile_cmd("Alice");
  LogEntry e = l.send(kAlice, payload);
  EXPECT_TRUE(e.ok) << e.panic;
  EXPECT_EQ(e.panic, "");
  EXPECT_EQ(e.block, 1u);
  EXPECT_EQ(e.time_ms, 1'000'000u);
  EXPECT_EQ(e.sender, kAlice);
  EXPECT_EQ(e.payload, payload);
  EXPECT_TRUE(e.reply.empty()) << "EditProfile returns () so the reply is the empty auto-reply";
  ASSERT_EQ(e.events.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<ProfileEdited>(decode_event(e.events[0])));
  EXPECT_NE(e.message_id, Hash32{});
  EXPECT_EQ(l.height(), 1u);

  ProgramState st = l.state();
  const Profile* p = st.find_user(kAlice);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->name, "Alice");
  EXPECT_EQ(p->surname, "Doe");
  EXPECT_EQ(p->time_zone, "UTC") << "creation stores the time zone as given";

  LogEntry e2 = l.send(kAlice, stream_cmd("first"));
  ASSERT_TRUE(e2.ok) << e2.panic;
  EXPECT_EQ(e2.block, 2u);
  EXPECT_NE(e2.message_id, e.message_id);
  ASSERT_EQ(e2.events.size(), 1u);
  EXPECT_EQ(scheduled_id(e2.events[0]), std::to_string(e2.time_ms) + "first");
  EXPECT_NE(l.state().find_stream(std::to_string(e2.time_ms) + "first"), nullptr);
}

TEST(LedgerSend, PanicIsLoggedAsFailedAndLeavesTheStateAlone) {
  TempDir dir;
  Ledger l(dir.path() / "l.db");
  ASSERT_TRUE(l.send(kAlice, profile_cmd("Alice")).ok);
  const Bytes before = state_bytes(l.state());

  // Bob has no profile: the program refuses the stream.
  LogEntry e = l.send(kBob, stream_cmd("nope"));
  EXPECT_FALSE(e.ok);
  EXPECT_EQ(e.panic, "Account is no registered");
  EXPECT_EQ(e.reply, sails::panic_payload("Account is no registered"));
  EXPECT_TRUE(e.events.empty());
  EXPECT_EQ(e.block, 2u) << "a panicked message still takes its block";
  EXPECT_EQ(l.height(), 2u);
  EXPECT_EQ(state_bytes(l.state()), before);

  // A payload that does not decode is a panic too, not an exception.
  const Bytes junk = {0xde, 0xad, 0xbe, 0xef};
  LogEntry j = l.send(kBob, junk);
  EXPECT_FALSE(j.ok);
  EXPECT_NE(j.panic, "");
  EXPECT_EQ(j.block, 3u);
  EXPECT_EQ(state_bytes(l.state()), before);

  auto log = l.log();
  ASSERT_EQ(log.size(), 3u);
  EXPECT_TRUE(log[0].ok);
  EXPECT_FALSE(log[1].ok);
  EXPECT_EQ(log[1].panic, "Account is no registered");
  EXPECT_EQ(log[1].reply, e.reply);
  EXPECT_EQ(log[1].sender, kBob);
  EXPECT_FALSE(log[2].ok);
  EXPECT_EQ(log[2].payload, junk);
  EXPECT_EQ(l.check(), "");
}

TEST(LedgerSend, BlockTimesStrictlyIncreaseEvenWithAFixedClock) {
  TempDir dir;
  const fs::path file = dir.path() / "l.db";
  {
    Ledger l(file, Options{.busy_timeout_ms = 5000, .fixed_time_ms = 5000});
    ASSERT_TRUE(l.send(kAlice, profile_cmd("A")).ok);
    // The same title twice in a row: distinct block times keep the ids distinct.
    LogEntry s1 = l.send(kAlice, stream_cmd("same"));
    LogEntry s2 = l.send(kAlice, stream_cmd("same"));
    ASSERT_TRUE(s1.ok && s2.ok);
    EXPECT_EQ(s1.time_ms, 5001u);
    EXPECT_EQ(s2.time_ms, 5002u);
    EXPECT_NE(scheduled_id(s1.events[0]), scheduled_id(s2.events[0]));
    EXPECT_EQ(l.state().streams.size(), 2u);
  }
  {
    // A clock that is behind the stored head must not move time backwards.
    Ledger l(file, Options{.busy_timeout_ms = 5000, .fixed_time_ms = 10});
    LogEntry e = l.send(kBob, stream_cmd("x"));  // a panic still takes a block time
    EXPECT_EQ(e.time_ms, 5003u);
  }
  {
    Ledger l(file);  // the wall clock is far ahead of 5003
    LogEntry e = l.send(kAlice, stream_cmd("wall"));
    EXPECT_GT(e.time_ms, 1'600'000'000'000u);
    LogEntry f = l.send(kAlice, stream_cmd("wall"));
    EXPECT_GT(f.time_ms, e.time_ms);
    auto log = l.log();
    for (std::size_t i = 1; i < log.size(); ++i) EXPECT_GT(log[i].time_ms, log[i - 1].time_ms) << "block " << log[i].block;
    EXPECT_EQ(l.check(), "");
  }
}

TEST(LedgerLog, ReturnsEveryEntryAndHonoursAfterAndLimit) {
  TempDir dir;
  Ledger l(dir.path() / "l.db", Options{.busy_timeout_ms = 5000, .fixed_time_ms = 100});
  std::vector<LogEntry> sent;
  sent.push_back(l.send(kAlice, profile_cmd("A")));
  sent.push_back(l.send(kBob, stream_cmd("refused")));
  sent.push_back(l.send(kAlice, stream_cmd("s1")));
  sent.push_back(l.send(kBob, profile_cmd("B")));
  sent.push_back(l.send(kBob, encode_command(Subscribe{kAlice})));

  auto all = l.log();
  ASSERT_EQ(all.size(), 5u);
  for (std::size_t i = 0; i < all.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(all[i].block, i + 1);
    EXPECT_EQ(all[i].time_ms, sent[i].time_ms);
    EXPECT_EQ(all[i].sender, sent[i].sender);
    EXPECT_EQ(all[i].payload, sent[i].payload);
    EXPECT_EQ(all[i].message_id, sent[i].message_id);
    EXPECT_EQ(all[i].ok, sent[i].ok);
    EXPECT_EQ(all[i].panic, sent[i].panic);
    EXPECT_EQ(all[i].reply, sent[i].reply);
    EXPECT_EQ(all[i].events, sent[i].events);
  }
  EXPECT_EQ(all[1].ok, false);
  EXPECT_EQ(all[4].sender, kBob);

  auto after2 = l.log(2);
  ASSERT_EQ(after2.size(), 3u);
  EXPECT_EQ(after2.front().block, 3u);
  EXPECT_EQ(after2.back().block, 5u);

  auto first2 = l.log(0, 2);
  ASSERT_EQ(first2.size(), 2u);
  EXPECT_EQ(first2[1].block, 2u);

  auto one = l.log(2, 1);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].block, 3u);
  EXPECT_EQ(scheduled_id(one[0].events.at(0)), std::to_string(one[0].time_ms) + "s1");

  EXPECT_TRUE(l.log(5).empty());
  EXPECT_TRUE(l.log(1000).empty());
  EXPECT_TRUE(l.log(0, 0).empty());
}

TEST(LedgerLog, EventsComeBackInTheirStoredOrder) {
  TempDir dir;
  const fs::path file = dir.path() / "l.db";
  Ledger l(file, Options{.busy_timeout_ms = 5000, .fixed_time_ms = 100});
  ASSERT_TRUE(l.send(kAlice, profile_cmd("A")).ok);
  LogEntry s = l.send(kAlice, stream_cmd("ev"));
  ASSERT_EQ(s.events.size(), 1u);

  // The program emits one event per message; add two more rows out of index order
  // to see that the log returns them by index, not by insertion.
  const Bytes late = encode_event(StreamDeleted{"late"});
  const Bytes mid = encode_event(StreamDeleted{"mid"});
  {
    RawDb raw(file);
    ASSERT_EQ(raw.exec_blob("INSERT INTO events (block, idx, payload) VALUES (2, 7, ?)", late), SQLITE_DONE);
    ASSERT_EQ(raw.exec_blob("INSERT INTO events (block, idx, payload) VALUES (2, 3, ?)", mid), SQLITE_DONE);
  }
  auto log = l.log(1);
  ASSERT_EQ(log.size(), 1u);
  ASSERT_EQ(log[0].events.size(), 3u);
  EXPECT_EQ(log[0].events[0], s.events[0]);
  EXPECT_EQ(log[0].events[1], mid);
  EXPECT_EQ(log[0].events[2], late);
  // Those rows are not what the program emitted, and the check says so.
  EXPECT_NE(l.check(), "");
}

TEST(LedgerQuery, GetStateReturnsTheCommittedState) {
  TempDir dir;
  Ledger l(dir.path() / "l.db");
  ASSERT_TRUE(l.send(kAlice, profile_cmd("A")).ok);
  ASSERT_TRUE(l.send(kAlice, stream_cmd("q")).ok);
  program::Outcome out = l.query(encode_query(GetState{}));
  ASSERT_TRUE(out.ok) << out.panic;
  ProgramState st = decode_state_reply(out.reply);
  EXPECT_EQ(st, l.state());
  EXPECT_EQ(st.streams.size(), 1u);
  EXPECT_NE(st.find_user(kAlice), nullptr);
  EXPECT_EQ(l.height(), 2u) << "a query does not make a block";

  program::Outcome bad = l.query(view("not a query"));
  EXPECT_FALSE(bad.ok);
  EXPECT_EQ(l.height(), 2u);
}

TEST(LedgerCheck, HealthyLedgerWithEveryKindOfMessageChecksClean) {
  TempDir dir;
  Ledger l(dir.path() / "l.db");
  ASSERT_TRUE(l.send(kAlice, profile_cmd("A")).ok);
  ASSERT_TRUE(l.send(kBob, profile_cmd("B")).ok);
  LogEntry s = l.send(kAlice, stream_cmd("one"));
  const std::string id = scheduled_id(s.events.at(0));
  ASSERT_TRUE(l.send(kAlice, encode_command(EditStream{id, std::nullopt, std::nullopt, std::string("renamed"),
                                                         std::nullopt, std::string("d")}))
                  .ok);
  ASSERT_TRUE(l.send(kBob, encode_command(Subscribe{kAlice})).ok);
  EXPECT_FALSE(l.send(kBob, encode_command(DeleteStream{id})).ok);
  ASSERT_TRUE(l.send(kBob, encode_command(Unsubscribe{kAlice})).ok);
  ASSERT_TRUE(l.send(kAlice, encode_command(DeleteStream{id})).ok);
  EXPECT_FALSE(l.send(kAlice, encode_command(AddAdmin{kBob})).ok);
  EXPECT_EQ(l.height(), 9u);
  EXPECT_EQ(l.check(), "");
}

TEST(LedgerAppendOnly, RawUpdateAndDeleteOnTheLogFail) {
  TempDir dir;
  const fs::path file = dir.path() / "l.db";
  Ledger l(file);
  ASSERT_TRUE(l.send(kAlice, profile_cmd("A")).ok);
  ASSERT_TRUE(l.send(kAlice, stream_cmd("x")).ok);
  const auto before = l.log();

  RawDb raw(file);
  EXPECT_EQ(raw.exec("UPDATE messages SET ok = 0 WHERE block = 1"), SQLITE_CONSTRAINT);
  EXPECT_NE(raw.last_error.find("append-only"), std::string::npos) << raw.last_error;
  EXPECT_EQ(raw.exec("UPDATE messages SET payload = x'00'"), SQLITE_CONSTRAINT);
  EXPECT_EQ(raw.exec("DELETE FROM messages WHERE block = 2"), SQLITE_CONSTRAINT);
  EXPECT_EQ(raw.exec("DELETE FROM messages"), SQLITE_CONSTRAINT);
  EXPECT_EQ(raw.exec("UPDATE events SET payload = x'00'"), SQLITE_CONSTRAINT);
  EXPECT_EQ(raw.exec("DELETE FROM events"), SQLITE_CONSTRAINT);
  EXPECT_EQ(raw.scalar("SELECT count(*) FROM messages"), "2");

  const auto after = l.log();
  ASSERT_EQ(after.size(), before.size());
  for (std::size_t i = 0; i < after.size(); ++i) {
    EXPECT_EQ(after[i].payload, before[i].payload);
    EXPECT_EQ(after[i].ok, before[i].ok);
    EXPECT_EQ(after[i].events, before[i].events);
  }
  EXPECT_EQ(l.check(), "");
}

TEST(LedgerCheck, TamperedStateBodyIsReported) {
  TempDir dir;
  const fs::path file = dir.path() / "l.db";
  Ledger l(file);
  ASSERT_TRUE(l.send(kAlice, profile_cmd("A")).ok);
  ASSERT_TRUE(l.send(kAlice, stream_cmd("x")).ok);
  ASSERT_EQ(l.check(), "");

  // A well-formed but different state: Alice renamed behind the log's back.
  ProgramState forged = l.state();
  forged.users.at(0).second.name = "Mallory";
  {
    RawDb raw(file);
    ASSERT_EQ(raw.exec_blob("UPDATE state SET body = ? WHERE id = 1", state_bytes(forged)), SQLITE_DONE);
  }
  EXPECT_EQ(l.state().find_user(kAlice)->name, "Mallory") << "the tampering took effect";
  EXPECT_NE(l.check(), "");
}

TEST(LedgerCheck, GarbageStateBodyIsReportedNotACrash) {
  TempDir dir;
  const fs::path file = dir.path() / "l.db";
  Ledger l(file);
  ASSERT_TRUE(l.send(kAlice, profile_cmd("A")).ok);
  {
    RawDb raw(file);
    const Bytes junk = {0xff, 0xff, 0xff, 0xff, 0x01};
    ASSERT_EQ(raw.exec_blob("UPDATE state SET body = ? WHERE id = 1", junk), SQLITE_DONE);
  }
  EXPECT_NE(l.check(), "");
  EXPECT_THROW(l.state(), RuntimeError);
  EXPECT_THROW(l.send(kAlice, stream_cmd("y")), RuntimeError);
  EXPECT_EQ(l.height(), 1u) << "the failed send rolled back";
}

TEST(LedgerCheck, TamperedHeightIsReported) {
  TempDir dir;
  const fs::path file = dir.path() / "l.db";
  Ledger l(file);
  ASSERT_TRUE(l.send(kAlice, profile_cmd("A")).ok);
  ASSERT_TRUE(l.send(kAlice, profile_cmd("B")).ok);
  {
    RawDb raw(file);
    ASSERT_EQ(raw.exec("UPDATE state SET block = 1 WHERE id = 1"), SQLITE_OK);
  }
  EXPECT_NE(l.check(), "");
}

TEST(LedgerCheck, MissingBlockIsReportedWhenTheTriggersAreDropped) {
  TempDir dir;
  const fs::path file = dir.path() / "l.db";
  Ledger l(file);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(l.send(kAlice, profile_cmd("A" + std::to_string(i))).ok);
  {
    RawDb raw(file);
    ASSERT_EQ(raw.exec("DROP TRIGGER messages_no_delete; DROP TRIGGER events_no_delete;"
                       "DELETE FROM events WHERE block = 2; DELETE FROM messages WHERE block = 2;"),
              SQLITE_OK)
        << raw.last_error;
  }
  std::string diff = l.check();
  EXPECT_NE(diff, "");
  EXPECT_NE(diff.find('2'), std::string::npos) << diff;
}

TEST(LedgerPersistence, ReopeningKeepsStateLogAndHeight) {
  TempDir dir;
  const fs::path file = dir.path() / "l.db";
  ProgramState st;
  std::vector<LogEntry> log;
  {
    Ledger l(file);
    ASSERT_TRUE(l.send(kAlice, profile_cmd("A")).ok);
    ASSERT_TRUE(l.send(kAlice, stream_cmd("kept")).ok);
    EXPECT_FALSE(l.send(kBob, stream_cmd("refused")).ok);
    st = l.state();
    log = l.log();
  }
  Ledger l(file);
  EXPECT_EQ(l.height(), 3u);
  EXPECT_EQ(l.state(), st);
  auto again = l.log();
  ASSERT_EQ(again.size(), log.size());
  for (std::size_t i = 0; i < log.size(); ++i) {
    EXPECT_EQ(again[i].message_id, log[i].message_id);
    EXPECT_EQ(again[i].time_ms, log[i].time_ms);
    EXPECT_EQ(again[i].events, log[i].events);
    EXPECT_EQ(again[i].panic, log[i].panic);
  }
  EXPECT_EQ(l.check(), "");
  LogEntry next = l.send(kAlice, stream_cmd("later"));
  EXPECT_EQ(next.block, 4u);
  EXPECT_GT(next.time_ms, log.back().time_ms);
}

TEST(LedgerOpen, RandomBytesAreARuntimeErrorAndTheFileIsLeftAlone) {
  TempDir dir;
  const fs::path file = dir.path() / "random.db";
  std::string junk(8192, '\0');
  std::mt19937 rng(42);
  for (auto& c : junk) c = static_cast<char>(rng());
  { std::ofstream(file, std::ios::binary) << junk; }
  EXPECT_THROW(Ledger{file}, RuntimeError);
  std::ifstream in(file, std::ios::binary);
  std::string back((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(back, junk);
}

TEST(LedgerOpen, TextFileIsARuntimeError) {
  TempDir dir;
  const fs::path file = dir.path() / "notes.txt";
  { std::ofstream(file) << "these are not the blocks you are looking for\n"; }
  EXPECT_THROW(Ledger{file}, RuntimeError);
}

TEST(LedgerOpen, ForeignSqliteDatabaseIsARuntimeError) {
  TempDir dir;
  const fs::path file = dir.path() / "other.db";
  {
    RawDb raw(file);
    ASSERT_EQ(raw.exec("CREATE TABLE photos (id INTEGER PRIMARY KEY, path TEXT); INSERT INTO photos VALUES (1, 'a');"),
              SQLITE_OK);
  }
  // Someone else's database must not be turned into a ledger.
  EXPECT_THROW(Ledger{file}, RuntimeError);
  RawDb raw(file);
  EXPECT_EQ(raw.scalar("SELECT count(*) FROM sqlite_master WHERE name = 'messages'"), "0")
      << "the foreign database was modified";
  EXPECT_EQ(raw.scalar("PRAGMA journal_mode"), "delete") << "the foreign database was switched to WAL";
}

TEST(LedgerOpen, OtherSchemaVersionIsARuntimeError) {
  TempDir dir;
  const fs::path file = dir.path() / "l.db";
  { Ledger l(file); }
  {
    RawDb raw(file);
    ASSERT_EQ(raw.exec("UPDATE meta SET value = '99' WHERE key = 'schema'"), SQLITE_OK);
  }
  try {
    Ledger l(file);
    FAIL() << "opened a ledger with schema 99";
  } catch (const RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("99"), std::string::npos) << e.what();
  }
}

TEST(LedgerOpen, DirectoryIsARuntimeError) {
  TempDir dir;
  EXPECT_THROW(Ledger{dir.path()}, RuntimeError);
}

TEST(LedgerTransportTest, RefusesAForeignProgramId) {
  TempDir dir;
  LedgerTransport t(dir.path() / "l.db");
  auto kp = keys::Keypair::from_seed(keys::Seed{1, 2, 3});
  chain::ProgramId other{};
  other.fill(0x11);
  EXPECT_THROW(t.send(kp, other, profile_cmd("A")), UsageError);
  EXPECT_THROW(t.query(other, encode_query(GetState{})), UsageError);
  EXPECT_EQ(t.ledger().height(), 0u) << "nothing was sent";
  EXPECT_EQ(t.describe(), "ledger " + (dir.path() / "l.db").string());
}

TEST(LedgerTransportTest, SendsAsTheSignersPublicKey) {
  TempDir dir;
  LedgerTransport t(dir.path() / "l.db");
  auto kp = keys::Keypair::from_seed(keys::Seed{9, 8, 7});
  chain::Receipt r = t.send(kp, Ledger::program_id(), profile_cmd("Key"));
  EXPECT_TRUE(r.ok) << r.panic;
  EXPECT_EQ(r.block_number, 1u);
  EXPECT_GT(r.block_time_ms, 0u);
  EXPECT_EQ(r.events.size(), 1u);
  EXPECT_NE(t.ledger().state().find_user(kp.public_key()), nullptr);
  EXPECT_EQ(t.ledger().log().at(0).sender, kp.public_key());
  EXPECT_EQ(t.ledger().log().at(0).message_id, r.message_id);

  chain::Receipt bad = t.send(kp, Ledger::program_id(), encode_command(AddAdmin{kp.public_key()}));
  EXPECT_FALSE(bad.ok);
  EXPECT_EQ(bad.panic, "Not admin");

  ProgramState st = decode_state_reply(t.query(Ledger::program_id(), encode_query(GetState{})));
  EXPECT_EQ(st, t.ledger().state());
  EXPECT_THROW(t.query(Ledger::program_id(), view("junk")), RefusedError);
}

// ---------------------------------------------------------------------------------------------
// Real processes: tests/tools/ledger_writer.

#ifdef LEDGER_WRITER
pid_t spawn_writer(const fs::path& db, int seed, long count) {
  std::string exe = LEDGER_WRITER, dbs = db.string(), seeds = std::to_string(seed), counts = std::to_string(count);
  char* argv[] = {exe.data(), dbs.data(), seeds.data(), counts.data(), nullptr};
  pid_t pid = -1;
  int rc = posix_spawn(&pid, exe.c_str(), nullptr, nullptr, argv, environ);
  if (rc != 0) throw std::runtime_error("posix_spawn " + exe + " failed: " + std::to_string(rc));
  return pid;
}

int wait_status(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) throw std::runtime_error("waitpid failed");
  return status;
}

TEST(LedgerConcurrency, SixWriterProcessesLoseAndDoubleNothing) {
  TempDir dir;
  const fs::path file = dir.path() / "shared.db";
  constexpr int kWriters = 6, kCount = 40;
  std::vector<pid_t> pids;
  for (int w = 0; w < kWriters; ++w) pids.push_back(spawn_writer(file, 0x10 + w, kCount));
  for (int w = 0; w < kWriters; ++w) {
    int status = wait_status(pids[static_cast<std::size_t>(w)]);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "writer " << w << " status " << status;
  }

  Ledger l(file);
  EXPECT_EQ(l.height(), static_cast<std::uint64_t>(kWriters * kCount));
  ProgramState st = l.state();
  EXPECT_EQ(st.streams.size(), static_cast<std::size_t>(kWriters * (kCount - 1)));

  // Every id the log says was scheduled is in the state, once, with the right owner and title.
  std::set<std::string> ids;
  auto log = l.log();
  ASSERT_EQ(log.size(), static_cast<std::size_t>(kWriters * kCount));
  for (const auto& e : log) {
    EXPECT_TRUE(e.ok) << "block " << e.block << ": " << e.panic;
    for (const auto& ev : e.events)
      if (auto id = scheduled_id(ev); !id.empty()) {
        EXPECT_TRUE(ids.insert(id).second) << "duplicate id " << id;
        const Stream* s = st.find_stream(id);
        ASSERT_NE(s, nullptr) << id;
        EXPECT_EQ(s->broadcaster, e.sender);
        EXPECT_EQ(id, std::to_string(e.time_ms) + s->title);
      }
  }
  EXPECT_EQ(ids.size(), static_cast<std::size_t>(kWriters * (kCount - 1)));

  for (int w = 0; w < kWriters; ++w) {
    SCOPED_TRACE(w);
    const ActorId who = actor(static_cast<std::uint8_t>(0x10 + w));
    const Profile* p = st.find_user(who);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(p->stream_ids.size(), static_cast<std::size_t>(kCount - 1));
    // Each expected title exists exactly once for this writer.
    for (int i = 1; i < kCount; ++i) {
      const std::string title = "w" + std::to_string(0x10 + w) + "-" + std::to_string(i);
      auto n = std::count_if(st.streams.begin(), st.streams.end(),
                             [&](const auto& s) { return s.second.title == title && s.second.broadcaster == who; });
      EXPECT_EQ(n, 1) << title;
    }
  }
  EXPECT_EQ(l.check(), "");
}

TEST(LedgerCrash, SigkillMidWriteLeavesAConsistentLedger) {
  TempDir dir;
  const fs::path file = dir.path() / "crash.db";
  std::mt19937 rng(std::random_device{}());
  std::uniform_int_distribution<int> delay_ms(50, 300);
  for (int round = 0; round < 5; ++round) {
    SCOPED_TRACE(round);
    pid_t pid = spawn_writer(file, 0x40 + round, 10'000'000);
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    int status = wait_status(pid);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "the writer ended before the kill: " << status;

    Ledger l(file);
    EXPECT_EQ(l.check(), "");
    EXPECT_EQ(l.height(), l.log().size());
    RawDb raw(file);
    EXPECT_EQ(raw.scalar("PRAGMA integrity_check"), "ok");
    EXPECT_EQ(raw.scalar("SELECT count(*) FROM messages"), std::to_string(l.height()));
  }
  Ledger l(file);
  EXPECT_GT(l.height(), 0u) << "the writers never got a message in; the test proved nothing";
  EXPECT_EQ(l.check(), "");
}
#else
TEST(LedgerConcurrency, NeedsTheWriterTool) { GTEST_FAIL() << "LEDGER_WRITER is not defined: build through tests/CMakeLists.txt"; }
#endif

}  // namespace
}  // namespace p2p::ledger
