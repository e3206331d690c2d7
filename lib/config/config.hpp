// config: where p2pstream keeps its files (XDG), and the settings file with
// its defaults (endpoint, program id, default account, signalling URL).
// Precedence: flags > P2PSTREAM_* environment > config.json > built-in default.
#pragma once
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace p2p::config {

struct Paths {
  std::filesystem::path config_dir;  // $XDG_CONFIG_HOME/p2pstream
  std::filesystem::path data_dir;    // $XDG_DATA_HOME/p2pstream
  std::filesystem::path config_file() const { return config_dir / "config.json"; }
  std::filesystem::path keys_dir() const { return data_dir / "keys"; }
  std::filesystem::path ledger_db() const { return data_dir / "ledger.db"; }
};

// Reads XDG_CONFIG_HOME / XDG_DATA_HOME, falling back to $HOME/.config and $HOME/.local/share.
Paths default_paths();

struct KeyDoc {
  const char* key;
  const char* env;
  const char* help;
};
// The settings that exist, in display order.
const std::vector<KeyDoc>& known_keys();

class Settings {
 public:
  // Loads the file if it exists. A malformed file is a RuntimeError naming the path.
  static Settings load(const std::filesystem::path& file);

  // The value from the environment if set, else from the file.
  std::optional<std::string> get(const std::string& key) const;
  std::optional<std::string> file_value(const std::string& key) const;
  // Validates key and value (UsageError), then writes the file atomically.
  void set(const std::string& key, const std::string& value);
  void unset(const std::string& key);
  const std::filesystem::path& file() const { return file_; }

 private:
  void save() const;
  std::filesystem::path file_;
  std::map<std::string, std::string> values_;
};

// Throws UsageError unless key is one of known_keys().
void check_key(const std::string& key);
// Throws UsageError with a hint if value is not acceptable for key.
void check_value(const std::string& key, const std::string& value);

}  // namespace p2p::config
