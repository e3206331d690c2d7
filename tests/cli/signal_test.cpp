// End to end: `p2pstream signal` on 127.0.0.1 with a free port, its chain data prepared on the
// embedded ledger by the binary itself, exercised by npm's socket.io-client (tests/js/signal_*.mjs,
// failing without node) and by our own client (lib/signal_client) in this process.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "fixtures.hpp"
#include "harness.hpp"
#include "keys/ed25519.hpp"
#include "signal_client/client.hpp"
#include "signal_client/w3b_signaller.hpp"
#include "signal_server/rawws.hpp"
#include "signal_server/server.hpp"

extern char** environ;

using nlohmann::json;
using p2p::test::Home;
using p2p::test::seed_hex;
using p2p::test::trim;
namespace sc = p2p::signal_client;

namespace {

p2p::keys::Keypair keypair(unsigned char fill) {
  p2p::keys::Seed seed;
  seed.fill(fill);
  return p2p::keys::Keypair::from_seed(seed);
}

// The shared world (alice broadcasts; bob and dave subscribe; carol does not) with one live stream.
struct World : p2p::test::World {
  std::string stream = schedule();
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

// `p2pstream signal ...` in the background, stopped (SIGTERM) when this goes away.
class ServerProcess {
 public:
  ServerProcess(const World& w, std::vector<std::string> args) : log_(w.h.dir() / "signal.log") {
    std::vector<std::string> argv = {P2PSTREAM_BIN, "signal"};
    argv.insert(argv.end(), args.begin(), args.end());
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
    first_line_ = read_line(10000);
  }
  ~ServerProcess() { stop(); }

