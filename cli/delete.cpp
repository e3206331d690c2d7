// p2pstream delete: remove a stream you scheduled.
#include "common.hpp"

namespace p2p::cli {

void register_delete(CLI::App& app, Common& c) {
  auto* del = app.add_subcommand("delete", "Delete a stream you scheduled");
  auto id = std::make_shared<std::string>();
  del->add_option("STREAM_ID", *id, "The stream's id (see `p2pstream streams --mine`)")->required();
  add_send_flags(*del, c);
  del->footer("Example:\n  p2pstream delete 1764000000000Talk");
  del->callback([&c, id] {
    auto s = make_session(c);
    auto plan = w3b::plan_delete_stream(*id);
    if (auto r = run_plan(c, s, plan)) print_sent(c, *r, fmt::format("stream {} deleted", *id), {{"id", *id}});
  });
}

}  // namespace p2p::cli
