// Tests for keystore: named key files in a temporary dir, sealing, corruption,
// and import of polkadot-js keystores made by the real @polkadot/keyring (tests/data).
#include "keystore/keystore.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sodium.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <thread>

using namespace p2p;
using namespace p2p::keystore;
using ::testing::HasSubstr;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const char* kOracleSeed = "0x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const char* kOraclePk = "0x03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8";
const char* kOraclePassword = "p2pstream-test";
const char* kRfcSeed = "0x9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const char* kRfcPk = "0xd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
}

std::string data_file(const std::string& name) { return read_text(fs::path(P2P_TEST_DATA) / name); }

keys::Seed seed_of(const char* hex) { return keys::parse_seed(hex); }

unsigned mode_of(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
  return st.st_mode & 07777;
}

template <typename E>
std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected the error was not thrown";
  return {};
}

PassphraseSource fixed(std::optional<std::string> value) {
  return [value](const std::string&, bool) { return value; };
}

PassphraseSource never_asked() {
  return [](const std::string& name, bool) -> std::optional<std::string> {
    ADD_FAILURE() << "asked for a passphrase for unsealed key " << name;
    return std::nullopt;
  };
}

class KeystoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/p2p-keystore-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    dir_ = root_ / "data" / "keys";
  }
  void TearDown() override { fs::remove_all(root_); }
  fs::path file(const std::string& name) const { return dir_ / (name + ".json"); }

  fs::path root_;
  fs::path dir_;
};

// ---- polkadot-js helpers: mutate the oracle file, or build a keystore with known plaintext ----

Bytes b64_decode(const std::string& text) {
  Bytes out(text.size());
  std::size_t len = 0;
  EXPECT_EQ(sodium_base642bin(out.data(), out.size(), text.data(), text.size(), nullptr, &len, nullptr,
                              sodium_base64_VARIANT_ORIGINAL),
            0);
  out.resize(len);
  return out;
}

std::string b64_encode(const Bytes& bytes) {
  std::string out(sodium_base64_ENCODED_LEN(bytes.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), bytes.data(), bytes.size(), sodium_base64_VARIANT_ORIGINAL);
  out.resize(out.size() - 1);  // drop the terminating NUL
  return out;
}

void put_u32le(Bytes& b, std::size_t at, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) b[at + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v >> (8 * i));
}

// The oracle ed25519 keystore with its scrypt N, p, r replaced (the rest untouched).
std::string with_scrypt_params(std::uint32_t n, std::uint32_t p, std::uint32_t r) {
  json j = json::parse(data_file("polkadot-ed25519.json"));
  Bytes enc = b64_decode(j["encoded"].get<std::string>());
  put_u32le(enc, 32, n);
  put_u32le(enc, 36, p);
  put_u32le(enc, 40, r);
  j["encoded"] = b64_encode(enc);
  return j.dump();
}

Bytes pkcs8_for(const keys::Seed& seed) {
  keys::PublicKey pk = keys::Keypair::from_seed(seed).public_key();
  Bytes out = {0x30, 0x53, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20};
  out.insert(out.end(), seed.begin(), seed.end());
  out.insert(out.end(), pk.begin(), pk.end());
  out.insert(out.end(), {0xa1, 0x23, 0x03, 0x21, 0x00});
  out.insert(out.end(), pk.begin(), pk.end());
  return out;
}

