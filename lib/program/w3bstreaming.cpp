// program/w3bstreaming: the deployed W3Bstreaming program's message handlers,
// quirks included (chain.md). Every handler validates first and mutates after,
// so a panic leaves the state exactly as it was, as a reverted message does on chain.
#include "program/w3bstreaming.hpp"

#include <algorithm>
#include <optional>
#include <string_view>
#include <type_traits>
#include <variant>

#include "sails/sails.hpp"
#include "util/error.hpp"
#include "w3b/messages.hpp"

namespace p2p::program {

namespace {

using w3b::ActorId;
using w3b::Profile;
using w3b::ProgramState;

// The deployed program's panic texts, verbatim (typos included: the CLI matches on them).
constexpr std::string_view kNotRegistered = "Account is no registered";
constexpr std::string_view kIdNotExist = "Id is not exist";
constexpr std::string_view kNotBroadcaster = "You are not broadcaster";
constexpr std::string_view kUserNotFound = "The user is not found";
constexpr std::string_view kSenderNotRegistered = "You are not registered";
constexpr std::string_view kNotAdmin = "Not admin";
constexpr std::string_view kTerminated = "Program terminated";

// A handler's result: the event it emits, or the panic text that refuses it.
struct Refusal {
  std::string text;
};
using Result = std::variant<w3b::Event, Refusal>;

Refusal refuse(std::string_view text) { return Refusal{std::string(text)}; }

Profile* find_profile(ProgramState& s, const ActorId& who) {
  auto it = std::find_if(s.users.begin(), s.users.end(), [&](const auto& u) { return u.first == who; });
  return it == s.users.end() ? nullptr : &it->second;
}

w3b::Stream* find_stream(ProgramState& s, std::string_view id) {
  auto it = std::find_if(s.streams.begin(), s.streams.end(), [&](const auto& e) { return e.first == id; });
  return it == s.streams.end() ? nullptr : &it->second;
}

bool is_admin(const ProgramState& s, const ActorId& who) {
  return std::find(s.admins.begin(), s.admins.end(), who) != s.admins.end();
}

Outcome panic_outcome(std::string text) {
  Outcome out;
  out.ok = false;
  out.reply = sails::panic_payload(text);
  out.panic = std::move(text);
  return out;
}

// Each handler below mirrors one method of the Rust service.

Result new_stream(ProgramState& s, const ActorId& sender, const w3b::NewStream& m, std::uint64_t ts) {
  Profile* profile = find_profile(s, sender);
  if (!profile) return refuse(kNotRegistered);
  // The id is the block time in decimal followed by the title, with no separator,
  // so the same title in the same block collides and overwrites the earlier stream.
  std::string id = std::to_string(ts) + m.title;
  profile->stream_ids.push_back(id);
  w3b::Stream stream{sender, m.start_time, m.end_time, m.title, m.img_link, m.description};
  // HashMap::insert semantics: an existing key keeps its place, a new one goes last.
  if (w3b::Stream* existing = find_stream(s, id)) {
    *existing = std::move(stream);
  } else {
    s.streams.emplace_back(id, std::move(stream));
  }
  return w3b::StreamIsScheduled{std::move(id)};
}

Result delete_stream(ProgramState& s, const ActorId& sender, const w3b::DeleteStream& m) {
  Profile* profile = find_profile(s, sender);
  if (!profile) return refuse(kNotRegistered);
  // Ownership is checked against the sender's own list first, so a non-owner
  // hears "Id is not exist" rather than "You are not broadcaster".
  auto own = std::find(profile->stream_ids.begin(), profile->stream_ids.end(), m.stream_id);
  if (own == profile->stream_ids.end()) return refuse(kIdNotExist);
  auto stream = std::find_if(s.streams.begin(), s.streams.end(),
                             [&](const auto& e) { return e.first == m.stream_id; });
  if (stream == s.streams.end()) return refuse(kIdNotExist);
  if (stream->second.broadcaster != sender) return refuse(kNotBroadcaster);
  profile->stream_ids.erase(own);
  s.streams.erase(stream);
  return w3b::StreamDeleted{m.stream_id};
}

Result edit_stream(ProgramState& s, const ActorId& sender, const w3b::EditStream& m) {
  w3b::Stream* stream = find_stream(s, m.stream_id);
  if (!stream) return refuse(kIdNotExist);
  if (stream->broadcaster != sender) return refuse(kNotBroadcaster);
  if (m.start_time) stream->start_time = *m.start_time;
  if (m.end_time) stream->end_time = *m.end_time;
  if (m.title) stream->title = *m.title;
  if (m.img_link) stream->img_link = *m.img_link;
  stream->description = m.description;  // deployed quirk: None clears it
  return w3b::StreamEdited{};
}

// Subscribe and Unsubscribe share their checks, in the deployed order: target first.
std::optional<Refusal> check_pair(ProgramState& s, const ActorId& sender, const ActorId& target,
                                  Profile*& sender_profile, Profile*& target_profile) {
  target_profile = find_profile(s, target);
  if (!target_profile) return refuse(kUserNotFound);
  sender_profile = find_profile(s, sender);
  if (!sender_profile) return refuse(kSenderNotRegistered);
  return std::nullopt;
}

Result subscribe(ProgramState& s, const ActorId& sender, const w3b::Subscribe& m, std::uint64_t ts) {
  Profile* me = nullptr;
  Profile* target = nullptr;
  if (auto r = check_pair(s, sender, m.account_id, me, target)) return *r;
  // No duplicate check on chain: subscribing twice records two entries on each side.
  target->subscribers.push_back(sender);
  me->subscriptions.push_back(w3b::Subscription{m.account_id, ts});
  return w3b::Subscribed{};
}

Result unsubscribe(ProgramState& s, const ActorId& sender, const w3b::Unsubscribe& m) {
  Profile* me = nullptr;
  Profile* target = nullptr;
  if (auto r = check_pair(s, sender, m.account_id, me, target)) return *r;
  std::erase(target->subscribers, sender);
  std::erase_if(me->subscriptions, [&](const auto& sub) { return sub.account_id == m.account_id; });
  return w3b::Unsubscribed{};
}

Result edit_profile(ProgramState& s, const ActorId& sender, const w3b::EditProfile& m) {
  if (Profile* p = find_profile(s, sender)) {
    // Deployed quirks: every field is overwritten (None clears), and time_zone
    // receives the img_link value instead of the time_zone argument.
    p->name = m.name;
    p->surname = m.surname;
    p->img_link = m.img_link;
    p->time_zone = m.img_link;
  } else {
    Profile fresh;
    fresh.name = m.name;
    fresh.surname = m.surname;
    fresh.img_link = m.img_link;
    fresh.time_zone = m.time_zone;  // creation stores time_zone correctly
    s.users.emplace_back(sender, std::move(fresh));
  }
  return w3b::ProfileEdited{};
}

Result add_admin(ProgramState& s, const ActorId& sender, const w3b::AddAdmin& m) {
  if (!is_admin(s, sender)) return refuse(kNotAdmin);
  s.admins.push_back(m.new_admin_id);  // no duplicate check on chain
  return w3b::AdminAdded{m.new_admin_id};
}

}  // namespace

W3Bstreaming W3Bstreaming::deploy(const w3b::ActorId& deployer,
                                  std::optional<std::pair<w3b::ActorId, std::string>> dns) {
  w3b::ProgramState s;
  s.admins.push_back(deployer);
  s.dns_info = std::move(dns);
  return W3Bstreaming(std::move(s));
}

Outcome W3Bstreaming::handle(const w3b::ActorId& sender, ByteView payload, std::uint64_t block_timestamp_ms) {
  // Checked before decoding, so a terminated program answers every payload alike.
  if (terminated_) return panic_outcome(std::string(kTerminated));
  w3b::Command cmd;
  try {
    cmd = w3b::decode_command(payload);
  } catch (const Error& e) {
    return panic_outcome(std::string("Can't decode request: ") + e.what());
  }
  return handle(sender, cmd, block_timestamp_ms);
}

Outcome W3Bstreaming::handle(const w3b::ActorId& sender, const w3b::Command& cmd,
                             std::uint64_t block_timestamp_ms) {
  // After Kill the real program has exited and the node rejects messages to it
  // (an inactive-program error, not a panic). The model has no such reply code,
  // so it answers every later message with the panic "Program terminated": the
  // caller still sees a refusal and the state can never change again.
  if (terminated_) return panic_outcome(std::string(kTerminated));

  const std::uint64_t ts = block_timestamp_ms;
  Result r = std::visit(
      [&](const auto& m) -> Result {
        using M = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<M, w3b::NewStream>) return new_stream(state_, sender, m, ts);
        else if constexpr (std::is_same_v<M, w3b::EditStream>) return edit_stream(state_, sender, m);
        else if constexpr (std::is_same_v<M, w3b::DeleteStream>) return delete_stream(state_, sender, m);
        else if constexpr (std::is_same_v<M, w3b::Subscribe>) return subscribe(state_, sender, m, ts);
        else if constexpr (std::is_same_v<M, w3b::Unsubscribe>) return unsubscribe(state_, sender, m);
        else if constexpr (std::is_same_v<M, w3b::EditProfile>) return edit_profile(state_, sender, m);
        else if constexpr (std::is_same_v<M, w3b::AddAdmin>) return add_admin(state_, sender, m);
        else {
          static_assert(std::is_same_v<M, w3b::Kill>);
          if (!is_admin(state_, sender)) return refuse(kNotAdmin);
          terminated_ = true;
          return w3b::Killed{m.inheritor};
        }
      },
      cmd);

  if (auto* refusal = std::get_if<Refusal>(&r)) return panic_outcome(std::move(refusal->text));
  Outcome out;  // unit result: the auto-reply, whose payload is empty
  out.events.push_back(w3b::encode_event(std::get<w3b::Event>(r)));
  return out;
}

Outcome W3Bstreaming::query(ByteView payload) const {
  // A query is a message too; after Kill it is refused like any other (see handle).
  if (terminated_) return panic_outcome(std::string(kTerminated));
  w3b::Query q;
  try {
    q = w3b::decode_query(payload);
  } catch (const Error& e) {
    return panic_outcome(std::string("Can't decode request: ") + e.what());
  }
  Outcome out;
  // GetState is the only query; the visit keeps this honest if another is added.
  std::visit([&](const w3b::GetState&) { out.reply = w3b::encode_state_reply(state_); }, q);
  return out;
}

}  // namespace p2p::program
