// Browser interop (issue 4): headless Debian chromium, driven by tests/js/browser/run.mjs, plays the
// w3bstreaming web app against `p2pstream signal`, watching `p2pstream broadcast` and broadcasting
// to `p2pstream watch`. These fail, not skip, when node, playwright-core or chromium is missing.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "harness.hpp"

using nlohmann::json;
using p2p::test::Home;
using p2p::test::trim;
namespace fs = std::filesystem;

namespace {

const fs::path kJs = fs::path(P2P_SOURCE_DIR) / "tests/js";
// P2P_CHROMIUM overrides the browser (e.g. to check that a missing one fails the tests).
const std::string kChromium = std::getenv("P2P_CHROMIUM") ? std::getenv("P2P_CHROMIUM") : "/usr/bin/chromium";

std::string seed_hex(unsigned char fill) {
  std::string s = "0x";
  for (int i = 0; i < 32; ++i) s += fmt::format("{:02x}", fill);
  return s;
}

// alice (0x11) broadcasts from the CLI and bob (0x22) watches her in the page; carol (0x33)
// broadcasts from the page and dave (0x44, CLI) and bob watch her.
struct World {
  Home h;
  std::string alice_stream, carol_stream;
  World() {
    const std::pair<const char*, unsigned char> keys[] = {{"alice", 0x11}, {"bob", 0x22}, {"carol", 0x33}, {"dave", 0x44}};
    for (const auto& [name, fill] : keys) {
      h.ok({"key", "import", name, "--seed", seed_hex(fill)});
      h.ok({"profile", "set", "--name", name, "--account", name});
    }
    auto addr = [&](const char* n) { return json::parse(h.ok({"key", "show", n, "--json"}))["address"].get<std::string>(); };
    const std::string alice = addr("alice"), carol = addr("carol");
    h.ok({"subscribe", alice, "--account", "bob"});
    h.ok({"subscribe", carol, "--account", "bob"});
    h.ok({"subscribe", carol, "--account", "dave"});
    alice_stream = trim(h.ok({"schedule", "--title", "CLI to browser", "--start", "now", "--duration", "1h", "--account", "alice"}));
    carol_stream = trim(h.ok({"schedule", "--title", "Browser to CLI", "--start", "now", "--duration", "1h", "--account", "carol"}));
  }
  std::map<std::string, std::string> env() const {
    return {{"HOME", h.dir().string()},
            {"XDG_CONFIG_HOME", (h.dir() / "config").string()},
            {"XDG_DATA_HOME", (h.dir() / "data").string()},
            {"PATH", "/usr/local/bin:/usr/bin:/bin"},
            {"TZ", "UTC"},
            {"NO_COLOR", "1"},
            {"P2PSTREAM_PASSPHRASE", ""}};
  }
};

std::vector<char*> cstrings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}
std::vector<std::string> env_list(const std::map<std::string, std::string>& env) {
  std::vector<std::string> out;
  for (const auto& [k, v] : env) out.push_back(k + "=" + v);
  return out;
}

struct Ran {
  int code = -1;
  std::string out, err;
};

// Runs a program to completion (stdout and stderr apart), killed after timeout_s.
Ran run(std::vector<std::string> argv, const std::map<std::string, std::string>& env, int timeout_s) {
  auto envs = env_list(env);
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) || ::pipe2(err, O_CLOEXEC)) throw std::runtime_error("pipe");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  auto a = cstrings(argv);
  auto e = cstrings(envs);
  pid_t pid;
  int rc = posix_spawnp(&pid, a[0], &fa, nullptr, a.data(), e.data());
  posix_spawn_file_actions_destroy(&fa);
  ::close(out[1]);
  ::close(err[1]);
  Ran r;
  if (rc != 0) {
    ::close(out[0]);
    ::close(err[0]);
    r.code = 127;
    r.err = "cannot run " + argv[0];
    return r;
  }
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  pollfd p[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  std::string* sink[2] = {&r.out, &r.err};
  int open = 2;
  char buf[8192];
  while (open > 0) {
    int ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now()).count());
    if (ms <= 0) {
      ::kill(pid, SIGKILL);
      r.err += "\n[killed after " + std::to_string(timeout_s) + " s]";
      break;
    }
    if (::poll(p, 2, ms) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP))) continue;
      ssize_t n = ::read(p[i].fd, buf, sizeof buf);
      if (n > 0) {
        sink[i]->append(buf, static_cast<std::size_t>(n));
      } else {
        p[i].fd = -1;
        --open;
      }
    }
  }
  ::close(out[0]);
  ::close(err[0]);
  int st = 0;
  ::waitpid(pid, &st, 0);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

