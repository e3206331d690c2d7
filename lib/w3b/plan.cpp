#include "w3b/plan.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "util/bytes.hpp"
#include "util/error.hpp"

namespace p2p::w3b {
namespace {

void check_size(std::string_view what, const std::string& v, std::size_t max) {
  if (v.size() > max)
    throw UsageError(fmt::format("{} is {} bytes; the limit is {}: shorten it", what, v.size(), max));
}
void check_size(std::string_view what, const std::optional<std::string>& v, std::size_t max) {
  if (v) check_size(what, *v, max);
}

template <class T>
std::optional<T> merge(const Patch<T>& p, const std::optional<T>& current) {
  return p ? *p : current;
}

std::string short_id(const ActorId& a) { return to_hex(a); }

}  // namespace

Plan plan_new_stream(const NewStream& s, std::uint64_t now_ms) {
  if (s.title.empty()) throw UsageError("the title is empty: give --title");
  check_size("the title", s.title, Limits::title);
  check_size("the description", s.description, Limits::description);
  check_size("the image link", s.img_link, Limits::img_link);
  if (s.end_time <= s.start_time) throw UsageError("the end is not after the start: give a later --end or a --duration");
  // A minute of slack so "now" typed a moment ago is not refused.
  if (s.start_time + 60'000 < now_ms) throw UsageError("the start is in the past: give a later --start (e.g. now or +30m)");
  return {s, {}};
}

Plan plan_edit_profile(const ProgramState& st, const ActorId& sender, const ProfilePatch& p) {
  const Profile* cur = st.find_user(sender);
  EditProfile cmd;
  if (cur) {
    cmd.name = merge(p.name, cur->name);
    cmd.surname = merge(p.surname, cur->surname);
    cmd.img_link = merge(p.img_link, cur->img_link);
    cmd.time_zone = merge(p.time_zone, cur->time_zone);
  } else {
    cmd.name = p.name.value_or(std::nullopt);
    cmd.surname = p.surname.value_or(std::nullopt);
    cmd.img_link = p.img_link.value_or(std::nullopt);
    cmd.time_zone = p.time_zone.value_or(std::nullopt);
  }
  check_size("the name", cmd.name, Limits::name);
  check_size("the surname", cmd.surname, Limits::name);
  check_size("the image link", cmd.img_link, Limits::img_link);
  check_size("the time zone", cmd.time_zone, Limits::time_zone);
  Plan plan{cmd, {}};
  // The deployed program copies img_link into time_zone when it edits an existing profile.
  if (cur && cmd.time_zone != cmd.img_link) {
    plan.warnings.push_back(fmt::format(
        "the deployed program stores the image link in time_zone when it edits a profile (a known bug): "
        "time_zone will read back as {}",
        cmd.img_link ? "'" + *cmd.img_link + "'" : std::string("unset")));
  }
  return plan;
}

Plan plan_edit_stream(const ProgramState& st, const ActorId& sender, const std::string& id, const StreamPatch& p) {
  (void)sender;  // ownership is the program's to check; a refusal comes back as its reason
  EditStream cmd;
  cmd.stream_id = id;
  cmd.start_time = p.start_time;
  cmd.end_time = p.end_time;
  cmd.title = p.title;
  cmd.img_link = p.img_link;
  const Stream* cur = st.find_stream(id);
  // The program always replaces the description, so an unchanged one is re-sent.
  cmd.description = cur ? merge(p.description, cur->description) : p.description.value_or(std::nullopt);
  if (cmd.title && cmd.title->empty()) throw UsageError("the title is empty: give a non-empty --title");
  check_size("the title", cmd.title, Limits::title);
  check_size("the description", cmd.description, Limits::description);
  check_size("the image link", cmd.img_link, Limits::img_link);
  if (cur) {
    auto start = cmd.start_time.value_or(cur->start_time), end = cmd.end_time.value_or(cur->end_time);
    if (end <= start) throw UsageError("the end would not be after the start: adjust --start or --end");
  } else if (cmd.start_time && cmd.end_time && *cmd.end_time <= *cmd.start_time) {
    throw UsageError("the end is not after the start: adjust --start or --end");
  }
  return {cmd, {}};
}

Plan plan_delete_stream(const std::string& id) {
  if (id.empty()) throw UsageError("the stream id is empty: see `p2pstream streams --mine`");
  return {DeleteStream{id}, {}};
}

bool is_subscribed(const ProgramState& st, const ActorId& watcher, const ActorId& broadcaster) {
  if (const Profile* w = st.find_user(watcher))
    return std::any_of(w->subscriptions.begin(), w->subscriptions.end(),
                       [&](const Subscription& s) { return s.account_id == broadcaster; });
  return false;
}

Plan plan_subscribe(const ProgramState& st, const ActorId& sender, const ActorId& target) {
  if (sender == target) throw UsageError("you cannot subscribe to yourself");
  // The program keeps duplicates, which would double-count; refuse before sending.
  if (is_subscribed(st, sender, target))
    throw RefusedError(fmt::format("already subscribed to {}; nothing sent", short_id(target)));
  return {Subscribe{target}, {}};
}

Plan plan_unsubscribe(const ProgramState& st, const ActorId& sender, const ActorId& target) {
  if (!is_subscribed(st, sender, target))
    throw RefusedError(fmt::format("not subscribed to {}; nothing sent", short_id(target)));
  return {Unsubscribe{target}, {}};
}

}  // namespace p2p::w3b
