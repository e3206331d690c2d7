// End to end relay tree on loopback: `p2pstream signal`, a broadcaster with --max-direct 2 and
// ten `watch --relay 2` processes. Checks the tree the watchers report in their --stats=json
// lines, that every watcher's frames grow, and that SIGKILL of an inner relay re-attaches its
// children, whose frames grow again within 3 s, while its grandchildren stay under them.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include "fixtures.hpp"

using nlohmann::json;
using namespace p2p::test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kRelays = 10;
constexpr int kFps = 15;

struct Watcher {
  std::string name, hex;
  std::unique_ptr<Proc> p;
};

std::string hex_of(const World& w, const std::string& name) {
  return json::parse(w.h.ok({"key", "show", name, "--json"}))["public_key"];
}

// The watcher's last --stats=json line that shows a placement (depth >= 1), or null.
json placed_line(const Proc& p) {
  auto lines = p.json_lines();
  for (auto it = lines.rbegin(); it != lines.rend(); ++it)
    if (it->value("depth", 0) >= 1 && (*it)["parent"].is_string()) return *it;
  return nullptr;
}

long long frames_of(const json& line) { return line.is_null() ? -1 : line.value("frames", -1LL); }

// A stats line seen by the test, with when it was seen (the test polls every 50 ms).
struct Seen {
  Clock::time_point at;
  json line;
};

// Follows a Proc's JSON lines as they appear.
class Follower {
 public:
  explicit Follower(const Proc& p) : p_(p) {}
  void poll() {
    auto lines = p_.json_lines();
    for (std::size_t i = seen_.size(); i < lines.size(); ++i) seen_.push_back({Clock::now(), lines[i]});
  }
  const std::vector<Seen>& seen() const { return seen_; }

 private:
  const Proc& p_;
  std::vector<Seen> seen_;
};

}  // namespace

