// p2pstream edit: change a scheduled stream; what you do not pass stays as it is.
#include <iostream>

#include "common.hpp"
#include "timespec/timespec.hpp"
#include "util/error.hpp"

namespace p2p::cli {
namespace {
struct EditArgs {
  std::string id;
  std::optional<std::string> title, start, end, description, img;
  bool clear_description = false;
};
}  // namespace

void register_edit(CLI::App& app, Common& c) {
  auto* ed = app.add_subcommand("edit", "Change a stream you scheduled");
  auto a = std::make_shared<EditArgs>();
  ed->add_option("STREAM_ID", a->id, "The stream's id (see `p2pstream streams --mine`)")->required();
  ed->add_option("--title", a->title, "New title");
  ed->add_option("--start", a->start, "New start: now, +30m, or ISO-8601");
  ed->add_option("--end", a->end, "New end: now, +30m, or ISO-8601");
  auto* desc = ed->add_option("--description", a->description, "New description");
  auto* clear = ed->add_flag("--clear-description", a->clear_description, "Remove the description");
  desc->excludes(clear);
  ed->add_option("--img", a->img, "New cover image URL");
  add_send_flags(*ed, c);
  ed->footer(
      "The deployed program always replaces the description; p2pstream re-sends the current one\n"
      "unless you pass --description or --clear-description.\n"
      "Examples:\n"
      "  p2pstream edit 1764000000000Talk --title 'Talk (moved)' --start +2h\n"
      "  p2pstream edit 1764000000000Talk --clear-description");
  ed->callback([&c, a] {
    if (!a->title && !a->start && !a->end && !a->description && !a->clear_description && !a->img)
      throw UsageError("nothing to change: give --title, --start, --end, --description, --clear-description or --img");
    auto now = timespec::now_ms();
    w3b::StreamPatch p;
    if (a->start) p.start_time = timespec::parse_time(*a->start, now);
    if (a->end) p.end_time = timespec::parse_time(*a->end, now);
    p.title = a->title;
    p.img_link = a->img;
    if (a->clear_description) p.description = std::optional<std::string>(std::nullopt);
    else if (a->description) p.description = std::optional<std::string>(*a->description);
    auto s = make_session(c);
    auto state = w3b::Client(s.transport(), s.program_id()).state();
    auto me = s.keystore().info(s.account_name()).public_key;
    auto plan = w3b::plan_edit_stream(state, me, a->id, p);
    if (auto r = run_plan(c, s, plan)) print_sent(c, *r, fmt::format("stream {} updated", a->id), {{"id", a->id}});
  });
}

}  // namespace p2p::cli
