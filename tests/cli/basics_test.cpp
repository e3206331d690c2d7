// End to end: keys, config and help, through the built binary.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "harness.hpp"

using nlohmann::json;
using p2p::test::Home;
using p2p::test::trim;

TEST(CliBasics, VersionAndHelp) {
  Home h;
  auto r = h.run({"--version"});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("p2pstream"), std::string::npos);
  r = h.run({"--help"});
  EXPECT_EQ(r.code, 0);
  for (auto cmd : {"key", "config", "profile", "schedule", "edit", "delete", "subscribe", "unsubscribe", "streams"})
    EXPECT_NE(r.out.find(cmd), std::string::npos) << cmd;
  for (auto cmd : {"schedule", "edit", "delete", "subscribe", "unsubscribe", "streams", "profile", "key", "config"}) {
    r = h.run({cmd, "--help"});
    EXPECT_EQ(r.code, 0) << cmd;
    EXPECT_NE(r.out.find("Example"), std::string::npos) << cmd << " --help has no examples";
  }
}

TEST(CliBasics, UnknownCommandsAndFlagsAreUsageErrors) {
  Home h;
  EXPECT_EQ(h.run({}).code, 2);
  EXPECT_EQ(h.run({"frobnicate"}).code, 2);
  EXPECT_EQ(h.run({"streams", "--frob"}).code, 2);
}

TEST(CliBasics, KeyNewListShowAndFileMode) {
  Home h;
  auto k = json::parse(h.ok({"key", "new", "alice", "--json"}));
  std::string addr = k["address"];
  EXPECT_EQ(addr.substr(0, 1), "k");  // Vara SS58 addresses start with k
  EXPECT_EQ(k["public_key"].get<std::string>().size(), 66u);
  EXPECT_EQ(k["encrypted"], false);
  struct stat st{};
  ASSERT_EQ(::stat((h.dir() / "data/p2pstream/keys/alice.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // The first key became the default account.
  EXPECT_EQ(trim(h.ok({"config", "get", "account"})), "alice");
  auto r = h.run({"key", "new", "alice"});
  EXPECT_EQ(r.code, 2) << "overwrote an existing key";
  auto list = json::parse(h.ok({"key", "list", "--json"}));
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["default"], true);
  EXPECT_EQ(h.run({"key", "show", "nobody"}).code, 2);
  EXPECT_EQ(h.run({"key", "new", "../evil"}).code, 2);
}

TEST(CliBasics, KeyImportSeedAndChecks) {
  Home h;
  // RFC 8032 test 1: this seed's public key is d75a9801...511a.
  auto out = h.ok({"key", "import", "rfc", "--seed", "0x9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"});
  EXPECT_NE(out.find("0xd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"), std::string::npos) << out;
  auto r = h.run({"key", "import", "short", "--seed", "0x1234"});
  EXPECT_EQ(r.code, 2);
  r = h.run({"key", "import", "bad", "--seed", "0xzz61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"});
  EXPECT_EQ(r.code, 2);
  r = h.run({"key", "import", "none"});
  EXPECT_EQ(r.code, 2);
}

TEST(CliBasics, KeyImportPolkadotJson) {
  Home h;
  auto file = std::string(P2P_TEST_DATA) + "/polkadot-ed25519.json";
  auto r = h.run({"key", "import", "pjs", "--json", file}, {{"P2PSTREAM_JSON_PASSWORD", "p2pstream-test"}});
  EXPECT_EQ(r.code, 0) << r.err;
  auto k = json::parse(h.ok({"key", "show", "pjs", "--json"}));
  std::ifstream in(file);
  auto keystore = json::parse(in);
  EXPECT_EQ(k["address"].get<std::string>().empty(), false);
  r = h.run({"key", "import", "pjs2", "--json", file}, {{"P2PSTREAM_JSON_PASSWORD", "wrong"}});
  EXPECT_EQ(r.code, 2);
  r = h.run({"key", "import", "sr", "--json", std::string(P2P_TEST_DATA) + "/polkadot-sr25519.json"},
            {{"P2PSTREAM_JSON_PASSWORD", "p2pstream-test"}});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("ed25519"), std::string::npos) << r.err;
}

TEST(CliBasics, EncryptedKeysNeedThePassphrase) {
  Home h;
  h.ok({"key", "new", "sealed"}, {{"P2PSTREAM_PASSPHRASE", "correct horse"}});
  auto k = json::parse(h.ok({"key", "show", "sealed", "--json"}));
  EXPECT_EQ(k["encrypted"], true);
  h.ok({"profile", "set", "--name", "S"}, {{"P2PSTREAM_PASSPHRASE", "correct horse"}});
  auto r = h.run({"profile", "set", "--name", "T"}, {{"P2PSTREAM_PASSPHRASE", "wrong"}});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("passphrase"), std::string::npos) << r.err;
  // No passphrase and no terminal: a clear error, not a hang.
  r = h.run({"profile", "set", "--name", "T"}, {{"P2PSTREAM_PASSPHRASE", "\x01unset"}});
  EXPECT_NE(r.code, 0);
}

TEST(CliBasics, ConfigGetSetPathAndEnvironment) {
  Home h;
  h.ok({"config", "set", "endpoint", "ledger"});
  EXPECT_EQ(trim(h.ok({"config", "get", "endpoint"})), "ledger");
  EXPECT_EQ(trim(h.ok({"config", "get", "endpoint"}, {{"P2PSTREAM_ENDPOINT", "testnet"}})), "testnet");
  auto all = json::parse(h.ok({"config", "get", "--json"}));
  EXPECT_EQ(all["endpoint"], "ledger");
  EXPECT_TRUE(all["program"].is_null());
  EXPECT_EQ(h.run({"config", "set", "colour", "red"}).code, 2);
  EXPECT_EQ(h.run({"config", "set", "program", "0x12"}).code, 2);
  EXPECT_EQ(h.run({"config", "set", "endpoint", "ftp://x"}).code, 2);
  EXPECT_EQ(trim(h.ok({"config", "path"})), (h.dir() / "config/p2pstream/config.json").string());
  h.ok({"config", "unset", "endpoint"});
  EXPECT_EQ(h.run({"config", "get", "endpoint"}).code, 1);
  EXPECT_EQ(trim(h.ok({"config", "path", "ledger"})), (h.dir() / "data/p2pstream/ledger.db").string());
  // A broken config file is reported, not ignored.
  std::ofstream(h.dir() / "config/p2pstream/config.json") << "{not json";
  auto r = h.run({"config", "get"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("config.json"), std::string::npos);
}

TEST(CliBasics, NoColorAndStderrDiscipline) {
  Home h;
  auto r = h.run({"key", "show", "nobody"});
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err.find("\033["), std::string::npos);
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
}
