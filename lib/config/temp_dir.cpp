// config/temp_dir: see the header.
#include "config/temp_dir.hpp"

#include <stdlib.h>

#include <cerrno>
#include <cstring>

#include "util/error.hpp"

namespace p2p::config {

TempDir::TempDir(const std::string& prefix) {
  std::error_code ec;
  const auto base = std::filesystem::temp_directory_path(ec);
  std::string tmpl = ((ec ? std::filesystem::path("/tmp") : base) / (prefix + ".XXXXXX")).string();
  if (::mkdtemp(tmpl.data()) == nullptr)
    throw RuntimeError("cannot create a temporary directory " + tmpl + ": " + std::strerror(errno) +
                       " (set TMPDIR to a writable directory)");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

}  // namespace p2p::config
