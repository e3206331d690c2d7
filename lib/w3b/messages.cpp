// w3b/messages: SCALE layout of every W3Bstreaming call, query, event and the state,
// field for field in IDL order. One name/put/get triple per message type.
#include "w3b/messages.hpp"

#include <utility>

#include "sails/sails.hpp"

namespace p2p::w3b {

namespace {

using scale::DecodeError;
using scale::Decoder;
using scale::Encoder;

template <class T>
struct Tag {};

// Smallest encodings, so a huge vector length is refused before anything is allocated.
constexpr std::size_t kMinStreamEntry = 1 + 32 + 8 + 8 + 1 + 1 + 1;  // id, broadcaster, times, 2 strings, option
constexpr std::size_t kMinUserEntry = 32 + 4 + 3;                     // id, 4 options, 3 vectors
constexpr std::size_t kMinSubscription = 32 + 8;

// ---- field helpers ----

void put_str(Encoder& e, const std::string& s) { e.str(s); }
void put_u64(Encoder& e, const std::uint64_t& v) { e.u64(v); }
void put_actor(Encoder& e, const ActorId& a) { e.arr32(a); }
void put_opt_str(Encoder& e, const std::optional<std::string>& v) { e.option(v, put_str); }
void put_opt_u64(Encoder& e, const std::optional<std::uint64_t>& v) { e.option(v, put_u64); }

std::string get_str(Decoder& d) { return d.str(); }
std::uint64_t get_u64(Decoder& d) { return d.u64(); }
ActorId get_actor(Decoder& d) { return d.arr32(); }
std::optional<std::string> get_opt_str(Decoder& d) { return d.option<std::string>(get_str); }
std::optional<std::uint64_t> get_opt_u64(Decoder& d) { return d.option<std::uint64_t>(get_u64); }

// ---- commands ----

constexpr std::string_view name_of(Tag<NewStream>) { return "NewStream"; }
constexpr std::string_view name_of(Tag<EditStream>) { return "EditStream"; }
constexpr std::string_view name_of(Tag<DeleteStream>) { return "DeleteStream"; }
constexpr std::string_view name_of(Tag<Subscribe>) { return "Subscribe"; }
constexpr std::string_view name_of(Tag<Unsubscribe>) { return "Unsubscribe"; }
constexpr std::string_view name_of(Tag<EditProfile>) { return "EditProfile"; }
constexpr std::string_view name_of(Tag<AddAdmin>) { return "AddAdmin"; }
constexpr std::string_view name_of(Tag<Kill>) { return "Kill"; }

void put(Encoder& e, const NewStream& m) {
  e.str(m.title);
  put_opt_str(e, m.description);
  e.u64(m.start_time);
  e.u64(m.end_time);
  e.str(m.img_link);
}
NewStream get(Decoder& d, Tag<NewStream>) {
  NewStream m;
  m.title = d.str();
  m.description = get_opt_str(d);
  m.start_time = d.u64();
  m.end_time = d.u64();
  m.img_link = d.str();
  return m;
}

void put(Encoder& e, const EditStream& m) {
  e.str(m.stream_id);
  put_opt_u64(e, m.start_time);
  put_opt_u64(e, m.end_time);
  put_opt_str(e, m.title);
  put_opt_str(e, m.img_link);
  put_opt_str(e, m.description);
}
EditStream get(Decoder& d, Tag<EditStream>) {
  EditStream m;
  m.stream_id = d.str();
  m.start_time = get_opt_u64(d);
  m.end_time = get_opt_u64(d);
  m.title = get_opt_str(d);
  m.img_link = get_opt_str(d);
  m.description = get_opt_str(d);
  return m;
}

void put(Encoder& e, const DeleteStream& m) { e.str(m.stream_id); }
DeleteStream get(Decoder& d, Tag<DeleteStream>) { return {d.str()}; }

void put(Encoder& e, const Subscribe& m) { e.arr32(m.account_id); }
Subscribe get(Decoder& d, Tag<Subscribe>) { return {d.arr32()}; }

void put(Encoder& e, const Unsubscribe& m) { e.arr32(m.account_id); }
Unsubscribe get(Decoder& d, Tag<Unsubscribe>) { return {d.arr32()}; }

void put(Encoder& e, const EditProfile& m) {
  put_opt_str(e, m.name);
  put_opt_str(e, m.surname);
  put_opt_str(e, m.img_link);
  put_opt_str(e, m.time_zone);
}
EditProfile get(Decoder& d, Tag<EditProfile>) {
  EditProfile m;
  m.name = get_opt_str(d);
  m.surname = get_opt_str(d);
  m.img_link = get_opt_str(d);
  m.time_zone = get_opt_str(d);
  return m;
}

void put(Encoder& e, const AddAdmin& m) { e.arr32(m.new_admin_id); }
AddAdmin get(Decoder& d, Tag<AddAdmin>) { return {d.arr32()}; }

void put(Encoder& e, const Kill& m) { e.arr32(m.inheritor); }
Kill get(Decoder& d, Tag<Kill>) { return {d.arr32()}; }

// ---- queries ----

constexpr std::string_view name_of(Tag<GetState>) { return "GetState"; }
void put(Encoder&, const GetState&) {}
GetState get(Decoder&, Tag<GetState>) { return {}; }

// ---- events ----

constexpr std::string_view name_of(Tag<StreamIsScheduled>) { return "StreamIsScheduled"; }
constexpr std::string_view name_of(Tag<StreamDeleted>) { return "StreamDeleted"; }
constexpr std::string_view name_of(Tag<StreamEdited>) { return "StreamEdited"; }
constexpr std::string_view name_of(Tag<Subscribed>) { return "Subscribed"; }
constexpr std::string_view name_of(Tag<Unsubscribed>) { return "Unsubscribed"; }
constexpr std::string_view name_of(Tag<ProfileEdited>) { return "ProfileEdited"; }
constexpr std::string_view name_of(Tag<AdminAdded>) { return "AdminAdded"; }
constexpr std::string_view name_of(Tag<Killed>) { return "Killed"; }

void put(Encoder& e, const StreamIsScheduled& m) { e.str(m.id); }
StreamIsScheduled get(Decoder& d, Tag<StreamIsScheduled>) { return {d.str()}; }
void put(Encoder& e, const StreamDeleted& m) { e.str(m.id); }
StreamDeleted get(Decoder& d, Tag<StreamDeleted>) { return {d.str()}; }
void put(Encoder&, const StreamEdited&) {}
StreamEdited get(Decoder&, Tag<StreamEdited>) { return {}; }
void put(Encoder&, const Subscribed&) {}
Subscribed get(Decoder&, Tag<Subscribed>) { return {}; }
void put(Encoder&, const Unsubscribed&) {}
Unsubscribed get(Decoder&, Tag<Unsubscribed>) { return {}; }
void put(Encoder&, const ProfileEdited&) {}
ProfileEdited get(Decoder&, Tag<ProfileEdited>) { return {}; }
void put(Encoder& e, const AdminAdded& m) { e.arr32(m.new_admin_id); }
AdminAdded get(Decoder& d, Tag<AdminAdded>) { return {d.arr32()}; }
void put(Encoder& e, const Killed& m) { e.arr32(m.inheritor); }
Killed get(Decoder& d, Tag<Killed>) { return {d.arr32()}; }

// ---- state ----

void put_stream(Encoder& e, const Stream& s) {
  e.arr32(s.broadcaster);
  e.u64(s.start_time);
  e.u64(s.end_time);
  e.str(s.title);
  e.str(s.img_link);
  put_opt_str(e, s.description);
}
Stream get_stream(Decoder& d) {
  Stream s;
  s.broadcaster = d.arr32();
  s.start_time = d.u64();
  s.end_time = d.u64();
  s.title = d.str();
  s.img_link = d.str();
  s.description = get_opt_str(d);
  return s;
}

void put_subscription(Encoder& e, const Subscription& s) {
  e.arr32(s.account_id);
  e.u64(s.sub_date);
}
Subscription get_subscription(Decoder& d) {
  Subscription s;
  s.account_id = d.arr32();
  s.sub_date = d.u64();
  return s;
}

void put_profile(Encoder& e, const Profile& p) {
  put_opt_str(e, p.name);
  put_opt_str(e, p.surname);
  put_opt_str(e, p.img_link);
  put_opt_str(e, p.time_zone);
  e.vec(p.stream_ids, put_str);
  e.vec(p.subscribers, put_actor);
  e.vec(p.subscriptions, put_subscription);
}
Profile get_profile(Decoder& d) {
  Profile p;
  p.name = get_opt_str(d);
  p.surname = get_opt_str(d);
  p.img_link = get_opt_str(d);
  p.time_zone = get_opt_str(d);
  p.stream_ids = d.vec<std::string>(get_str, 1);
  p.subscribers = d.vec<ActorId>(get_actor, 32);
  p.subscriptions = d.vec<Subscription>(get_subscription, kMinSubscription);
  return p;
}

// ---- framing ----

// The error text without the codec's own "malformed SCALE data: " lead, to add context in front.
std::string detail_of(const DecodeError& err) {
  constexpr std::string_view lead = "malformed SCALE data: ";
  std::string_view what = err.what();
  if (what.starts_with(lead)) what.remove_prefix(lead.size());
  return std::string(what);
}

// A name read from the wire, made safe and short for an error message.
std::string shown(std::string_view name) {
  constexpr std::size_t kMax = 64;
  std::string out;
  for (char c : name.substr(0, kMax)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (name.size() > kMax) out += "...";
  return out;
}

template <class V>
std::string_view variant_name(const V& v) {
  return std::visit([](const auto& m) { return name_of(Tag<std::decay_t<decltype(m)>>{}); }, v);
}

template <class V>
Bytes encode_variant(const V& v) {
  Encoder e;
  e.raw(sails::route(kService, variant_name(v)));
  std::visit([&](const auto& m) { put(e, m); }, v);
  return std::move(e).take();
}

// Decodes the body of the alternative of V named `name`; nullopt when no alternative has that name.
template <class V, std::size_t... I>
std::optional<V> decode_named(std::string_view name, Decoder& d, std::index_sequence<I...>) {
  std::optional<V> out;
  auto try_one = [&]<std::size_t K>(std::integral_constant<std::size_t, K>) {
    using T = std::variant_alternative_t<K, V>;
    if (name != name_of(Tag<T>{})) return false;
    out.emplace(std::in_place_index<K>, get(d, Tag<T>{}));
    return true;
  };
  (try_one(std::integral_constant<std::size_t, I>{}) || ...);
  return out;
}

// Checks the W3Bstreaming route, then decodes the named alternative and insists on no trailing bytes.
// `kind` names what the payload should be ("method", "query", "event") for the error text.
template <class V>
V decode_variant(ByteView payload, std::string_view kind) {
  sails::Header h = sails::read_header(payload);
  if (h.service != kService)
    throw DecodeError("payload is for service '" + shown(h.service) + "', not " + std::string(kService));
  Decoder d(payload.subspan(h.args_offset));
  std::optional<V> out;
  try {
    out = decode_named<V>(h.method, d, std::make_index_sequence<std::variant_size_v<V>>{});
    if (out) d.expect_end();
  } catch (const DecodeError& err) {
    throw DecodeError("in " + std::string(kService) + "." + shown(h.method) + ": " + detail_of(err));
  }
  if (!out)
    throw DecodeError("unknown " + std::string(kService) + " " + std::string(kind) + " '" + shown(h.method) + "'");
  return std::move(*out);
}

}  // namespace

std::string_view method_name(const Command& c) { return variant_name(c); }
std::string_view event_name(const Event& e) { return variant_name(e); }

Bytes encode_command(const Command& c) { return encode_variant(c); }
Command decode_command(ByteView payload) { return decode_variant<Command>(payload, "method"); }

Bytes encode_query(const Query& q) { return encode_variant(q); }
Query decode_query(ByteView payload) { return decode_variant<Query>(payload, "query"); }

Bytes encode_event(const Event& e) { return encode_variant(e); }
Event decode_event(ByteView payload) { return decode_variant<Event>(payload, "event"); }

void encode_state(Encoder& e, const ProgramState& s) {
  e.vec(s.streams, [](Encoder& enc, const std::pair<std::string, Stream>& entry) {
    enc.str(entry.first);
    put_stream(enc, entry.second);
  });
  e.vec(s.users, [](Encoder& enc, const std::pair<ActorId, Profile>& entry) {
    enc.arr32(entry.first);
    put_profile(enc, entry.second);
  });
  e.vec(s.admins, put_actor);
  e.option(s.dns_info, [](Encoder& enc, const std::pair<ActorId, std::string>& dns) {
    enc.arr32(dns.first);
    enc.str(dns.second);
  });
}

ProgramState decode_state(Decoder& d) {
  ProgramState s;
  s.streams = d.vec<std::pair<std::string, Stream>>(
      [](Decoder& dec) {
        auto id = dec.str();
        return std::pair{std::move(id), get_stream(dec)};
      },
      kMinStreamEntry);
  s.users = d.vec<std::pair<ActorId, Profile>>(
      [](Decoder& dec) {
        auto id = dec.arr32();
        return std::pair{id, get_profile(dec)};
      },
      kMinUserEntry);
  s.admins = d.vec<ActorId>(get_actor, 32);
  s.dns_info = d.option<std::pair<ActorId, std::string>>([](Decoder& dec) {
    auto id = dec.arr32();
    return std::pair{id, dec.str()};
  });
  return s;
}

Bytes encode_state_reply(const ProgramState& s) {
  Encoder e;
  e.raw(sails::route(kService, name_of(Tag<GetState>{})));
  encode_state(e, s);
  return std::move(e).take();
}

ProgramState decode_state_reply(ByteView payload) {
  constexpr std::string_view method = name_of(Tag<GetState>{});
  sails::Header h = sails::read_header(payload);
  if (h.service != kService || h.method != method)
    throw DecodeError("expected a " + std::string(kService) + "." + std::string(method) + " reply, got " +
                      shown(h.service) + "." + shown(h.method));
  Decoder d(payload.subspan(h.args_offset));
  try {
    ProgramState s = decode_state(d);
    d.expect_end();
    return s;
  } catch (const DecodeError& err) {
    throw DecodeError("in the " + std::string(method) + " reply: " + detail_of(err));
  }
}

bool is_unit_reply(const Command& c, ByteView payload) {
  return sails::is_unit_reply(payload, kService, method_name(c));
}

}  // namespace p2p::w3b
