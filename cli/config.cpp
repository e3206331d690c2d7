// p2pstream config: read and change the defaults in config.json.
#include <iostream>

#include "common.hpp"
#include "util/error.hpp"

namespace p2p::cli {

void register_config(CLI::App& app, Common& c) {
  auto* cfg = app.add_subcommand("config", "Show or change the defaults (endpoint, program, account, signal)");
  cfg->require_subcommand(1);
  std::string footer =
      "Precedence: flags, then P2PSTREAM_* environment variables, then the config file.\nSettings:\n";
  for (const auto& k : config::known_keys()) footer += fmt::format("  {:<9} {} [env {}]\n", k.key, k.help, k.env);
  footer +=
      "Examples:\n"
      "  p2pstream config set account alice\n"
      "  p2pstream config get endpoint\n"
      "  p2pstream config get --json";
  cfg->footer(footer);
  auto key = std::make_shared<std::string>();
  auto value = std::make_shared<std::string>();

  auto* get = cfg->add_subcommand("get", "Print one setting, or all of them");
  get->add_option("KEY", *key, "Setting name");
  add_output_flags(*get, c);
  get->callback([&c, key] {
    auto s = make_session(c);
    if (!key->empty()) {
      config::check_key(*key);
      auto v = s.settings().get(*key);
      if (c.json) return print_json({{*key, v ? nlohmann::json(*v) : nlohmann::json(nullptr)}});
      if (!v) throw RuntimeError(fmt::format("'{}' is not set", *key));
      std::cout << *v << std::endl;
      return;
    }
    nlohmann::json all = nlohmann::json::object();
    for (const auto& k : config::known_keys()) {
      auto v = s.settings().get(k.key);
      all[k.key] = v ? nlohmann::json(*v) : nlohmann::json(nullptr);
    }
    if (c.json) return print_json(all);
    for (const auto& k : config::known_keys())
      std::cout << fmt::format("{:<9} {}", k.key, all[k.key].is_null() ? "(unset)" : all[k.key].get<std::string>())
                << '\n';
    std::cout.flush();
  });

  auto* set = cfg->add_subcommand("set", "Change a setting");
  set->add_option("KEY", *key, "Setting name")->required();
  set->add_option("VALUE", *value, "New value")->required();
  add_output_flags(*set, c);
  set->callback([&c, key, value] {
    auto s = make_session(c);
    s.settings().set(*key, *value);
    if (c.json) return print_json({{*key, *value}});
    info(c, fmt::format("{} = {} (in {})", *key, *value, s.settings().file().string()));
  });

  auto* unset = cfg->add_subcommand("unset", "Remove a setting, back to its default");
  unset->add_option("KEY", *key, "Setting name")->required();
  add_output_flags(*unset, c);
  unset->callback([&c, key] {
    auto s = make_session(c);
    s.settings().unset(*key);
    if (c.json) print_json({{*key, nullptr}});
  });

  auto* path = cfg->add_subcommand("path", "Print where the config file, the keys or the ledger live");
  auto which = std::make_shared<std::string>("config");
  path->add_option("WHICH", *which, "config (default), keys or ledger");
  add_output_flags(*path, c);
  path->callback([&c, which] {
    if (*which != "config" && *which != "keys" && *which != "ledger")
      throw UsageError(fmt::format("'{}': config path takes config, keys or ledger", *which));
    auto p = config::default_paths();
    if (c.json)
      return print_json({{"config", p.config_file().string()},
                         {"keys", p.keys_dir().string()},
                         {"ledger", p.ledger_db().string()}});
    std::cout << (*which == "keys" ? p.keys_dir() : *which == "ledger" ? p.ledger_db() : p.config_file()).string()
              << std::endl;
  });
}

}  // namespace p2p::cli
