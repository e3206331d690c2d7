// signal/router: the w3bstreaming signalling server as a pure state machine. Inputs are
// events (a socket opened or closed, a Socket.IO packet arrived, a timer tick, a chain answer);
// outputs are actions (send a packet, close a socket, ask the chain). It owns the sockets,
// live streams and their relay trees, challenge nonces, admission, forwarding, limits, the
// chain-answer cache and the /metrics counters. No I/O, no clock, no randomness of its own.
//
// Legacy signedMsg (off by default, RouterConfig::legacy_signed_msg). The w3bstreaming web app
// (gear-foundation/dapps-w3bstreaming, frontend Stream/components/Watch/Watch.tsx) signs with
//   signer.signRaw({address, data: stringToHex(address), type: 'bytes'})
// where address is the account's SS58 text, and sends watch(decodedAddress /*0x hex*/,
// {streamId, signedMsg: signature, encodedId: address}). The polkadot{.js} extension signs
// "<Bytes>" + UTF-8(address) + "</Bytes>"; the backend (packages/signaling-server/src/helpers.ts,
// isValidSig) checks signatureVerify(encodedId, signedMsg, encodedId), which accepts the bare
// UTF-8(encodedId) as well as the <Bytes>-wrapped form. We accept the same two byte strings
// (0x-hex encodedId stands for its bytes, as in @polkadot/util's u8aToU8a), ed25519 only, and
// additionally require encodedId to name the same key as userId.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <utility>
#include <vector>

#include "keys/ed25519.hpp"
#include "signal/engineio.hpp"
#include "signal/protocol.hpp"
#include "signal/relay_tree.hpp"

namespace p2p::signal {

using SocketId = std::uint64_t;
struct RelayScan;
// Fills the span with cryptographically random bytes (libsodium's randombytes_buf in production).
using RandomFn = std::function<void(std::span<std::uint8_t>)>;

struct RouterConfig {
  std::size_t max_frame = 64 * 1024;  // bytes of one Socket.IO packet
  int max_json_depth = kDefaultMaxJsonDepth;
  std::size_t max_sockets = 10000;
  std::size_t max_connections_per_ip = 32;
  double messages_per_second = 20;  // token bucket refill
  double message_burst = 60;        // token bucket size
  std::int64_t strike_window_ms = 10000;  // a second breach within this closes the socket
  std::size_t max_streams_per_broadcaster = 1;
  std::size_t max_streams_per_socket = 8;
  std::size_t max_watchers_per_stream = 5000;
  // Direct children of a broadcaster; 0 = no limit. A broadcaster's own relay {slots: N}
  // (its --max-direct) lowers it further.
  std::size_t broadcaster_slots = 0;
  std::int64_t nonce_ttl_ms = 120000;
  std::int64_t connect_timeout_ms = 45000;  // socket open but no Socket.IO CONNECT
  std::int64_t cache_ttl_ms = 30000;
  std::int64_t chain_timeout_ms = 15000;
  std::size_t max_pending_joins = 1024;  // also caps chain lookups in flight
  std::size_t max_pending_per_socket = 4;
  std::size_t max_cache_entries = 4096;
  bool legacy_signed_msg = false;
  ProtocolLimits protocol;
};

// ---- outputs ----

struct SendAction {
  SocketId socket;
  std::string packet;  // a complete Engine.IO packet, e.g. 42["isStreaming",true]
  bool operator==(const SendAction&) const = default;
};
struct CloseAction {
  SocketId socket;
  std::string reason;
  bool operator==(const CloseAction&) const = default;
};
// Who is the broadcaster of this stream on chain? Answer with on_stream_answer.
struct LookupStream {
  std::string stream_id;
  bool operator==(const LookupStream&) const = default;
};
// Who subscribes to this broadcaster on chain? Answer with on_subscribers_answer.
struct LookupSubscribers {
  keys::PublicKey broadcaster;
  bool operator==(const LookupSubscribers&) const = default;
};
using Action = std::variant<SendAction, CloseAction, LookupStream, LookupSubscribers>;
using Actions = std::vector<Action>;

// ---- chain answers ----

struct StreamAnswer {
  std::string stream_id;
  bool ok = true;                             // false: the chain could not be read
  std::optional<keys::PublicKey> broadcaster;  // nullopt: no such stream
};
struct SubscribersAnswer {
  keys::PublicKey broadcaster{};
  bool ok = true;
  std::vector<keys::PublicKey> subscribers;
};

// ---- metrics ----

enum class Refusal : std::uint8_t {
  bad_request,       // event arguments of the wrong shape
  bad_signature,     // signature missing or wrong
  stale_nonce,       // challenge nonce expired or not this socket's
  not_started,       // watch of a stream that is not live
  not_subscribed,    // watcher not subscribed to the broadcaster
  not_owner,         // broadcast/stop by someone who is not the stream's broadcaster
  unknown_stream,    // no such stream on chain
  already_live,      // "You already have a stream running"
  spoofed,           // offer/answer/candidate for an id this socket does not hold
  no_slot,           // no free place in the relay tree: the watcher waits in the queue
  limit,             // streams per socket, watchers per stream
  rate_limited,      // token bucket empty
  too_large,         // frame over max_frame
  protocol,          // malformed Socket.IO / event before CONNECT
  too_many_connections,
  chain_unavailable,  // chain read failed or timed out
  busy,               // too many joins waiting for the chain
};
inline constexpr std::size_t kRefusalCount = static_cast<std::size_t>(Refusal::busy) + 1;
std::string_view refusal_name(Refusal r);

struct Counters {
  std::uint64_t connections_open = 0;  // gauge
  std::uint64_t connections_total = 0;
  std::uint64_t streams_live = 0;  // gauge
  std::uint64_t watchers = 0;      // gauge
  std::uint64_t messages_in = 0;
  std::uint64_t messages_relayed = 0;  // offer/answer/candidate forwarded
  std::uint64_t chain_lookups = 0;
  std::uint64_t closes_by_server = 0;
  std::uint64_t queued = 0;          // gauge: watchers waiting for a relay slot
  std::uint64_t relay_failures = 0;  // relayFailed reports acted on
  std::uint64_t placements = 0;      // watchers put under a parent: joins, orphans, queue, failed links
  std::array<std::uint64_t, kRefusalCount> refusals{};
};

// ---- the router ----

class Router {
 public:
  Router(RouterConfig config, RandomFn random);