// A v3 keystore sealing `plain` the way polkadot-js does, with a cheap N so tests run fast.
std::string make_polkadot(const Bytes& plain, const std::string& password) {
  const std::uint32_t n = 1024, p = 1, r = 8;
  Bytes enc(32 + 12 + 24);
  randombytes_buf(enc.data(), 32);
  put_u32le(enc, 32, n);
  put_u32le(enc, 36, p);
  put_u32le(enc, 40, r);
  randombytes_buf(enc.data() + 44, 24);
  std::array<std::uint8_t, 64> key{};
  EXPECT_EQ(crypto_pwhash_scryptsalsa208sha256_ll(reinterpret_cast<const std::uint8_t*>(password.data()),
                                                  password.size(), enc.data(), 32, n, r, p, key.data(), key.size()),
            0);
  Bytes ct(plain.size() + crypto_secretbox_MACBYTES);
  crypto_secretbox_easy(ct.data(), plain.data(), plain.size(), enc.data() + 44, key.data());
  enc.insert(enc.end(), ct.begin(), ct.end());
  json j = {{"encoded", b64_encode(enc)},
            {"encoding",
             {{"content", {"pkcs8", "ed25519"}}, {"type", {"scrypt", "xsalsa20-poly1305"}}, {"version", "3"}}}};
  return j.dump();
}

}  // namespace

// ---- own key files ----

TEST_F(KeystoreTest, CreateUnsealedWritesTheDocumentedFile) {
  Keystore ks(dir_);
  KeyInfo info = ks.create("alice", std::nullopt);
  EXPECT_EQ(info.name, "alice");
  EXPECT_FALSE(info.encrypted);
  EXPECT_TRUE(std::regex_match(info.created, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)"))) << info.created;

  json j = json::parse(read_text(file("alice")));
  EXPECT_EQ(j["version"], 1);
  EXPECT_EQ(j["name"], "alice");
  EXPECT_EQ(j["public_key"], to_hex(info.public_key));
  EXPECT_EQ(j["address"], keys::ss58_encode(info.public_key, 137));
  EXPECT_EQ(j["created"], info.created);
  EXPECT_FALSE(j.contains("crypto"));
  keys::Seed seed = keys::parse_seed(j["seed"].get<std::string>());
  EXPECT_EQ(keys::Keypair::from_seed(seed).public_key(), info.public_key);

  keys::Keypair kp = ks.load("alice", never_asked());
  EXPECT_EQ(kp.public_key(), info.public_key);
  EXPECT_EQ(kp.seed(), seed);
}

TEST_F(KeystoreTest, FileIs0600AndDirIs0700) {
  Keystore ks(dir_);
  ks.create("alice", std::nullopt);
  ks.create("bob", std::string("pw"));
  EXPECT_EQ(mode_of(dir_), 0700u);
  EXPECT_EQ(mode_of(file("alice")), 0600u);
  EXPECT_EQ(mode_of(file("bob")), 0600u);
  // No temporary file is left behind.
  std::size_t entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir_)) ++entries;
  EXPECT_EQ(entries, 2u);
}

TEST_F(KeystoreTest, UmaskCannotWeakenOrBreakTheModes) {
  for (mode_t mask : {mode_t{0}, mode_t{0277}}) {
    fs::remove_all(dir_);
    mode_t old = ::umask(mask);
    Keystore ks(dir_);
    ks.create("alice", std::nullopt);
    ::umask(old);
    EXPECT_EQ(mode_of(dir_), 0700u) << "umask " << mask;
    EXPECT_EQ(mode_of(file("alice")), 0600u) << "umask " << mask;
  }
}

