// p2pstream schedule: announce a stream on chain and print its id.
#include <iostream>

#include "common.hpp"
#include "timespec/timespec.hpp"
#include "util/error.hpp"

namespace p2p::cli {
namespace {
struct ScheduleArgs {
  std::string title, start;
  std::optional<std::string> end, duration, description;
  std::string img;
};
}  // namespace

void register_schedule(CLI::App& app, Common& c) {
  auto* sch = app.add_subcommand("schedule", "Schedule a stream; prints its id");
  auto a = std::make_shared<ScheduleArgs>();
  sch->add_option("--title", a->title, "Title (required, at most 200 bytes)")->required();
  sch->add_option("--start", a->start, "Start: now, +30m, or ISO-8601 like 2026-12-01T18:00+01:00")->required();
  auto* end = sch->add_option("--end", a->end, "End, in the same forms as --start (this or --duration is required)");
  auto* dur = sch->add_option("--duration", a->duration, "Length instead of --end: 45m, 1h, 1h30m (this or --end is required)");
  end->excludes(dur);
  sch->add_option("--description", a->description, "Description");
  sch->add_option("--img", a->img, "Cover image URL");
  add_send_flags(*sch, c);
  sch->footer(
      "You need a profile first (p2pstream profile set --name ...).\n"
      "Examples:\n"
      "  p2pstream schedule --title 'Friday jam' --start +30m --duration 1h\n"
      "  p2pstream schedule --title Talk --start 2026-12-01T18:00+01:00 --end 2026-12-01T19:30+01:00 --json\n"
      "  p2pstream schedule --title Test --start now --duration 10m --dry-run");
  sch->callback([&c, a] {
    if (!a->end && !a->duration) throw UsageError("give --end or --duration");
    auto now = timespec::now_ms();
    w3b::NewStream ns;
    ns.title = a->title;
    ns.description = a->description;
    ns.start_time = timespec::parse_time(a->start, now);
    ns.end_time = a->end ? timespec::parse_time(*a->end, now) : ns.start_time + timespec::parse_duration(*a->duration);
    ns.img_link = a->img;
    auto plan = w3b::plan_new_stream(ns, now);
    auto s = make_session(c);
    auto r = run_plan(c, s, plan);
    if (!r) return;
    std::string id;
    for (const auto& e : r->events)
      if (auto* sched = std::get_if<w3b::StreamIsScheduled>(&e)) id = sched->id;
    if (id.empty()) throw RuntimeError("the program accepted the stream but sent no StreamIsScheduled event");
    if (c.json) {
      print_sent(c, *r, id, {{"id", id}, {"start", timespec::format_utc(ns.start_time)},
                             {"end", timespec::format_utc(ns.end_time)}});
      return;
    }
    std::cout << id << std::endl;
    info(c, fmt::format("scheduled '{}' for {} ({}), block {}", ns.title, timespec::format_local(ns.start_time),
                        timespec::format_duration(ns.end_time - ns.start_time), r->receipt.block_number));
  });
}

}  // namespace p2p::cli
