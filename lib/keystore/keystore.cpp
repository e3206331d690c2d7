// keystore: one JSON file per named key (mode 0600, optionally sealed with
// argon2id + secretbox), written atomically; and polkadot-js JSON import.
#include "keystore/keystore.hpp"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace p2p::keystore {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr int kFileVersion = 1;
constexpr std::size_t kMaxNameLen = 64;
// Key files and polkadot-js keystores are a few hundred bytes; a bound keeps a
// stray large file from being read into memory.
constexpr std::uintmax_t kMaxFileBytes = 64 * 1024;

void ensure_sodium() {
  static const bool ready = sodium_init() >= 0;
  if (!ready) throw RuntimeError("libsodium failed to initialise; the system random source may be unavailable");
}

// Wipes a buffer of secrets when it goes out of scope, however we leave.
template <typename T>
struct Wipe {
  T& buf;
  ~Wipe() { sodium_memzero(buf.data(), buf.size()); }
};

std::string errno_text() { return std::strerror(errno); }

void check_name(const std::string& name) {
  bool ok = !name.empty() && name.size() <= kMaxNameLen && name[0] != '.' &&
            std::all_of(name.begin(), name.end(), [](char c) {
              return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
                     c == '_' || c == '-';
            });
  if (!ok) {
    std::string shown = name.size() > 80 ? name.substr(0, 80) + "..." : name;
    throw UsageError("'" + shown +
                     "' is not a valid key name: use 1 to 64 of A-Z a-z 0-9 . _ - and do not start with '.'");
  }
}

UsageError already_exists(const std::string& name) {
  return UsageError("a key named " + name + " already exists; keys are never overwritten, so pick another name");
}

std::optional<std::string> nonempty(const std::optional<std::string>& s) {
  if (s && !s->empty()) return s;
  return std::nullopt;
}

std::string now_iso8601() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

template <std::size_t N>
std::optional<std::array<std::uint8_t, N>> fixed_from_hex(const std::string& text) {
  auto bytes = from_hex(text);
  if (!bytes || bytes->size() != N || text.rfind("0x", 0) != 0) return std::nullopt;
  std::array<std::uint8_t, N> out;
  std::copy(bytes->begin(), bytes->end(), out.begin());
  sodium_memzero(bytes->data(), bytes->size());
  return out;
}

// ---- sealing with a passphrase ----

struct Sealed {
  unsigned long long opslimit = 0;
  std::size_t memlimit = 0;
  std::array<std::uint8_t, crypto_pwhash_SALTBYTES> salt{};
  std::array<std::uint8_t, crypto_secretbox_NONCEBYTES> nonce{};
  std::array<std::uint8_t, 32 + crypto_secretbox_MACBYTES> ciphertext{};
};

using BoxKey = std::array<std::uint8_t, crypto_secretbox_KEYBYTES>;

BoxKey derive_box_key(const std::string& passphrase, const Sealed& s) {
  BoxKey key;
  if (crypto_pwhash(key.data(), key.size(), passphrase.data(), passphrase.size(), s.salt.data(), s.opslimit,
                    s.memlimit, crypto_pwhash_ALG_ARGON2ID13) != 0)
    throw RuntimeError("could not derive the key from the passphrase: out of memory");
  return key;
}

Sealed seal(const keys::Seed& seed, const std::string& passphrase) {
  Sealed s;
  s.opslimit = crypto_pwhash_OPSLIMIT_INTERACTIVE;
  s.memlimit = crypto_pwhash_MEMLIMIT_INTERACTIVE;
  randombytes_buf(s.salt.data(), s.salt.size());
  randombytes_buf(s.nonce.data(), s.nonce.size());
  BoxKey key = derive_box_key(passphrase, s);
  Wipe<BoxKey> wipe{key};
  crypto_secretbox_easy(s.ciphertext.data(), seed.data(), seed.size(), s.nonce.data(), key.data());
  return s;
}

// ---- the key file ----

struct KeyFile {
  KeyInfo info;
  std::optional<keys::Seed> seed;  // when not sealed
  std::optional<Sealed> sealed;
};

