// keystore: named ed25519 keys on disk, one JSON file per key, mode 0600,
// optionally sealed with a passphrase (argon2id + secretbox); and import of
// polkadot-js ed25519 keystores (scrypt + xsalsa20-poly1305, PKCS#8 body).
#pragma once
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "keys/ed25519.hpp"

namespace p2p::keystore {

// Asked for a passphrase only when one is needed. `confirm` is true when a new
// passphrase is being chosen. Returns nullopt for "no passphrase".
using PassphraseSource = std::function<std::optional<std::string>(const std::string& key_name, bool confirm)>;

struct KeyInfo {
  std::string name;
  keys::PublicKey public_key{};
  bool encrypted = false;
  std::string created;  // ISO-8601 UTC
};

class Keystore {
 public:
  explicit Keystore(std::filesystem::path dir);  // created with mode 0700 on first write

  // Names: 1..64 chars of [A-Za-z0-9._-], not starting with '.'. UsageError otherwise.
  // Each throws UsageError if the name exists (no overwrite: keys are never lost).
  KeyInfo create(const std::string& name, const std::optional<std::string>& passphrase);
  KeyInfo import_seed(const std::string& name, const keys::Seed& seed,
                      const std::optional<std::string>& passphrase);
  // Decrypts a polkadot-js JSON keystore with `json_password`, then stores it like import_seed.
  KeyInfo import_polkadot_json(const std::string& name, const std::string& json_text,
                               const std::string& json_password,
                               const std::optional<std::string>& passphrase);

  std::vector<KeyInfo> list() const;   // sorted by name
  KeyInfo info(const std::string& name) const;  // UsageError "no key named X; see `p2pstream key list`"
  // Loads and, if sealed, unseals with passphrase(). Wrong passphrase: UsageError.
  keys::Keypair load(const std::string& name, const PassphraseSource& passphrase) const;
  bool exists(const std::string& name) const;
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
};

// Decodes a polkadot-js keystore (pure apart from the KDF). Exposed for tests.
keys::Seed decrypt_polkadot_json(const std::string& json_text, const std::string& password);

}  // namespace p2p::keystore
