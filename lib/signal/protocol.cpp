// signal/protocol: validation of w3bstreaming event arguments, the server's event packets,
// and the challenge and legacy signature checks.
#include "signal/protocol.hpp"

#include <algorithm>
#include <type_traits>

namespace p2p::signal {
namespace {

using R = Result<ClientEvent>;

// Reads one event's arguments; the first problem found becomes error(), worded for the client.
class Reader {
 public:
  Reader(const Json& args, std::string_view event, const ProtocolLimits& limits)
      : args_(args), event_(event), limits_(limits) {}

  // Argument `index` (1 = the first after the name) as a non-empty string of at most `max` bytes.
  bool string_arg(std::size_t index, std::string_view what, std::size_t max, std::string& out) {
    const Json* v = index < args_.size() ? &args_[index] : nullptr;
    if (!v || !v->is_string() || v->get_ref<const std::string&>().empty() ||
        v->get_ref<const std::string&>().size() > max)
      return fail("argument " + std::to_string(index) + " (" + std::string(what) + ") must be a non-empty string of at most " +
                  std::to_string(max) + " bytes");
    out = v->get<std::string>();
    return true;
  }
  bool id_arg(std::size_t index, std::string_view what, std::string& out) {
    return string_arg(index, what, limits_.max_id, out);
  }

  const Json* object_arg(std::size_t index) {
    if (index >= args_.size() || !args_[index].is_object()) {
      fail("argument " + std::to_string(index) + " must be an object");
      return nullptr;
    }
    return &args_[index];
  }

  // obj[key] as a non-empty string of at most `max` bytes. A missing or null optional field is
  // fine (out stays empty); any other type is an error.
  bool string_field(const Json& obj, std::string_view key, std::size_t max, std::optional<std::string>& out,
                    bool required) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) {
      if (!required) return true;
      return fail(std::string(key) + " is missing: it must be a string");
    }
    if (!it->is_string() || it->get_ref<const std::string&>().empty() || it->get_ref<const std::string&>().size() > max)
      return fail(std::string(key) + " must be a non-empty string of at most " + std::to_string(max) + " bytes");
    out = it->get<std::string>();
    return true;
  }
  bool required_string(const Json& obj, std::string_view key, std::size_t max, std::string& out) {
    std::optional<std::string> v;
    if (!string_field(obj, key, max, v, true)) return false;
    out = std::move(*v);
    return true;
  }
  bool stream_id(const Json& obj, std::string& out) { return required_string(obj, "streamId", limits_.max_stream_id, out); }
  // The web app leaves streamId out of answer and candidate; empty means "the sender's stream".
  bool optional_stream_id(const Json& obj, std::string& out) {
    std::optional<std::string> v;
    if (!string_field(obj, "streamId", limits_.max_stream_id, v, false)) return false;
    out = v.value_or(std::string());
    return true;
  }
  // obj[key], or obj[alias] when key is absent (the web app's name for the same id). With
  // neither, the error names `key`, the documented field.
  bool id_field(const Json& obj, std::string_view key, std::string_view alias, std::string& out) {
    auto it = obj.find(key);
    auto a = obj.find(alias);
    const bool use_alias = (it == obj.end() || it->is_null()) && a != obj.end() && !a->is_null();
    return required_string(obj, use_alias ? alias : key, limits_.max_id, out);
  }

  bool fail(std::string what) {
    if (error_.empty()) error_ = std::string(event_) + ": " + std::move(what);
    return false;
  }
  const std::string& error() const { return error_; }
  const ProtocolLimits& limits() const { return limits_; }

 private:
  const Json& args_;
  std::string_view event_;
  const ProtocolLimits& limits_;
  std::string error_;
};

// Hex text of a signature or key is at most this long (65 bytes with 0x).
constexpr std::size_t kMaxHexField = 132;

bool read_auth(Reader& r, const Json& obj, std::optional<AuthProof>& out) {
  auto it = obj.find("auth");
  if (it == obj.end() || it->is_null()) return true;
  if (!it->is_object()) return r.fail("auth must be an object {publicKey, signature}");
  AuthProof a;
  std::optional<std::string> nonce;
  if (!r.required_string(*it, "publicKey", kMaxHexField, a.public_key) ||
      !r.required_string(*it, "signature", kMaxHexField, a.signature) ||
      !r.string_field(*it, "nonce", kMaxHexField, nonce, false))
    return r.fail("auth must be {publicKey, signature} as 0x hex");
  a.nonce = std::move(nonce);
  out = std::move(a);
  return true;
}

