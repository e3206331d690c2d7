// End to end: the chain subcommands on the embedded ledger, through the built binary.
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "harness.hpp"
#include "ledger/ledger.hpp"

using nlohmann::json;
using p2p::test::Home;
using p2p::test::trim;

namespace {

// Two accounts with profiles; alice is the default account.
struct World {
  Home h;
  std::string alice, bob;
  World() {
    h.ok({"key", "new", "alice"});
    h.ok({"key", "new", "bob"});
    alice = json::parse(h.ok({"key", "show", "alice", "--json"}))["address"];
    bob = json::parse(h.ok({"key", "show", "bob", "--json"}))["address"];
    h.ok({"profile", "set", "--name", "Alice"});
    h.ok({"profile", "set", "--name", "Bob", "--account", "bob"});
  }
  std::uint64_t height() const { return p2p::ledger::Ledger(h.ledger()).height(); }
};

}  // namespace

TEST(CliChain, ScheduleListShowEditDelete) {
  World w;
  auto id = trim(w.h.ok({"schedule", "--title", "Friday jam", "--start", "+30m", "--duration", "1h",
                         "--description", "bring drums"}));
  EXPECT_NE(id.find("Friday jam"), std::string::npos);

  auto list = json::parse(w.h.ok({"streams", "--json"}));
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["id"], id);
  EXPECT_EQ(list[0]["status"], "upcoming");
  EXPECT_EQ(list[0]["broadcaster"], w.alice);
  EXPECT_EQ(list[0]["end_time"].get<std::uint64_t>() - list[0]["start_time"].get<std::uint64_t>(), 3600000u);

  // Editing the title keeps the description (the program would clear it).
  w.h.ok({"edit", id, "--title", "Friday jam (moved)"});
  auto shown = json::parse(w.h.ok({"streams", "show", id, "--json"}));
  EXPECT_EQ(shown["title"], "Friday jam (moved)");
  EXPECT_EQ(shown["description"], "bring drums");
  w.h.ok({"edit", id, "--clear-description"});
  EXPECT_TRUE(json::parse(w.h.ok({"streams", "show", id, "--json"}))["description"].is_null());

  // Human listing shows the stream.
  auto text = w.h.ok({"streams"});
  EXPECT_NE(text.find("Friday jam (moved)"), std::string::npos);

  // Bob is refused by the program (exit 3, the program's reason).
  auto r = w.h.run({"delete", id, "--account", "bob"});
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_NE(r.err.find("Id is not exist"), std::string::npos) << r.err;
  r = w.h.run({"edit", id, "--title", "mine now", "--account", "bob"});
  EXPECT_EQ(r.code, 3);
  EXPECT_NE(r.err.find("You are not broadcaster"), std::string::npos) << r.err;

  w.h.ok({"delete", id});
  EXPECT_EQ(json::parse(w.h.ok({"streams", "--json"})).size(), 0u);
  r = w.h.run({"streams", "show", id});
  EXPECT_EQ(r.code, 2);
}

TEST(CliChain, ScheduleWithoutProfileIsRefusedWithTheProgramsReason) {
  Home h;
  h.ok({"key", "new", "carol"});
  auto r = h.run({"schedule", "--title", "x", "--start", "now", "--duration", "1h"});
  EXPECT_EQ(r.code, 3);
  EXPECT_NE(r.err.find("Account is no registered"), std::string::npos) << r.err;
}

