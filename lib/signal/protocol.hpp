// signal/protocol: the w3bstreaming socket.io events (names and argument shapes fixed by the
// web app and its Node backend), their validation, the packets the server emits, and the
// p2pstream challenge / legacy signedMsg checks. Pure: no state, no I/O.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "keys/ed25519.hpp"
#include "signal/engineio.hpp"
#include "signal/result.hpp"

namespace p2p::signal {

// ---- client -> server ----

struct AuthProof {
  std::string public_key;  // 0x hex
  std::string signature;   // 0x hex, 64 bytes
  std::optional<std::string> nonce;  // optional echo of the signed nonce, for a precise error
};

struct BroadcastMsg {
  std::string broadcaster_id;
  std::string stream_id;
  std::optional<AuthProof> auth;
  // relay {slots: N}: the broadcaster's --max-direct, the most watchers it feeds itself.
  // nullopt (absent) or 0: no limit of its own.
  std::optional<std::uint32_t> max_direct;
};

struct WatchMsg {
  std::string user_id;
  std::string stream_id;
  std::optional<std::string> signed_msg;  // legacy
  std::optional<std::string> encoded_id;  // legacy: the SS58 address signedMsg signs
  std::optional<AuthProof> auth;
  std::uint32_t relay_slots = 0;  // relay {slots: k}; 0 = a leaf
};

// offer(broadcasterId, {streamId, userId, description}) and answer(...) alike. `payload` is the
// whole second argument, forwarded unchanged. watcherId stands for userId when userId is absent,
// and answer's streamId may be left out (empty: the sender's one stream), as the web app
// answers {watcherId, description}.
struct OfferMsg {
  std::string broadcaster_id;
  std::string stream_id;
  std::string user_id;
  Json payload;
};
struct AnswerMsg {
  std::string broadcaster_id;
  std::string stream_id;
  std::string user_id;
  Json payload;
};

// candidate(targetId, {userId, streamId, candidate}). The web app sends {id, candidate}: id
// stands for userId when userId is absent, and an empty stream_id means the sender's one stream.
struct CandidateMsg {
  std::string target_id;
  std::string user_id;
  std::string stream_id;
  Json candidate;
};

struct StopBroadcastingMsg {
  std::string broadcaster_id;
  std::string stream_id;
};
struct StopWatchingMsg {
  std::string user_id;
  std::string stream_id;
};
// relayFailed(userId, {streamId, parentId}): a relay child's peer connection to parentId failed
// (ICE/DTLS); the server moves it elsewhere.
struct RelayFailedMsg {
  std::string user_id;
  std::string stream_id;
  std::string parent_id;
};
struct GetWatchersCountMsg {
  std::string stream_id;
};
struct GetIsStreamingMsg {
  std::string stream_id;
};
// An event nobody handles. socket.io servers drop these silently, and newer web app builds
// emit a few (updateOffers, streamUpdate), so it is not an error.
struct UnknownEvent {
  std::string name;
};

using ClientEvent = std::variant<BroadcastMsg, WatchMsg, OfferMsg, AnswerMsg, CandidateMsg, StopBroadcastingMsg,
                                 StopWatchingMsg, RelayFailedMsg, GetWatchersCountMsg, GetIsStreamingMsg,
                                 UnknownEvent>;

struct ProtocolLimits {
  std::size_t max_id = 128;         // an account id, hex or SS58
  std::size_t max_stream_id = 256;  // block timestamp + title
  std::uint32_t max_relay_slots = 16;     // a watcher's relay {slots}
  std::uint32_t max_direct_slots = 100000;  // a broadcaster's relay {slots} (--max-direct)
};

// `args` is the EVENT array: ["name", arg1, arg2, ...]. The error text is meant for the
// client, as error {message}.
Result<ClientEvent> parse_client_event(const Json& args, const ProtocolLimits& limits = {});

// ---- server -> client (complete Engine.IO message text, e.g. 42["isStreaming",true]) ----

std::string emit_event(std::string_view name, Json args = Json::array());
std::string error_event(std::string_view message);
std::string watch_event(std::string_view user_id, std::string_view stream_id, bool relay);
std::string offer_event(std::string_view broadcaster_id, const Json& payload);
std::string answer_event(std::string_view broadcaster_id, const Json& payload);
std::string candidate_event(std::string_view user_id, const Json& candidate);
std::string watchers_count_event(std::size_t n);
std::string is_streaming_event(bool live);
std::string stop_broadcasting_event(std::string_view broadcaster_id, std::string_view stream_id,
                                    std::string_view user_id);
std::string stop_watching_event(std::string_view user_id, std::string_view stream_id);
std::string challenge_event(std::string_view nonce_hex, std::int64_t expires_ms);
std::string placement_event(std::string_view parent_id, std::size_t depth);

// ---- identities and signatures ----

enum class Role { broadcast, watch };
std::string_view role_name(Role role);

// An account id: 0x + 64 hex digits, or SS58 of any prefix. nullopt otherwise (never throws).
std::optional<keys::PublicKey> parse_id(std::string_view text);
// Lower-case 0x hex, the form ids take on the wire.
std::string id_hex(const keys::PublicKey& pk);

// 64 bytes of hex; also the 65-byte MultiSignature form with the Ed25519 tag 0x00 in front.
std::optional<keys::Signature> parse_signature(std::string_view hex);

// The UTF-8 text a p2pstream client signs: p2pstream-signal:v1:<role>:<streamId>:<nonce>.
std::string challenge_message(Role role, std::string_view stream_id, std::string_view nonce_hex);

enum class AuthCheck { ok, bad_encoding, wrong_key, bad_signature };
// The proof's public key must be `claimed` and its signature must cover challenge_message.
AuthCheck verify_challenge(const AuthProof& proof, const keys::PublicKey& claimed, Role role,
                           std::string_view stream_id, std::string_view nonce_hex);

// The web app's signedMsg (see router.hpp for the source): an ed25519 signature by encodedId's
// key over encodedId's own text, either bare or wrapped as <Bytes>...</Bytes> the way the
// polkadot{.js} extension's signRaw wraps it. encodedId must name the same key as userId.
// sr25519 signatures (the extension's default key type) cannot be checked and fail.
bool verify_legacy(std::string_view signed_msg, std::string_view encoded_id, const keys::PublicKey& user);
// The bytes verify_legacy accepts a signature over (bare form; the wrapped form adds <Bytes></Bytes>).
Bytes legacy_message(std::string_view encoded_id);

}  // namespace p2p::signal
