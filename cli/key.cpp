// p2pstream key: create, import, list and show the ed25519 keys that sign messages.
#include <fstream>
#include <iostream>
#include <sstream>

#include "common.hpp"
#include "keys/ed25519.hpp"
#include "util/error.hpp"

namespace p2p::cli {
namespace {

struct KeyArgs {
  std::string name;
  std::optional<std::string> seed, json_file;
};

nlohmann::json key_json(const keystore::KeyInfo& k) {
  return {{"name", k.name},
          {"address", keys::ss58_encode(k.public_key)},
          {"public_key", to_hex(k.public_key)},
          {"encrypted", k.encrypted},
          {"created", k.created}};
}

void print_key(const Common& c, const keystore::KeyInfo& k) {
  if (c.json) return print_json(key_json(k));
  std::cout << "name:       " << k.name << "\n"
            << "address:    " << keys::ss58_encode(k.public_key) << "\n"
            << "public key: " << to_hex(k.public_key) << "\n"
            << "encrypted:  " << (k.encrypted ? "yes" : "no") << std::endl;
}

// The first key becomes the default account, so a new user can send at once.
void maybe_make_default(const Common& c, session::Session& s, const std::string& name) {
  if (s.settings().get("account")) return;
  s.settings().set("account", name);
  info(c, fmt::format("'{}' is now the default account (p2pstream config set account NAME to change)", name));
}

std::optional<std::string> new_passphrase(const std::string& name) { return session::passphrase_source()(name, true); }

}  // namespace

void register_key(CLI::App& app, Common& c) {
  auto* key = app.add_subcommand("key", "Create, import, list and show signing keys");
  key->require_subcommand(1);
  key->footer(
      "Keys are ed25519, stored under $XDG_DATA_HOME/p2pstream/keys with mode 0600.\n"
      "A passphrase comes from P2PSTREAM_PASSPHRASE or a prompt; empty means none.\n"
      "Examples:\n"
      "  p2pstream key new alice\n"
      "  p2pstream key import bob --seed 0x9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60\n"
      "  p2pstream key import carol --json carol.json   # polkadot-js ed25519 keystore\n"
      "  p2pstream key list --json");
  auto args = std::make_shared<KeyArgs>();

  auto* make = key->add_subcommand("new", "Generate a new key");
  make->add_option("NAME", args->name, "Key name: letters, digits, . _ -")->required();
  add_output_flags(*make, c);
  make->callback([&c, args] {
    auto s = make_session(c);
    auto k = s.keystore().create(args->name, new_passphrase(args->name));
    print_key(c, k);
    maybe_make_default(c, s, k.name);
  });

  auto* list = key->add_subcommand("list", "List the keys");
  add_output_flags(*list, c);
  list->callback([&c] {
    auto s = make_session(c);
    auto keys = s.keystore().list();
    auto def = s.settings().get("account");
    if (c.json) {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& k : keys) {
        auto j = key_json(k);
        j["default"] = def && *def == k.name;
        out.push_back(j);
      }
      return print_json(out);
    }
    if (keys.empty()) info(c, "no keys yet: create one with `p2pstream key new NAME`");
    for (const auto& k : keys)
      std::cout << fmt::format("{}{:<16} {}{}", def && *def == k.name ? "* " : "  ", k.name,
                               keys::ss58_encode(k.public_key), k.encrypted ? "  (encrypted)" : "")
                << '\n';
    std::cout.flush();
  });

  auto* show = key->add_subcommand("show", "Show a key's addresses");
  show->add_option("NAME", args->name, "Key name")->required();
  add_output_flags(*show, c);
  show->callback([&c, args] {
    auto s = make_session(c);
    print_key(c, s.keystore().info(args->name));
  });

  auto* imp = key->add_subcommand("import", "Import a key from a hex seed or a polkadot-js keystore");
  imp->add_option("NAME", args->name, "Name to store it under")->required();
  auto* seed = imp->add_option("--seed", args->seed, "32-byte seed as 0x + 64 hex digits");
  auto* json = imp->add_option("--json", args->json_file,
                               "polkadot-js ed25519 keystore file; its password from P2PSTREAM_JSON_PASSWORD or a prompt");
  json->type_name("FILE")->check(CLI::ExistingFile);
  seed->excludes(json);
  // --json names the keystore file here (a fixed flag name), so this command prints text only.
  add_output_flags(*imp, c, false);
  imp->callback([&c, args] {
    auto s = make_session(c);
    keystore::KeyInfo k;
    if (args->seed) {
      auto seed = keys::parse_seed(*args->seed);
      k = s.keystore().import_seed(args->name, seed, new_passphrase(args->name));
    } else if (args->json_file) {
      std::ifstream in(*args->json_file);
      if (!in) throw UsageError(fmt::format("cannot read {}: check the path", *args->json_file));
      std::stringstream text;
      text << in.rdbuf();
      std::optional<std::string> pw;
      if (const char* env = std::getenv("P2PSTREAM_JSON_PASSWORD")) pw = env;
      else pw = session::prompt_secret(fmt::format("Password of {}: ", *args->json_file));
      if (!pw) throw UsageError("the keystore's password is needed: set P2PSTREAM_JSON_PASSWORD");
      k = s.keystore().import_polkadot_json(args->name, text.str(), *pw, new_passphrase(args->name));
    } else {
      throw UsageError("give --seed 0x... or --json FILE");
    }
    print_key(c, k);
    maybe_make_default(c, s, k.name);
  });
}

}  // namespace p2p::cli
