// p2pstream streams: list scheduled streams with filters, or show one.
#include <algorithm>
#include <cctype>
#include <iostream>

#include "common.hpp"
#include "keys/ed25519.hpp"
#include "timespec/timespec.hpp"
#include "util/error.hpp"

namespace p2p::cli {
namespace {

struct StreamsArgs {
  bool upcoming = false, live = false, mine = false, subscribed = false;
  std::optional<std::string> by, search;
  std::string id;
};

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  return s;
}

std::string short_addr(const w3b::ActorId& a) {
  auto s = address(a);
  return s.substr(0, 6) + "…" + s.substr(s.size() - 4);
}

}  // namespace

void register_streams(CLI::App& app, Common& c) {
  auto* st = app.add_subcommand("streams", "List scheduled streams, or show one");
  auto a = std::make_shared<StreamsArgs>();
  auto* up = st->add_flag("--upcoming", a->upcoming, "Only streams that have not started");
  auto* live = st->add_flag("--live", a->live, "Only streams on now (between start and end)");
  up->excludes(live);
  st->add_flag("--mine", a->mine, "Only streams of your account");
  st->add_flag("--subscribed", a->subscribed, "Only streams of accounts you subscribe to");
  st->add_option("--by", a->by, "Only streams of this broadcaster (SS58 or 0x hex)");
  st->add_option("--search", a->search, "Only streams whose title or description contains TEXT (any case)");
  add_chain_flags(*st, c);
  st->add_option("--account", c.over.account, "Your key, for --mine and --subscribed [env P2PSTREAM_ACCOUNT]");
  st->footer(
      "Times print in the local time zone (TZ); --json gives UTC and milliseconds.\n"
      "Examples:\n"
      "  p2pstream streams --upcoming\n"
      "  p2pstream streams --subscribed --live --json\n"
      "  p2pstream streams --search jam\n"
      "  p2pstream streams show 1764000000000Talk");
  st->callback([&c, a, st] {
    if (st->got_subcommand("show")) return;
    auto s = make_session(c);
    auto state = w3b::Client(s.transport(), s.program_id()).state();
    auto now = timespec::now_ms();
    std::optional<w3b::ActorId> me, by;
    if (a->mine || a->subscribed) me = s.keystore().info(s.account_name()).public_key;
    if (a->by) by = keys::parse_address(*a->by);
    auto needle = a->search ? lower(*a->search) : std::string();

    std::vector<const std::pair<std::string, w3b::Stream>*> rows;
    for (const auto& entry : state.streams) {
      const auto& str = entry.second;
      auto status = stream_status(str, now);
      if (a->upcoming && status != "upcoming") continue;
      if (a->live && status != "live") continue;
      if (a->mine && str.broadcaster != *me) continue;
      if (by && str.broadcaster != *by) continue;
      if (a->subscribed && !w3b::is_subscribed(state, *me, str.broadcaster)) continue;
      if (a->search && lower(str.title).find(needle) == std::string::npos &&
          lower(str.description.value_or("")).find(needle) == std::string::npos)
        continue;
      rows.push_back(&entry);
    }
    std::stable_sort(rows.begin(), rows.end(),
                     [](auto* x, auto* y) { return x->second.start_time < y->second.start_time; });
    if (c.json) {
      nlohmann::json out = nlohmann::json::array();
      for (auto* r : rows) out.push_back(stream_json(r->first, r->second, now));
      return print_json(out);
    }
    if (rows.empty()) {
      info(c, "no streams match");
      return;
    }
    std::cout << fmt::format("{:<9} {:<23} {:<8} {:<12} {:<30} {}\n", "STATUS", "START", "LENGTH", "BROADCASTER",
                             "TITLE", "ID");
    for (auto* r : rows) {
      const auto& x = r->second;
      std::string title = x.title.size() > 30 ? x.title.substr(0, 27) + "..." : x.title;
      std::cout << fmt::format("{:<9} {:<23} {:<8} {:<12} {:<30} {}\n", stream_status(x, now),
                               timespec::format_local(x.start_time),
                               timespec::format_duration(x.end_time > x.start_time ? x.end_time - x.start_time : 0),
                               short_addr(x.broadcaster), title, r->first);
    }
    std::cout.flush();
  });

  auto* show = st->add_subcommand("show", "Show one stream");
  show->add_option("ID", a->id, "Stream id")->required();
  add_chain_flags(*show, c);
  show->callback([&c, a] {
    auto s = make_session(c);
    auto state = w3b::Client(s.transport(), s.program_id()).state();
    const w3b::Stream* x = state.find_stream(a->id);
    if (!x) throw UsageError(fmt::format("no stream with id '{}': see `p2pstream streams`", a->id));
    auto now = timespec::now_ms();
    if (c.json) return print_json(stream_json(a->id, *x, now));
    std::cout << "id:          " << a->id << "\n"
              << "title:       " << x->title << "\n"
              << "status:      " << stream_status(*x, now) << "\n"
              << "start:       " << timespec::format_local(x->start_time) << "\n"
              << "end:         " << timespec::format_local(x->end_time) << "\n"
              << "broadcaster: " << address(x->broadcaster) << "\n"
              << "description: " << x->description.value_or("-") << "\n"
              << "image:       " << (x->img_link.empty() ? "-" : x->img_link) << std::endl;
  });
}

}  // namespace p2p::cli