json to_json(const std::string& name, const keys::Keypair& kp, const std::optional<std::string>& passphrase,
             const std::string& created) {
  json j = {{"version", kFileVersion},
            {"name", name},
            {"public_key", to_hex(kp.public_key())},
            {"address", keys::ss58_encode(kp.public_key())},
            {"created", created}};
  if (passphrase) {
    Sealed s = seal(kp.seed(), *passphrase);
    j["crypto"] = {{"kdf", "argon2id"},        {"opslimit", s.opslimit},
                   {"memlimit", s.memlimit},   {"salt", to_hex(s.salt)},
                   {"nonce", to_hex(s.nonce)}, {"ciphertext", to_hex(s.ciphertext)}};
  } else {
    j["seed"] = to_hex(kp.seed());
  }
  return j;
}

[[noreturn]] void corrupt(const fs::path& file, const std::string& why) {
  throw RuntimeError("key file " + file.string() + " is corrupt (" + why +
                     "); restore it from a backup or remove it");
}

Sealed parse_sealed(const fs::path& file, const json& c) {
  if (c.at("kdf").get<std::string>() != "argon2id") corrupt(file, "unknown kdf");
  Sealed s;
  s.opslimit = c.at("opslimit").get<unsigned long long>();
  s.memlimit = c.at("memlimit").get<std::size_t>();
  // Bounds keep an edited file from asking for gigabytes or hours.
  if (s.opslimit < crypto_pwhash_OPSLIMIT_MIN || s.opslimit > 16) corrupt(file, "opslimit out of range");
  if (s.memlimit < crypto_pwhash_MEMLIMIT_MIN || s.memlimit > crypto_pwhash_MEMLIMIT_MODERATE)
    corrupt(file, "memlimit out of range");
  auto salt = fixed_from_hex<crypto_pwhash_SALTBYTES>(c.at("salt").get<std::string>());
  auto nonce = fixed_from_hex<crypto_secretbox_NONCEBYTES>(c.at("nonce").get<std::string>());
  auto ct = fixed_from_hex<32 + crypto_secretbox_MACBYTES>(c.at("ciphertext").get<std::string>());
  if (!salt || !nonce || !ct) corrupt(file, "bad salt, nonce or ciphertext");
  s.salt = *salt;
  s.nonce = *nonce;
  s.ciphertext = *ct;
  return s;
}

KeyFile parse_key_file(const fs::path& file, const std::string& name, const std::string& text) {
  KeyFile k;
  k.info.name = name;
  try {
    json j = json::parse(text);
    if (!j.is_object()) corrupt(file, "not a JSON object");
    if (j.at("version").get<int>() != kFileVersion)
      throw RuntimeError("key file " + file.string() + " has an unsupported version; upgrade p2pstream");
    auto pk = fixed_from_hex<32>(j.at("public_key").get<std::string>());
    if (!pk) corrupt(file, "bad public_key");
    k.info.public_key = *pk;
    k.info.created = j.at("created").get<std::string>();
    if (j.contains("crypto")) {
      k.sealed = parse_sealed(file, j.at("crypto"));
      k.info.encrypted = true;
    } else {
      k.seed = fixed_from_hex<32>(j.at("seed").get<std::string>());
      if (!k.seed) corrupt(file, "bad seed");
    }
  } catch (const json::exception& e) {
    corrupt(file, e.what());
  }
  return k;
}

std::string read_small_file(const fs::path& file) {
  std::error_code ec;
  auto size = fs::file_size(file, ec);
  if (ec) throw RuntimeError("cannot read key file " + file.string() + ": " + ec.message());
  if (size > kMaxFileBytes) corrupt(file, "too large");
  std::ifstream in(file, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  if (!in) throw RuntimeError("cannot read key file " + file.string());
  return out.str();
}

// ---- atomic, no-overwrite write ----

void ensure_private_dir(const fs::path& dir) {
  std::error_code ec;
  if (fs::is_directory(dir, ec)) return;
  if (dir.has_parent_path()) fs::create_directories(dir.parent_path(), ec);
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    throw RuntimeError("cannot create the key directory " + dir.string() + ": " + errno_text());
  // The umask may have dropped bits we need; it cannot have added any.
  ::chmod(dir.c_str(), 0700);
}

void write_all(int fd, const std::string& data, const fs::path& path) {
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw RuntimeError("cannot write " + path.string() + ": " + errno_text());
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) throw RuntimeError("cannot write " + path.string() + ": " + errno_text());
}

fs::path temp_path(const fs::path& dir, const std::string& name) {
  std::array<std::uint8_t, 8> r;
  randombytes_buf(r.data(), r.size());
  return dir / ("." + name + ".json.tmp-" + to_hex(r, false));
}

