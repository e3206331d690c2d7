// Browser interop (issue 4): headless Debian chromium, driven by tests/js/browser/run.mjs, plays the
// w3bstreaming web app against `p2pstream signal`, watching `p2pstream broadcast` and broadcasting
// to `p2pstream watch`. These fail, not skip, when node, playwright-core or chromium is missing.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "fixtures.hpp"

using nlohmann::json;
using namespace p2p::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

const fs::path kJs = fs::path(P2P_SOURCE_DIR) / "tests/js";
// P2P_CHROMIUM overrides the browser (e.g. to check that a missing one fails the tests).
const std::string kChromium = std::getenv("P2P_CHROMIUM") ? std::getenv("P2P_CHROMIUM") : "/usr/bin/chromium";

// The shared world plus what the page cases need: alice broadcasts from the CLI and bob watches
// her in the page; carol broadcasts from the page and dave (CLI) and bob watch her.
struct PageWorld {
  World w;
  std::string alice_stream, carol_stream;
  PageWorld() {
    const std::string carol = json::parse(w.h.ok({"key", "show", "carol", "--json"}))["address"];
    w.h.ok({"subscribe", carol, "--account", "bob"});
    w.h.ok({"subscribe", carol, "--account", "dave"});
    alice_stream = w.schedule();
    carol_stream = trim(w.h.ok({"schedule", "--title", "Browser to CLI", "--start", "now", "--duration", "1h", "--account", "carol"}));
  }
};

// Runs a program to its end, killed after timeout; false if it had to be killed.
bool run_to_end(Proc& p, std::chrono::milliseconds timeout) {
  if (p.wait(timeout) != -1) return true;
  p.signal(SIGKILL);
  p.wait(5s);
  return false;
}

// What the browser side needs; the message says how to get what is missing.
std::string missing_tools(const World& w) {
  std::string why;
  Proc node(w, "node-version", {"--version"}, "node");
  if (node.wait(20s) != 0) why += "node (Node.js >= 18) is not installed; ";
  for (const char* m : {"playwright-core", "socket.io-client", "@polkadot/util-crypto"})
    if (!fs::exists(kJs / "node_modules" / m)) why += fmt::format("tests/js/node_modules/{} is missing (npm ci --prefix tests/js); ", m);
  if (::access(kChromium.c_str(), X_OK) != 0)
    why += kChromium + " is missing (apt-get install chromium; scripts/install-deps.sh); ";
  return why;
}

#define REQUIRE_BROWSER(world)                                                             \
  do {                                                                                     \
    static const std::string why = missing_tools(world);                                   \
    ASSERT_TRUE(why.empty()) << "browser interop needs node, chromium and tests/js: " << why; \
  } while (0)

// The runner's outcome: its exit status (-1 if it was killed), its output, and its JSON report
// (the last stdout line starting with '{').
struct Ran {
  int code = -1;
  std::string err;
  json report = json::object();
};

Ran runner(const World& w, const SignalServer& s, std::vector<std::string> args) {
  std::vector<std::string> argv = {(kJs / "browser/run.mjs").string(), "--url", s.url, "--bin", P2PSTREAM_BIN,
                                   "--timeout", "30", "--min-frames", "30", "--chromium", kChromium};
  argv.insert(argv.end(), args.begin(), args.end());
  Proc node(w, "runner", argv, "node");
  Ran r;
  bool ended = run_to_end(node, 110s);
  r.code = ended ? node.wait(0ms) : -1;
  r.err = node.err() + (ended ? "" : "\n[killed after 110 s]");
  std::istringstream in(node.out());
  std::string line, last;
  while (std::getline(in, line))
    if (!line.empty() && line[0] == '{') last = line;
  try {
    r.report = json::parse(last);
  } catch (const std::exception&) {
  }
  return r;
}

// Every check the runner made, failed ones first, for the failure message.
std::string failed_checks(const json& j) {
  std::string s;
  if (j.contains("setup_error")) s += "setup: " + j["setup_error"].get<std::string>() + "\n";
  for (const auto& c : j.value("checks", json::array()))
    if (!c.value("ok", false)) s += "FAILED " + c.value("what", "") + ": " + c.value("detail", "") + "\n";
  return s;
}

std::string report(const Ran& r, const SignalServer& s) {
  return failed_checks(r.report) + "--- runner report ---\n" + r.report.dump(1) + "\n--- runner stderr ---\n" + r.err +
         "\n--- signal log ---\n" + s.p.err();
}

}  // namespace

