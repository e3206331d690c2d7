// p2pstream subscribe / unsubscribe: follow a broadcaster, which also lets you watch their streams.
#include "common.hpp"
#include "keys/ed25519.hpp"

namespace p2p::cli {
namespace {

void add_one(CLI::App& app, Common& c, bool subscribe) {
  auto* sub = app.add_subcommand(subscribe ? "subscribe" : "unsubscribe",
                                 subscribe ? "Subscribe to a broadcaster" : "Unsubscribe from a broadcaster");
  auto target = std::make_shared<std::string>();
  sub->add_option("ADDRESS", *target, "The broadcaster: SS58 (any prefix) or 0x hex")->required();
  add_send_flags(*sub, c);
  sub->footer(subscribe ? "A second subscribe to the same account is refused without sending anything (exit 3).\n"
                          "Example:\n  p2pstream subscribe kGib7Auhw9nagsKJKx5s6qv5iqFzJaSAhpZqzwWLQZR89dcTi"
                        : "Unsubscribing from an account you do not follow is refused without sending (exit 3).\n"
                          "Example:\n  p2pstream unsubscribe 0xd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
  sub->callback([&c, target, subscribe] {
    auto who = keys::parse_address(*target);
    auto s = make_session(c);
    auto me = s.keystore().info(s.account_name()).public_key;
    auto state = w3b::Client(s.transport(), s.program_id()).state();
    // Offline there is no state to check against: send what was asked (run_plan warns).
    auto plan = s.offline() ? w3b::Plan{subscribe ? w3b::Command(w3b::Subscribe{who}) : w3b::Command(w3b::Unsubscribe{who}), {}}
                : subscribe ? w3b::plan_subscribe(state, me, who)
                            : w3b::plan_unsubscribe(state, me, who);
    if (auto r = run_plan(c, s, plan))
      print_sent(c, *r, fmt::format("{} {}", subscribe ? "subscribed to" : "unsubscribed from", address(who)),
                 {{"account", address(who)}});
  });
}

}  // namespace

void register_subscribe(CLI::App& app, Common& c) {
  add_one(app, c, true);
  add_one(app, c, false);
}

}  // namespace p2p::cli
