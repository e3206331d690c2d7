// p2pstream events: the W3Bstreaming program's Sails events, read from the embedded ledger's log or from a
// node's blocks; --follow keeps polling for new ones.
#include <chrono>
#include <iostream>
#include <thread>

#include "common.hpp"
#include "gear_rpc/gear_transport.hpp"
#include "ledger/ledger.hpp"
#include "util/error.hpp"
#include "w3b/messages.hpp"

namespace p2p::cli {
namespace {

struct EventsArgs {
  bool follow = false;
  std::optional<std::uint64_t> from;
};

nlohmann::json event_json(std::uint64_t block, ByteView payload) {
  nlohmann::json j = {{"block", block}};
  try {
    auto ev = w3b::decode_event(payload);
    j["event"] = std::string(w3b::event_name(ev));
    if (auto* e = std::get_if<w3b::StreamIsScheduled>(&ev)) j["id"] = e->id;
    if (auto* e = std::get_if<w3b::StreamDeleted>(&ev)) j["id"] = e->id;
    if (auto* e = std::get_if<w3b::AdminAdded>(&ev)) j["account"] = address(e->new_admin_id);
    if (auto* e = std::get_if<w3b::Killed>(&ev)) j["account"] = address(e->inheritor);
  } catch (const Error&) {
    j["event"] = nullptr;  // not one of W3Bstreaming's: show the bytes
  }
  j["payload"] = to_hex(payload);
  return j;
}

// Human: one line per event; --json: an array, or with --follow one object per line as they come.
class Printer {
 public:
  explicit Printer(const Common& c, bool follow) : c_(c), follow_(follow) {}
  void add(std::uint64_t block, ByteView payload) {
    auto j = event_json(block, payload);
    if (c_.json && !follow_) return all_.push_back(std::move(j));
    if (c_.json) {
      std::cout << j.dump() << std::endl;
      return;
    }
    std::string what = j["event"].is_null() ? "(not a W3Bstreaming event) " + j["payload"].get<std::string>()
                                            : j["event"].get<std::string>();
    if (j.contains("id")) what += " " + j["id"].get<std::string>();
    if (j.contains("account")) what += " " + j["account"].get<std::string>();
    std::cout << fmt::format("#{:<8} {}", block, what) << std::endl;
  }
  void finish() {
    if (c_.json && !follow_) print_json(all_);
  }

 private:
  const Common& c_;
  bool follow_;
  nlohmann::json all_ = nlohmann::json::array();
};

void from_ledger(ledger::LedgerTransport& t, const EventsArgs& a, Printer& out) {
  auto& l = t.ledger();
  std::uint64_t after = a.from ? (*a.from > 0 ? *a.from - 1 : 0) : a.follow ? l.height() : 0;
  for (;;) {
    for (const auto& e : l.log(after)) {
      for (const auto& ev : e.events) out.add(e.block, ev);
      after = e.block;
    }
    if (!a.follow) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

void from_node(gear_rpc::GearTransport& t, const chain::ProgramId& program, const EventsArgs& a, Printer& out) {
  constexpr std::uint64_t kLookBack = 100;
  std::uint64_t head = t.head_number();
  std::uint64_t next = a.from ? *a.from : a.follow ? head + 1 : (head >= kLookBack ? head - kLookBack + 1 : 0);
  for (;;) {
    if (next <= head) {
      for (const auto& e : t.program_events(program, next, head)) out.add(e.block_number, e.payload);
      next = head + 1;
    }
    if (!a.follow) return;
    std::this_thread::sleep_for(t.poll_interval());
    head = t.head_number();
  }
}

}  // namespace

void register_events(CLI::App& app, Common& c) {
  auto* ev = app.add_subcommand("events", "Print the program's events (StreamIsScheduled, Subscribed, ...)");
  auto a = std::make_shared<EventsArgs>();
  ev->add_flag("--follow", a->follow, "Keep waiting for new events (stop with Ctrl-C)");
  ev->add_option("--from", a->from,
                 "First block to read (default: the whole ledger log; on a node the last 100 blocks; with --follow "
                 "only new blocks)");
  add_chain_flags(*ev, c);
  add_node_wait_flags(*ev, c);
  ev->footer(
      "With --json: an array, or with --follow one JSON object per line.\n"
      "Examples:\n"
      "  p2pstream events\n"
      "  p2pstream events --follow --json --endpoint testnet --program 0x...");
  ev->callback([&c, a] {
    auto s = make_session(c);
    auto program = s.program_id();
    auto& t = s.transport();
    Printer out(c, a->follow);
    if (auto* led = dynamic_cast<ledger::LedgerTransport*>(&t))
      from_ledger(*led, *a, out);
    else if (auto* node = dynamic_cast<gear_rpc::GearTransport*>(&t))
      from_node(*node, program, *a, out);
    else
      throw UsageError("events needs the ledger or a node endpoint");
    out.finish();
  });
}

}  // namespace p2p::cli