TEST_F(KeystoreTest, SealedKeyHasNoPlainSeedAndLoadsWithThePassphrase) {
  Keystore ks(dir_);
  KeyInfo info = ks.import_seed("bob", seed_of(kRfcSeed), std::string("correct horse"));
  EXPECT_TRUE(info.encrypted);
  EXPECT_EQ(to_hex(info.public_key), kRfcPk);

  std::string text = read_text(file("bob"));
  EXPECT_THAT(text, ::testing::Not(HasSubstr(std::string(kRfcSeed).substr(2))));
  json j = json::parse(text);
  EXPECT_FALSE(j.contains("seed"));
  EXPECT_EQ(j["crypto"]["kdf"], "argon2id");
  EXPECT_EQ(j["crypto"]["opslimit"], crypto_pwhash_OPSLIMIT_INTERACTIVE);
  EXPECT_EQ(j["crypto"]["memlimit"], crypto_pwhash_MEMLIMIT_INTERACTIVE);
  EXPECT_EQ(j["crypto"]["salt"].get<std::string>().size(), 2 + 2 * crypto_pwhash_SALTBYTES);
  EXPECT_EQ(j["crypto"]["nonce"].get<std::string>().size(), 2 + 2 * 24u);
  EXPECT_EQ(j["crypto"]["ciphertext"].get<std::string>().size(), 2 + 2 * 48u);

  std::vector<std::pair<std::string, bool>> asked;
  keys::Keypair kp = ks.load("bob", [&](const std::string& name, bool confirm) -> std::optional<std::string> {
    asked.emplace_back(name, confirm);
    return "correct horse";
  });
  EXPECT_EQ(to_hex(kp.seed()), kRfcSeed);
  EXPECT_EQ(to_hex(kp.public_key()), kRfcPk);
  ASSERT_EQ(asked.size(), 1u);
  EXPECT_EQ(asked[0], std::make_pair(std::string("bob"), false));
}

TEST_F(KeystoreTest, WrongPassphraseIsAUsageError) {
  Keystore ks(dir_);
  ks.create("bob", std::string("right"));
  EXPECT_EQ(message_of<UsageError>([&] { ks.load("bob", fixed("wrong")); }), "wrong passphrase for key bob");
}

TEST_F(KeystoreTest, SealedKeyWithoutPassphraseSaysToSetTheVariable) {
  Keystore ks(dir_);
  ks.create("bob", std::string("right"));
  EXPECT_THAT(message_of<UsageError>([&] { ks.load("bob", fixed(std::nullopt)); }), HasSubstr("P2PSTREAM_PASSPHRASE"));
  EXPECT_THAT(message_of<UsageError>([&] { ks.load("bob", fixed("")); }), HasSubstr("P2PSTREAM_PASSPHRASE"));
  EXPECT_THAT(message_of<UsageError>([&] { ks.load("bob", PassphraseSource{}); }), HasSubstr("P2PSTREAM_PASSPHRASE"));
}

TEST_F(KeystoreTest, EmptyPassphraseMeansUnsealed) {
  Keystore ks(dir_);
  KeyInfo info = ks.create("carol", std::string(""));
  EXPECT_FALSE(info.encrypted);
  EXPECT_TRUE(json::parse(read_text(file("carol"))).contains("seed"));
  EXPECT_EQ(ks.load("carol", never_asked()).public_key(), info.public_key);
}

TEST_F(KeystoreTest, ImportSeedKeepsTheSeed) {
  Keystore ks(dir_);
  KeyInfo info = ks.import_seed("rfc", seed_of(kRfcSeed), std::nullopt);
  EXPECT_EQ(to_hex(info.public_key), kRfcPk);
  EXPECT_EQ(to_hex(ks.load("rfc", never_asked()).seed()), kRfcSeed);
}

TEST_F(KeystoreTest, NeverOverwritesAnExistingName) {
  Keystore ks(dir_);
  ks.create("alice", std::nullopt);
  std::string before = read_text(file("alice"));
  EXPECT_THAT(message_of<UsageError>([&] { ks.create("alice", std::nullopt); }), HasSubstr("already exists"));
  EXPECT_THROW(ks.import_seed("alice", seed_of(kRfcSeed), std::string("pw")), UsageError);
  EXPECT_THROW(ks.import_polkadot_json("alice", data_file("polkadot-ed25519.json"), kOraclePassword, std::nullopt),
               UsageError);
  EXPECT_EQ(read_text(file("alice")), before);
  EXPECT_EQ(ks.list().size(), 1u);
}

