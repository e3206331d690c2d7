// Shared end-to-end fixtures for cli_tests (see fixtures.hpp).
#include "fixtures.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <fstream>
#include <sstream>
#include <thread>

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

namespace p2p::test {

std::string seed_hex(unsigned char fill) {
  std::string s = "0x";
  for (int i = 0; i < 32; ++i) s += fmt::format("{:02x}", fill);
  return s;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

bool wait_for(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  auto end = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(50ms);
  }
  return true;
}

World::World() {
  alice = add_account("alice", 0x11, false);
  add_account("bob", 0x22, true);
  add_account("carol", 0x33, false);
  add_account("dave", 0x44, true);
}

std::string World::add_account(const std::string& name, unsigned char fill, bool subscribe_to_alice) {
  h.ok({"key", "import", name, "--seed", seed_hex(fill)});
  h.ok({"profile", "set", "--name", name, "--account", name});
  if (subscribe_to_alice) h.ok({"subscribe", alice, "--account", name});
  return json::parse(h.ok({"key", "show", name, "--json"}))["address"];
}

std::string World::schedule(const std::string& start, const std::string& duration) const {
  return trim(h.ok({"schedule", "--title", "Test stream", "--start", start, "--duration", duration, "--account", "alice"}));
}

std::map<std::string, std::string> home_env(const Home& h) {
  return {{"HOME", h.dir().string()},
          {"XDG_CONFIG_HOME", (h.dir() / "config").string()},
          {"XDG_DATA_HOME", (h.dir() / "data").string()},
          {"PATH", "/usr/local/bin:/usr/bin:/bin"},
          {"TZ", "UTC"},
          {"NO_COLOR", "1"},
          {"P2PSTREAM_PASSPHRASE", ""},
          {"GST_REGISTRY", (fs::path(P2PSTREAM_BIN).parent_path().parent_path() / "gst-registry-tests.bin").string()}};
}

Proc::Proc(const Home& h, const std::string& name, std::vector<std::string> args, const std::string& program,
           const std::map<std::string, std::string>& extra_env)
    : out_(h.dir() / (name + ".out")), err_(h.dir() / (name + ".err")) {
  args.insert(args.begin(), program);
  auto env = home_env(h);
  for (const auto& [k, v] : extra_env) env[k] = v;
  std::vector<std::string> envs;
  for (const auto& [k, v] : env) envs.push_back(k + "=" + v);
  std::vector<char*> a, e;
  for (auto& s : args) a.push_back(s.data());
  a.push_back(nullptr);
  for (auto& s : envs) e.push_back(s.data());
  e.push_back(nullptr);
  int o = ::open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int r = ::open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, o, 1);
  posix_spawn_file_actions_adddup2(&fa, r, 2);
  int rc = posix_spawnp(&pid_, a[0], &fa, nullptr, a.data(), e.data());
  posix_spawn_file_actions_destroy(&fa);
  ::close(o);
  ::close(r);
  if (rc != 0) pid_ = -1;
}

Proc::~Proc() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

std::string Proc::out() const { return slurp(out_); }
std::string Proc::err() const { return slurp(err_); }
std::string Proc::both() const { return "--- stdout ---\n" + out() + "--- stderr ---\n" + err(); }

void Proc::signal(int sig) const {
  if (pid_ > 0) ::kill(pid_, sig);
}

void Proc::poll_exit() {
  if (pid_ <= 0) return;
  int st = 0;
  if (::waitpid(pid_, &st, WNOHANG) == pid_) {
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    pid_ = -1;
  }
}

bool Proc::running() {
  poll_exit();
  return pid_ > 0;
}

int Proc::wait(std::chrono::milliseconds timeout) {
  auto end = std::chrono::steady_clock::now() + timeout;
  while (running()) {
    if (std::chrono::steady_clock::now() > end) return -1;
    std::this_thread::sleep_for(20ms);
  }
  return status_;
}

int Proc::stop(std::chrono::milliseconds timeout) {
  if (!running()) return status_;
  signal(SIGTERM);
  int st = wait(timeout);
  if (st != -1) return st;
  signal(SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
  return status_ = -1;
}

std::vector<json> Proc::json_lines() const {
  std::vector<json> v;
  std::istringstream in(out());
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] != '{') continue;
    auto j = json::parse(line, nullptr, false);
    if (!j.is_discarded()) v.push_back(j);
  }
  return v;
}

long long Proc::last(const char* key) const {
  auto v = json_lines();
  for (auto it = v.rbegin(); it != v.rend(); ++it)
    if (it->contains(key) && (*it)[key].is_number()) return (*it)[key].get<long long>();
  return -1;
}

std::optional<std::string> Proc::next_line(std::chrono::milliseconds within) {
  auto end = std::chrono::steady_clock::now() + within;
  for (;;) {
    std::string o = out();
    if (auto nl = o.find('\n', lines_read_); nl != std::string::npos) {
      std::string line = o.substr(lines_read_, nl - lines_read_);
      lines_read_ = nl + 1;
      return line;
    }
    if (std::chrono::steady_clock::now() > end || (!running() && o.find('\n', lines_read_) == std::string::npos)) {
      return std::nullopt;
    }
    std::this_thread::sleep_for(20ms);
  }
}

DevnodeServer::DevnodeServer(const Home& h, const std::vector<std::string>& extra)
    : p(h, "devnode", [&] {
        std::vector<std::string> a = {"devnode", "--listen", "127.0.0.1:0"};
        a.insert(a.end(), extra.begin(), extra.end());
        return a;
      }()) {
  auto first = p.next_line(20s);
  auto second = first ? p.next_line(5s) : std::nullopt;
  const std::string listening = "listening on ", prog = "program ";
  if (!first || !second || first->rfind(listening, 0) != 0 || second->rfind(prog, 0) != 0) return;
  http = first->substr(listening.size());
  ws = "ws" + http.substr(4);
  program = second->substr(prog.size());
}

DevnodeServer::~DevnodeServer() { p.stop(); }

std::uint16_t DevnodeServer::port() const {
  return http.empty() ? 0 : static_cast<std::uint16_t>(std::stoi(http.substr(http.rfind(':') + 1)));
}

SignalServer::SignalServer(const World& w, const std::vector<std::string>& extra)
    : p(w, "signal", [&] {
        std::vector<std::string> a = {"signal", "--listen", "127.0.0.1:0"};
        a.insert(a.end(), extra.begin(), extra.end());
        return a;
      }()) {
  wait_for([&] { return p.out().find('\n') != std::string::npos || !p.running(); }, 10s);
  auto line = p.out().substr(0, p.out().find('\n'));
  const std::string prefix = "listening on ";
  if (line.rfind(prefix, 0) == 0) url = line.substr(prefix.size());
}

SignalServer::~SignalServer() { p.stop(); }

int SignalServer::port() const { return url.empty() ? -1 : std::stoi(url.substr(url.rfind(':') + 1)); }

std::string http_get(const std::string& url, const std::string& target) {
  int port = std::stoi(url.substr(url.rfind(':') + 1));
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return {};
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    std::string req = "GET " + target + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    (void)!::write(fd, req.data(), req.size());
    char buf[4096];
    pollfd pfd{fd, POLLIN, 0};
    while (::poll(&pfd, 1, 5000) > 0) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n <= 0) break;
      out.append(buf, static_cast<std::size_t>(n));
    }
  }
  ::close(fd);
  auto body = out.find("\r\n\r\n");
  return body == std::string::npos ? std::string() : out.substr(body + 4);
}

}  // namespace p2p::test