TEST(CliChain, ScheduleInputErrorsExitTwoAndSendNothing) {
  World w;
  auto before = w.height();
  struct Case {
    std::vector<std::string> args;
    std::string says;
  } cases[] = {
      {{"--title", "t", "--start", "+1h", "--end", "+30m"}, "end is not after the start"},
      {{"--title", "t", "--start", "2020-01-01T00:00Z", "--duration", "1h"}, "in the past"},
      {{"--title", "", "--start", "now", "--duration", "1h"}, "title is empty"},
      {{"--title", std::string(201, 'x'), "--start", "now", "--duration", "1h"}, "limit is 200"},
      {{"--title", "t", "--start", "tomorrow", "--duration", "1h"}, "is not a time"},
      {{"--title", "t", "--start", "now", "--duration", "5"}, "is not a duration"},
      {{"--title", "t", "--start", "now"}, "--end or --duration"},
      {{"--title", "t", "--start", "now", "--end", "+1h", "--duration", "1h"}, "excludes"},
  };
  for (auto& c : cases) {
    std::vector<std::string> args = {"schedule"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    auto r = w.h.run(args);
    EXPECT_EQ(r.code, 2) << c.says << "\n" << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
  }
  EXPECT_EQ(w.height(), before);
}

TEST(CliChain, DryRunPrintsTheExactSailsPayloadAndSendsNothing) {
  World w;
  auto before = w.height();
  auto hex = trim(w.h.ok({"schedule", "--title", "t", "--start", "2099-01-01T00:00:00Z", "--end",
                          "2099-01-01T01:00:00Z", "--img", "i", "--dry-run"}));
  // route ++ "NewStream" ++ "t" ++ None ++ u64 4070908800000 ++ u64 4070912400000 ++ "i"
  // (computed independently with Python's struct.pack('<Q', ...)).
  EXPECT_EQ(hex,
            "0x3057334273747265616d696e67244e657753747265616d047400"
            "00ac12d5b3030000"
            "809a49d5b3030000"
            "0469");
  auto j = json::parse(w.h.ok({"subscribe", w.bob, "--dry-run", "--json"}));
  EXPECT_EQ(j["method"], "Subscribe");
  EXPECT_EQ(j["dry_run"], true);
  EXPECT_EQ(w.height(), before);
}

TEST(CliChain, ProfileSetKeepsFieldsNotGiven) {
  World w;
  w.h.ok({"profile", "set", "--surname", "Lovelace", "--img", "https://x/a.png"});
  auto p = json::parse(w.h.ok({"profile", "--json"}));
  EXPECT_EQ(p["name"], "Alice");
  EXPECT_EQ(p["surname"], "Lovelace");
  EXPECT_EQ(p["img_link"], "https://x/a.png");
  // The deployed program's quirk: time_zone takes the image link, and the CLI warns.
  auto r = w.h.run({"profile", "set", "--time-zone", "Europe/Paris"});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.err.find("time_zone will read back as 'https://x/a.png'"), std::string::npos) << r.err;
  // '' clears a field.
  w.h.ok({"profile", "set", "--surname", ""});
  p = json::parse(w.h.ok({"profile", w.alice, "--json"}));
  EXPECT_TRUE(p["surname"].is_null());
  EXPECT_EQ(p["name"], "Alice");
  r = w.h.run({"profile", "set"});
  EXPECT_EQ(r.code, 2);
}

TEST(CliChain, SubscribeTwiceIsRefusedWithoutSending) {
  World w;
  auto j = json::parse(w.h.ok({"subscribe", w.bob, "--json"}));
  EXPECT_EQ(j["events"][0], "Subscribed");
  auto before = w.height();
  auto r = w.h.run({"subscribe", w.bob});
  EXPECT_EQ(r.code, 3);
  EXPECT_NE(r.err.find("already subscribed"), std::string::npos) << r.err;
  EXPECT_EQ(w.height(), before);
  auto bob = json::parse(w.h.ok({"profile", w.bob, "--json"}));
  EXPECT_EQ(bob["subscribers"].size(), 1u);

  w.h.ok({"unsubscribe", w.bob});
  r = w.h.run({"unsubscribe", w.bob});
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(json::parse(w.h.ok({"profile", w.bob, "--json"}))["subscribers"].size(), 0u);
}