TEST_F(KeystoreTest, RacingWritersNeverOverwriteEachOther) {
  // Threads that all pass the exists() check must still not replace a stored key.
  for (int round = 0; round < 10; ++round) {
    const std::string name = "race" + std::to_string(round);
    std::vector<std::thread> threads;
    std::vector<std::optional<keys::PublicKey>> won(6);
    for (std::size_t i = 0; i < won.size(); ++i)
      threads.emplace_back([&, i] {
        keys::Seed seed{};
        seed[0] = static_cast<std::uint8_t>(i + 1);
        try {
          won[i] = Keystore(dir_).import_seed(name, seed, std::nullopt).public_key;
        } catch (const UsageError&) {
        }
      });
    for (auto& t : threads) t.join();
    auto winners = std::count_if(won.begin(), won.end(), [](const auto& w) { return w.has_value(); });
    ASSERT_EQ(winners, 1) << name;
    auto winner = *std::find_if(won.begin(), won.end(), [](const auto& w) { return w.has_value(); });
    EXPECT_EQ(Keystore(dir_).load(name, never_asked()).public_key(), *winner);
  }
}

TEST_F(KeystoreTest, BadNamesAreRejectedEverywhere) {
  Keystore ks(dir_);
  const std::vector<std::string> bad = {"",         "../x",  "a/b", "/etc/passwd", ".hidden", "..",
                                        std::string(65, 'a'), "a b", "tab\t",  "ü",           "x.json/..",
                                        std::string("nul\0x", 5)};
  for (const auto& name : bad) {
    EXPECT_THROW(ks.create(name, std::nullopt), UsageError) << name;
    EXPECT_THROW(ks.import_seed(name, seed_of(kRfcSeed), std::nullopt), UsageError) << name;
    EXPECT_THROW(ks.info(name), UsageError) << name;
    EXPECT_THROW(ks.load(name, never_asked()), UsageError) << name;
    EXPECT_THROW(ks.exists(name), UsageError) << name;
  }
  EXPECT_FALSE(fs::exists(root_ / "data" / "x.json"));
  EXPECT_FALSE(fs::exists(dir_) && !fs::is_empty(dir_));
  EXPECT_THAT(message_of<UsageError>([&] { ks.create("../x", std::nullopt); }), HasSubstr("'../x'"));
}

TEST_F(KeystoreTest, NameLimitsAccepted) {
  Keystore ks(dir_);
  std::string longest(64, 'k');
  ks.create(longest, std::nullopt);
  ks.create("A.b_c-9", std::nullopt);
  EXPECT_TRUE(ks.exists(longest));
  EXPECT_TRUE(ks.exists("A.b_c-9"));
}

TEST_F(KeystoreTest, ListIsSortedAndSkipsOtherFiles) {
  Keystore ks(dir_);
  EXPECT_TRUE(ks.list().empty());  // the dir does not exist yet
  ks.create("zed", std::nullopt);
  ks.create("amy", std::string("pw"));
  ks.import_seed("mid", seed_of(kRfcSeed), std::nullopt);
  write_text(dir_ / "notes.txt", "not a key");
  write_text(dir_ / ".zed.json.tmp-0011", "{half");
  auto list = ks.list();
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[0].name, "amy");
  EXPECT_TRUE(list[0].encrypted);
  EXPECT_EQ(list[1].name, "mid");
  EXPECT_EQ(to_hex(list[1].public_key), kRfcPk);
  EXPECT_FALSE(list[1].encrypted);
  EXPECT_EQ(list[2].name, "zed");
}

TEST_F(KeystoreTest, InfoNeedsNoPassphraseAndMatchesCreate) {
  Keystore ks(dir_);
  KeyInfo made = ks.create("amy", std::string("pw"));
  KeyInfo got = ks.info("amy");
  EXPECT_EQ(got.name, made.name);
  EXPECT_EQ(got.public_key, made.public_key);
  EXPECT_EQ(got.encrypted, made.encrypted);
  EXPECT_EQ(got.created, made.created);
}

