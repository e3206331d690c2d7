// w3b/types: the W3Bstreaming program's data, commands, events and state,
// field for field as the deployed Sails program's IDL declares them.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace p2p::w3b {

inline constexpr std::string_view kService = "W3Bstreaming";

using ActorId = std::array<std::uint8_t, 32>;

struct Stream {
  ActorId broadcaster{};
  std::uint64_t start_time = 0;  // ms since the Unix epoch
  std::uint64_t end_time = 0;
  std::string title;
  std::string img_link;
  std::optional<std::string> description;
  bool operator==(const Stream&) const = default;
};

struct Subscription {
  ActorId account_id{};
  std::uint64_t sub_date = 0;
  bool operator==(const Subscription&) const = default;
};

struct Profile {
  std::optional<std::string> name;
  std::optional<std::string> surname;
  std::optional<std::string> img_link;
  std::optional<std::string> time_zone;
  std::vector<std::string> stream_ids;
  std::vector<ActorId> subscribers;
  std::vector<Subscription> subscriptions;
  bool operator==(const Profile&) const = default;
};

struct ProgramState {
  std::vector<std::pair<std::string, Stream>> streams;
  std::vector<std::pair<ActorId, Profile>> users;
  std::vector<ActorId> admins;
  std::optional<std::pair<ActorId, std::string>> dns_info;
  bool operator==(const ProgramState&) const = default;

  const Stream* find_stream(std::string_view id) const;
  const Profile* find_user(const ActorId& who) const;
};

// Commands, in IDL order.
struct NewStream {
  std::string title;
  std::optional<std::string> description;
  std::uint64_t start_time = 0;
  std::uint64_t end_time = 0;
  std::string img_link;
  bool operator==(const NewStream&) const = default;
};
struct EditStream {
  std::string stream_id;
  std::optional<std::uint64_t> start_time;
  std::optional<std::uint64_t> end_time;
  std::optional<std::string> title;
  std::optional<std::string> img_link;
  std::optional<std::string> description;  // always replaces: None clears
  bool operator==(const EditStream&) const = default;
};
struct DeleteStream {
  std::string stream_id;
  bool operator==(const DeleteStream&) const = default;
};
struct Subscribe {
  ActorId account_id{};
  bool operator==(const Subscribe&) const = default;
};
struct Unsubscribe {
  ActorId account_id{};
  bool operator==(const Unsubscribe&) const = default;
};
struct EditProfile {
  std::optional<std::string> name;
  std::optional<std::string> surname;
  std::optional<std::string> img_link;
  std::optional<std::string> time_zone;
  bool operator==(const EditProfile&) const = default;
};
struct AddAdmin {
  ActorId new_admin_id{};
  bool operator==(const AddAdmin&) const = default;
};
struct Kill {
  ActorId inheritor{};
  bool operator==(const Kill&) const = default;
};

using Command = std::variant<NewStream, EditStream, DeleteStream, Subscribe, Unsubscribe, EditProfile,
                             AddAdmin, Kill>;

// Queries.
struct GetState {
  bool operator==(const GetState&) const = default;
};
using Query = std::variant<GetState>;

// Events (sent to ActorId zero as route ++ name ++ fields).
struct StreamIsScheduled {
  std::string id;
  bool operator==(const StreamIsScheduled&) const = default;
};
struct StreamDeleted {
  std::string id;
  bool operator==(const StreamDeleted&) const = default;
};
struct StreamEdited {
  bool operator==(const StreamEdited&) const = default;
};
struct Subscribed {
  bool operator==(const Subscribed&) const = default;
};
struct Unsubscribed {
  bool operator==(const Unsubscribed&) const = default;
};
struct ProfileEdited {
  bool operator==(const ProfileEdited&) const = default;
};
struct AdminAdded {
  ActorId new_admin_id{};
  bool operator==(const AdminAdded&) const = default;
};
struct Killed {
  ActorId inheritor{};
  bool operator==(const Killed&) const = default;
};

using Event = std::variant<StreamIsScheduled, StreamDeleted, StreamEdited, Subscribed, Unsubscribed,
                           ProfileEdited, AdminAdded, Killed>;

}  // namespace p2p::w3b