TEST(CliBrowser, ChromiumWatchesACliBroadcast) {
  PageWorld pw;
  World& w = pw.w;
  REQUIRE_BROWSER(w);
  SignalServer s(w);
  ASSERT_FALSE(s.url.empty()) << s.p.both();
  Ran r = runner(w, s, {"--case", "watch-cli", "--stream", pw.alice_stream, "--page-seed", seed_hex(0x22), "--cli-account", "alice"});
  EXPECT_EQ(r.code, 0) << report(r, s);
  ASSERT_TRUE(r.report.value("ok", false)) << report(r, s);
  // The runner's own verdict is not taken on trust: the figures it read from the page.
  const json& v = r.report["watcher"];
  EXPECT_GE(v["frames"].get<int>(), 30);
  EXPECT_GE(v["video"]["framesDecoded"].get<int>(), 30);
  EXPECT_GT(v["audio"]["totalSamplesReceived"].get<long>(), 0);
  EXPECT_GT(v["analyserPeak"].get<double>(), 0.01);
  EXPECT_EQ(r.report["cli"]["exit"], 0) << r.report["cli"].dump(1);
  EXPECT_EQ(s.p.stop(), 0) << s.p.err();
}

TEST(CliBrowser, CliWatchRecordsAChromiumBroadcast) {
  PageWorld pw;
  World& w = pw.w;
  REQUIRE_BROWSER(w);
  SignalServer s(w);
  ASSERT_FALSE(s.url.empty()) << s.p.both();
  const fs::path out = w.h.dir() / "from-browser.mkv";
  // 8 s, not 5: on a loaded 2-core machine connecting alone can take 3-4 s.
  Ran r = runner(w, s, {"--case", "broadcast-cli", "--stream", pw.carol_stream, "--page-seed", seed_hex(0x33), "--cli-account",
                         "dave", "--out", out.string(), "--duration", "8"});
  EXPECT_EQ(r.code, 0) << report(r, s);
  ASSERT_TRUE(r.report.value("ok", false)) << report(r, s);
  EXPECT_EQ(r.report["cli"]["exit"], 0) << r.report["cli"].dump(1);
  ASSERT_TRUE(fs::exists(out));
  EXPECT_GT(fs::file_size(out), 10000u);
  // gst-discoverer again, from here, on the file the CLI wrote.
  Proc d(w, "discoverer", {out.string()}, "gst-discoverer-1.0");
  ASSERT_TRUE(run_to_end(d, 30s)) << d.both();
  EXPECT_EQ(d.wait(0ms), 0) << d.both();
  EXPECT_NE(d.out().find("video"), std::string::npos) << d.out();
  EXPECT_NE(d.out().find("audio"), std::string::npos) << d.out();
  EXPECT_EQ(s.p.stop(), 0) << s.p.err();
}

// Both ends are the page: our server between two real browsers, the watcher joining before the
// broadcast is live (it hears "hasn't started yet" and retries, as the app does).
TEST(CliBrowser, TwoChromiumPagesThroughOurServer) {
  PageWorld pw;
  World& w = pw.w;
  REQUIRE_BROWSER(w);
  SignalServer s(w);
  ASSERT_FALSE(s.url.empty()) << s.p.both();
  Ran r = runner(w, s, {"--case", "browser-pair", "--stream", pw.carol_stream, "--peer-seed", seed_hex(0x33), "--page-seed", seed_hex(0x22),
                         "--watch-first", "yes"});
  EXPECT_EQ(r.code, 0) << report(r, s);
  ASSERT_TRUE(r.report.value("ok", false)) << report(r, s);
  EXPECT_GE(r.report["watcher"]["frames"].get<int>(), 30);
  EXPECT_GT(r.report["watcher"]["audio"]["totalSamplesReceived"].get<long>(), 0);
  EXPECT_EQ(s.p.stop(), 0) << s.p.err();
}

// The deployed web app's own payloads: answer {watcherId, description} and candidate {id, candidate},
// neither with streamId. The server infers the stream and forwards them; media must flow.
TEST(CliBrowser, TheWebAppsAnswerAndCandidateShapesPassOurServer) {
  PageWorld pw;
  World& w = pw.w;
  REQUIRE_BROWSER(w);
  SignalServer s(w);
  ASSERT_FALSE(s.url.empty()) << s.p.both();
  Ran r = runner(w, s, {"--case", "browser-pair", "--dialect", "app", "--stream", pw.carol_stream, "--peer-seed", seed_hex(0x33),
                         "--page-seed", seed_hex(0x22)});
  EXPECT_EQ(r.code, 0) << report(r, s);
  ASSERT_TRUE(r.report.value("ok", false)) << report(r, s);
  EXPECT_GE(r.report["watcher"]["frames"].get<int>(), 30);
  EXPECT_GE(r.report["watcher"]["video"]["framesDecoded"].get<int>(), 30);
  EXPECT_EQ(s.p.stop(), 0) << s.p.err();
}