TEST_F(KeystoreTest, MissingKeyPointsToKeyList) {
  Keystore ks(dir_);
  EXPECT_FALSE(ks.exists("ghost"));
  EXPECT_EQ(message_of<UsageError>([&] { ks.info("ghost"); }), "no key named ghost; see `p2pstream key list`");
  EXPECT_THROW(ks.load("ghost", never_asked()), UsageError);
}

TEST_F(KeystoreTest, CorruptFilesAreRuntimeErrors) {
  Keystore ks(dir_);
  ks.import_seed("good", seed_of(kRfcSeed), std::nullopt);
  const std::string good = read_text(file("good"));
  json other = json::parse(good);
  other["public_key"] = kOraclePk;  // a valid key, but not this seed's
  auto with = [&](const char* field, const json& value) {
    json j = json::parse(good);
    j[field] = value;
    return j.dump();
  };

  const std::vector<std::pair<std::string, std::string>> cases = {
      {"badjson", "{not json"},
      {"empty", ""},
      {"truncated", good.substr(0, good.size() / 2)},
      {"array", "[1,2]"},
      {"pkmismatch", other.dump()},
      {"shortseed", with("seed", "0x0102")},
      {"nonhexseed", with("seed", "0x" + std::string(64, 'g'))},
      {"noprefixseed", with("seed", std::string(kRfcSeed).substr(2))},
      {"nopk", [&] { json j = json::parse(good); j.erase("public_key"); return j.dump(); }()},
      {"typeswap", with("public_key", 5)},
      {"noseed", [&] { json j = json::parse(good); j.erase("seed"); return j.dump(); }()},
  };
  for (const auto& c : cases) {
    const std::string& name = c.first;
    write_text(file(name), c.second);
    EXPECT_THAT(message_of<RuntimeError>([&] { ks.load(name, never_asked()); }), HasSubstr("corrupt")) << name;
  }
  EXPECT_THAT(message_of<RuntimeError>([&] { ks.load("pkmismatch", never_asked()); }),
              HasSubstr("pkmismatch.json is corrupt"));
  EXPECT_EQ(to_hex(ks.load("good", never_asked()).public_key()), kRfcPk);  // untouched
}

TEST_F(KeystoreTest, CorruptSealedFilesAreRuntimeErrors) {
  Keystore ks(dir_);
  ks.import_seed("sealed", seed_of(kRfcSeed), std::string("pw"));
  const std::string good = read_text(file("sealed"));
  auto edit = [&](const std::string& name, const std::function<void(json&)>& f) {
    json j = json::parse(good);
    f(j);
    write_text(file(name), j.dump());
  };
  edit("pkswap", [](json& j) { j["public_key"] = kOraclePk; });
  edit("hugemem", [](json& j) { j["crypto"]["memlimit"] = 1ull << 40; });
  edit("hugeops", [](json& j) { j["crypto"]["opslimit"] = 1000000; });
  edit("badkdf", [](json& j) { j["crypto"]["kdf"] = "pbkdf2"; });
  edit("shortct", [](json& j) { j["crypto"]["ciphertext"] = "0x00"; });
  for (const char* name : {"pkswap", "hugemem", "hugeops", "badkdf", "shortct"})
    EXPECT_THAT(message_of<RuntimeError>([&] { ks.load(name, fixed("pw")); }), HasSubstr("corrupt")) << name;
  // A flipped ciphertext byte fails authentication, which looks like a wrong passphrase.
  edit("flipped", [](json& j) {
    std::string ct = j["crypto"]["ciphertext"];
    ct[5] = ct[5] == '0' ? '1' : '0';
    j["crypto"]["ciphertext"] = ct;
  });
  EXPECT_THROW(ks.load("flipped", fixed("pw")), UsageError);
}

TEST_F(KeystoreTest, CorruptFileBreaksListWithItsName) {
  Keystore ks(dir_);
  ks.create("fine", std::nullopt);
  write_text(file("broken"), "{");
  EXPECT_THAT(message_of<RuntimeError>([&] { ks.list(); }), HasSubstr("broken.json"));
}

