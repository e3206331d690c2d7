// Relay tree over a lossy, delayed link between network namespaces (needs root, as in CI). Four
// namespaces: a "switch" with a bridge and `p2pstream signal`, and broadcaster, relay and leaf
// hosts. The relay's link to the switch runs through tests/tools/linkem (this kernel has no
// netem): 40 ms each way and 2% loss each way. The broadcaster (--max-direct 1) feeds the relay,
// the relay feeds the leaf, so both hops cross the bad link. Playback must go on: frames grow
// every second with no second missing half its frames, while linkem really drops packets.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <regex>
#include <sstream>
#include <thread>

#include "fixtures.hpp"

using nlohmann::json;
using namespace p2p::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

constexpr int kFps = 15;
const std::string kIp = "/usr/sbin/ip";

std::string linkem_bin() {
#ifdef LINKEM_BIN
  return LINKEM_BIN;
#else
  return (fs::path(P2PSTREAM_BIN).parent_path().parent_path() / "tests/tools/linkem").string();
#endif
}

// Runs a shell command; its output goes to `log` for failure messages.
bool sh(const std::string& cmd, std::string& log) {
  std::string full = cmd + " 2>&1";
  FILE* p = ::popen(full.c_str(), "r");
  if (!p) return false;
  char buf[512];
  std::string out;
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  int rc = ::pclose(p);
  log += "$ " + cmd + "\n" + out;
  return rc == 0;
}

// The namespaces and links of one test run, named after this process so parallel runs do not
// collide; removed by the destructor, whatever happened. Namespaces left by a crashed earlier
// run (its pid gone) are removed first.
class Lab {
 public:
  Lab() : tag_("p2pn" + std::to_string(::getpid())) {
    std::string list;
    sh(kIp + " netns list", list);
    std::smatch m;
    std::regex stale("p2pn([0-9]+)-[a-z]");
    for (std::string rest = list; std::regex_search(rest, m, stale); rest = m.suffix()) {
      if (!fs::exists("/proc/" + m[1].str())) sh(kIp + " netns del " + m[0].str(), log_);
    }
  }
  ~Lab() {
    for (auto it = made_.rbegin(); it != made_.rend(); ++it) sh(kIp + " netns del " + *it, log_);
  }
  std::string ns(char role) const { return tag_ + "-" + role; }
  std::string ifname(char role, int end) const { return "pn" + std::to_string(::getpid()) + role + std::to_string(end); }
  bool add_ns(char role) {
    if (!sh(kIp + " netns add " + ns(role), log_)) return false;
    made_.push_back(ns(role));
    return sh(kIp + " -n " + ns(role) + " link set lo up", log_);
  }
  bool run(const std::string& cmd) { return sh(cmd, log_); }
  const std::string& log() const { return log_; }

 private:
  std::string tag_;
  std::vector<std::string> made_;
  std::string log_;
};

// Per-second frame counts of a watcher's --stats=json lines, from its first frame on.
std::vector<long long> deltas(const Proc& p) {
  std::vector<long long> out;
  long long prev = -1;
  for (const auto& j : p.json_lines()) {
    long long f = j.value("frames", -1LL);
    if (f <= 0) continue;
    if (prev >= 0) out.push_back(f - prev);
    prev = f;
  }
  return out;
}

// To debug a failure, run with GST_DEBUG set and NETNS_LOG_DIR naming a directory: each
// p2pstream process then writes its GStreamer log to NETNS_LOG_DIR/<role>.log.
std::map<std::string, std::string> debug_env(const std::string& role) {
  std::map<std::string, std::string> e;
  if (const char* level = std::getenv("GST_DEBUG")) e["GST_DEBUG"] = level;
  if (const char* dir = std::getenv("NETNS_LOG_DIR")) e["GST_DEBUG_FILE"] = std::string(dir) + "/" + role + ".log";
  return e;
}

json last_final(const Proc& linkem) {
  json last;
  for (const auto& j : linkem.json_lines()) last = j;
  return last;
}

}  // namespace