// `p2pstream signal --listen 127.0.0.1:0` in the background, stopped (SIGTERM) by the destructor.
class Signal {
 public:
  explicit Signal(const World& w) : log_(w.h.dir() / "signal.log") {
    std::vector<std::string> argv = {P2PSTREAM_BIN, "signal", "--listen", "127.0.0.1:0"};
    auto envs = env_list(w.env());
    int out[2];
    if (::pipe2(out, O_CLOEXEC)) throw std::runtime_error("pipe");
    int err = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err, 2);
    auto a = cstrings(argv);
    auto e = cstrings(envs);
    int rc = posix_spawn(&pid_, a[0], &fa, nullptr, a.data(), e.data());
    posix_spawn_file_actions_destroy(&fa);
    ::close(out[1]);
    ::close(err);
    if (rc != 0) throw std::runtime_error("posix_spawn failed");
    out_ = out[0];
    // The first line is "listening on URL".
    std::string line;
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < end) {
      pollfd p{out_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char c;
      if (::read(out_, &c, 1) != 1 || c == '\n') break;
      line += c;
    }
    const std::string prefix = "listening on ";
    if (line.rfind(prefix, 0) == 0) url_ = line.substr(prefix.size());
  }
  ~Signal() { stop(); }
  const std::string& url() const { return url_; }
  std::string log() const {
    std::ifstream in(log_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  int stop() {
    if (pid_ <= 0) return status_;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 1000; ++i) {
      int st = 0;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        pid_ = -1;
        ::close(out_);
        return status_;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
    ::close(out_);
    return status_ = -1;
  }

 private:
  fs::path log_;
  pid_t pid_ = -1;
  int out_ = -1;
  int status_ = -1;
  std::string url_;
};

// What the browser side needs; the message says how to get what is missing.
std::string missing_tools() {
  std::string why;
  if (run({"node", "--version"}, {{"PATH", "/usr/local/bin:/usr/bin:/bin"}}, 20).code != 0)
    why += "node (Node.js >= 18) is not installed; ";
  for (const char* m : {"playwright-core", "socket.io-client", "@polkadot/util-crypto"})
    if (!fs::exists(kJs / "node_modules" / m)) why += fmt::format("tests/js/node_modules/{} is missing (npm ci --prefix tests/js); ", m);
  if (::access(kChromium.c_str(), X_OK) != 0)
    why += kChromium + " is missing (apt-get install chromium; scripts/install-deps.sh); ";
  return why;
}

#define REQUIRE_BROWSER()                                                                  \
  do {                                                                                     \
    static const std::string why = missing_tools();                                        \
    ASSERT_TRUE(why.empty()) << "browser interop needs node, chromium and tests/js: " << why; \
  } while (0)

// Runs the runner and returns its JSON report (the last stdout line starting with '{').
json runner(const World& w, const Signal& s, std::vector<std::string> args, Ran& r) {
  std::vector<std::string> argv = {"node", (kJs / "browser/run.mjs").string(), "--url", s.url(), "--bin", P2PSTREAM_BIN,
                                   "--timeout", "30", "--min-frames", "30", "--chromium", kChromium};
  argv.insert(argv.end(), args.begin(), args.end());
  r = run(argv, w.env(), 110);
  std::istringstream in(r.out);
  std::string line, last;
  while (std::getline(in, line))
    if (!line.empty() && line[0] == '{') last = line;
  try {
    return json::parse(last);
  } catch (const std::exception&) {
    return json::object();
  }
}

// Every check the runner made, failed ones first, for the failure message.
std::string failed_checks(const json& j) {
  std::string s;
  if (j.contains("setup_error")) s += "setup: " + j["setup_error"].get<std::string>() + "\n";
  for (const auto& c : j.value("checks", json::array()))
    if (!c.value("ok", false)) s += "FAILED " + c.value("what", "") + ": " + c.value("detail", "") + "\n";
  return s;
}

std::string report(const json& j, const Ran& r, const Signal& s) {
  return failed_checks(j) + "--- runner report ---\n" + j.dump(1) + "\n--- runner stderr ---\n" + r.err +
         "\n--- signal log ---\n" + s.log();
}

}  // namespace