  Actions on_open(SocketId socket, std::string_view peer_ip, std::int64_t now_ms);
  Actions on_close(SocketId socket, std::int64_t now_ms);
  // The Socket.IO text inside one Engine.IO message packet (without the leading "4").
  Actions on_message(SocketId socket, std::string_view sio_text, std::int64_t now_ms);
  Actions on_tick(std::int64_t now_ms);
  Actions on_stream_answer(const StreamAnswer& answer, std::int64_t now_ms);
  Actions on_subscribers_answer(const SubscribersAnswer& answer, std::int64_t now_ms);

  // Chain events say a cached answer is stale.
  void invalidate_stream(std::string_view stream_id);
  void invalidate_subscribers(const keys::PublicKey& broadcaster);

  // GET /is-already-having-stream?address=<id>
  bool is_broadcasting(std::string_view id) const;
  Counters counters() const;

  // Sizes, for tests and the fuzzer's memory bound.
  std::size_t socket_count() const { return sockets_.size(); }
  std::size_t stream_count() const { return streams_.size(); }
  std::size_t pending_count() const { return pending_.size(); }
  std::size_t lookups_in_flight() const { return stream_lookups_.size() + subscriber_lookups_.size(); }
  std::size_t cache_size() const { return owner_cache_.size() + subscriber_cache_.size(); }
  std::size_t watcher_count(std::string_view stream_id) const;  // placed and queued
  // A live stream's relay tree (nullptr when not live), for tests and the fuzzer.
  const RelayTree* tree(std::string_view stream_id) const;
  // Every invariant between sockets, streams and trees; empty when all hold, else what broke.
  std::string check() const;

 private:
  struct SocketState {
    std::string ip;
    std::int64_t opened_at = 0;
    bool connected = false;  // Socket.IO CONNECT to "/" done
    std::string nonce;       // current challenge, 0x hex; empty before CONNECT
    std::int64_t nonce_expires = 0;
    double tokens = 0;
    std::int64_t last_refill = 0;
    int strikes = 0;
    std::int64_t last_strike = 0;
    std::size_t pending = 0;
    std::vector<std::string> streams;  // streams it serves or watches
  };
  struct Member {
    keys::PublicKey key{};
    std::string id;  // as the client wrote it
    SocketId socket = 0;
  };
  struct Stream {
    std::string id;
    Member broadcaster;
    std::vector<Member> watchers;  // in join order, placed or queued
    RelayTree tree;                // who feeds whom; its root is the broadcaster
  };
  struct PendingJoin {
    SocketId socket = 0;
    std::int64_t queued_at = 0;
    keys::PublicKey key{};
    std::variant<BroadcastMsg, WatchMsg> msg;
    keys::PublicKey waits_on_broadcaster{};  // watch joins: whose subscribers
  };
  struct OwnerEntry {
    std::optional<keys::PublicKey> broadcaster;
    std::int64_t expires = 0;
  };
  struct SubscriberEntry {
    std::set<keys::PublicKey> subscribers;
    std::int64_t expires = 0;
  };
  class Out;

