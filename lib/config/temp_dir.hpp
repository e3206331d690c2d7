// config/temp_dir: a private directory under the system temp dir that is removed, with what it
// holds, when its owner goes (devnode's throwaway ledger, and the tests).
#pragma once
#include <filesystem>
#include <string>

namespace p2p::config {

class TempDir {
 public:
  // Creates <temp>/<prefix>.XXXXXX with mode 0700; throws RuntimeError if it cannot.
  explicit TempDir(const std::string& prefix = "p2pstream");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace p2p::config
