// Runs the built p2pstream binary in a private XDG home, capturing its output.
#pragma once
#include <string>
#include <vector>
#include <map>
#include <filesystem>

namespace p2p::test {

struct Run {
  int code = -1;
  std::string out, err;
};

class Home {
 public:
  Home();
  ~Home();
  Home(const Home&) = delete;
  Home& operator=(const Home&) = delete;

  // Runs p2pstream with args; env entries are added to (or, if empty, removed from) a clean environment.
  Run run(const std::vector<std::string>& args, const std::map<std::string, std::string>& env = {},
          const std::string& stdin_text = "") const;
  // As run(), but fails the current test unless the exit code is 0; returns stdout.
  std::string ok(const std::vector<std::string>& args, const std::map<std::string, std::string>& env = {}) const;
  const std::filesystem::path& dir() const { return dir_; }
  std::filesystem::path ledger() const { return dir_ / "data/p2pstream/ledger.db"; }

 private:
  std::filesystem::path dir_;
};

std::string trim(std::string s);

}  // namespace p2p::test
