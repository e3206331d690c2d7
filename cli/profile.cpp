// p2pstream profile: show a profile, or change yours with `profile set`.
#include <iostream>

#include "common.hpp"
#include "keys/ed25519.hpp"
#include "util/error.hpp"

namespace p2p::cli {
namespace {

struct ProfileArgs {
  std::optional<std::string> who;
  std::optional<std::string> name, surname, img, time_zone;
};

std::string or_dash(const std::optional<std::string>& v) { return v ? *v : "-"; }

void print_profile(const Common& c, const w3b::ActorId& who, const w3b::Profile& p) {
  if (c.json) return print_json(profile_json(who, p));
  std::cout << "address:       " << address(who) << "\n"
            << "name:          " << or_dash(p.name) << "\n"
            << "surname:       " << or_dash(p.surname) << "\n"
            << "image:         " << or_dash(p.img_link) << "\n"
            << "time zone:     " << or_dash(p.time_zone) << "\n"
            << "streams:       " << p.stream_ids.size() << "\n"
            << "subscribers:   " << p.subscribers.size() << "\n"
            << "subscriptions: " << p.subscriptions.size() << std::endl;
  for (const auto& s : p.subscriptions) std::cout << "  -> " << address(s.account_id) << '\n';
  std::cout.flush();
}

}  // namespace

void register_profile(CLI::App& app, Common& c) {
  auto* prof = app.add_subcommand("profile", "Show your profile, or another account's");
  auto args = std::make_shared<ProfileArgs>();
  prof->add_option("ADDRESS", args->who, "SS58 (any prefix) or 0x hex; default: your account");
  add_chain_flags(*prof, c);
  prof->add_option("--account", c.over.account, "Your key, when ADDRESS is not given [env P2PSTREAM_ACCOUNT]");
  prof->footer(
      "Examples:\n"
      "  p2pstream profile\n"
      "  p2pstream profile kGib7Auhw9nagsKJKx5s6qv5iqFzJaSAhpZqzwWLQZR89dcTi --json\n"
      "  p2pstream profile set --name Ada --surname Lovelace --img https://example.org/ada.png");
  prof->callback([&c, args, prof] {
    if (prof->got_subcommand("set")) return;
    auto s = make_session(c);
    w3b::ActorId who = args->who ? keys::parse_address(*args->who)
                                 : s.keystore().info(s.account_name()).public_key;
    auto state = w3b::Client(s.transport(), s.program_id()).state();
    const w3b::Profile* p = state.find_user(who);
    if (!p)
      throw UsageError(fmt::format("{} has no profile yet{}", address(who),
                                   args->who ? "" : ": create one with `p2pstream profile set --name ...`"));
    print_profile(c, who, *p);
  });

  auto* set = prof->add_subcommand("set", "Create or change your profile; fields not given keep their value");
  set->add_option("--name", args->name, "Name ('' clears it)");
  set->add_option("--surname", args->surname, "Surname ('' clears it)");
  set->add_option("--img", args->img, "Avatar image URL ('' clears it)");
  set->add_option("--time-zone", args->time_zone, "Time zone, e.g. Europe/Berlin ('' clears it)");
  add_send_flags(*set, c);
  set->footer(
      "The deployed program copies the image link into time_zone when it edits an existing\n"
      "profile; p2pstream warns when that changes what you asked for.\n"
      "Examples:\n"
      "  p2pstream profile set --name Ada --time-zone Europe/London\n"
      "  p2pstream profile set --img '' --dry-run");
  set->callback([&c, args] {
    if (!args->name && !args->surname && !args->img && !args->time_zone)
      throw UsageError("nothing to change: give --name, --surname, --img or --time-zone");
    auto s = make_session(c);
    w3b::ProfilePatch patch{patch_from(args->name), patch_from(args->surname), patch_from(args->img),
                            patch_from(args->time_zone)};
    auto me = s.keystore().info(s.account_name()).public_key;
    auto state = w3b::Client(s.transport(), s.program_id()).state();
    auto plan = w3b::plan_edit_profile(state, me, patch);
    if (auto r = run_plan(c, s, plan)) {
      auto after = w3b::Client(s.transport(), s.program_id()).state();
      const w3b::Profile* p = after.find_user(me);
      nlohmann::json extra = p ? nlohmann::json{{"profile", profile_json(me, *p)}} : nlohmann::json::object();
      print_sent(c, *r, fmt::format("profile of {} saved", address(me)), extra);
    }
  });
}

}  // namespace p2p::cli