  // Socket.IO level
  void handle_packet(Out& out, SocketId s, SocketState& st, const SioPacket& p, std::int64_t now);
  void handle_event(Out& out, SocketId s, SocketState& st, const Json& args, std::int64_t now);
  bool take_token(SocketState& st, std::int64_t now);
  void strike(Out& out, SocketId s, SocketState& st, Refusal why, const std::string& message, std::int64_t now);
  void close_socket(Out& out, SocketId s, std::string reason);
  void issue_challenge(Out& out, SocketId s, SocketState& st, std::int64_t now);
  void leave_all(Out& out, SocketId s, std::int64_t now);

  // Admission
  bool check_proof(Out& out, SocketId s, SocketState& st, const std::optional<AuthProof>& auth,
                   const keys::PublicKey& key, Role role, const std::string& stream_id, std::int64_t now);
  void on_broadcast(Out& out, SocketId s, SocketState& st, BroadcastMsg m, std::int64_t now);
  void on_watch(Out& out, SocketId s, SocketState& st, WatchMsg m, std::int64_t now);
  void continue_broadcast(Out& out, const PendingJoin& j, const OwnerEntry& owner);
  void continue_watch(Out& out, PendingJoin j, std::int64_t now, const SubscriberEntry* fresh);
  bool already_live(const keys::PublicKey& key, const std::string& stream_id) const;
  bool queue_join(Out& out, PendingJoin j, bool new_lookup);
  void start_stream(Out& out, const PendingJoin& j);
  void admit_watcher(Out& out, Stream& stream, const PendingJoin& j);

  // Streams and the relay tree
  void end_stream(Out& out, const std::string& stream_id);
  void remove_watcher(Out& out, Stream& stream, std::size_t index);
  // Turns tree moves into packets: placed -> the parent's watch and the child's placement,
  // depth -> placement, queued -> "No relay slot free". The packets to `hold` go to `held`.
  void apply_moves(Out& out, Stream& stream, const TreeMoves& moves, const keys::PublicKey* hold = nullptr,
                   Out* held = nullptr);
  void relay_failed(Out& out, SocketId s, const RelayFailedMsg& m);
  bool is_peer(const Stream& stream, const Member& parent, const Member& child) const;
  void send_counts(Out& out, const Stream& stream, bool live_too);
  Member* member(Stream& stream, const keys::PublicKey& key);
  // The member an id names: by its text as the member gave it (no hex decoding on the relay
  // path), else by the key it decodes to (another spelling of the same key).
  Member* member(Stream& stream, std::string_view id);
  Member* sender(Stream& stream, SocketId s, std::string_view claimed_id);

  // Forwarding and queries
  void forward_offer(Out& out, SocketId s, const OfferMsg& m);
  void forward_answer(Out& out, SocketId s, const AnswerMsg& m);
  // The stream an answer/candidate is about: its streamId or, when the web app left that out,
  // the one stream the sender is in (several or none: an error to the sender). nullptr: drop it.
  Stream* relay_stream(Out& out, SocketId s, std::string_view event, const std::string& stream_id);
  // The sender (which must be this connection) and the target of a relayed message; the target
  // is null when it is not (or no longer) on the stream. A spoofed sender is refused: both null.
  std::pair<Member*, Member*> relay_ends(Out& out, SocketId s, Stream& stream, std::string_view event,
                                         const std::string& from_id, const std::string& to_id);
  void forward_candidate(Out& out, SocketId s, const CandidateMsg& m);
  // offer/answer/candidate read by scan_relay: the same checks, no JSON tree (the hot path).
  void forward_scanned(Out& out, SocketId s, const RelayScan& r);
  void stop_broadcasting(Out& out, SocketId s, const StopBroadcastingMsg& m);
  void stop_watching(Out& out, SocketId s, const StopWatchingMsg& m);

  // Caches
  void cache_owner(const std::string& stream_id, OwnerEntry e);
  void cache_subscribers(const keys::PublicKey& b, SubscriberEntry e);
  void expire(std::int64_t now);

  RouterConfig config_;
  RandomFn random_;
  Counters counters_;
  // Hashed: these two are looked up for every relayed message (a tree walk was ~3% of it).
  struct TextHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view t) const noexcept { return std::hash<std::string_view>{}(t); }
  };
  std::unordered_map<SocketId, SocketState> sockets_;
  // Sockets still without a Socket.IO CONNECT, by (opened_at, id): the tick looks at the oldest
  // only. Scanning every socket there stalled relaying for milliseconds at 10,000 connections.
  std::set<std::pair<std::int64_t, SocketId>> unconnected_;
  std::map<std::string, std::size_t, std::less<>> per_ip_;
  std::unordered_map<std::string, Stream, TextHash, std::equal_to<>> streams_;
  std::vector<PendingJoin> pending_;
  std::map<std::string, std::int64_t, std::less<>> stream_lookups_;  // in flight, asked at
  std::map<keys::PublicKey, std::int64_t> subscriber_lookups_;
  std::map<std::string, OwnerEntry, std::less<>> owner_cache_;
  std::map<keys::PublicKey, SubscriberEntry> subscriber_cache_;
};

}  // namespace p2p::signal