bool read_relay(Reader& r, const Json& obj, std::uint32_t max, std::optional<std::uint32_t>& slots) {
  auto it = obj.find("relay");
  if (it == obj.end() || it->is_null()) return true;
  const std::string rule = "relay must be {slots: k} with k a whole number from 0 to " + std::to_string(max);
  if (!it->is_object()) return r.fail(rule);
  auto s = it->find("slots");
  if (s == it->end() || !s->is_number_integer() || s->get<std::int64_t>() < 0 || s->get<std::int64_t>() > max)
    return r.fail(rule);
  slots = static_cast<std::uint32_t>(s->get<std::int64_t>());
  return true;
}

// description {type, sdp} as the browser's RTCSessionDescription serialises it.
bool check_description(Reader& r, const Json& obj) {
  auto it = obj.find("description");
  if (it == obj.end() || !it->is_object()) return r.fail("description must be an object {type, sdp}");
  auto type = it->find("type");
  auto sdp = it->find("sdp");
  if (type == it->end() || !type->is_string() || sdp == it->end() || !sdp->is_string())
    return r.fail("description must be an object {type, sdp} with string fields");
  return true;
}

// candidate {candidate, sdpMid, sdpMLineIndex} as RTCIceCandidate.toJSON() gives it.
bool check_candidate(Reader& r, const Json& c) {
  const char* rule = "candidate must be an object {candidate: string, sdpMid: string|null, sdpMLineIndex: number|null}";
  if (!c.is_object()) return r.fail(rule);
  auto cand = c.find("candidate");
  if (cand == c.end() || !cand->is_string()) return r.fail(rule);
  auto mid = c.find("sdpMid");
  if (mid != c.end() && !mid->is_null() && !mid->is_string()) return r.fail(rule);
  auto line = c.find("sdpMLineIndex");
  if (line != c.end() && !line->is_null() && !line->is_number_unsigned()) return r.fail(rule);
  return true;
}

R parse_broadcast(Reader& r) {
  BroadcastMsg m;
  const Json* obj;
  if (!r.id_arg(1, "broadcasterId", m.broadcaster_id) || !(obj = r.object_arg(2)) || !r.stream_id(*obj, m.stream_id) ||
      !read_auth(r, *obj, m.auth) || !read_relay(r, *obj, r.limits().max_direct_slots, m.max_direct))
    return R::fail(r.error());
  return R::ok(std::move(m));
}

R parse_relay_failed(Reader& r) {
  RelayFailedMsg m;
  const Json* obj;
  if (!r.id_arg(1, "userId", m.user_id) || !(obj = r.object_arg(2)) || !r.stream_id(*obj, m.stream_id) ||
      !r.required_string(*obj, "parentId", r.limits().max_id, m.parent_id))
    return R::fail(r.error());
  return R::ok(std::move(m));
}

R parse_watch(Reader& r) {
  WatchMsg m;
  std::optional<std::uint32_t> slots;
  const Json* obj;
  if (!r.id_arg(1, "userId", m.user_id) || !(obj = r.object_arg(2)) || !r.stream_id(*obj, m.stream_id) ||
      !r.string_field(*obj, "signedMsg", kMaxHexField, m.signed_msg, false) ||
      !r.string_field(*obj, "encodedId", r.limits().max_id, m.encoded_id, false) || !read_auth(r, *obj, m.auth) ||
      !read_relay(r, *obj, r.limits().max_relay_slots, slots))
    return R::fail(r.error());
  m.relay_slots = slots.value_or(0);
  return R::ok(std::move(m));
}

