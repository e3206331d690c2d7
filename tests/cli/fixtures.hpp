// Shared end-to-end fixtures for cli_tests: a ledger world with four accounts, background
// processes with their output in files, and `p2pstream signal` and `p2pstream devnode` on
// 127.0.0.1 with a free port.
#pragma once
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "harness.hpp"

namespace p2p::test {

// "0x" + 32 bytes of `fill`, the seed format `key import --seed` takes.
std::string seed_hex(unsigned char fill);
std::string slurp(const std::filesystem::path& p);
// Polls pred every 50 ms until it holds or timeout passes.
bool wait_for(const std::function<bool()>& pred, std::chrono::milliseconds timeout);

// The environment every process in home h runs with: private XDG directories and a shared
// GStreamer registry, so each process does not rescan the plugins.
std::map<std::string, std::string> home_env(const Home& h);

// alice broadcasts; bob and dave subscribe to her; carol has only a profile.
// Seeds: alice 0x11.., bob 0x22.., carol 0x33.., dave 0x44.. ; more accounts with add_account.
struct World {
  Home h;
  std::string alice;  // SS58 address
  World();
  // Imports `name` with seed fill, gives it a profile and, with subscribe, subscribes it to alice.
  std::string add_account(const std::string& name, unsigned char fill, bool subscribe_to_alice);
  // Schedules a stream by alice and returns its id ("now", "1h" e.g.).
  std::string schedule(const std::string& start = "now", const std::string& duration = "1h") const;
  std::map<std::string, std::string> env() const { return home_env(h); }
};

// A background process; stdout and stderr go to files in the world's home (never a full pipe).
// Killed with SIGKILL by the destructor if still running.
class Proc {
 public:
  // program defaults to the p2pstream binary; extra_env is added to home_env(h).
  Proc(const Home& h, const std::string& name, std::vector<std::string> args, const std::string& program = P2PSTREAM_BIN,
       const std::map<std::string, std::string>& extra_env = {});
  Proc(const World& w, const std::string& name, std::vector<std::string> args, const std::string& program = P2PSTREAM_BIN,
       const std::map<std::string, std::string>& extra_env = {})
      : Proc(w.h, name, std::move(args), program, extra_env) {}
  ~Proc();
  Proc(const Proc&) = delete;
  Proc& operator=(const Proc&) = delete;

  std::string out() const;
  std::string err() const;
  std::string both() const;  // both streams, labelled, for failure messages
  pid_t pid() const { return pid_; }
  void signal(int sig) const;
  bool running();
  // The exit status (128+signal if killed), or -1 if still running after timeout.
  int wait(std::chrono::milliseconds timeout);
  // SIGTERM, then the exit status; SIGKILL and -1 if it does not stop within timeout.
  int stop(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // stdout's lines that parse as JSON objects.
  std::vector<nlohmann::json> json_lines() const;
  // The last JSON line's numeric field, or -1.
  long long last(const char* key) const;
  // The next whole stdout line after those already returned, or nullopt if none comes in time.
  std::optional<std::string> next_line(std::chrono::milliseconds within);

 private:
  void poll_exit();
  std::size_t lines_read_ = 0;  // bytes of stdout next_line has consumed
  std::filesystem::path out_, err_;
  pid_t pid_ = -1;
  int status_ = -1;
};

// `p2pstream signal --listen 127.0.0.1:0 [extra]`, and its URL from "listening on URL";
// url is empty if it did not start (p.both() says why). Stopped with SIGTERM by the destructor.
struct SignalServer {
  Proc p;
  std::string url;
  explicit SignalServer(const World& w, const std::vector<std::string>& extra = {});
  ~SignalServer();
  int port() const;
};

// `p2pstream devnode --listen 127.0.0.1:0 [extra]` in home h, with the URLs and program id from its
// first two lines; http is empty if it did not start (p.both() says why). SIGTERM on destruction.
struct DevnodeServer {
  Proc p;
  std::string http, ws, program;
  explicit DevnodeServer(const Home& h, const std::vector<std::string>& extra = {"--block-time", "100ms"});
  ~DevnodeServer();
  std::uint16_t port() const;
};

// GET url+target over plain HTTP/1.0 on loopback; the response body ("" on failure).
std::string http_get(const std::string& url, const std::string& target);

}  // namespace p2p::test