  // The URL from "listening on URL", empty if the server did not start.
  std::string url() const {
    const std::string prefix = "listening on ";
    return first_line_.rfind(prefix, 0) == 0 ? first_line_.substr(prefix.size()) : std::string();
  }
  int port() const { return std::stoi(url().substr(url().rfind(':') + 1)); }
  pid_t pid() const { return pid_; }
  const std::string& first_line() const { return first_line_; }
  std::string log() const {
    std::ifstream in(log_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  bool alive() const { return pid_ > 0 && ::waitpid(pid_, nullptr, WNOHANG) == 0; }

  // SIGTERM, then the exit status (128+signal when killed); -1 if it would not stop in 10 s.
  int stop() {
    if (pid_ <= 0) return status_;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 1000; ++i) {
      int st = 0;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        pid_ = -1;
        if (out_ >= 0) ::close(out_);
        out_ = -1;
        return status_;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
    return status_ = -1;
  }

  // VmRSS in KiB from /proc.
  long rss_kib() const {
    std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
    std::string line;
    while (std::getline(in, line))
      if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    return -1;
  }

 private:
  std::string read_line(int timeout_ms) {
    std::string line;
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < end) {
      pollfd p{out_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char c;
      if (::read(out_, &c, 1) != 1) break;
      if (c == '\n') break;
      line += c;
    }
    return line;
  }
  std::filesystem::path log_;
  pid_t pid_ = -1;
  int out_ = -1;
  int status_ = -1;
  std::string first_line_;
};

struct Ran {
  int code = -1;
  std::string out;
};

// Runs a program to completion (output of both streams together), killed after timeout_s.
Ran run(std::vector<std::string> argv, const std::map<std::string, std::string>& env, int timeout_s = 120) {
  auto envs = env_list(env);
  int out[2];
  if (::pipe2(out, O_CLOEXEC)) throw std::runtime_error("pipe");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, out[1], 2);
  auto a = cstrings(argv);
  auto e = cstrings(envs);
  pid_t pid;
  int rc = posix_spawnp(&pid, a[0], &fa, nullptr, a.data(), e.data());
  posix_spawn_file_actions_destroy(&fa);
  ::close(out[1]);
  if (rc != 0) {
    ::close(out[0]);
    return {127, std::string("cannot run ") + argv[0]};
  }
  Ran r;
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  char buf[4096];
  while (true) {
    pollfd p{out[0], POLLIN, 0};
    int ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now()).count());
    if (ms <= 0) {
      ::kill(pid, SIGKILL);
      r.out += "\n[killed after timeout]";
      break;
    }
    if (::poll(&p, 1, ms) <= 0) continue;
    ssize_t n = ::read(out[0], buf, sizeof buf);
    if (n <= 0) break;
    r.out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(out[0]);
  int st = 0;
  ::waitpid(pid, &st, 0);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

bool have_node() {
  static const bool yes = run({"node", "--version"}, {{"PATH", "/usr/local/bin:/usr/bin:/bin"}}, 20).code == 0 &&
                          std::filesystem::exists(std::filesystem::path(P2P_SOURCE_DIR) / "tests/js/node_modules/socket.io-client") &&
                          std::filesystem::exists(std::filesystem::path(P2P_SOURCE_DIR) / "tests/js/node_modules/ws");
  return yes;
}

#define REQUIRE_NODE()                                                                                 \
  if (!have_node()) GTEST_FAIL() << "node or tests/js/node_modules missing: run scripts/install-deps.sh (npm ci --prefix tests/js)"

Ran node(const World& w, const std::string& script, std::vector<std::string> args,
         std::map<std::string, std::string> extra_env = {}) {
  std::vector<std::string> argv = {"node", (std::filesystem::path(P2P_SOURCE_DIR) / "tests/js" / script).string()};
  argv.insert(argv.end(), args.begin(), args.end());
  auto env = w.env();
  env.insert(extra_env.begin(), extra_env.end());
  return run(argv, env);
}

std::vector<std::string> seeds() {
  return {"--broadcaster", seed_hex(0x11), "--watcher", seed_hex(0x22), "--watcher2", seed_hex(0x44), "--outsider", seed_hex(0x33)};
}

void conformance(const std::string& which, const std::string& transports, std::vector<std::string> server_flags = {}) {
  World w;
  server_flags.insert(server_flags.begin(), {"--listen", "127.0.0.1:0"});
  ServerProcess s(w, server_flags);
  ASSERT_FALSE(s.url().empty()) << s.first_line() << s.log();
  std::vector<std::string> args = {"--url", s.url(), "--stream", w.stream, "--case", which, "--transports", transports};
  auto sd = seeds();
  args.insert(args.end(), sd.begin(), sd.end());
  auto r = node(w, "signal_conformance.mjs", args);
  EXPECT_EQ(r.code, 0) << r.out << "\n--- server log ---\n" << s.log();
  EXPECT_NE(r.out.find("all checks passed"), std::string::npos) << r.out;
  EXPECT_EQ(s.stop(), 0) << s.log();
}

// A plain HTTP/1.0 GET on 127.0.0.1; returns status line + headers + body.
std::string http_get(int port, const std::string& target) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return "";
  }
  std::string req = "GET " + target + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  (void)!::write(fd, req.data(), req.size());
  std::string out;
  char buf[4096];
  pollfd p{fd, POLLIN, 0};
  while (::poll(&p, 1, 5000) > 0) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}
std::string body_of(const std::string& response) {
  auto i = response.find("\r\n\r\n");
  return i == std::string::npos ? "" : response.substr(i + 4);
}

// Runs the default main context until pred() holds or timeout_ms passes.
bool spin_until(const std::function<bool()>& pred, int timeout_ms = 5000) {
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    g_main_context_iteration(nullptr, FALSE);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// One W3bSignaller whose callbacks are written to a shared log.
struct Recorder {
  std::vector<std::string> log;
  bool has(const std::string& line) const { return std::find(log.begin(), log.end(), line) != log.end(); }
  std::string dump() const {
    std::string s;
    for (const auto& l : log) s += l + "\n";
    return s;
  }
  p2p::media::SignallerEvents callbacks(const std::string& who) {
    p2p::media::SignallerEvents cb;
    cb.session_requested = [this, who](const std::string& s, const std::string& peer) {
      log.push_back(who + " requested " + s + " " + peer);
    };
    cb.remote_sdp = [this, who](const std::string& s, const p2p::media::Sdp& sdp) {
      log.push_back(who + " sdp " + s + " " + p2p::media::to_string(sdp.type) + " " + sdp.text);
    };
    cb.remote_ice = [this, who](const std::string& s, const std::string& c, unsigned mline) {
      log.push_back(who + " ice " + s + " " + c + " " + std::to_string(mline));
    };
    cb.session_ended = [this, who](const std::string& s) { log.push_back(who + " ended " + s); };
    cb.error = [this, who](const std::string& m) { log.push_back(who + " error " + m); };
    cb.notice = [this, who](const std::string& m) { log.push_back(who + " notice " + m); };
    cb.placement = [this, who](const std::string& parent, unsigned depth) {
      log.push_back(who + " placement " + parent + " " + std::to_string(depth));
    };
    return cb;
  }
};

sc::W3bOptions options(const std::string& url, sc::W3bRole role, unsigned char fill, const std::string& stream) {
  sc::W3bOptions o;
  o.client.url = url;
  o.client.reconnect_min_ms = 100;
  o.client.reconnect_max_ms = 500;
  o.role = role;
  o.key = keypair(fill);
  o.stream_id = stream;
  o.watch_retry_ms = 200;
  return o;
}

std::string hex_id(unsigned char fill) { return p2p::to_hex(keypair(fill).public_key()); }

}  // namespace

TEST(CliSignal, PrintsListeningLineFirstAndStopsOnSigterm) {
  World w;
  ServerProcess s(w, {"--listen", "127.0.0.1:0"});
  ASSERT_EQ(s.first_line().rfind("listening on http://127.0.0.1:", 0), 0u) << s.first_line() << s.log();
  EXPECT_GT(s.port(), 0);
  EXPECT_EQ(body_of(http_get(s.port(), "/healthz")), "ok\n");
  EXPECT_EQ(s.stop(), 0) << s.log();
  EXPECT_NE(s.log().find("stopping"), std::string::npos) << s.log();
}

TEST(CliSignal, HttpEndpoints) {
  World w;
  ServerProcess s(w, {"--listen", "127.0.0.1:0"});
  ASSERT_FALSE(s.url().empty()) << s.log();
  auto metrics = http_get(s.port(), "/metrics");
  EXPECT_NE(metrics.find(" 200 OK"), std::string::npos) << metrics;
  for (const char* name : {"p2pstream_signal_connections 0", "p2pstream_signal_streams 0", "p2pstream_signal_watchers 0",
                           "p2pstream_signal_messages_relayed_total 0", "p2pstream_signal_chain_lookups_total 0",
                           "p2pstream_signal_refusals_total{reason=\"not_subscribed\"} 0",
                           "# TYPE p2pstream_signal_connections gauge"})
    EXPECT_NE(metrics.find(name), std::string::npos) << name << "\n" << metrics;
  EXPECT_EQ(body_of(http_get(s.port(), "/is-already-having-stream?address=" + hex_id(0x11))), "false");
  EXPECT_EQ(body_of(http_get(s.port(), "/is-already-having-stream?address=garbage")), "false");
  EXPECT_EQ(body_of(http_get(s.port(), "/is-already-having-stream")), "false");
  EXPECT_NE(http_get(s.port(), "/nope").find(" 404 Not Found"), std::string::npos);

  auto unknown = http_get(s.port(), "/socket.io/?EIO=4&transport=polling&sid=doesnotexist");
  EXPECT_NE(unknown.find(" 400 Bad Request"), std::string::npos) << unknown;
  EXPECT_EQ(json::parse(body_of(unknown)), json::parse(R"({"code":1,"message":"Session ID unknown"})"));
  auto v3 = json::parse(body_of(http_get(s.port(), "/socket.io/?EIO=3&transport=polling")));
  EXPECT_EQ(v3["code"], 5);
  auto open = body_of(http_get(s.port(), "/socket.io/?EIO=4&transport=polling"));
  ASSERT_EQ(open.substr(0, 1), "0") << open;
  auto handshake = json::parse(open.substr(1));
  EXPECT_EQ(handshake["sid"].get<std::string>().size(), 20u);
  EXPECT_EQ(handshake["upgrades"], json::array({"websocket"}));
  EXPECT_EQ(handshake["pingInterval"], 25000);
  EXPECT_EQ(handshake["pingTimeout"], 20000);
  EXPECT_EQ(handshake["maxPayload"], 1000000);
  // A websocket transport request that is not a WebSocket handshake.
  auto notws = http_get(s.port(), "/socket.io/?EIO=4&transport=websocket");
  EXPECT_NE(notws.find(" 400 Bad Request"), std::string::npos) << notws;
  EXPECT_EQ(json::parse(body_of(notws))["code"], 3);
}

TEST(CliSignal, UsageErrors) {
  World w;
  auto r = w.h.run({"signal", "--listen", "nonsense:port"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("--listen"), std::string::npos) << r.err;
  r = w.h.run({"signal", "--tls-cert", "/nonexistent.pem"});
  EXPECT_EQ(r.code, 2) << r.err;
  r = w.h.run({"signal", "--listen", "127.0.0.1:0", "--tls-cert", "/nonexistent.pem", "--tls-key", "/nonexistent.key"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("TLS certificate"), std::string::npos) << r.err;
  r = w.h.run({"signal", "--listen", "999.1.1.1:0"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_TRUE(r.out.empty()) << "nothing on stdout before listening: " << r.out;
}

TEST(CliSignal, ConformancePollingWithUpgrade) {
  REQUIRE_NODE();
  conformance("exchange", "polling,websocket");
}

TEST(CliSignal, ConformanceWebsocketOnly) {
  REQUIRE_NODE();
  conformance("exchange", "websocket");
}

TEST(CliSignal, ConformancePollingOnly) {
  REQUIRE_NODE();
  conformance("exchange", "polling");
}

TEST(CliSignal, ConformanceRefusals) {
  REQUIRE_NODE();
  conformance("refusals", "polling,websocket");
}

TEST(CliSignal, ConformanceDisconnectCleanUp) {
  REQUIRE_NODE();
  conformance("disconnect", "websocket");
  conformance("disconnect", "polling");
}

TEST(CliSignal, LegacySignedMsgOnlyWithTheFlag) {
  REQUIRE_NODE();
  conformance("legacy-off", "websocket");
  conformance("legacy", "websocket", {"--legacy-auth"});
}

TEST(CliSignal, OwnClientExchange) {
  World w;
  ServerProcess s(w, {"--listen", "127.0.0.1:0"});
  ASSERT_FALSE(s.url().empty()) << s.log();
  const std::string A = hex_id(0x11), Bob = hex_id(0x22);
  Recorder rec;
  sc::W3bSignaller b(options(s.url(), sc::W3bRole::broadcaster, 0x11, w.stream));
  sc::W3bSignaller v(options(s.url(), sc::W3bRole::watcher, 0x22, w.stream));
  b.set_events(rec.callbacks("B"));
  v.set_events(rec.callbacks("W"));
  bool live = false;
  b.client().on("isStreaming", [&](const sc::Json& a) { live = a.size() == 1 && a[0] == true; });
  b.start();
  ASSERT_TRUE(spin_until([&] { return live; })) << rec.dump() << s.log();
  v.start();
  ASSERT_TRUE(spin_until([&] { return rec.has("B requested " + Bob + " " + Bob); })) << rec.dump() << s.log();
  b.send_sdp(Bob, {p2p::media::SdpType::offer, "v=0 offer"});
  ASSERT_TRUE(spin_until([&] { return rec.has("W sdp " + A + " offer v=0 offer"); })) << rec.dump();
  EXPECT_EQ(v.parent(), A);
  v.send_sdp(A, {p2p::media::SdpType::answer, "v=0 answer"});
  ASSERT_TRUE(spin_until([&] { return rec.has("B sdp " + Bob + " answer v=0 answer"); })) << rec.dump();
  b.add_ice(Bob, "candidate:1 1 udp 2122260223 127.0.0.1 50001 typ host", 0);
  v.add_ice(A, "candidate:2 1 udp 2122260223 127.0.0.1 50002 typ host", 1);
  ASSERT_TRUE(spin_until([&] {
    return rec.has("W ice " + A + " candidate:1 1 udp 2122260223 127.0.0.1 50001 typ host 0") &&
           rec.has("B ice " + Bob + " candidate:2 1 udp 2122260223 127.0.0.1 50002 typ host 1");
  })) << rec.dump();

  // The watcher hangs up: the broadcaster's session ends.
  v.end_session(A);
  ASSERT_TRUE(spin_until([&] { return rec.has("B ended " + Bob); })) << rec.dump();
  // It comes back; the broadcaster offers again; then the broadcast stops.
  v.stop();
  rec.log.clear();
  v.start();
  ASSERT_TRUE(spin_until([&] { return rec.has("B requested " + Bob + " " + Bob); })) << rec.dump() << s.log();
  b.send_sdp(Bob, {p2p::media::SdpType::offer, "v=0 offer 2"});
  ASSERT_TRUE(spin_until([&] { return rec.has("W sdp " + A + " offer v=0 offer 2"); })) << rec.dump();
  b.stop();
  ASSERT_TRUE(spin_until([&] { return rec.has("W ended " + A); })) << rec.dump();
  EXPECT_EQ(body_of(http_get(s.port(), "/is-already-having-stream?address=" + A)), "false");
  for (const auto& l : rec.log) EXPECT_EQ(l.find(" error "), std::string::npos) << l;
  v.stop();
}

TEST(CliSignal, OwnClientWatcherWaitsForTheStreamAndHearsRefusals) {
  World w;
  ServerProcess s(w, {"--listen", "127.0.0.1:0"});
  ASSERT_FALSE(s.url().empty()) << s.log();
  const std::string Bob = hex_id(0x22);
  Recorder rec;
  sc::W3bSignaller v(options(s.url(), sc::W3bRole::watcher, 0x22, w.stream));
  sc::W3bSignaller carol(options(s.url(), sc::W3bRole::watcher, 0x33, w.stream));
  sc::W3bSignaller b(options(s.url(), sc::W3bRole::broadcaster, 0x11, w.stream));
  v.set_events(rec.callbacks("W"));
  carol.set_events(rec.callbacks("C"));
  b.set_events(rec.callbacks("B"));
  v.start();
  const std::string not_started = "W notice Stream with id " + w.stream + " hasn't started yet: waiting for it to start";
  ASSERT_TRUE(spin_until([&] { return rec.has(not_started); })) << rec.dump();
  b.start();  // the watcher's retry finds the stream live
  ASSERT_TRUE(spin_until([&] { return rec.has("B requested " + Bob + " " + Bob); })) << rec.dump() << s.log();
  EXPECT_EQ(std::count(rec.log.begin(), rec.log.end(), not_started), 1) << "reported once, retried quietly";
  carol.start();
  ASSERT_TRUE(spin_until([&] { return rec.has("C error You aren't subscribed to this speaker"); })) << rec.dump();

  // Carol subscribes on chain; the server notices from the ledger log, not only after the cache TTL.
  w.h.ok({"subscribe", w.alice, "--account", "carol"});
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  carol.stop();
  carol.start();
  const std::string Carol = hex_id(0x33);
  ASSERT_TRUE(spin_until([&] { return rec.has("B requested " + Carol + " " + Carol); }, 8000)) << rec.dump() << s.log();
  b.stop();
  v.stop();
  carol.stop();
}

TEST(CliSignal, OwnClientReconnectsAndRejoins) {
  World w;
  auto s = std::make_unique<ServerProcess>(w, std::vector<std::string>{"--listen", "127.0.0.1:0"});
  ASSERT_FALSE(s->url().empty()) << s->log();
  const int port = s->port();
  const std::string url = s->url();
  Recorder rec;
  sc::W3bSignaller b(options(url, sc::W3bRole::broadcaster, 0x11, w.stream));
  b.set_events(rec.callbacks("B"));
  int live = 0;
  std::string gone;
  b.client().on("isStreaming", [&](const sc::Json& a) { live += a[0] == true; });
  b.client().on_disconnect([&](const std::string& why) { gone = why; });
  b.start();
  ASSERT_TRUE(spin_until([&] { return live == 1; })) << rec.dump();
  EXPECT_EQ(s->stop(), 0);
  ASSERT_TRUE(spin_until([&] { return !gone.empty(); })) << rec.dump();
  s = std::make_unique<ServerProcess>(w, std::vector<std::string>{"--listen", "127.0.0.1:" + std::to_string(port)});
  ASSERT_EQ(s->url(), url) << s->first_line() << s->log();
  ASSERT_TRUE(spin_until([&] { return live == 2; }, 10000)) << "rejoined after reconnecting\n" << rec.dump() << s->log();
  EXPECT_GE(b.client().reconnects(), 1);
  EXPECT_EQ(body_of(http_get(port, "/is-already-having-stream?address=" + hex_id(0x11))), "true");
  b.stop();
}

TEST(CliSignal, TlsWithASelfSignedCertificate) {
  World w;
  auto dir = w.h.dir();
  auto gen = run({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                  "-keyout", (dir / "key.pem").string(), "-out", (dir / "cert.pem").string(), "-days", "1", "-subj",
                  "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"},
                 w.env(), 60);
  if (gen.code == 127) GTEST_FAIL() << "openssl is not installed: run scripts/install-deps.sh";
  ASSERT_EQ(gen.code, 0) << gen.out;
  ServerProcess s(w, {"--listen", "127.0.0.1:0", "--tls-cert", (dir / "cert.pem").string(), "--tls-key",
                      (dir / "key.pem").string()});
  ASSERT_EQ(s.url().rfind("https://127.0.0.1:", 0), 0u) << s.first_line() << s.log();

  // Our client, trusting the certificate by CA file.
  sc::W3bOptions o = options(s.url(), sc::W3bRole::broadcaster, 0x11, w.stream);
  o.client.tls_ca_file = (dir / "cert.pem").string();
  sc::W3bSignaller b(o);
  Recorder rec;
  b.set_events(rec.callbacks("B"));
  bool live = false;
  b.client().on("isStreaming", [&](const sc::Json& a) { live = a[0] == true; });
  b.start();
  ASSERT_TRUE(spin_until([&] { return live; }, 8000)) << rec.dump() << s.log();
  b.stop();

  // Without trusting it, the client reports the certificate problem.
  sc::W3bSignaller untrusting(options(s.url(), sc::W3bRole::broadcaster, 0x11, w.stream));
  Recorder rec2;
  untrusting.set_events(rec2.callbacks("U"));
  untrusting.start();
  ASSERT_TRUE(spin_until([&] { return !rec2.log.empty(); }, 8000));
  EXPECT_NE(rec2.log[0].find("cannot reach"), std::string::npos) << rec2.dump();
  untrusting.stop();

  if (have_node()) {
    std::vector<std::string> args = {"--url", s.url(), "--stream", w.stream, "--case", "exchange", "--transports", "polling,websocket"};
    auto sd = seeds();
    args.insert(args.end(), sd.begin(), sd.end());
    auto r = node(w, "signal_conformance.mjs", args, {{"NODE_EXTRA_CA_CERTS", (dir / "cert.pem").string()}});
    EXPECT_EQ(r.code, 0) << r.out << s.log();
  }
  EXPECT_EQ(s.stop(), 0) << s.log();
}

TEST(CliSignal, BadInputIsAnsweredAndMemoryStaysBounded) {
  REQUIRE_NODE();
  World w;
  ServerProcess s(w, {"--listen", "127.0.0.1:0", "--max-frame", "4096", "--max-body", "65536", "--max-conn-per-ip", "40",
                      "--ping-interval", "300", "--ping-timeout", "300"});
  ASSERT_FALSE(s.url().empty()) << s.log();
  const long before = s.rss_kib();
  ASSERT_GT(before, 0);
  auto r = node(w, "signal_abuse.mjs",
                {"--url", s.url(), "--stream", w.stream, "--broadcaster", seed_hex(0x11), "--watcher", seed_hex(0x22),
                 "--burst", "20"});
  EXPECT_EQ(r.code, 0) << r.out << "\n--- server log ---\n" << s.log();
  EXPECT_NE(r.out.find("all checks passed"), std::string::npos) << r.out;
  ASSERT_TRUE(s.alive()) << s.log();
  const long after = s.rss_kib();
  RecordProperty("rss_before_kib", std::to_string(before));
  RecordProperty("rss_after_kib", std::to_string(after));
  std::cout << "server VmRSS " << before << " KiB before the abuse, " << after << " KiB after\n";
  // 600 abusive sockets sent ~40 MB between them; what stays must not grow with that.
  EXPECT_LT(after - before, 24 * 1024) << "VmRSS before " << before << " KiB, after " << after << " KiB";
  EXPECT_EQ(body_of(http_get(s.port(), "/healthz")), "ok\n");
  EXPECT_EQ(s.stop(), 0) << s.log();
}

// ---- the server's own WebSocket framing (lib/signal_server/rawws) ----

namespace {

std::string client_frame(std::uint8_t first, std::string_view payload, std::array<std::uint8_t, 4> mask = {1, 2, 3, 4}) {
  std::string f(1, static_cast<char>(first));
  if (payload.size() < 126) {
    f += static_cast<char>(0x80 | payload.size());
  } else {
    f += static_cast<char>(0x80 | 126);
    f += static_cast<char>(payload.size() >> 8);
    f += static_cast<char>(payload.size() & 0xff);
  }
  f.append(reinterpret_cast<const char*>(mask.data()), 4);
  for (std::size_t i = 0; i < payload.size(); ++i) f += static_cast<char>(payload[i] ^ mask[i & 3]);
  return f;
}

}  // namespace

TEST(CliSignal, WebSocketFramesAreParsedStrictly) {
  using p2p::signal_server::parse_client_frame;
  using p2p::signal_server::WsFrame;
  // A masked text frame, unmasked in place; its bytes arrive one at a time first.
  std::string f = client_frame(0x81, "42[\"x\"]");
  for (std::size_t n = 0; n < f.size(); ++n) {
    std::string part = f.substr(0, n);
    EXPECT_EQ(parse_client_frame(part.data(), part.size(), 1000).status, WsFrame::incomplete) << n;
  }
  auto r = parse_client_frame(f.data(), f.size(), 1000);
  ASSERT_EQ(r.status, WsFrame::ok);
  EXPECT_TRUE(r.fin);
  EXPECT_EQ(r.opcode, 1);
  EXPECT_EQ(r.consumed, f.size());
  EXPECT_EQ(std::string(f.data() + r.payload_at, r.payload_len), "42[\"x\"]");
  // 16-bit length.
  std::string big(300, 'a');
  f = client_frame(0x81, big);
  r = parse_client_frame(f.data(), f.size(), 1000);
  ASSERT_EQ(r.status, WsFrame::ok);
  EXPECT_EQ(r.payload_len, 300u);
  // Refusals, each with the close code RFC 6455 names.
  f = client_frame(0x81, big);
  EXPECT_EQ(parse_client_frame(f.data(), f.size(), 299).close_code, 1009);  // over the limit
  f = client_frame(0x81, "x");
  f[1] = static_cast<char>(f[1] & 0x7f);  // not masked
  EXPECT_EQ(parse_client_frame(f.data(), f.size(), 1000).close_code, 1002);
  f = client_frame(0xC1, "x");  // RSV1 without an extension
  EXPECT_EQ(parse_client_frame(f.data(), f.size(), 1000).close_code, 1002);
  f = client_frame(0x09, "x");  // a ping that is not final
  EXPECT_EQ(parse_client_frame(f.data(), f.size(), 1000).close_code, 1002);
  f = client_frame(0x83, "x");  // reserved opcode
  EXPECT_EQ(parse_client_frame(f.data(), f.size(), 1000).status, WsFrame::bad);
  // A frame header claiming 2^63 bytes is refused before anything is buffered.
  std::string huge = "\x81\xff\x7f\xff\xff\xff\xff\xff\xff\xff";
  EXPECT_EQ(parse_client_frame(huge.data(), huge.size(), 1000).close_code, 1009);

  // Unmasking works a word at a time: every length around the word size, at any alignment, with
  // masks whose bytes differ, must give back exactly the text that was masked.
  for (std::size_t len = 0; len < 70; ++len) {
    std::string text;
    for (std::size_t i = 0; i < len; ++i) text += static_cast<char>('!' + (i * 7 + len) % 90);
    const std::array<std::uint8_t, 4> mask = {static_cast<std::uint8_t>(0x11 + len), 0xa5, 0x3c,
                                              static_cast<std::uint8_t>(0xf0 ^ len)};
    for (std::size_t skew = 0; skew < 3; ++skew) {
      std::string buf = std::string(skew, '#') + client_frame(0x81, text, mask) + "tail";
      auto u = parse_client_frame(buf.data() + skew, buf.size() - skew, 1000);
      ASSERT_EQ(u.status, WsFrame::ok) << len;
      EXPECT_EQ(std::string(buf.data() + skew + u.payload_at, u.payload_len), text) << "length " << len << " skew " << skew;
      EXPECT_EQ(buf.substr(buf.size() - 4), "tail");  // nothing past the frame is touched
    }
  }

  std::string out;
  p2p::signal_server::append_server_frame(out, p2p::signal_server::WsOp::text, big);
  ASSERT_EQ(out.size(), 304u);
  EXPECT_EQ(static_cast<unsigned char>(out[0]), 0x81);
  EXPECT_EQ(static_cast<unsigned char>(out[1]), 126);
  EXPECT_EQ((static_cast<unsigned char>(out[2]) << 8) | static_cast<unsigned char>(out[3]), 300);
}

// The reactor is edge-triggered and reads at most a budget of one socket per turn; what is left
// in the kernel raises no new edge, so it must come back for it by itself, in the same wake-up
// or the next one.
TEST(CliSignal, RawSocketsReadWhatWaitsBehindTheCapAndReportBacklog) {
  using p2p::signal_server::RawSockets;
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
  const int big = 8 << 20;
  ::setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
  GMainContext* ctx = g_main_context_new();
  std::vector<std::string> got;
  std::string closed;
  std::uint64_t wrong_owner = 0;
  {
    RawSockets raw(ctx,
                   RawSockets::Events{[&](RawSockets::LinkId, std::uint64_t owner, std::string_view t) {
                                        if (owner != 77) wrong_owner = owner;
                                        got.emplace_back(t);
                                      },
                                      [&](RawSockets::LinkId, const std::string& why) { closed = why; }},
                   1 << 20, 8 << 10);  // 8 KiB a turn: 8 rounds per wake-up leave most of it waiting
    GSocket* gs = g_socket_new_from_fd(sv[1], nullptr);
    ASSERT_NE(gs, nullptr);
    GSocketConnection* conn = g_socket_connection_factory_create_connection(gs);
    const auto id = raw.adopt(G_IO_STREAM(conn), sv[1], 77);
    g_object_unref(conn);
    g_object_unref(gs);

    // 2,000 frames of 400 bytes (800 KiB), each numbered; as much as the kernel takes goes in
    // before the reactor runs at all.
    std::string wire;
    const int frames = 2000;
    for (int i = 0; i < frames; ++i) {
      std::string text = fmt::format("{:06}", i);
      text.resize(400, static_cast<char>('a' + i % 26));
      wire += client_frame(0x81, text, {static_cast<std::uint8_t>(i), 0x5a, 0xc3, 0x17});
    }
    std::size_t at = 0;
    auto push = [&] {
      while (at < wire.size()) {
        ssize_t n = ::send(sv[0], wire.data() + at, std::min<std::size_t>(65536, wire.size() - at), MSG_NOSIGNAL);
        if (n <= 0) break;
        at += static_cast<std::size_t>(n);
      }
    };
    push();
    ASSERT_GT(at, 200u << 10) << "the kernel must hold more than one wake-up's 64 KiB for this test to mean anything";
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (got.size() < static_cast<std::size_t>(frames) && std::chrono::steady_clock::now() < deadline) {
      g_main_context_iteration(ctx, FALSE);
      push();
      if (!g_main_context_pending(ctx)) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ASSERT_EQ(got.size(), static_cast<std::size_t>(frames)) << "frames left unread in the kernel; closed: " << closed;
    for (int i = 0; i < frames; ++i) ASSERT_EQ(got[static_cast<std::size_t>(i)].substr(0, 6), fmt::format("{:06}", i));
    EXPECT_EQ(wrong_owner, 0u);
    EXPECT_TRUE(closed.empty()) << closed;
    // Exactly one budget (16 frames of 512 bytes): the read that takes it cannot tell it took
    // everything, so the next one finds the kernel empty; that must end the matter.
    std::string exact;
    for (int i = 0; i < 16; ++i) exact += client_frame(0x81, std::string(504, 'e'));
    ASSERT_EQ(exact.size(), 8192u);
    ASSERT_EQ(::send(sv[0], exact.data(), exact.size(), MSG_NOSIGNAL), 8192);
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (got.size() < static_cast<std::size_t>(frames) + 16 && std::chrono::steady_clock::now() < until)
      g_main_context_iteration(ctx, FALSE);
    ASSERT_EQ(got.size(), static_cast<std::size_t>(frames) + 16);
    // With nothing left to read the reactor goes back to waiting instead of spinning.
    for (int i = 0; i < 5; ++i) g_main_context_iteration(ctx, FALSE);
    EXPECT_FALSE(g_main_context_pending(ctx)) << "the reactor stays ready with nothing to do";

    // Nobody reads sv[0]: send_text's answer is the backlog, and it grows once the kernel is full.
    std::size_t last = 0;
    const std::string text(1000, 'z');
    for (int i = 0; i < 20000 && last == 0; ++i) {
      last = raw.send_text(id, text);
      EXPECT_EQ(last, raw.backlog(id));
    }
    EXPECT_GT(last, 0u) << "the kernel never filled up";
    EXPECT_EQ(raw.send_text(id + 1000, text), 0u);  // no such link
  }
  ::close(sv[0]);
  g_main_context_unref(ctx);
}

TEST(CliSignal, ListenAddressesParse) {
  using p2p::signal_server::parse_listen;
  EXPECT_EQ(parse_listen("127.0.0.1:3001"), (std::pair<std::string, std::uint16_t>{"127.0.0.1", 3001}));
  EXPECT_EQ(parse_listen("[::1]:0"), (std::pair<std::string, std::uint16_t>{"[::1]", 0}));
  EXPECT_EQ(parse_listen(":8080"), (std::pair<std::string, std::uint16_t>{"0.0.0.0", 8080}));
  EXPECT_EQ(parse_listen("9000"), (std::pair<std::string, std::uint16_t>{"0.0.0.0", 9000}));
  for (const char* bad : {"", "host:", ":99999", "::1:80", "a:b", "127.0.0.1:80x"})
    EXPECT_THROW(parse_listen(bad), p2p::UsageError) << bad;
}