TEST(CliRelay, TenRelayingWatchersFormAShallowTreeAndHealAfterAKill) {
  World w;
  std::vector<Watcher> ws(kRelays);
  for (int i = 0; i < kRelays; ++i) {
    ws[i].name = "relay" + std::to_string(i);
    w.add_account(ws[i].name, static_cast<unsigned char>(0x60 + i), true);
    ws[i].hex = hex_of(w, ws[i].name);
  }
  const std::string alice = hex_of(w, "alice");
  const std::string stream = w.schedule();
  SignalServer s(w);
  ASSERT_FALSE(s.url.empty()) << s.p.both();

  Proc b(w, "broadcast",
         {"broadcast", stream, "--source", "test", "--size", "160x120", "--fps", std::to_string(kFps), "--bitrate", "150k",
          "--no-audio", "--max-direct", "2", "--signal", s.url, "--account", "alice", "--json"});
  ASSERT_TRUE(wait_for([&] { return !b.running() || b.err().find("broadcasting ") != std::string::npos; }, 30s))
      << b.both();
  for (auto& x : ws) {
    x.p = std::make_unique<Proc>(w, x.name,
                                 std::vector<std::string>{"watch", stream, "--signal", s.url, "--account", x.name, "--relay",
                                                          "2", "--null", "--stats=json"});
    std::this_thread::sleep_for(150ms);  // join one after another, as people do
  }
  auto all_flowing = [&](long long min_frames) {
    for (auto& x : ws)
      if (frames_of(placed_line(*x.p)) < min_frames) return false;
    return true;
  };
  auto dump = [&] {
    std::string out;
    for (auto& x : ws) out += "== " + x.name + " " + x.hex + "\n" + x.p->both();
    return out + "== broadcast\n" + b.both();
  };
  ASSERT_TRUE(wait_for([&] { return all_flowing(10); }, 50s)) << dump();

  // The tree from the watchers' own reports: depth <= 3, each parent one level up, slots kept.
  std::map<std::string, std::pair<std::string, int>> where;  // hex -> (parent, depth)
  for (auto& x : ws) {
    json line = placed_line(*x.p);
    where[x.hex] = {line["parent"].get<std::string>(), line["depth"].get<int>()};
  }
  std::map<std::string, int> children;
  for (const auto& [id, pd] : where) {
    const auto& [parent, depth] = pd;
    EXPECT_GE(depth, 1);
    EXPECT_LE(depth, 3) << id;
    if (depth == 1) {
      EXPECT_EQ(parent, alice) << id;
    } else {
      ASSERT_TRUE(where.count(parent)) << id << " reports parent " << parent;
      EXPECT_EQ(where[parent].second, depth - 1) << id;
    }
    ++children[parent];
  }
  for (const auto& [parent, n] : children) EXPECT_LE(n, 2) << parent << " feeds more than its slots";
  EXPECT_EQ(children[alice], 2) << "the broadcaster feeds exactly --max-direct watchers";

  // Every watcher's frames grow.
  std::map<std::string, long long> before;
  for (auto& x : ws) before[x.name] = frames_of(placed_line(*x.p));
  EXPECT_TRUE(wait_for(
      [&] {
        for (auto& x : ws)
          if (frames_of(placed_line(*x.p)) <= before[x.name] + kFps / 2) return false;
        return true;
      },
      10s))
      << dump();

  // SIGKILL an inner relay at depth 1 (it has children and grandchildren).
  Watcher* victim = nullptr;
  for (auto& x : ws)
    if (where[x.hex].second == 1 && children[x.hex] > 0) victim = &x;
  ASSERT_NE(victim, nullptr);
  std::vector<Watcher*> kids, grandkids;
  for (auto& x : ws) {
    if (where[x.hex].first == victim->hex) kids.push_back(&x);
  }
  for (auto& x : ws)
    for (auto* k : kids)
      if (where[x.hex].first == k->hex) grandkids.push_back(&x);
  ASSERT_FALSE(kids.empty());

  std::vector<std::unique_ptr<Follower>> follow;
  for (auto* k : kids) follow.push_back(std::make_unique<Follower>(*k->p));
  for (auto& f : follow) f->poll();
  victim->p->signal(SIGKILL);
  const auto killed = Clock::now();

  // A child has recovered when a line printed after the last pre-kill frames could have arrived
  // (150 ms) names a new parent and shows more frames than the first such line: frames that
  // flowed after the kill, through the new parent. Seen times are late by at most a stats
  // interval, so this can only overstate the recovery time.
  std::vector<double> recovered_s(kids.size(), -1);
  wait_for(
      [&] {
        bool all = true;
        for (std::size_t i = 0; i < kids.size(); ++i) {
          follow[i]->poll();
          if (recovered_s[i] >= 0) continue;
          long long base = -1;
          for (const auto& seen : follow[i]->seen()) {
            if (seen.at < killed + 150ms) continue;
            long long f = frames_of(seen.line);
            if (base < 0) {
              base = f;
              continue;
            }
            if (seen.line["parent"].is_string() && seen.line["parent"] != victim->hex && f > base) {
              recovered_s[i] = std::chrono::duration<double>(seen.at - killed).count();
              break;
            }
          }
          all = all && recovered_s[i] >= 0;
        }
        return all;
      },
      15s);
  for (std::size_t i = 0; i < kids.size(); ++i) {
    ASSERT_GE(recovered_s[i], 0) << kids[i]->name << " did not recover\n" << dump();
    EXPECT_LE(recovered_s[i], 3.0) << kids[i]->name << " recovered after " << recovered_s[i] << " s\n" << dump();
    json line = placed_line(*kids[i]->p);
    EXPECT_NE(line["parent"], victim->hex);
    std::printf("[ relay ] %s re-attached under %s at depth %d; frames again after %.2f s\n", kids[i]->name.c_str(),
                line["parent"].get<std::string>().substr(0, 10).c_str(), line["depth"].get<int>(), recovered_s[i]);
  }
  // The grandchildren kept their parents (the subtree moved whole) and their frames grow again.
  for (auto* g : grandkids) {
    const std::string parent = where[g->hex].first;
    const long long f0 = frames_of(placed_line(*g->p));
    EXPECT_TRUE(wait_for([&] { return frames_of(placed_line(*g->p)) > f0 + kFps; }, 8s)) << g->name << "\n" << dump();
    EXPECT_EQ(placed_line(*g->p)["parent"], parent) << g->name;
  }
  // Nobody else was disturbed.
  for (auto& x : ws) {
    if (&x == victim) continue;
    EXPECT_TRUE(x.p->running()) << x.name << "\n" << x.p->both();
  }
}
