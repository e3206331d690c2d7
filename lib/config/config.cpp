#include "config/config.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "util/bytes.hpp"
#include "util/error.hpp"

namespace p2p::config {
namespace fs = std::filesystem;

namespace {
fs::path xdg(const char* var, const char* fallback) {
  if (const char* v = std::getenv(var); v && *v && fs::path(v).is_absolute()) return v;
  const char* home = std::getenv("HOME");
  if (!home || !*home) throw RuntimeError(fmt::format("neither {} nor HOME is set: set one of them", var));
  return fs::path(home) / fallback;
}

bool starts_with(const std::string& s, std::string_view p) { return s.rfind(p, 0) == 0; }
}  // namespace

Paths default_paths() {
  return {xdg("XDG_CONFIG_HOME", ".config") / "p2pstream", xdg("XDG_DATA_HOME", ".local/share") / "p2pstream"};
}

const std::vector<KeyDoc>& known_keys() {
  static const std::vector<KeyDoc> keys = {
      {"endpoint", "P2PSTREAM_ENDPOINT",
       "where chain commands go: ledger (the embedded default), mainnet, testnet, local, or a URL"},
      {"program", "P2PSTREAM_PROGRAM", "the W3Bstreaming program id (0x + 64 hex) on a real node"},
      {"account", "P2PSTREAM_ACCOUNT", "the default key name for sending commands"},
      {"signal", "P2PSTREAM_SIGNAL", "the signalling server URL (http(s):// or ws(s)://)"},
  };
  return keys;
}

void check_key(const std::string& key) {
  for (const auto& k : known_keys())
    if (key == k.key) return;
  std::string names;
  for (const auto& k : known_keys()) names += fmt::format("{}{}", names.empty() ? "" : ", ", k.key);
  throw UsageError(fmt::format("unknown setting '{}': the settings are {}", key, names));
}

void check_value(const std::string& key, const std::string& value) {
  check_key(key);
  if (key == "endpoint") {
    static const char* named[] = {"ledger", "mainnet", "testnet", "local"};
    for (auto n : named)
      if (value == n) return;
    for (auto scheme : {"http://", "https://", "ws://", "wss://"})
      if (starts_with(value, scheme) && value.size() > std::string_view(scheme).size()) return;
    throw UsageError(fmt::format(
        "endpoint '{}' is not valid: use ledger, mainnet, testnet, local, or an http(s):// or ws(s):// URL", value));
  }
  if (key == "program") {
    if (!hash32_from_hex(value) || !starts_with(value, "0x"))
      throw UsageError(fmt::format("program id '{}' is not valid: use 0x followed by 64 hex digits", value));
    return;
  }
  if (key == "signal") {
    for (auto scheme : {"http://", "https://", "ws://", "wss://"})
      if (starts_with(value, scheme) && value.size() > std::string_view(scheme).size()) return;
    throw UsageError(fmt::format("signalling URL '{}' is not valid: use http(s):// or ws(s)://host:port", value));
  }
  if (key == "account" && value.empty()) throw UsageError("account name must not be empty");
}

Settings Settings::load(const fs::path& file) {
  Settings s;
  s.file_ = file;
  std::ifstream in(file);
  if (!in) return s;
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text.str());
  } catch (const std::exception& e) {
    throw RuntimeError(fmt::format("config file {} is not valid JSON ({}): fix or remove it", file.string(), e.what()));
  }
  if (!j.is_object()) throw RuntimeError(fmt::format("config file {} must hold a JSON object", file.string()));
  for (auto& [k, v] : j.items())
    if (v.is_string()) s.values_[k] = v.get<std::string>();
  return s;
}

std::optional<std::string> Settings::file_value(const std::string& key) const {
  auto it = values_.find(key);
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

std::optional<std::string> Settings::get(const std::string& key) const {
  for (const auto& k : known_keys())
    if (key == k.key)
      if (const char* v = std::getenv(k.env); v && *v) return std::string(v);
  return file_value(key);
}

void Settings::set(const std::string& key, const std::string& value) {
  check_value(key, value);
  values_[key] = value;
  save();
}

void Settings::unset(const std::string& key) {
  check_key(key);
  values_.erase(key);
  save();
}

void Settings::save() const {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : values_) j[k] = v;
  std::error_code ec;
  fs::create_directories(file_.parent_path(), ec);
  if (ec) throw RuntimeError(fmt::format("cannot create {}: {}", file_.parent_path().string(), ec.message()));
  // Write then rename, so a crash never leaves half a config file.
  fs::path tmp = file_;
  tmp += fmt::format(".tmp.{}", ::getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << j.dump(2) << '\n';
    if (!out) throw RuntimeError(fmt::format("cannot write {}", tmp.string()));
  }
  fs::rename(tmp, file_, ec);
  if (ec) throw RuntimeError(fmt::format("cannot write {}: {}", file_.string(), ec.message()));
}

}  // namespace p2p::config
