// Unit tests for config: XDG path resolution, the settings file (round trip,
// atomic writes, malformed files), environment overrides and value validation.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "util/error.hpp"

namespace p2p::config {
namespace {

namespace fs = std::filesystem;

// Saves the listed environment variables and restores them when destroyed.
class EnvGuard {
 public:
  explicit EnvGuard(std::vector<std::string> names) {
    for (auto& n : names) {
      const char* v = std::getenv(n.c_str());
      saved_[n] = v ? std::optional<std::string>(v) : std::nullopt;
    }
  }
  ~EnvGuard() {
    for (auto& [n, v] : saved_) {
      if (v) ::setenv(n.c_str(), v->c_str(), 1);
      else ::unsetenv(n.c_str());
    }
  }
  EnvGuard(const EnvGuard&) = delete;
  EnvGuard& operator=(const EnvGuard&) = delete;

 private:
  std::map<std::string, std::optional<std::string>> saved_;
};

// Every variable config reads; tests start with the P2PSTREAM_* ones cleared.
class ConfigTest : public ::testing::Test {
 protected:
  ConfigTest()
      : env_({"HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "P2PSTREAM_ENDPOINT", "P2PSTREAM_PROGRAM",
              "P2PSTREAM_ACCOUNT", "P2PSTREAM_SIGNAL"}) {
    for (const auto& k : known_keys()) ::unsetenv(k.env);
    std::string tmpl = (fs::temp_directory_path() / "config_test.XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
  }
  ~ConfigTest() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  fs::path file() const { return dir_ / "cfg" / "p2pstream" / "config.json"; }
  static std::string read(const fs::path& p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  static void write(const fs::path& p, const std::string& text) {
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
  }

  EnvGuard env_;
  fs::path dir_;
};

const std::string kProgram = "0x" + std::string(64, 'a');

TEST_F(ConfigTest, DefaultPathsFollowXdgVariables) {
  ::setenv("HOME", "/home/nobody", 1);
  ::setenv("XDG_CONFIG_HOME", "/x/conf", 1);
  ::setenv("XDG_DATA_HOME", "/x/data", 1);
  Paths p = default_paths();
  EXPECT_EQ(p.config_dir, fs::path("/x/conf/p2pstream"));
  EXPECT_EQ(p.data_dir, fs::path("/x/data/p2pstream"));
  EXPECT_EQ(p.config_file(), fs::path("/x/conf/p2pstream/config.json"));
  EXPECT_EQ(p.keys_dir(), fs::path("/x/data/p2pstream/keys"));
  EXPECT_EQ(p.ledger_db(), fs::path("/x/data/p2pstream/ledger.db"));
}

TEST_F(ConfigTest, DefaultPathsFallBackToHome) {
  ::setenv("HOME", "/home/alice", 1);
  ::unsetenv("XDG_CONFIG_HOME");
  ::unsetenv("XDG_DATA_HOME");
  Paths p = default_paths();
  EXPECT_EQ(p.config_dir, fs::path("/home/alice/.config/p2pstream"));
  EXPECT_EQ(p.data_dir, fs::path("/home/alice/.local/share/p2pstream"));
}

TEST_F(ConfigTest, EmptyOrRelativeXdgValuesAreIgnored) {
  // The XDG spec: a relative path in these variables is invalid and must be ignored.
  ::setenv("HOME", "/home/alice", 1);
  ::setenv("XDG_CONFIG_HOME", "", 1);
  ::setenv("XDG_DATA_HOME", "relative/data", 1);
  Paths p = default_paths();
  EXPECT_EQ(p.config_dir, fs::path("/home/alice/.config/p2pstream"));
  EXPECT_EQ(p.data_dir, fs::path("/home/alice/.local/share/p2pstream"));
}

TEST_F(ConfigTest, OneXdgVariableWithoutTheOther) {
  ::setenv("HOME", "/home/alice", 1);
  ::setenv("XDG_CONFIG_HOME", "/etc/xdg-user", 1);
  ::unsetenv("XDG_DATA_HOME");
  Paths p = default_paths();
  EXPECT_EQ(p.config_dir, fs::path("/etc/xdg-user/p2pstream"));
  EXPECT_EQ(p.data_dir, fs::path("/home/alice/.local/share/p2pstream"));
}

TEST_F(ConfigTest, NeitherXdgNorHomeIsARuntimeError) {
  ::unsetenv("HOME");
  ::unsetenv("XDG_CONFIG_HOME");
  ::unsetenv("XDG_DATA_HOME");
  EXPECT_THROW(default_paths(), RuntimeError);
}

TEST_F(ConfigTest, MissingFileLoadsEmpty) {
  Settings s = Settings::load(file());
  EXPECT_EQ(s.file(), file());
  for (const auto& k : known_keys()) EXPECT_FALSE(s.get(k.key).has_value()) << k.key;
  EXPECT_FALSE(fs::exists(file())) << "loading does not create the file";
}

TEST_F(ConfigTest, SetGetUnsetRoundTripThroughTheFile) {
  {
    Settings s = Settings::load(file());
    s.set("endpoint", "testnet");
    s.set("program", kProgram);
    s.set("account", "alice");
    s.set("signal", "wss://signal.example:8443");
    EXPECT_EQ(s.get("endpoint"), "testnet") << "visible at once in the same object";
  }
  ASSERT_TRUE(fs::exists(file())) << "set creates the directories and the file";
  auto j = nlohmann::json::parse(read(file()));
  EXPECT_EQ(j.at("endpoint"), "testnet");
  EXPECT_EQ(j.at("program"), kProgram);

  Settings s = Settings::load(file());
  EXPECT_EQ(s.get("endpoint"), "testnet");
  EXPECT_EQ(s.get("program"), kProgram);
  EXPECT_EQ(s.get("account"), "alice");
  EXPECT_EQ(s.get("signal"), "wss://signal.example:8443");

  s.set("endpoint", "ws://127.0.0.1:9944");  // overwrite
  s.unset("account");
  s.unset("account");  // unsetting what is not set is fine
  Settings again = Settings::load(file());
  EXPECT_EQ(again.get("endpoint"), "ws://127.0.0.1:9944");
  EXPECT_FALSE(again.get("account").has_value());
  EXPECT_EQ(again.get("program"), kProgram) << "other keys survive an unset";
  EXPECT_FALSE(nlohmann::json::parse(read(file())).contains("account"));
}

TEST_F(ConfigTest, EnvironmentOverridesTheFile) {
  Settings s = Settings::load(file());
  s.set("endpoint", "testnet");
  s.set("account", "alice");
  ::setenv("P2PSTREAM_ENDPOINT", "mainnet", 1);
  ::setenv("P2PSTREAM_ACCOUNT", "bob", 1);
  ::setenv("P2PSTREAM_SIGNAL", "https://sig.example", 1);
  EXPECT_EQ(s.get("endpoint"), "mainnet");
  EXPECT_EQ(s.get("account"), "bob");
  EXPECT_EQ(s.get("signal"), "https://sig.example") << "env works without a file value";
  EXPECT_EQ(s.file_value("endpoint"), "testnet");
  EXPECT_FALSE(s.file_value("signal").has_value());
  EXPECT_EQ(Settings::load(file()).get("endpoint"), "mainnet");
  // An empty variable does not override.
  ::setenv("P2PSTREAM_ENDPOINT", "", 1);
  EXPECT_EQ(s.get("endpoint"), "testnet");
  ::unsetenv("P2PSTREAM_ENDPOINT");
  EXPECT_EQ(s.get("endpoint"), "testnet");
  // Setting the file value does not write the env value into the file.
  s.set("signal", "ws://other.example");
  EXPECT_EQ(nlohmann::json::parse(read(file())).at("signal"), "ws://other.example");
  EXPECT_EQ(nlohmann::json::parse(read(file())).at("account"), "alice");
}

TEST_F(ConfigTest, EveryKnownKeyHasAnEnvVariableAndHelp) {
  ASSERT_FALSE(known_keys().empty());
  for (const auto& k : known_keys()) {
    SCOPED_TRACE(k.key);
    EXPECT_EQ(std::string(k.env).rfind("P2PSTREAM_", 0), 0u);
    EXPECT_NE(std::string(k.help), "");
    EXPECT_NO_THROW(check_key(k.key));
  }
}

TEST_F(ConfigTest, UnknownKeyIsAUsageErrorAndWritesNothing) {
  Settings s = Settings::load(file());
  EXPECT_THROW(s.set("colour", "blue"), UsageError);
  EXPECT_THROW(s.unset("colour"), UsageError);
  EXPECT_THROW(check_key("Endpoint"), UsageError);
  EXPECT_THROW(check_key(""), UsageError);
  EXPECT_FALSE(fs::exists(file()));
  try {
    check_key("colour");
    FAIL();
  } catch (const UsageError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("colour"), std::string::npos) << m;
    EXPECT_NE(m.find("endpoint"), std::string::npos) << "the message lists the known keys: " << m;
  }
}

TEST_F(ConfigTest, ValidValuesAreAccepted) {
  for (const char* v : {"ledger", "mainnet", "testnet", "local", "http://127.0.0.1:9933", "https://rpc.example",
                        "ws://127.0.0.1:9944", "wss://rpc.vara.network"})
    EXPECT_NO_THROW(check_value("endpoint", v)) << v;
  EXPECT_NO_THROW(check_value("program", kProgram));
  EXPECT_NO_THROW(check_value("program", "0x" + std::string(64, 'F')));
  for (const char* v : {"http://s.example", "https://s.example", "ws://s.example:1", "wss://s.example"})
    EXPECT_NO_THROW(check_value("signal", v)) << v;
  EXPECT_NO_THROW(check_value("account", "alice"));
}

TEST_F(ConfigTest, InvalidValuesAreUsageErrorsAndLeaveTheFileAlone) {
  Settings s = Settings::load(file());
  s.set("endpoint", "testnet");
  s.set("program", kProgram);
  s.set("signal", "wss://ok.example");
  s.set("account", "alice");
  const std::string before = read(file());

  const std::vector<std::pair<std::string, std::string>> bad = {
      {"endpoint", ""},
      {"endpoint", "Mainnet"},
      {"endpoint", "ftp://x.example"},
      {"endpoint", "http://"},
      {"endpoint", "rpc.vara.network"},
      {"program", ""},
      {"program", "0x1234"},
      {"program", std::string(64, 'a')},             // no 0x
      {"program", "0x" + std::string(63, 'a') + "g"},  // not hex
      {"program", "0x" + std::string(66, 'a')},      // too long
      {"signal", ""},
      {"signal", "signal.example"},
      {"signal", "wss://"},
      {"account", ""},
  };
  for (const auto& [k, v] : bad) {
    SCOPED_TRACE(k + "=" + v);
    EXPECT_THROW(check_value(k, v), UsageError);
    EXPECT_THROW(s.set(k, v), UsageError);
  }
  EXPECT_EQ(read(file()), before) << "a refused value is not written";
  EXPECT_EQ(s.get("endpoint"), "testnet") << "nor kept in memory";
  EXPECT_EQ(s.get("account"), "alice");
}

TEST_F(ConfigTest, MalformedFileIsARuntimeErrorNamingThePath) {
  write(file(), "{\"endpoint\": \"testnet\",");
  try {
    Settings::load(file());
    FAIL() << "a truncated file was accepted";
  } catch (const RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find(file().string()), std::string::npos) << e.what();
  }
  write(file(), "[\"endpoint\", \"testnet\"]");
  EXPECT_THROW(Settings::load(file()), RuntimeError) << "a JSON array is not a settings object";
  write(file(), "\"testnet\"");
  EXPECT_THROW(Settings::load(file()), RuntimeError);
  write(file(), "endpoint = testnet\n");
  EXPECT_THROW(Settings::load(file()), RuntimeError);
}

TEST_F(ConfigTest, EmptyObjectAndNonStringValues) {
  write(file(), "{}");
  EXPECT_FALSE(Settings::load(file()).get("endpoint").has_value());
  // A non-string value is not a setting; it must not crash nor appear as one.
  write(file(), R"({"endpoint": 5, "account": null, "signal": ["x"], "program": "0x)" + std::string(64, 'b') + "\"}");
  Settings s = Settings::load(file());
  EXPECT_FALSE(s.get("endpoint").has_value());
  EXPECT_FALSE(s.get("account").has_value());
  EXPECT_FALSE(s.get("signal").has_value());
  EXPECT_EQ(s.get("program"), "0x" + std::string(64, 'b'));
}

TEST_F(ConfigTest, WritesAreAtomicAndLeaveNoTemporaryFiles) {
  Settings s = Settings::load(file());
  for (int i = 0; i < 20; ++i) {
    s.set("account", "user" + std::to_string(i));
    // After every write the file on disk is complete, valid JSON with the new value.
    auto j = nlohmann::json::parse(read(file()));
    EXPECT_EQ(j.at("account"), "user" + std::to_string(i));
  }
  s.unset("account");
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(file().parent_path())) names.push_back(e.path().filename().string());
  EXPECT_EQ(names, std::vector<std::string>{"config.json"});
}

TEST_F(ConfigTest, ReplacingTheFileDoesNotFollowItIntoAnotherInode) {
  // Write-then-rename gives the file a new inode; a reader holding the old one sees the old, whole content.
  Settings s = Settings::load(file());
  s.set("account", "first");
  std::ifstream held(file());
  s.set("account", "second");
  std::stringstream old;
  old << held.rdbuf();
  EXPECT_EQ(nlohmann::json::parse(old.str()).at("account"), "first");
  EXPECT_EQ(nlohmann::json::parse(read(file())).at("account"), "second");
}

TEST_F(ConfigTest, UnwritableLocationIsARuntimeError) {
  // The config directory's parent is a regular file, so it cannot be created.
  write(dir_ / "blocker", "x");
  Settings s = Settings::load(dir_ / "blocker" / "p2pstream" / "config.json");
  EXPECT_THROW(s.set("account", "alice"), RuntimeError);
}

}  // namespace
}  // namespace p2p::config