TEST(CliNetns, RelayPlaybackSurvivesDelayAndLossOnOneLink) {
  ASSERT_EQ(::geteuid(), 0u) << "this test builds network namespaces and TAP devices: run it as root (CI does)";
  ASSERT_TRUE(fs::exists(linkem_bin())) << linkem_bin() << " is missing: build the linkem target";

  Lab lab;  // declared first: destroyed last, after every process below is killed
  for (char role : {'s', 'b', 'r', 'l'}) ASSERT_TRUE(lab.add_ns(role)) << lab.log();
  const std::string S = lab.ns('s');
  ASSERT_TRUE(lab.run(kIp + " -n " + S + " link add br0 type bridge")) << lab.log();
  ASSERT_TRUE(lab.run(kIp + " -n " + S + " addr add 10.77.0.1/24 dev br0")) << lab.log();
  ASSERT_TRUE(lab.run(kIp + " -n " + S + " link set br0 up")) << lab.log();
  // Clean links for the broadcaster and the leaf: veth pairs from the switch.
  auto veth = [&](char role, const std::string& ip) {
    const std::string sw = lab.ifname(role, 0), host = lab.ifname(role, 1), ns = lab.ns(role);
    return lab.run(kIp + " -n " + S + " link add " + sw + " type veth peer name " + host + " netns " + ns) &&
           lab.run(kIp + " -n " + S + " link set " + sw + " master br0 up") &&
           lab.run(kIp + " -n " + ns + " addr add " + ip + "/24 dev " + host) &&
           lab.run(kIp + " -n " + ns + " link set " + host + " up");
  };
  ASSERT_TRUE(veth('b', "10.77.0.2")) << lab.log();
  ASSERT_TRUE(veth('l', "10.77.0.4")) << lab.log();

  World w;
  w.add_account("relay", 0x55, true);
  const std::string stream = w.schedule();

  // The relay's link: two TAPs in the switch namespace joined by linkem, one moved to the relay.
  const std::string tap_sw = lab.ifname('r', 0), tap_host = lab.ifname('r', 1), R = lab.ns('r');
  Proc linkem(w, "linkem", {"netns", "exec", S, linkem_bin(), tap_sw, tap_host, "--delay", "40", "--loss", "0.02", "--seed", "7"},
              kIp);
  ASSERT_TRUE(wait_for([&] { return linkem.out().find("ready") != std::string::npos || !linkem.running(); }, 5s))
      << linkem.both();
  ASSERT_TRUE(linkem.running()) << linkem.both();
  ASSERT_TRUE(lab.run(kIp + " -n " + S + " link set " + tap_host + " netns " + R)) << lab.log();
  ASSERT_TRUE(lab.run(kIp + " -n " + S + " link set " + tap_sw + " master br0 up")) << lab.log();
  ASSERT_TRUE(lab.run(kIp + " -n " + R + " addr add 10.77.0.3/24 dev " + tap_host)) << lab.log();
  ASSERT_TRUE(lab.run(kIp + " -n " + R + " link set " + tap_host + " up")) << lab.log();

  auto in_ns = [&](char role, std::vector<std::string> args) {
    args.insert(args.begin(), {"netns", "exec", lab.ns(role), P2PSTREAM_BIN});
    return args;
  };
  Proc server(w, "signal", in_ns('s', {"signal", "--listen", "10.77.0.1:0"}), kIp);
  ASSERT_TRUE(wait_for([&] { return server.out().find('\n') != std::string::npos || !server.running(); }, 15s))
      << server.both();
  std::string url = server.out().substr(0, server.out().find('\n'));
  ASSERT_EQ(url.rfind("listening on http://10.77.0.1:", 0), 0u) << server.both();
  url = url.substr(std::string("listening on ").size());

  Proc b(w, "broadcast",
         in_ns('b', {"broadcast", stream, "--source", "test", "--size", "320x240", "--fps", std::to_string(kFps), "--bitrate",
                     "300k", "--no-audio", "--max-direct", "1", "--signal", url, "--account", "alice", "--json"}),
         kIp, debug_env("broadcast"));
  ASSERT_TRUE(wait_for([&] { return !b.running() || b.err().find("broadcasting ") != std::string::npos; }, 30s))
      << b.both() << server.both();
  // The jitter buffer must outlast a NACK round trip over the bad link (2 x 40 ms and more).
  const std::vector<std::string> watch_flags = {"--signal", url, "--null", "--stats=json", "--latency", "250"};
  auto watch = [&](const std::string& who, std::vector<std::string> extra) {
    std::vector<std::string> a = {"watch", stream, "--account", who};
    a.insert(a.end(), watch_flags.begin(), watch_flags.end());
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  Proc relay(w, "relay", in_ns('r', watch("relay", {"--relay", "1"})), kIp, debug_env("relay"));
  ASSERT_TRUE(wait_for([&] { return relay.last("frames") > 0 || !relay.running(); }, 30s)) << relay.both() << b.both();
  Proc leaf(w, "leaf", in_ns('l', watch("bob", {})), kIp, debug_env("leaf"));
  ASSERT_TRUE(wait_for([&] { return leaf.last("frames") > 0 || !leaf.running(); }, 30s)) << leaf.both() << relay.both();

  // Twelve seconds of playback through the loss.
  std::this_thread::sleep_for(12s);
  ASSERT_TRUE(relay.running() && leaf.running()) << relay.both() << leaf.both();
  EXPECT_EQ(relay.json_lines().back()["depth"], 1) << relay.out();
  EXPECT_EQ(leaf.json_lines().back()["depth"], 2) << "the leaf must be fed by the relay\n" << leaf.out();

  for (const Proc* p : {&relay, &leaf}) {
    auto d = deltas(*p);
    ASSERT_GE(d.size(), 10u) << p->both();
    // The first second after the first frame can be partial; every later one must hold more
    // than half its frames, so no freeze lasted 500 ms within a second.
    std::string per_second;
    long long total = 0;
    for (std::size_t i = 1; i < d.size(); ++i) {
      per_second += std::to_string(d[i]) + " ";
      total += d[i];
      EXPECT_GT(d[i], kFps / 2) << "second " << i << " nearly froze: " << d[i] << " frames\n" << p->out();
    }
    EXPECT_GE(total, static_cast<long long>(d.size() - 1) * kFps * 8 / 10) << per_second;
    std::printf("[ netns ] frames per second: %s(lost by RTCP count: %lld)\n", per_second.c_str(), p->last("packets_lost"));
  }

  // The link really lost packets both ways, which NACK/RTX had to recover.
  linkem.signal(SIGTERM);
  EXPECT_EQ(linkem.wait(5s), 0) << linkem.both();
  json stats = last_final(linkem);
  ASSERT_TRUE(stats.value("final", false)) << linkem.out();
  EXPECT_GT(stats["ab"]["dropped"].get<long long>(), 0) << stats;
  EXPECT_GT(stats["ba"]["dropped"].get<long long>(), 0) << stats;
  const double lost = static_cast<double>(stats["ab"]["dropped"].get<long long>() + stats["ba"]["dropped"].get<long long>());
  const double all = static_cast<double>(stats["ab"]["frames"].get<long long>() + stats["ba"]["frames"].get<long long>());
  EXPECT_NEAR(lost / all, 0.02, 0.01) << stats;
  std::printf("[ netns ] linkem: %s\n", stats.dump().c_str());
}