template <class Msg>
R parse_description_event(Reader& r) {
  Msg m;
  const Json* obj;
  // The web app's watcher answers {watcherId, description}: no streamId, watcherId for userId.
  constexpr bool stream_optional = std::is_same_v<Msg, AnswerMsg>;
  if (!r.id_arg(1, "broadcasterId", m.broadcaster_id) || !(obj = r.object_arg(2)) ||
      !(stream_optional ? r.optional_stream_id(*obj, m.stream_id) : r.stream_id(*obj, m.stream_id)) ||
      !r.id_field(*obj, "userId", "watcherId", m.user_id) || !check_description(r, *obj))
    return R::fail(r.error());
  m.payload = *obj;
  return R::ok(std::move(m));
}

R parse_candidate(Reader& r) {
  CandidateMsg m;
  const Json* obj;
  if (!r.id_arg(1, "targetId", m.target_id) || !(obj = r.object_arg(2)) ||
      !r.id_field(*obj, "userId", "id", m.user_id) || !r.optional_stream_id(*obj, m.stream_id))
    return R::fail(r.error());
  auto c = obj->find("candidate");
  if (c == obj->end()) {
    r.fail("candidate is missing");
    return R::fail(r.error());
  }
  if (!check_candidate(r, *c)) return R::fail(r.error());
  m.candidate = *c;
  return R::ok(std::move(m));
}

// (id, {streamId}) events. The id of the two queries is not used, and the web app may send null.
template <class Msg>
R parse_id_stream(Reader& r, std::string_view id_name, std::string Msg::*id_field) {
  Msg m;
  const Json* obj;
  if (id_field && !r.id_arg(1, id_name, m.*id_field)) return R::fail(r.error());
  if (!(obj = r.object_arg(2)) || !r.stream_id(*obj, m.stream_id)) return R::fail(r.error());
  return R::ok(std::move(m));
}

Json array_of(std::initializer_list<Json> items) {
  Json a = Json::array();
  for (const auto& i : items) a.push_back(i);
  return a;
}

}  // namespace

Result<ClientEvent> parse_client_event(const Json& args, const ProtocolLimits& limits) {
  if (!args.is_array() || args.empty() || !args[0].is_string()) return R::fail("an event must be [\"name\", ...args]");
  const std::string& name = args[0].get_ref<const std::string&>();
  Reader r(args, name, limits);
  if (name == "broadcast") return parse_broadcast(r);
  if (name == "watch") return parse_watch(r);
  if (name == "offer") return parse_description_event<OfferMsg>(r);
  if (name == "answer") return parse_description_event<AnswerMsg>(r);
  if (name == "candidate") return parse_candidate(r);
  if (name == "stopBroadcasting")
    return parse_id_stream<StopBroadcastingMsg>(r, "broadcasterId", &StopBroadcastingMsg::broadcaster_id);
  if (name == "stopWatching") return parse_id_stream<StopWatchingMsg>(r, "userId", &StopWatchingMsg::user_id);
  if (name == "relayFailed") return parse_relay_failed(r);
  if (name == "getWatchersCount") return parse_id_stream<GetWatchersCountMsg>(r, "id", nullptr);
  if (name == "getIsStreaming") return parse_id_stream<GetIsStreamingMsg>(r, "id", nullptr);
  // Echo at most a short prefix of an unknown name.
  return R::ok(UnknownEvent{name.substr(0, 64)});
}

// ---- server -> client ----

std::string emit_event(std::string_view name, Json args) {
  Json a = Json::array();
  a.push_back(std::string(name));
  for (auto& v : args) a.push_back(std::move(v));
  return "42" + dump_json(a);
}

std::string error_event(std::string_view message) {
  Json o;
  o["message"] = std::string(message);
  return emit_event("error", array_of({o}));
}

std::string watch_event(std::string_view user_id, std::string_view stream_id, bool relay) {
  Json o;
  o["streamId"] = std::string(stream_id);
  if (relay) o["relay"] = true;
  return emit_event("watch", array_of({std::string(user_id), o}));
}

std::string offer_event(std::string_view broadcaster_id, const Json& payload) {
  return emit_event("offer", array_of({std::string(broadcaster_id), payload}));
}

std::string answer_event(std::string_view broadcaster_id, const Json& payload) {
  return emit_event("answer", array_of({std::string(broadcaster_id), payload}));
}

std::string candidate_event(std::string_view user_id, const Json& candidate) {
  Json o;
  o["candidate"] = candidate;
  return emit_event("candidate", array_of({std::string(user_id), o}));
}

