// p2pstream ledger: inspect the embedded ledger (its message log, and a full replay check).
#include <iostream>

#include "common.hpp"
#include "ledger/ledger.hpp"
#include "timespec/timespec.hpp"
#include "util/error.hpp"
#include "w3b/messages.hpp"

namespace p2p::cli {

void register_ledger(CLI::App& app, Common& c) {
  auto* led = app.add_subcommand("ledger", "Inspect the embedded ledger");
  led->require_subcommand(1);
  led->footer(
      "Examples:\n"
      "  p2pstream ledger log --json\n"
      "  p2pstream ledger check");
  auto after = std::make_shared<std::uint64_t>(0);

  auto* log = led->add_subcommand("log", "Print the message log: block, time, sender, method, outcome, events");
  log->add_option("--after", *after, "Only blocks after this one");
  add_output_flags(*log, c);
  log->callback([&c, after] {
    ledger::Ledger l(config::default_paths().ledger_db());
    nlohmann::json out = nlohmann::json::array();
    for (const auto& e : l.log(*after)) {
      std::string method = "?";
      try {
        method = std::string(w3b::method_name(w3b::decode_command(e.payload)));
      } catch (const Error&) {
      }
      nlohmann::json events = nlohmann::json::array();
      for (const auto& ev : e.events) {
        try {
          events.push_back(std::string(w3b::event_name(w3b::decode_event(ev))));
        } catch (const Error&) {
          events.push_back(to_hex(ev));
        }
      }
      nlohmann::json j = {{"block", e.block},
                          {"time", timespec::format_utc(e.time_ms)},
                          {"sender", address(e.sender)},
                          {"method", method},
                          {"payload", to_hex(e.payload)},
                          {"message_id", to_hex(e.message_id)},
                          {"ok", e.ok},
                          {"events", events}};
      if (!e.ok) j["panic"] = e.panic;
      if (c.json) {
        out.push_back(j);
      } else {
        std::cout << fmt::format("#{:<6} {} {:<14} {} {}\n", e.block, timespec::format_local(e.time_ms), method,
                                 address(e.sender), e.ok ? events.dump() : "panicked: " + e.panic);
      }
    }
    if (c.json) print_json(out);
    std::cout.flush();
  });

  auto* check = led->add_subcommand("check", "Replay the log from genesis and compare with the stored state");
  add_output_flags(*check, c);
  check->callback([&c] {
    ledger::Ledger l(config::default_paths().ledger_db());
    auto problem = l.check();
    if (c.json) print_json({{"ok", problem.empty()}, {"height", l.height()}, {"problem", problem}});
    if (!problem.empty()) throw RuntimeError("ledger check failed: " + problem);
    if (!c.json) std::cout << fmt::format("ok: {} blocks replay to the stored state", l.height()) << std::endl;
  });
}

}  // namespace p2p::cli