TEST(CliChain, StreamsFilters) {
  World w;
  auto a1 = trim(w.h.ok({"schedule", "--title", "Alice live", "--start", "now", "--duration", "2h"}));
  auto a2 = trim(w.h.ok({"schedule", "--title", "Alice later", "--start", "+3h", "--duration", "1h",
                         "--description", "Cooking SHOW"}));
  auto b1 = trim(w.h.ok({"schedule", "--title", "Bob later", "--start", "+1h", "--duration", "1h", "--account", "bob"}));
  auto ids = [&](std::vector<std::string> args) {
    args.insert(args.begin(), "streams");
    args.push_back("--json");
    std::vector<std::string> out;
    for (auto& s : json::parse(w.h.ok(args))) out.push_back(s["id"]);
    return out;
  };
  EXPECT_EQ(ids({}), (std::vector<std::string>{a1, b1, a2}));  // by start time
  EXPECT_EQ(ids({"--live"}), (std::vector<std::string>{a1}));
  EXPECT_EQ(ids({"--upcoming"}), (std::vector<std::string>{b1, a2}));
  EXPECT_EQ(ids({"--mine"}), (std::vector<std::string>{a1, a2}));
  EXPECT_EQ(ids({"--mine", "--account", "bob"}), (std::vector<std::string>{b1}));
  EXPECT_EQ(ids({"--by", w.bob}), (std::vector<std::string>{b1}));
  EXPECT_EQ(ids({"--search", "cooking"}), (std::vector<std::string>{a2}));
  EXPECT_EQ(ids({"--subscribed"}), (std::vector<std::string>{}));
  w.h.ok({"subscribe", w.bob});
  EXPECT_EQ(ids({"--subscribed"}), (std::vector<std::string>{b1}));
  EXPECT_EQ(ids({"--subscribed", "--live"}), (std::vector<std::string>{}));
  auto r = w.h.run({"streams", "--live", "--upcoming"});
  EXPECT_EQ(r.code, 2);
}

TEST(CliChain, TimesPrintInTheLocalTimeZone) {
  World w;
  auto id = trim(w.h.ok({"schedule", "--title", "tz", "--start", "2099-06-01T12:00:00Z", "--duration", "1h"}));
  auto r = w.h.run({"streams", "show", id}, {{"TZ", "Asia/Kolkata"}});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("2099-06-01 17:30 +05:30"), std::string::npos) << r.out;
}

TEST(CliChain, BadAddressesAndAccounts) {
  World w;
  auto r = w.h.run({"subscribe", "not-an-address"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("not-an-address"), std::string::npos) << r.err;
  // One character changed in a valid address breaks its checksum.
  std::string broken = w.bob;
  broken[10] = broken[10] == 'a' ? 'b' : 'a';
  r = w.h.run({"subscribe", broken});
  EXPECT_EQ(r.code, 2) << r.err;
  r = w.h.run({"schedule", "--title", "t", "--start", "now", "--duration", "1h", "--account", "nobody"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("nobody"), std::string::npos) << r.err;
  r = w.h.run({"streams", "--endpoint", "gopher://x"});
  EXPECT_EQ(r.code, 2);
}

TEST(CliChain, ConcurrentProcessesLoseNothing) {
  World w;
  constexpr int kProcs = 8;
  std::vector<std::thread> threads;
  std::vector<int> codes(kProcs, -1);
  for (int i = 0; i < kProcs; ++i)
    threads.emplace_back([&, i] {
      codes[i] = w.h.run({"schedule", "--title", "parallel " + std::to_string(i), "--start", "+1h", "--duration",
                          "1h", i % 2 ? "--account" : "-q", i % 2 ? "bob" : "-q"})
                     .code;
    });
  for (auto& t : threads) t.join();
  for (int i = 0; i < kProcs; ++i) EXPECT_EQ(codes[i], 0) << i;
  auto list = json::parse(w.h.ok({"streams", "--json"}));
  EXPECT_EQ(list.size(), static_cast<std::size_t>(kProcs));
  EXPECT_EQ(trim(w.h.ok({"ledger", "check", "--json"})).find("\"ok\": true") != std::string::npos, true);
}

TEST(CliChain, LedgerLogShowsEveryMessage) {
  World w;
  auto log = json::parse(w.h.ok({"ledger", "log", "--json"}));
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(log[0]["method"], "EditProfile");
  EXPECT_EQ(log[0]["sender"], w.alice);
  EXPECT_EQ(log[1]["sender"], w.bob);
  EXPECT_EQ(log[1]["events"][0], "ProfileEdited");
  w.h.run({"delete", "nope"});
  log = json::parse(w.h.ok({"ledger", "log", "--after", "2", "--json"}));
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0]["ok"], false);
  EXPECT_EQ(log[0]["panic"], "Id is not exist");
}