std::string watchers_count_event(std::size_t n) { return emit_event("watchersCount", array_of({n})); }

std::string is_streaming_event(bool live) { return emit_event("isStreaming", array_of({live})); }

std::string stop_broadcasting_event(std::string_view broadcaster_id, std::string_view stream_id,
                                    std::string_view user_id) {
  Json o;
  o["streamId"] = std::string(stream_id);
  o["userId"] = std::string(user_id);
  return emit_event("stopBroadcasting", array_of({std::string(broadcaster_id), o}));
}

std::string stop_watching_event(std::string_view user_id, std::string_view stream_id) {
  Json o;
  o["streamId"] = std::string(stream_id);
  return emit_event("stopWatching", array_of({std::string(user_id), o}));
}

std::string challenge_event(std::string_view nonce_hex, std::int64_t expires_ms) {
  Json o;
  o["nonce"] = std::string(nonce_hex);
  o["expires"] = expires_ms;
  return emit_event("challenge", array_of({o}));
}

std::string placement_event(std::string_view parent_id, std::size_t depth) {
  Json o;
  o["parentId"] = std::string(parent_id);
  o["depth"] = depth;
  return emit_event("placement", array_of({o}));
}

// ---- identities and signatures ----

std::string_view role_name(Role role) { return role == Role::broadcast ? "broadcast" : "watch"; }

std::optional<keys::PublicKey> parse_id(std::string_view text) {
  if (text.empty() || text.size() > 128) return std::nullopt;
  try {
    return keys::parse_address(text);
  } catch (const Error&) {
    return std::nullopt;
  }
}

std::string id_hex(const keys::PublicKey& pk) { return to_hex(pk); }

std::optional<keys::Signature> parse_signature(std::string_view hex) {
  if (hex.size() > kMaxHexField) return std::nullopt;
  auto bytes = from_hex(hex);
  if (!bytes) return std::nullopt;
  std::size_t skip = 0;
  if (bytes->size() == 65 && (*bytes)[0] == 0x00) skip = 1;  // MultiSignature::Ed25519
  if (bytes->size() - skip != 64) return std::nullopt;
  keys::Signature sig;
  std::copy(bytes->begin() + static_cast<std::ptrdiff_t>(skip), bytes->end(), sig.begin());
  return sig;
}

std::string challenge_message(Role role, std::string_view stream_id, std::string_view nonce_hex) {
  std::string out = "p2pstream-signal:v1:";
  out += role_name(role);
  out += ':';
  out += stream_id;
  out += ':';
  out += nonce_hex;
  return out;
}

AuthCheck verify_challenge(const AuthProof& proof, const keys::PublicKey& claimed, Role role,
                           std::string_view stream_id, std::string_view nonce_hex) {
  auto pk = hash32_from_hex(proof.public_key);
  auto sig = parse_signature(proof.signature);
  if (!pk || !sig) return AuthCheck::bad_encoding;
  if (*pk != claimed) return AuthCheck::wrong_key;
  std::string text = challenge_message(role, stream_id, nonce_hex);
  return keys::verify(*pk, view(text), *sig) ? AuthCheck::ok : AuthCheck::bad_signature;
}

Bytes legacy_message(std::string_view encoded_id) {
  // @polkadot/util's u8aToU8a: 0x-hex text stands for its bytes, any other text for its UTF-8.
  bool hex = encoded_id.size() >= 2 && encoded_id[0] == '0' && encoded_id[1] == 'x';
  if (hex) {
    if (auto bytes = from_hex(encoded_id)) return *bytes;
  }
  auto v = view(encoded_id);
  return Bytes(v.begin(), v.end());
}

bool verify_legacy(std::string_view signed_msg, std::string_view encoded_id, const keys::PublicKey& user) {
  auto key = parse_id(encoded_id);
  auto sig = parse_signature(signed_msg);
  if (!key || !sig || *key != user) return false;
  Bytes bare = legacy_message(encoded_id);
  if (keys::verify(*key, bare, *sig)) return true;
  Bytes wrapped = concat({view("<Bytes>"), bare, view("</Bytes>")});
  return keys::verify(*key, wrapped, *sig);
}

}  // namespace p2p::signal