TEST(CliBrowser, ChromiumWatchesACliBroadcast) {
  REQUIRE_BROWSER();
  World w;
  Signal s(w);
  ASSERT_FALSE(s.url().empty()) << s.log();
  Ran r;
  json j = runner(w, s, {"--case", "watch-cli", "--stream", w.alice_stream, "--page-seed", seed_hex(0x22), "--cli-account", "alice"}, r);
  EXPECT_EQ(r.code, 0) << report(j, r, s);
  ASSERT_TRUE(j.value("ok", false)) << report(j, r, s);
  // The runner's own verdict is not taken on trust: the figures it read from the page.
  const json& v = j["watcher"];
  EXPECT_GE(v["frames"].get<int>(), 30);
  EXPECT_GE(v["video"]["framesDecoded"].get<int>(), 30);
  EXPECT_GT(v["audio"]["totalSamplesReceived"].get<long>(), 0);
  EXPECT_GT(v["analyserPeak"].get<double>(), 0.01);
  EXPECT_EQ(j["cli"]["exit"], 0) << j["cli"].dump(1);
  EXPECT_EQ(s.stop(), 0) << s.log();
}

TEST(CliBrowser, CliWatchRecordsAChromiumBroadcast) {
  REQUIRE_BROWSER();
  World w;
  Signal s(w);
  ASSERT_FALSE(s.url().empty()) << s.log();
  const fs::path out = w.h.dir() / "from-browser.mkv";
  // 8 s, not 5: on a loaded 2-core machine connecting alone can take 3-4 s.
  Ran r;
  json j = runner(w, s, {"--case", "broadcast-cli", "--stream", w.carol_stream, "--page-seed", seed_hex(0x33), "--cli-account",
                         "dave", "--out", out.string(), "--duration", "8"},
                  r);
  EXPECT_EQ(r.code, 0) << report(j, r, s);
  ASSERT_TRUE(j.value("ok", false)) << report(j, r, s);
  EXPECT_EQ(j["cli"]["exit"], 0) << j["cli"].dump(1);
  ASSERT_TRUE(fs::exists(out));
  EXPECT_GT(fs::file_size(out), 10000u);
  // gst-discoverer again, from here, on the file the CLI wrote.
  auto d = run({"gst-discoverer-1.0", out.string()}, w.env(), 30);
  EXPECT_EQ(d.code, 0) << d.out << d.err;
  EXPECT_NE(d.out.find("video"), std::string::npos) << d.out;
  EXPECT_NE(d.out.find("audio"), std::string::npos) << d.out;
  EXPECT_EQ(s.stop(), 0) << s.log();
}

// Both ends are the page: our server between two real browsers, the watcher joining before the
// broadcast is live (it hears "hasn't started yet" and retries, as the app does).
TEST(CliBrowser, TwoChromiumPagesThroughOurServer) {
  REQUIRE_BROWSER();
  World w;
  Signal s(w);
  ASSERT_FALSE(s.url().empty()) << s.log();
  Ran r;
  json j = runner(w, s, {"--case", "browser-pair", "--stream", w.carol_stream, "--peer-seed", seed_hex(0x33), "--page-seed", seed_hex(0x22),
                         "--watch-first", "yes"}, r);
  EXPECT_EQ(r.code, 0) << report(j, r, s);
  ASSERT_TRUE(j.value("ok", false)) << report(j, r, s);
  EXPECT_GE(j["watcher"]["frames"].get<int>(), 30);
  EXPECT_GT(j["watcher"]["audio"]["totalSamplesReceived"].get<long>(), 0);
  EXPECT_EQ(s.stop(), 0) << s.log();
}

// The deployed web app's own payloads: answer {watcherId, description} and candidate {id, candidate},
// neither with streamId. The server infers the stream and forwards them; media must flow.
TEST(CliBrowser, TheWebAppsAnswerAndCandidateShapesPassOurServer) {
  REQUIRE_BROWSER();
  World w;
  Signal s(w);
  ASSERT_FALSE(s.url().empty()) << s.log();
  Ran r;
  json j = runner(w, s, {"--case", "browser-pair", "--dialect", "app", "--stream", w.carol_stream, "--peer-seed", seed_hex(0x33),
                         "--page-seed", seed_hex(0x22)}, r);
  EXPECT_EQ(r.code, 0) << report(j, r, s);
  ASSERT_TRUE(j.value("ok", false)) << report(j, r, s);
  EXPECT_GE(j["watcher"]["frames"].get<int>(), 30);
  EXPECT_GE(j["watcher"]["video"]["framesDecoded"].get<int>(), 30);
  EXPECT_EQ(s.stop(), 0) << s.log();
}
