// w3b/plan: turns what the user asked for into the exact command to send, so the
// deployed program's quirks do not bite (chain.md): unchanged profile fields and
// stream descriptions are re-sent, duplicate subscriptions are refused, and the
// time_zone bug is warned about. Pure: state in, command out.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "w3b/types.hpp"

namespace p2p::w3b {

// Outer nullopt: keep the current value. Inner nullopt: clear it.
template <class T>
using Patch = std::optional<std::optional<T>>;

struct ProfilePatch {
  Patch<std::string> name, surname, img_link, time_zone;
};

struct StreamPatch {
  std::optional<std::uint64_t> start_time, end_time;
  std::optional<std::string> title, img_link;
  Patch<std::string> description;
};

struct Plan {
  Command command;
  std::vector<std::string> warnings;  // for stderr; the command is still sent
};

// Field limits the CLI enforces before anything is sent (bytes of UTF-8).
struct Limits {
  static constexpr std::size_t title = 200, description = 5000, img_link = 2048, name = 128, time_zone = 64;
};

// UsageError on an empty title, end <= start, a start before now_ms, or an oversize field.
Plan plan_new_stream(const NewStream& s, std::uint64_t now_ms);
Plan plan_edit_profile(const ProgramState& st, const ActorId& sender, const ProfilePatch& p);
// UsageError when the merged times end <= start or a field is oversize.
Plan plan_edit_stream(const ProgramState& st, const ActorId& sender, const std::string& id, const StreamPatch& p);
Plan plan_delete_stream(const std::string& id);
// RefusedError "already subscribed ..." (nothing is sent), UsageError on subscribing to yourself.
Plan plan_subscribe(const ProgramState& st, const ActorId& sender, const ActorId& target);
// RefusedError "not subscribed ..." (nothing is sent).
Plan plan_unsubscribe(const ProgramState& st, const ActorId& sender, const ActorId& target);

bool is_subscribed(const ProgramState& st, const ActorId& watcher, const ActorId& broadcaster);

}  // namespace p2p::w3b