TEST_F(KeystoreTest, UnsupportedVersionIsReported) {
  Keystore ks(dir_);
  ks.create("v", std::nullopt);
  json j = json::parse(read_text(file("v")));
  j["version"] = 2;
  write_text(file("v"), j.dump());
  EXPECT_THAT(message_of<RuntimeError>([&] { ks.load("v", never_asked()); }), HasSubstr("version"));
}

// ---- polkadot-js import ----

TEST(KeystorePolkadot, DecryptsTheRealEd25519Keystore) {
  keys::Seed seed = decrypt_polkadot_json(data_file("polkadot-ed25519.json"), kOraclePassword);
  EXPECT_EQ(to_hex(seed), kOracleSeed);
  EXPECT_EQ(to_hex(keys::Keypair::from_seed(seed).public_key()), kOraclePk);
}

TEST_F(KeystoreTest, ImportsTheRealEd25519Keystore) {
  Keystore ks(dir_);
  KeyInfo info = ks.import_polkadot_json("dot", data_file("polkadot-ed25519.json"), kOraclePassword,
                                         std::string("local pass"));
  EXPECT_EQ(to_hex(info.public_key), kOraclePk);
  EXPECT_TRUE(info.encrypted);
  EXPECT_EQ(keys::ss58_encode(info.public_key), "kGfckNxefWwHjnQt4qbsJ8RfRge6TnDBRXLTxy5RBqPb9gFFt");
  EXPECT_EQ(to_hex(ks.load("dot", fixed("local pass")).seed()), kOracleSeed);
}

TEST(KeystorePolkadot, WrongPasswordIsAUsageError) {
  EXPECT_EQ(message_of<UsageError>([] { decrypt_polkadot_json(data_file("polkadot-ed25519.json"), "nope"); }),
            "wrong password for the keystore");
  EXPECT_THROW(decrypt_polkadot_json(data_file("polkadot-ed25519.json"), ""), UsageError);
}

TEST(KeystorePolkadot, RejectsTheRealSr25519Keystore) {
  EXPECT_EQ(message_of<UsageError>([] { decrypt_polkadot_json(data_file("polkadot-sr25519.json"), kOraclePassword); }),
            "only ed25519 keystores are supported; this one is sr25519");
}

TEST(KeystorePolkadot, RejectsOtherVersionsAndUnencryptedTypes) {
  json base = json::parse(data_file("polkadot-ed25519.json"));
  json v2 = base;
  v2["encoding"]["version"] = "2";
  EXPECT_THAT(message_of<UsageError>([&] { decrypt_polkadot_json(v2.dump(), kOraclePassword); }),
              HasSubstr("version 2"));
  json none = base;
  none["encoding"]["type"] = {"none"};
  EXPECT_THAT(message_of<UsageError>([&] { decrypt_polkadot_json(none.dump(), kOraclePassword); }),
              HasSubstr("not encrypted"));
  json noscrypt = base;
  noscrypt["encoding"]["type"] = {"xsalsa20-poly1305"};
  EXPECT_THROW(decrypt_polkadot_json(noscrypt.dump(), kOraclePassword), UsageError);
  json ecdsa = base;
  ecdsa["encoding"]["content"] = {"pkcs8", "ecdsa"};
  EXPECT_THAT(message_of<UsageError>([&] { decrypt_polkadot_json(ecdsa.dump(), kOraclePassword); }),
              HasSubstr("this one is ecdsa"));
}

TEST(KeystorePolkadot, RejectsMalformedJson) {
  json base = json::parse(data_file("polkadot-ed25519.json"));
  json badb64 = base;
  badb64["encoded"] = "!!!not base64!!!";
  json short_enc = base;
  short_enc["encoded"] = b64_encode(Bytes(40, 1));
  json no_encoded = base;
  no_encoded.erase("encoded");
  json no_encoding = base;
  no_encoding.erase("encoding");
  for (const std::string& text : {badb64.dump(), short_enc.dump(), no_encoded.dump(), no_encoding.dump(),
                                  std::string("not json"), std::string("[]"), std::string(""),
                                  std::string(200000, ' ')})
    EXPECT_THROW(decrypt_polkadot_json(text, kOraclePassword), UsageError) << text.substr(0, 60);
  EXPECT_THAT(message_of<UsageError>([&] { decrypt_polkadot_json(badb64.dump(), kOraclePassword); }),
              HasSubstr("base64"));
}