// Moves tmp to final, failing if final exists, so a racing writer cannot lose a key.
void publish(const fs::path& tmp, const fs::path& final_path, const std::string& name) {
  int rc = ::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, final_path.c_str(), RENAME_NOREPLACE);
  if (rc != 0 && (errno == EINVAL || errno == ENOSYS)) {  // file system without renameat2
    rc = ::link(tmp.c_str(), final_path.c_str());
    if (rc == 0) ::unlink(tmp.c_str());
  }
  if (rc == 0) return;
  int err = errno;
  ::unlink(tmp.c_str());
  if (err == EEXIST) throw already_exists(name);
  throw RuntimeError("cannot store key " + final_path.string() + ": " + std::strerror(err));
}

void sync_dir(const fs::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;  // durability only; the key is already in place
  ::fsync(fd);
  ::close(fd);
}

void write_key_file(const fs::path& dir, const std::string& name, const std::string& text) {
  ensure_private_dir(dir);
  fs::path tmp = temp_path(dir, name);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) throw RuntimeError("cannot create " + tmp.string() + ": " + errno_text());
  try {
    // The umask may have dropped bits; the documented mode is exactly 0600.
    if (::fchmod(fd, 0600) != 0) throw RuntimeError("cannot set the mode of " + tmp.string() + ": " + errno_text());
    write_all(fd, text, tmp);
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (::close(fd) != 0) {
    ::unlink(tmp.c_str());
    throw RuntimeError("cannot write " + tmp.string() + ": " + errno_text());
  }
  publish(tmp, dir / (name + ".json"), name);
  sync_dir(dir);
}

// ---- polkadot-js ----

constexpr std::array<std::uint8_t, 16> kPkcs8Header = {0x30, 0x53, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06,
                                                       0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20};
constexpr std::array<std::uint8_t, 5> kPkcs8Divider = {0xa1, 0x23, 0x03, 0x21, 0x00};
constexpr std::size_t kPkcs8Len = 16 + 64 + 5 + 32;
constexpr std::size_t kScryptSaltLen = 32;
constexpr std::size_t kScryptParamsLen = 12;
constexpr std::size_t kPolkadotHeaderLen = kScryptSaltLen + kScryptParamsLen + crypto_secretbox_NONCEBYTES;

const std::string kNotKeystore = "this is not a polkadot-js JSON keystore: ";

std::uint32_t u32le(const std::uint8_t* p) {
  return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
         static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}

void check_encoding(const json& j) {
  const json& enc = j.at("encoding");
  const json& content = enc.at("content");
  if (!content.is_array()) throw UsageError(kNotKeystore + "encoding.content is not a list");
  for (const auto& c : content) {
    std::string kind = c.get<std::string>();
    if (kind != "pkcs8" && kind != "ed25519")
      throw UsageError("only ed25519 keystores are supported; this one is " + kind.substr(0, 40));
  }
  if (std::find(content.begin(), content.end(), json("ed25519")) == content.end())
    throw UsageError("only ed25519 keystores are supported; this one names no key type");
  std::string version = enc.at("version").is_string() ? enc.at("version").get<std::string>() : enc.at("version").dump();
  if (version != "3")
    throw UsageError("polkadot-js keystore version " + version.substr(0, 20) +
                     " is not supported: only version 3; re-export the account from a current wallet");
  const json& type = enc.at("type");
  bool scrypt = type.is_array() && std::find(type.begin(), type.end(), json("scrypt")) != type.end();
  bool box = type.is_array() && std::find(type.begin(), type.end(), json("xsalsa20-poly1305")) != type.end();
  if (!scrypt || !box)
    throw UsageError("this polkadot-js keystore is not encrypted with scrypt + xsalsa20-poly1305; "
                     "export it with a password, or import its hex seed instead");
}

Bytes decode_base64(const std::string& text) {
  Bytes out(text.size() / 4 * 3 + 3);
  std::size_t len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(out.data(), out.size(), text.data(), text.size(), " \t\r\n", &len, &end,
                        sodium_base64_VARIANT_ORIGINAL) != 0 ||
      end != text.data() + text.size())
    throw UsageError(kNotKeystore + "'encoded' is not valid base64");
  out.resize(len);
  return out;
}

struct ScryptParams {
  std::uint32_t n, p, r;
};