TEST(KeystorePolkadot, RejectsHostileScryptParameters) {
  // Each is refused before scrypt runs, so none of these allocates or spins.
  const std::vector<std::array<std::uint32_t, 3>> bad = {
      {1u << 21, 1, 8},   // N too large
      {3, 1, 8},          // N not a power of two
      {0, 1, 8},          // N zero
      {1, 1, 8},          // N one
      {32768, 17, 8},     // p too large
      {32768, 0, 8},      // p zero
      {32768, 1, 17},     // r too large
      {32768, 1, 0},      // r zero
      {1u << 20, 1, 16},  // 2 GiB of memory
      {0xffffffffu, 0xffffffffu, 0xffffffffu},
  };
  for (const auto& v : bad) {
    std::string text = with_scrypt_params(v[0], v[1], v[2]);
    EXPECT_THAT(message_of<UsageError>([&] { decrypt_polkadot_json(text, kOraclePassword); }),
                HasSubstr("scrypt parameters"))
        << v[0] << " " << v[1] << " " << v[2];
  }
}

TEST(KeystorePolkadot, OwnBuilderRoundTrips) {
  // Checks the test builder itself, so the rejections below fail for the intended reason.
  EXPECT_EQ(to_hex(decrypt_polkadot_json(make_polkadot(pkcs8_for(seed_of(kRfcSeed)), "pw"), "pw")), kRfcSeed);
}

TEST(KeystorePolkadot, RejectsWrongPkcs8Header) {
  Bytes plain = pkcs8_for(seed_of(kRfcSeed));
  plain[10] ^= 1;  // the ed25519 OID
  EXPECT_THAT(message_of<UsageError>([&] { decrypt_polkadot_json(make_polkadot(plain, "pw"), "pw"); }),
              HasSubstr("PKCS#8"));
  Bytes divider = pkcs8_for(seed_of(kRfcSeed));
  divider[16 + 64] = 0xa0;
  EXPECT_THROW(decrypt_polkadot_json(make_polkadot(divider, "pw"), "pw"), UsageError);
  Bytes shorter = pkcs8_for(seed_of(kRfcSeed));
  shorter.pop_back();
  EXPECT_THROW(decrypt_polkadot_json(make_polkadot(shorter, "pw"), "pw"), UsageError);
}

TEST(KeystorePolkadot, RejectsPublicKeyMismatch) {
  keys::PublicKey other = keys::parse_address(kOraclePk);
  Bytes outer = pkcs8_for(seed_of(kRfcSeed));
  std::copy(other.begin(), other.end(), outer.end() - 32);
  EXPECT_THAT(message_of<UsageError>([&] { decrypt_polkadot_json(make_polkadot(outer, "pw"), "pw"); }),
              HasSubstr("does not match"));
  Bytes inner = pkcs8_for(seed_of(kRfcSeed));
  std::copy(other.begin(), other.end(), inner.begin() + 16 + 32);
  EXPECT_THROW(decrypt_polkadot_json(make_polkadot(inner, "pw"), "pw"), UsageError);
}

TEST(KeystorePolkadot, RejectsAnAddressOfAnotherKey) {
  json j = json::parse(data_file("polkadot-ed25519.json"));
  j["address"] = keys::ss58_encode(keys::parse_address(kRfcPk));
  EXPECT_THAT(message_of<UsageError>([&] { decrypt_polkadot_json(j.dump(), kOraclePassword); }),
              HasSubstr("address"));
}