void check_scrypt_params(const ScryptParams& s) {
  // polkadot-js writes N=32768, p=1, r=8. Bounds stop a hostile file from making us
  // allocate gigabytes (memory is 128 * N * r bytes) or spin for minutes.
  bool n_ok = s.n >= 2 && s.n <= (1u << 20) && (s.n & (s.n - 1)) == 0;
  bool rp_ok = s.r >= 1 && s.r <= 16 && s.p >= 1 && s.p <= 16;
  bool mem_ok = static_cast<std::uint64_t>(s.n) * s.r <= (1u << 21);  // <= 256 MiB
  if (!n_ok || !rp_ok || !mem_ok)
    throw UsageError(kNotKeystore + "its scrypt parameters (N=" + std::to_string(s.n) + ", r=" + std::to_string(s.r) +
                     ", p=" + std::to_string(s.p) + ") are outside the accepted range");
}

keys::Seed seed_from_pkcs8(const Bytes& plain) {
  auto at = [&](std::size_t off) { return plain.begin() + static_cast<std::ptrdiff_t>(off); };
  if (plain.size() != kPkcs8Len || !std::equal(kPkcs8Header.begin(), kPkcs8Header.end(), at(0)) ||
      !std::equal(kPkcs8Divider.begin(), kPkcs8Divider.end(), at(16 + 64)))
    throw UsageError(kNotKeystore + "the decrypted key is not an ed25519 PKCS#8 key");
  keys::Seed seed;
  std::copy(at(16), at(16 + 32), seed.begin());
  keys::PublicKey derived = keys::Keypair::from_seed(seed).public_key();
  bool inner = std::equal(derived.begin(), derived.end(), at(16 + 32));
  bool outer = std::equal(derived.begin(), derived.end(), at(16 + 64 + 5));
  if (!inner || !outer) {
    sodium_memzero(seed.data(), seed.size());
    throw UsageError(kNotKeystore + "its public key does not match its secret key; the file is corrupt");
  }
  return seed;
}

void check_address(const json& j, const keys::Seed& seed) {
  if (!j.contains("address") || !j.at("address").is_string()) return;
  keys::Ss58Address addr;
  try {
    addr = keys::ss58_decode(j.at("address").get<std::string>());
  } catch (const UsageError&) {
    return;  // the address is a display hint; the key itself was verified
  }
  if (addr.public_key != keys::Keypair::from_seed(seed).public_key())
    throw UsageError(kNotKeystore + "its address does not belong to its key; the file is corrupt");
}

}  // namespace

keys::Seed decrypt_polkadot_json(const std::string& json_text, const std::string& password) {
  ensure_sodium();
  if (json_text.size() > kMaxFileBytes) throw UsageError(kNotKeystore + "the file is too large");
  json j;
  Bytes encoded;
  try {
    j = json::parse(json_text);
    if (!j.is_object()) throw UsageError(kNotKeystore + "expected a JSON object");
    check_encoding(j);
    encoded = decode_base64(j.at("encoded").get<std::string>());
  } catch (const json::exception& e) {
    throw UsageError(kNotKeystore + e.what());
  }
  if (encoded.size() < kPolkadotHeaderLen + crypto_secretbox_MACBYTES)
    throw UsageError(kNotKeystore + "'encoded' is too short");
  const std::uint8_t* p = encoded.data();
  ScryptParams sp{u32le(p + 32), u32le(p + 36), u32le(p + 40)};
  check_scrypt_params(sp);

  std::array<std::uint8_t, 64> derived;
  Wipe<std::array<std::uint8_t, 64>> wipe_derived{derived};
  if (crypto_pwhash_scryptsalsa208sha256_ll(reinterpret_cast<const std::uint8_t*>(password.data()), password.size(),
                                            p, kScryptSaltLen, sp.n, sp.r, sp.p, derived.data(), derived.size()) != 0)
    throw RuntimeError("scrypt failed while decrypting the keystore: out of memory");

  const std::uint8_t* nonce = p + kScryptSaltLen + kScryptParamsLen;
  const std::uint8_t* ct = p + kPolkadotHeaderLen;
  std::size_t ct_len = encoded.size() - kPolkadotHeaderLen;
  Bytes plain(ct_len - crypto_secretbox_MACBYTES);
  Wipe<Bytes> wipe_plain{plain};
  if (crypto_secretbox_open_easy(plain.data(), ct, ct_len, nonce, derived.data()) != 0)
    throw UsageError("wrong password for the keystore");
  keys::Seed seed = seed_from_pkcs8(plain);
  check_address(j, seed);
  return seed;
}

Keystore::Keystore(fs::path dir) : dir_(std::move(dir)) {}

KeyInfo Keystore::create(const std::string& name, const std::optional<std::string>& passphrase) {
  check_name(name);
  keys::Keypair kp = keys::Keypair::generate();
  return import_seed(name, kp.seed(), passphrase);
}

KeyInfo Keystore::import_seed(const std::string& name, const keys::Seed& seed,
                              const std::optional<std::string>& passphrase) {
  check_name(name);
  ensure_sodium();
  if (exists(name))
    throw already_exists(name);
  keys::Keypair kp = keys::Keypair::from_seed(seed);
  auto pass = nonempty(passphrase);
  KeyInfo info{name, kp.public_key(), pass.has_value(), now_iso8601()};
  std::string text = to_json(name, kp, pass, info.created).dump(2) + "\n";
  Wipe<std::string> wipe{text};
  write_key_file(dir_, name, text);
  return info;
}

KeyInfo Keystore::import_polkadot_json(const std::string& name, const std::string& json_text,
                                       const std::string& json_password,
                                       const std::optional<std::string>& passphrase) {
  check_name(name);
  if (exists(name))
    throw already_exists(name);
  keys::Seed seed = decrypt_polkadot_json(json_text, json_password);
  Wipe<keys::Seed> wipe{seed};
  return import_seed(name, seed, passphrase);
}

std::vector<KeyInfo> Keystore::list() const {
  std::vector<KeyInfo> out;
  std::error_code ec;
  if (!fs::is_directory(dir_, ec)) return out;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    const fs::path& p = entry.path();
    std::string stem = p.stem().string();
    if (p.extension() != ".json" || stem.empty() || stem[0] == '.' || stem.size() > kMaxNameLen) continue;
    if (!entry.is_regular_file(ec)) continue;
    out.push_back(info(stem));
  }
  if (ec) throw RuntimeError("cannot list the key directory " + dir_.string() + ": " + ec.message());
  std::sort(out.begin(), out.end(), [](const KeyInfo& a, const KeyInfo& b) { return a.name < b.name; });
  return out;
}

KeyInfo Keystore::info(const std::string& name) const {
  check_name(name);
  if (!exists(name)) throw UsageError("no key named " + name + "; see `p2pstream key list`");
  fs::path file = dir_ / (name + ".json");
  std::string text = read_small_file(file);
  Wipe<std::string> wipe{text};
  KeyFile k = parse_key_file(file, name, text);
  if (k.seed) sodium_memzero(k.seed->data(), k.seed->size());
  return k.info;
}

keys::Keypair Keystore::load(const std::string& name, const PassphraseSource& passphrase) const {
  check_name(name);
  ensure_sodium();
  if (!exists(name)) throw UsageError("no key named " + name + "; see `p2pstream key list`");
  fs::path file = dir_ / (name + ".json");
  std::string text = read_small_file(file);
  Wipe<std::string> wipe_text{text};
  KeyFile k = parse_key_file(file, name, text);
  keys::Seed seed{};
  Wipe<keys::Seed> wipe_seed{seed};
  if (k.sealed) {
    std::optional<std::string> pass = passphrase ? nonempty(passphrase(name, false)) : std::nullopt;
    if (!pass)
      throw UsageError("key " + name + " is sealed with a passphrase; set P2PSTREAM_PASSPHRASE or run in a terminal "
                       "to be asked for it");
    BoxKey key = derive_box_key(*pass, *k.sealed);
    Wipe<BoxKey> wipe_key{key};
    const auto& ct = k.sealed->ciphertext;
    if (crypto_secretbox_open_easy(seed.data(), ct.data(), ct.size(), k.sealed->nonce.data(), key.data()) != 0)
      throw UsageError("wrong passphrase for key " + name);
  } else {
    seed = *k.seed;
    sodium_memzero(k.seed->data(), k.seed->size());
  }
  keys::Keypair kp = keys::Keypair::from_seed(seed);
  if (kp.public_key() != k.info.public_key) corrupt(file, "the seed does not match the public key");
  return kp;
}

bool Keystore::exists(const std::string& name) const {
  check_name(name);
  std::error_code ec;
  return fs::exists(dir_ / (name + ".json"), ec);
}

}  // namespace p2p::keystore
